"""ldap3 against a scripted LDAP server: rules only, framed by the BER length.

Every LDAP message is one BER SEQUENCE: the tag ``0x30``, a BER length (one byte under 128,
else ``0x8n`` and n length bytes), then the content: ``Prefixed("ber", offset=1)``.
"""

from __future__ import annotations

import pytest
from ldap3 import NONE, SIMPLE, Connection, Server

from pytest_hsocket import Prefixed
from pytest_hsocket.testing import MockServer

# The framing glue: one LDAPMessage, tag and length included.
LDAP = Prefixed("ber", offset=1, include_header=True)


def bind_ok(request: bytes) -> bytes:
    """LDAPMessage { the request's messageID, bindResponse { success, "", "" } }."""
    message_id = request[2 : 4 + request[3]]  # INTEGER: 0x02, its length, its bytes
    body = message_id + bytes.fromhex("6107" + "0a0100" + "0400" + "0400")
    return b"\x30" + bytes([len(body)]) + body


def is_bind(name: bytes, password: bytes) -> object:
    """A check: a simple BindRequest (``[APPLICATION 0]``, tag 0x60) for this name."""
    return lambda frame: b"\x60" in frame[:8] and name in frame and frame.endswith(password)


def script_directory(server: MockServer) -> None:
    """Accept one simple bind, then expect the UnbindRequest (``[APPLICATION 2]``, empty).

    ldap3 numbers its messages for the whole process, so the answer echoes the request's id.
    """
    server.expect(LDAP, is_bind(b"cn=admin,dc=shop", b"s3cret")).respond(bind_ok)  # type: ignore[arg-type]
    server.expect(LDAP, lambda frame: frame.endswith(b"\x42\x00"))  # UnbindRequest


def bind_and_unbind(host: str, port: int) -> bool:
    """What the code under test does."""
    server = Server(host, port=port, get_info=NONE, connect_timeout=5)
    conn = Connection(server, "cn=admin,dc=shop", "s3cret", authentication=SIMPLE)
    try:
        return bool(conn.bind())
    finally:
        conn.unbind()


def test_bind(hsock_server: MockServer) -> None:
    script_directory(hsock_server)
    assert bind_and_unbind(hsock_server.host, hsock_server.port)


@pytest.mark.hsock_fragment(runs=5)
def test_bind_with_every_reply_cut(hsock_server: MockServer) -> None:
    script_directory(hsock_server)
    assert bind_and_unbind(hsock_server.host, hsock_server.port)
