"""Frames, read(0) and zero-width patterns over real loopback sockets: reads complete in
order, and bytes that can never complete a read end the connection with a reason (no hang)."""

from __future__ import annotations

import re
import struct
from collections.abc import Callable

import pytest

import pytest_hsocket as hsocket
from pytest_hsocket import Announced, ConnectionClosed, Framer, Prefixed
from pytest_hsocket.testing import MockServer

from .conftest import Inbox, port_of


def test_read_zero_completes_in_order_over_a_socket(inbox: Inbox) -> None:
    def serve(data: bytes, tag: int, client: hsocket.Socket) -> None:
        client.write(b"ab\n")

    server = hsocket.server(0, serve)
    server.on_connect(lambda client: client.read(1, 0))
    client = hsocket.new(inbox).connect("127.0.0.1", port_of(server))
    try:
        assert client is not None
        client.read(0, 1)  # at once, before any byte
        client.write(b"x").read(b"\n", 2).read(0, 3)  # after the line, in its turn
        assert inbox.wait_for(3) == [(b"", 1), (b"ab\n", 2), (b"", 3)]
    finally:
        client.disconnect()
        server.disconnect()


@pytest.mark.parametrize(
    ("spec", "reply", "reason"),
    [
        pytest.param(
            Prefixed("!I", offset=3, trailer=b"\xce"),
            b"\x01\x00\x00\x00\x00\x00\x01x\x00",
            "not the trailer b'\\xce'",
            id="wrong-trailer",
        ),
        pytest.param(Prefixed("ber", offset=1), b"\x30\x80", "indefinite BER length", id="ber"),
        pytest.param(
            Announced(rb"^\$(\d+)", max_length=10), b"$99\r\n", "over max_length 10", id="announced"
        ),
        pytest.param(
            Framer(lambda b: int(b"x"), name="bad"), b"abc", "Framer(bad) refused", id="framer"
        ),
        pytest.param(
            re.compile(rb"(?=END)"),
            b"END\r\n",
            "zero-width pattern never completes",
            id="zero-width",
        ),
    ],
)
def test_bytes_that_never_frame_end_the_connection_with_a_reason(
    hsock_server: MockServer,
    hsock_client: Callable[..., hsocket.Socket],
    spec: object,
    reply: bytes,
    reason: str,
) -> None:
    hsock_server.expect(b"GO").respond(reply)
    client = hsock_client(hsock_server)
    client.write(b"GO")
    with pytest.raises(ConnectionClosed, match=re.escape(reason)):
        client.expect(spec, tag=4, timeout=30)  # type: ignore[attr-defined]


def test_frames_over_a_socket_in_any_cut(
    hsock_server: MockServer, hsock_client: Callable[..., hsocket.Socket]
) -> None:
    mqtt_publish = b"\x30\x82\x01" + b"t" * 130  # remaining length 130 as a 2-byte varint
    pg_sync = b"S" + struct.pack("!I", 4)
    hsock_server.expect(b"GO").dribble(mqtt_publish + pg_sync + b"$3\r\nabc\r\n", size=3, delay=0)
    client = hsock_client(hsock_server)
    client.write(b"GO")
    assert client.expect(Prefixed("varint", offset=1)) == b"t" * 130  # type: ignore[attr-defined]
    assert client.expect(Prefixed("!I", offset=1, adjust=-4)) == b""  # type: ignore[attr-defined]
    assert client.expect(Announced(rb"^\$(\d+)", trailer=b"\r\n")) == b"abc"  # type: ignore[attr-defined]


def test_expect_zero_returns_empty_bytes_with_its_tag(
    hsock_server: MockServer, hsock_client: Callable[..., hsocket.Socket]
) -> None:
    hsock_server.expect(b"GO").respond(b"\x00\x00\x00\x02ok")
    client = hsock_client(hsock_server)
    empty = client.expect(0, tag=4)  # type: ignore[attr-defined]
    assert empty == b""
    assert empty.tag == 4
    client.write(b"GO")
    assert client.expect(Prefixed("!I")) == b"ok"  # type: ignore[attr-defined]
    assert client.expect(0) == b""  # type: ignore[attr-defined]
