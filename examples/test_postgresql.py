"""pg8000 against a scripted PostgreSQL server: rules only, framed by the message length.

A PostgreSQL message is a type byte, then a 4-byte big-endian length that counts itself but
not the type byte, then the body: ``Prefixed("!I", offset=1, adjust=-4)``. The client's first
message (the startup packet) has no type byte: ``Prefixed("!I", adjust=-4)``. Zero-length
bodies are everyday (Sync, Terminate): such a frame is 5 bytes and its body ``b""``.
"""

from __future__ import annotations

import re
import struct

import pg8000.native
import pytest

from pytest_hsocket import Prefixed
from pytest_hsocket.testing import MockServer

# The framing glue: the startup packet, every later message (type byte included), a builder.
STARTUP = Prefixed("!I", adjust=-4, include_header=True)
MESSAGE = Prefixed("!I", offset=1, adjust=-4, include_header=True)


def msg(kind: bytes, body: bytes = b"") -> bytes:
    return kind + struct.pack("!I", len(body) + 4) + body


READY = msg(b"Z", b"I")  # ReadyForQuery, idle
LOGIN = (
    msg(b"R", struct.pack("!I", 0))  # AuthenticationOk
    + msg(b"S", b"client_encoding\x00UTF8\x00")
    + msg(b"K", struct.pack("!II", 4242, 7))  # BackendKeyData
    + READY
)
ONE_INT_COLUMN = msg(b"T", b"\x00\x01?column?\x00" + struct.pack("!IhIhih", 0, 0, 23, 4, -1, 0))
ROW_1 = msg(b"D", b"\x00\x01" + struct.pack("!i", 1) + b"1")


def script_database(server: MockServer) -> None:
    """Refuse TLS, log in as alice, answer ``SELECT 1`` with one row, expect Terminate."""
    server.expect(STARTUP, struct.pack("!II", 8, 80877103)).respond(b"N")  # SSLRequest: no
    server.expect(STARTUP, re.compile(rb"user\x00alice\x00")).respond(LOGIN)
    server.expect(MESSAGE, msg(b"Q", b"SELECT 1\x00")).respond(
        ONE_INT_COLUMN + ROW_1 + msg(b"C", b"SELECT 1\x00") + READY
    )
    server.expect(MESSAGE, msg(b"X"))  # Terminate: an empty body


def query_one(host: str, port: int) -> list[list[object]]:
    """What the code under test does."""
    con = pg8000.native.Connection("alice", host=host, port=port, database="shop", timeout=5)
    try:
        return con.run("SELECT 1")  # type: ignore[no-any-return]
    finally:
        con.close()


def test_select(hsock_server: MockServer) -> None:
    script_database(hsock_server)
    assert query_one(hsock_server.host, hsock_server.port) == [[1]]


@pytest.mark.hsock_fragment(runs=5)
def test_select_with_every_reply_cut(hsock_server: MockServer) -> None:
    script_database(hsock_server)
    assert query_one(hsock_server.host, hsock_server.port) == [[1]]
