"""Length-prefixed reads over real loopback sockets: an hsocket server and client."""

from __future__ import annotations

import struct
from collections.abc import Iterator

import pytest

import pytest_hsocket as hsocket
from pytest_hsocket import Prefixed

from .conftest import Inbox, Signal, port_of


def _frame(payload: bytes) -> bytes:
    return struct.pack("!I", len(payload)) + payload


@pytest.fixture
def upper_server() -> Iterator[hsocket.Socket]:
    """A server that answers each ``!I`` frame with the payload upper-cased, framed the same."""

    def answer(data: bytes, tag: int, client: hsocket.Socket) -> None:
        client.write(_frame(data.upper()))
        client.read(Prefixed("!I"), tag)

    server = hsocket.server(0, answer)
    server.on_connect(lambda client: client.read(Prefixed("!I"), 0))
    yield server
    server.disconnect()
    server.check()


def test_length_prefixed_frames_round_trip_over_loopback(
    upper_server: hsocket.Socket, inbox: Inbox
) -> None:
    connected = Signal()
    client = hsocket.new(inbox).connect("127.0.0.1", port_of(upper_server), connected)
    assert client is not None
    connected.wait()
    # An empty frame, a payload that looks like a header, one larger than a socket buffer.
    payloads = [b"hello", b"", b"\x00\x00\x00\x09not me", bytes(range(97, 123)) * 20_000]
    for tag, payload in enumerate(payloads, start=1):
        client.read(Prefixed("!I"), tag)
        frame = _frame(payload)
        # Cut inside the header and inside the payload: the server must reassemble both.
        client.write(frame[:2]).write(frame[2:7]).write(frame[7:])
    expected = [(payload.upper(), tag) for tag, payload in enumerate(payloads, start=1)]
    assert inbox.wait_for(len(payloads)) == expected
    assert client.unread == b""
    client.disconnect()
    client.check()


def test_a_frame_over_max_length_disconnects_with_the_reason() -> None:
    import socket
    import struct

    import pytest_hsocket as hsocket
    from pytest_hsocket import Prefixed

    from .conftest import WAIT, Inbox, Signal

    listener = socket.create_server(("127.0.0.1", 0))
    inbox = Inbox()
    gone = Signal()
    client = hsocket.new(inbox).on_disconnect(gone).connect("127.0.0.1", listener.getsockname()[1])
    assert client is not None
    listener.settimeout(WAIT)
    peer, _ = listener.accept()
    client.read(Prefixed("!I", max_length=10), 1).read(Prefixed("!I", max_length=10), 2)
    peer.sendall(struct.pack("!I", 3) + b"abc" + struct.pack("!I", 1000) + b"x" * 20)
    [(reason,)] = gone.wait()
    assert reason == "length 1000 over max_length 10 in a Prefixed('!I', max_length=10) read"
    assert inbox.items == [(b"abc", 1)]
    peer.close()
    listener.close()
