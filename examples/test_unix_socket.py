"""A line protocol over a Unix domain socket, spoken by a plain ``socket.socket(AF_UNIX)``.

Daemons often listen on a socket file instead of a port (docker, systemd, redis' ``unixsocket``).
``hsock_unix_server`` is ``hsock_server`` on such a file, in a private folder of its own; the
client here is the stdlib socket a real tool would use: one command per line, one reply line.
"""

from __future__ import annotations

import os
import re
import socket
import stat
from collections.abc import Callable, Iterator

import pytest

from pytest_hsocket.testing import MockServer

pytestmark = pytest.mark.skipif(
    not hasattr(socket, "AF_UNIX"), reason="Unix domain sockets are not available here"
)


class LineClient:
    """One command per line, one reply line back, over a Unix socket."""

    def __init__(self, path: str, timeout: float = 5.0) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.reader = self.sock.makefile("rb")

    def send(self, *lines: str) -> None:
        self.sock.sendall("".join(f"{line}\n" for line in lines).encode())

    def reply(self) -> str:
        """Return the next reply line without its newline.

        Raises:
            ConnectionError: If the server closed the connection instead.
        """
        line = self.reader.readline()
        if not line.endswith(b"\n"):
            raise ConnectionError(f"server closed the connection (after {line!r})")
        return line[:-1].decode()

    def request(self, line: str) -> str:
        self.send(line)
        return self.reply()

    def close(self) -> None:
        self.reader.close()
        self.sock.close()


@pytest.fixture
def connect(hsock_unix_server: MockServer) -> Iterator[Callable[[], LineClient]]:
    """Open ``LineClient``s to ``hsock_unix_server``; closed at teardown."""
    clients: list[LineClient] = []

    def make() -> LineClient:
        clients.append(LineClient(hsock_unix_server.path))
        return clients[-1]

    yield make
    for client in clients:
        client.close()


def test_the_server_is_a_socket_file(hsock_unix_server: MockServer) -> None:
    path = hsock_unix_server.path
    assert stat.S_ISSOCK(os.stat(path).st_mode)
    assert stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) == 0o700  # private folder
    assert (hsock_unix_server.host, hsock_unix_server.port) == ("", 0)


def test_a_key_value_dialogue(
    hsock_unix_server: MockServer, connect: Callable[[], LineClient]
) -> None:
    hsock_unix_server.expect(b"SET color blue\n").respond(b"OK\n")
    hsock_unix_server.expect(b"GET color\n").respond(b"VALUE blue\n")
    hsock_unix_server.expect(b"GET size\n").respond(b"MISSING\n")
    hsock_unix_server.expect(b"QUIT\n").respond(b"BYE\n").close()
    client = connect()

    assert client.request("SET color blue") == "OK"
    assert client.request("GET color") == "VALUE blue"
    assert client.request("GET size") == "MISSING"
    assert client.request("QUIT") == "BYE"
    # The server hung up after BYE.
    with pytest.raises(ConnectionError, match="closed the connection"):
        client.reply()


def test_pipelined_lines_are_answered_in_order(
    hsock_unix_server: MockServer, connect: Callable[[], LineClient]
) -> None:
    # One repeating rule answers any number of ECHO lines.
    hsock_unix_server.expect(re.compile(rb"ECHO [^\n]*\n"), times=None).respond(
        lambda line: line[len(b"ECHO ") :]
    )
    client = connect()

    client.send("ECHO one", "ECHO two", "ECHO three")  # one write, three commands

    assert [client.reply() for _ in range(3)] == ["one", "two", "three"]
    assert hsock_unix_server.transcripts[0].received() == b"ECHO one\nECHO two\nECHO three\n"


def test_each_client_plays_the_script_from_the_start(
    hsock_unix_server: MockServer, connect: Callable[[], LineClient]
) -> None:
    # Every connection gets its own run of the script: the greeting, and two PINGs each.
    hsock_unix_server.greet(b"READY\n")
    hsock_unix_server.expect(b"PING\n", times=2).respond(b"PONG\n")
    first, second = connect(), connect()

    assert (first.reply(), second.reply()) == ("READY", "READY")
    assert [first.request("PING"), second.request("PING")] == ["PONG", "PONG"]
    assert [second.request("PING"), first.request("PING")] == ["PONG", "PONG"]
    assert [t.received() for t in hsock_unix_server.transcripts] == [b"PING\nPING\n"] * 2
