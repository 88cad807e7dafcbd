"""A client that retries once when the server resets the connection.

Flaky networks and restarting servers abort connections (TCP RST); a client then sees
``ConnectionResetError`` and may reconnect and try again. To test that path, the first
connection must fail and the next one succeed: ``hsock_server.connection(1)`` gives the first
connection a script of its own (read the request, then reset), while the default script,
``hsock_server.expect(...)``, answers every other connection.
"""

from __future__ import annotations

import socket

import pytest

from pytest_hsocket.testing import MockServer

REQUEST = b"GET /config\r\n"
REPLY = b"+mode=fast\r\n"


class NoReplyError(Exception):
    """The server closed the connection cleanly without answering (not retried)."""


def fetch(address: tuple[str, int], request: bytes, *, attempts: int = 2) -> bytes:
    """Send ``request`` and return the reply line; retry on a reset, ``attempts`` times in all.

    Raises:
        ConnectionResetError: If every attempt was reset.
        NoReplyError: If the server closed the connection without a reply.
    """
    for attempt in range(1, attempts + 1):
        try:
            with socket.create_connection(address, timeout=5) as sock:
                sock.sendall(request)
                with sock.makefile("rb") as reader:
                    line = reader.readline()
        except ConnectionResetError:
            if attempt == attempts:
                raise
            continue
        if not line.endswith(b"\n"):
            raise NoReplyError(f"connection closed after {line!r}")
        return line
    raise ValueError(f"attempts must be at least 1, not {attempts}")


def test_a_reset_is_retried_once(hsock_server: MockServer) -> None:
    hsock_server.connection(1).expect(REQUEST).reset()
    hsock_server.expect(REQUEST).respond(REPLY)  # every other connection

    assert fetch(hsock_server.address, REQUEST) == REPLY

    first, second = hsock_server.transcripts
    assert (first.received(), second.received()) == (REQUEST, REQUEST)
    assert first.sent() == b""  # the first attempt got nothing but the RST


def test_two_resets_give_up(hsock_server: MockServer) -> None:
    hsock_server.connection(1).expect(REQUEST).reset()
    hsock_server.connection(2).expect(REQUEST).reset()

    with pytest.raises(ConnectionResetError):
        fetch(hsock_server.address, REQUEST)

    assert len(hsock_server.transcripts) == 2  # no third attempt


def test_no_retry_without_a_reset(hsock_server: MockServer) -> None:
    # A clean close (FIN) is an answer of its own, not a network failure: no second try.
    # The default script is empty: a second connection sending anything would fail the test.
    hsock_server.connection(1).expect(REQUEST).close()

    with pytest.raises(NoReplyError, match="connection closed after b''"):
        fetch(hsock_server.address, REQUEST)

    assert len(hsock_server.transcripts) == 1
