"""``python -m pytest_hsocket serve``: a recorded conversation served on a port, live."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
from pathlib import Path

from pytest_hsocket._core.record import RecordEntry, dump_recording

from .conftest import WAIT


def _serve(path: Path, *extra: str) -> subprocess.Popen[str]:
    # The caller ends it with communicate(), which also closes the pipes.
    return subprocess.Popen(
        [sys.executable, "-m", "pytest_hsocket", "serve", str(path), "--connections", "1", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _port(process: subprocess.Popen[str]) -> int:
    assert process.stdout is not None
    line = process.stdout.readline()
    found = re.search(r"on 127\.0\.0\.1:(\d+)", line)
    assert found, line
    return int(found.group(1))


def test_serves_a_recording_and_prints_the_transcript(tmp_path: Path) -> None:
    path = tmp_path / "talk.jsonl"
    dump_recording(
        [
            RecordEntry(0.0, "downstream", 1, b"+OK ready\r\n"),
            RecordEntry(0.1, "upstream", 1, b"PING\r\n"),
            RecordEntry(0.2, "downstream", 1, b"+PONG\r\n"),
        ],
        path,
    )
    process = _serve(path)
    with socket.create_connection(("127.0.0.1", _port(process)), WAIT) as client:
        client.settimeout(WAIT)
        assert client.recv(100) == b"+OK ready\r\n"
        client.sendall(b"PING\r\n")
        assert client.recv(100) == b"+PONG\r\n"
    out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert re.search(r"\[replay connection 1\] \+ *[0-9.]+s  >> b'\+OK ready\\r\\n'", out), out
    assert re.search(r"\[replay connection 1\] \+ *[0-9.]+s  << b'PING\\r\\n'", out), out
    assert "every connection followed the recording" in out


def test_a_client_that_strays_fails(tmp_path: Path) -> None:
    path = tmp_path / "talk.jsonl"
    dump_recording([RecordEntry(0, "upstream", 1, b"PING\r\n")], path)
    process = _serve(path)
    with socket.create_connection(("127.0.0.1", _port(process)), WAIT) as client:
        client.sendall(b"QUIT\r\n")
    _, err = process.communicate(timeout=30)
    assert process.returncode == 1
    assert "unexpected data b'QUIT\\r\\n'" in err


def test_a_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pytest_hsocket", "serve", str(tmp_path / "nope.jsonl")],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert "error:" in result.stderr
    assert "nope.jsonl" in result.stderr
