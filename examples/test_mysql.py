"""PyMySQL against a scripted MySQL server: rules only, framed by MySQL's packet header.

A MySQL packet is a 3-byte little-endian payload length, a sequence byte the length does not
count, then the payload: ``Prefixed("<3", adjust=1)`` (the sequence byte joins the payload).
The server speaks first (its handshake is a greeting).
"""

from __future__ import annotations

import re
import struct

import pymysql
import pytest

from pytest_hsocket import Prefixed
from pytest_hsocket.testing import MockServer

# The framing glue: every packet, header included, and a builder.
PACKET = Prefixed("<3", adjust=1, include_header=True)


def packet(seq: int, payload: bytes) -> bytes:
    return len(payload).to_bytes(3, "little") + bytes([seq]) + payload


def lenenc(text: bytes) -> bytes:
    return bytes([len(text)]) + text


# CLIENT_LONG_PASSWORD | PROTOCOL_41 | TRANSACTIONS | SECURE_CONNECTION | PLUGIN_AUTH
CAPABILITIES = 0x1 | 0x200 | 0x2000 | 0x8000 | 0x80000
SALT = b"12345678abcdefghijkl"
GREETING = packet(
    0,
    b"\x0a8.0.36-mock\x00"
    + struct.pack("<I", 7)  # connection id
    + SALT[:8]
    + b"\x00"
    + struct.pack("<HBHH", CAPABILITIES & 0xFFFF, 33, 2, CAPABILITIES >> 16)
    + bytes([len(SALT) + 1])
    + b"\x00" * 10
    + SALT[8:]
    + b"\x00mysql_native_password\x00",
)
OK = b"\x00\x00\x00\x02\x00\x00\x00"  # no rows affected, no insert id, autocommit, 0 warnings
EOF_PACKET = b"\xfe\x00\x00\x02\x00"
COLUMN = (
    b"".join(lenenc(part) for part in (b"def", b"", b"", b"", b"1", b""))
    + b"\x0c"
    + struct.pack("<HIBHB", 63, 1, 8, 0x81, 0)  # binary charset, width 1, LONGLONG, NOT NULL
    + b"\x00\x00"
)


def script_database(server: MockServer) -> None:
    """Greet, accept root and its SET commands, answer ``SELECT 1`` with a row, expect QUIT."""
    server.greet(GREETING)
    server.expect(PACKET, re.compile(rb"\A.{4}.{32}root\x00", re.S)).respond(packet(2, OK))
    setup = re.compile(rb"\A.{3}\x00\x03SET ", re.S)  # SET NAMES, SET AUTOCOMMIT: any, OK
    server.expect(PACKET, setup, times=None, ordered=False).respond(packet(1, OK))
    server.expect(PACKET, packet(0, b"\x03SELECT 1")).respond(
        packet(1, b"\x01")
        + packet(2, COLUMN)
        + packet(3, EOF_PACKET)
        + packet(4, lenenc(b"1"))
        + packet(5, EOF_PACKET)
    )
    server.expect(PACKET, packet(0, b"\x01"))  # COM_QUIT


def query_one(host: str, port: int) -> tuple[object, ...]:
    """What the code under test does."""
    con = pymysql.connect(host=host, port=port, user="root", password="", connect_timeout=5)
    try:
        with con.cursor() as cursor:
            cursor.execute("SELECT 1")
            return cursor.fetchone()  # type: ignore[no-any-return]
    finally:
        con.close()


def test_select(hsock_server: MockServer) -> None:
    script_database(hsock_server)
    assert query_one(hsock_server.host, hsock_server.port) == (1,)


@pytest.mark.hsock_fragment(runs=5)
def test_select_with_every_reply_cut(hsock_server: MockServer) -> None:
    script_database(hsock_server)
    assert query_one(hsock_server.host, hsock_server.port) == (1,)
