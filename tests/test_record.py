"""Recordings: the JSON-lines format, and replaying a recorded conversation on a mock server."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_hsocket._core.record import (
    RecordEntry,
    dump_recording,
    load_recording,
    scripts_from_recording,
)
from pytest_hsocket.testing import MockServer, TestClient


def test_round_trip_keeps_text_and_binary(tmp_path: Path) -> None:
    entries = [
        RecordEntry(0.0, "downstream", 1, b"+OK ready\r\n"),
        RecordEntry(0.001, "upstream", 1, b"\x00\xffbinary"),
        RecordEntry(0.5, "downstream", 2, "héllo".encode()),
    ]
    path = tmp_path / "talk.jsonl"
    dump_recording(entries, path)
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0] == '{"t": 0.0, "dir": "downstream", "conn": 1, "text": "+OK ready\\r\\n"}'
    assert '"b64": "AP9iaW5hcnk="' in lines[1]
    assert load_recording(path) == entries


def test_a_bad_line_is_named(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"t": 0, "dir": "sideways", "conn": 1, "text": "x"}\n')
    with pytest.raises(ValueError, match="line 1 is not a record"):
        load_recording(path)


def test_scripts_from_a_recording() -> None:
    entries = [
        RecordEntry(0.0, "downstream", 1, b"220 hi\r\n"),
        RecordEntry(0.1, "upstream", 1, b"HE"),
        RecordEntry(0.1, "upstream", 1, b"LO\r\n"),
        RecordEntry(0.2, "downstream", 1, b"250 "),
        RecordEntry(0.2, "downstream", 1, b"ok\r\n"),
        RecordEntry(0.3, "upstream", 1, b"QUIT\r\n"),
    ]
    [script] = scripts_from_recording(entries).values()
    assert script.greetings == [b"220 hi\r\n"]
    assert [repr(r) for r in script.rules] == ["expect(b'HELO\\r\\n')", "expect(b'QUIT\\r\\n')"]
    assert script.rules[0].steps == [("send", b"250 ok\r\n")]


def test_a_saved_conversation_replays_offline(tmp_path: Path) -> None:
    path = tmp_path / "session.jsonl"
    with MockServer.start() as live:
        live.greet(b"+READY\r\n")
        live.expect(b"GET a\r\n").respond(b"$1\r\n1\r\n")
        live.expect(b"GET b\r\n").respond(b"$1\r\n2\r\n")
        with TestClient.open(*live.address) as client:
            assert client.expect(b"\r\n") == b"+READY\r\n"
            for key, value in ((b"a", b"1"), (b"b", b"2")):
                client.write(b"GET " + key + b"\r\n")
                client.expect(b"\r\n")
                assert client.expect(b"\r\n") == value + b"\r\n"
        live.close()
        live.check()
        live.save(path)

    with MockServer.start() as replayed:
        replayed.replay(path)
        with TestClient.open(*replayed.address) as client:
            assert client.expect(b"\r\n") == b"+READY\r\n"
            client.write(b"GET a\r\n")
            assert client.expect(b"\r\n") + client.expect(b"\r\n") == b"$1\r\n1\r\n"
            client.write(b"GET b\r\n")
            assert client.expect(b"\r\n") + client.expect(b"\r\n") == b"$1\r\n2\r\n"
        replayed.close()
        replayed.check()


def test_a_replay_fails_when_the_client_strays(tmp_path: Path) -> None:
    from pytest_hsocket.testing import ExpectationError

    path = tmp_path / "one.jsonl"
    dump_recording(
        [RecordEntry(0, "upstream", 1, b"PING\r\n"), RecordEntry(0, "downstream", 1, b"+PONG\r\n")],
        path,
    )
    # Leaving the server's with-block checks it, like a fixture's teardown.
    with pytest.raises(ExpectationError, match=r"unexpected data b'PONG\\r\\n'"):  # noqa: PT012
        with MockServer.start() as server:
            server.replay(path)
            with TestClient.open(*server.address) as client:
                client.write(b"PONG\r\n")
            server.close()
