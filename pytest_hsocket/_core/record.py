"""Recorded conversations: one JSON object per line, the format ``hsock_proxy`` saves and
``MockServer.replay`` plays back (pure: no sockets).

Each line is ``{"t": 0.0123, "dir": "upstream", "conn": 1, "text": "PING\\r\\n"}``: seconds since
the recording began, ``"upstream"`` (client to server) or ``"downstream"``, the connection's
number (1-based), and the bytes as UTF-8 ``"text"`` or, for other bytes, ``"b64"``.
"""

from __future__ import annotations

import base64
import json
import os
from typing import Any, NamedTuple, Optional, Union

from pytest_hsocket._core.checks import FINITE_MAX, check_int, check_real, show
from pytest_hsocket._core.rules import Script
from pytest_hsocket._core.transcript import Transcript

PathLike = Union[str, "os.PathLike[str]"]
DIRECTIONS = ("upstream", "downstream")


class RecordEntry(NamedTuple):
    """One forwarded piece: when (seconds since the proxy started), which way, which
    connection (1-based, in the order they were accepted), and the bytes."""

    t: float
    direction: str
    conn: int
    data: bytes


def _entry_json(entry: RecordEntry) -> str:
    line: dict[str, Any] = {"t": round(entry.t, 6), "dir": entry.direction, "conn": entry.conn}
    try:
        line["text"] = entry.data.decode("utf-8")
    except UnicodeDecodeError:
        line["b64"] = base64.b64encode(entry.data).decode("ascii")
    return json.dumps(line, ensure_ascii=False)


def dump_recording(entries: list[RecordEntry], path: PathLike) -> None:
    """Write ``entries`` to ``path`` as JSON lines (UTF-8), one object per piece.

    Each line is ``{"t": 0.0123, "dir": "upstream", "conn": 1, "text": "PING\\r\\n"}``, with
    ``"b64"`` in place of ``"text"`` for bytes that are not UTF-8.

    Args:
        entries: The pieces, in order.
        path: Where to write (replaced if it exists).
    """
    with open(path, "w", encoding="utf-8", newline="\n") as out:
        for entry in entries:
            out.write(_entry_json(entry) + "\n")


def load_recording(path: PathLike) -> list[RecordEntry]:
    """Read a file written by :meth:`FaultProxy.save` (or :func:`dump_recording`).

    Args:
        path: The JSON-lines file (UTF-8); blank lines are skipped.
    Returns:
        The pieces, in file order.
    Raises:
        ValueError: If a line is not a record object (not UTF-8, not JSON, nested too deep, a
            key missing, a value of the wrong type or out of range), naming the file and the
            line. No other exception comes from a file's content.
        OSError: If the file cannot be read.
    """
    entries = []
    with open(path, "rb") as source:
        for number, raw in enumerate(source, 1):
            try:
                entry = _parse_line(raw)
            except (ValueError, TypeError, KeyError, RecursionError) as exc:
                raise ValueError(
                    f"{os.fspath(path)!r} line {number} is not a record: {_reason(exc)}"
                ) from None
            if entry is not None:
                entries.append(entry)
    return entries


def _reason(exc: BaseException) -> str:
    if isinstance(exc, RecursionError):
        return "nested too deep"
    if isinstance(exc, KeyError):
        return f"no {exc.args[0]!r} key" if exc.args else "a key is missing"
    # One line, whatever the decoder said (a JSON error is one line; keep it so).
    return " ".join(str(exc).split())[:200]


def _parse_line(raw: bytes) -> Optional[RecordEntry]:
    line = raw.decode("utf-8")  # UnicodeDecodeError is a ValueError: named by the caller
    if not line.strip():
        return None
    return _parse_entry(json.loads(line))


def _parse_entry(obj: Any) -> RecordEntry:
    if not isinstance(obj, dict):
        raise TypeError(f"expected an object, not {_brief(obj)}")
    if ("text" in obj) == ("b64" in obj):
        raise ValueError("needs exactly one of 'text' and 'b64'")
    if "text" in obj:
        text = obj["text"]
        if not isinstance(text, str):
            raise TypeError(f"'text' must be a string, not {_brief(text)}")
        data = text.encode("utf-8")  # a lone surrogate: UnicodeEncodeError, a ValueError
    else:
        b64 = obj["b64"]
        if not isinstance(b64, str):
            raise TypeError(f"'b64' must be a string, not {_brief(b64)}")
        data = base64.b64decode(b64, validate=True)
    direction, conn, t = obj["dir"], obj["conn"], obj["t"]
    if not isinstance(direction, str) or direction not in DIRECTIONS:
        raise ValueError(f"'dir' must be 'upstream' or 'downstream', not {_brief(direction)}")
    check_int(conn, "'conn'", None)
    seconds = check_real(t, "'t'", high=FINITE_MAX, noun="a number of seconds")
    return RecordEntry(seconds, direction, conn, data)


def _brief(value: object) -> str:
    shown = show(value)
    return shown if len(shown) <= 60 else shown[:57] + "..."


def scripts_from_recording(entries: list[RecordEntry]) -> dict[int, Script]:
    """Turn a recording into one server script per recorded connection.

    What the client sent (upstream, consecutive pieces joined) becomes an exact ``expect``;
    what the server answered next becomes its ``respond``; server bytes before the client's
    first become a greeting.

    Returns:
        The scripts, by connection number.
    """
    merged: dict[int, list[list[Any]]] = {}
    for entry in entries:
        events = merged.setdefault(entry.conn, [])
        if events and events[-1][0] == entry.direction:
            events[-1][1] += entry.data
        elif entry.data:
            events.append([entry.direction, bytes(entry.data)])
    scripts: dict[int, Script] = {}
    for conn, events in sorted(merged.items()):
        script = scripts[conn] = Script()
        rule = None
        for direction, data in events:
            if direction == "upstream":
                rule = script.expect(bytes(data))
            elif rule is None:
                script.greet(bytes(data))
            else:
                rule.respond(bytes(data))
    return scripts


def recording_from_transcripts(
    transcripts: list[Transcript], *, server_side: bool
) -> list[RecordEntry]:
    """Turn transcripts into a recording (connection n = the n-th transcript).

    Args:
        transcripts: The connections' transcripts, in order.
        server_side: True for a server's transcripts (what it received went upstream).
    Returns:
        The entries, in order of time within each connection.
    """
    inbound, outbound = ("upstream", "downstream") if server_side else ("downstream", "upstream")
    entries = []
    for conn, transcript in enumerate(transcripts, 1):
        for entry in transcript.entries:
            if entry.kind in ("in", "out") and entry.data:
                direction = inbound if entry.kind == "in" else outbound
                entries.append(RecordEntry(entry.at, direction, conn, entry.data))
    return entries
