"""A connection's conversation, and how bytes are shown in messages (pure).

Printable data is shown as text (Python byte-literal escapes), binary data as a hexdump, and
two byte strings are compared as a line diff or a hexdump diff with the first differing offset.
"""

from __future__ import annotations

import difflib
import time
from typing import Callable, NamedTuple, Optional

SHOW_LIMIT = 512
"""Bytes of one entry shown in a transcript before the rest is summarised."""

_ARROWS = {"in": "<<", "out": ">>"}


class Entry(NamedTuple):
    """One event of a conversation: when (seconds since the start), what, bytes and tag."""

    at: float
    kind: str
    data: bytes
    tag: int
    note: str


_new_entry = tuple.__new__


def is_printable(data: bytes) -> bool:
    """Return whether ``data`` reads as text (UTF-8 with no control bytes but tab/CR/LF)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return all(ch.isprintable() or ch in "\t\r\n" for ch in text)


def hexdump(data: bytes, offset: int = 0, width: int = 16) -> list[str]:
    """Return ``data`` as hexdump lines: offset, hex bytes, and ASCII."""
    lines = []
    for start in range(0, len(data), width):
        chunk = data[start : start + width]
        hex_part = " ".join(f"{b:02x}" for b in chunk).ljust(width * 3 - 1)
        text = "".join(chr(b) if 32 <= b < 127 else "." for b in chunk)
        lines.append(f"{offset + start:08x}  {hex_part}  |{text}|")
    return lines


def show(data: bytes, limit: int = SHOW_LIMIT) -> list[str]:
    """Return display lines for ``data``: one repr line if printable, else a hexdump."""
    head, rest = data[:limit], len(data) - limit
    lines = [repr(head)] if is_printable(head) else hexdump(head)
    if rest > 0:
        lines.append(f"... ({rest} more bytes)")
    return lines


def brief(data: bytes, limit: int = 64) -> str:
    """One line for ``data`` in a message: its repr, cut to ``limit`` bytes with a count."""
    if len(data) <= limit:
        return repr(data)
    return f"{data[:limit]!r}... ({len(data)} bytes)"


def first_difference(expected: bytes, actual: bytes) -> int:
    """Return the offset of the first differing byte (the shorter length if one is a prefix)."""
    for index, (a, b) in enumerate(zip(expected, actual)):
        if a != b:
            return index
    return min(len(expected), len(actual))


def diff(expected: bytes, actual: bytes) -> list[str]:
    """Explain how ``actual`` differs from ``expected``: summary, then a line or hexdump diff."""
    at = first_difference(expected, actual)
    got = f"0x{actual[at]:02x}" if at < len(actual) else "end of data"
    want = f"0x{expected[at]:02x}" if at < len(expected) else "end of data"
    lines = [
        f"expected {len(expected)} bytes, received {len(actual)}; "
        f"first difference at byte {at}: expected {want}, received {got}"
    ]
    if is_printable(expected) and is_printable(actual):
        left = [repr(line) for line in expected.splitlines(keepends=True)] or ["b''"]
        right = [repr(line) for line in actual.splitlines(keepends=True)] or ["b''"]
    else:
        left, right = hexdump(expected), hexdump(actual)
    lines += [
        line.rstrip("\n")
        for line in difflib.unified_diff(left, right, "expected", "received", lineterm="")
    ]
    return lines


class Transcript:
    """Records what a connection sent and received; callable as a socket's tap.

    Attributes:
        name: What the conversation is (shown as its title).
        entries: The events, in order.
    """

    def __init__(self, name: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.name = name
        self.entries: list[Entry] = []
        self._clock = clock
        self._start = clock()
        self.listener: Optional[Callable[[Transcript, Entry], object]] = None

    def record(self, kind: str, data: bytes = b"", tag: int = -1, note: str = "") -> None:
        """Add an event: ``kind`` is ``"in"``, ``"out"``, ``"connected"``, ``"closed"``, a note."""
        if type(data) is not bytes:
            data = bytes(data)
        # tuple.__new__: NamedTuple's own __new__ is a Python function (one call per message).
        entry = _new_entry(Entry, (self._clock() - self._start, kind, data, tag, note))
        # No lock: list.append and list() are atomic (the loop appends, the test renders).
        self.entries.append(entry)
        if self.listener is not None:
            self.listener(self, entry)

    __call__ = record  # the socket tap's form

    def received(self) -> bytes:
        """Return every byte received, joined."""
        return b"".join(e.data for e in self.entries if e.kind == "in")

    def sent(self) -> bytes:
        """Return every byte sent, joined."""
        return b"".join(e.data for e in self.entries if e.kind == "out")

    def render(self) -> str:
        """Return the conversation as readable lines (``>>`` sent, ``<<`` received)."""
        lines = [f"transcript of {self.name}:"]
        entries = list(self.entries)
        if not entries:
            lines.append("  (nothing happened)")
        for entry in entries:
            lines += render_entry(entry)
        return "\n".join(lines)

    __str__ = render  # print(transcript) shows the conversation

    def __repr__(self) -> str:
        return f"<Transcript {self.name!r}: {len(self.entries)} events>"


def render_entry(entry: Entry) -> list[str]:
    """Return the display lines of one transcript entry."""
    when = f"  +{entry.at:7.3f}s  "
    tag = f"  (tag {entry.tag})" if entry.tag != -1 else ""
    if entry.kind in _ARROWS:
        shown = show(entry.data)
        if is_printable(entry.data[:SHOW_LIMIT]) and len(shown) == 1:
            return [f"{when}{_ARROWS[entry.kind]} {shown[0]}{tag}"]
        return [f"{when}{_ARROWS[entry.kind]} {len(entry.data)} bytes{tag}"] + [
            " " * 14 + line for line in shown
        ]
    if entry.kind == "closed":
        note = "by this side" if entry.note in ("", "(null)") else entry.note
        text = f"{when}closed: {note}"
        if entry.data:
            text += f"; {len(entry.data)} bytes never read: {show(entry.data, 64)[0]}"
        return [text]
    return [f"{when}{entry.kind}{': ' + entry.note if entry.note else ''}"]


class TaggedBytes(bytes):
    """Bytes from a completed read that remember their tag (and the connection's transcript).

    Compares and hashes as plain bytes; failed comparisons in pytest show the tag, a diff and
    the transcript.
    """

    tag: int
    transcript: Optional[Transcript]

    def __new__(
        cls, data: bytes, tag: int = -1, transcript: Optional[Transcript] = None
    ) -> TaggedBytes:
        obj = super().__new__(cls, data)
        obj.tag = tag
        obj.transcript = transcript
        return obj
