"""A binary protocol with length-prefixed frames: a 4-byte big-endian length, then the payload.

No delimiter can end a binary payload, so a reader alternates two reads: 4 bytes (``TAG_LEN``),
then exactly as many bytes as they announce (``TAG_BODY``) -- the same two steps as the
Content-Length read of the hs.socket documentation's HTTP example. ``FramedClient`` is written
in hs.socket's callback style; the last tests read frames with ``hsock_client.expect``.
"""

from __future__ import annotations

import queue
import struct
from collections.abc import Callable, Iterator

import pytest

import pytest_hsocket as hsocket
from pytest_hsocket.testing import MockServer, TestClient

TAG_LEN, TAG_BODY = 1, 2
HEADER = struct.Struct(">I")

BLOB = bytes(range(256)) * 1024  # 256 KiB of binary: many TCP segments


def frame(payload: bytes) -> bytes:
    """Prefix ``payload`` with its length."""
    return HEADER.pack(len(payload)) + payload


class FramedClient:
    """A client of the framed protocol: every complete frame lands in a queue."""

    def __init__(self, host: str, port: int) -> None:
        self.messages: queue.Queue[bytes] = queue.Queue()
        sock = hsocket.new(self._on_data).connect(host, port)
        if sock is None:
            raise ConnectionError(f"cannot connect to {host}:{port}")
        self.sock = sock
        self.sock.read(HEADER.size, TAG_LEN)

    def _on_data(self, data: bytes, tag: int) -> None:  # runs on the socket loop
        if tag == TAG_LEN:
            (length,) = HEADER.unpack(data)
            if length == 0:  # an empty frame: no body to read
                self.messages.put(b"")
                self.sock.read(HEADER.size, TAG_LEN)
            else:
                self.sock.read(length, TAG_BODY)
        elif tag == TAG_BODY:
            self.messages.put(data)
            self.sock.read(HEADER.size, TAG_LEN)

    def send(self, payload: bytes) -> None:
        self.sock.write(frame(payload))

    def receive(self, timeout: float = 5.0) -> bytes:
        """Return the next frame's payload (``queue.Empty`` if none comes in time)."""
        try:
            return self.messages.get(timeout=timeout)
        finally:
            self.sock.check()  # raise what the callback raised, if anything

    def close(self) -> None:
        self.sock.disconnect()
        self.sock.check()


@pytest.fixture
def connect(hsock_server: MockServer) -> Iterator[Callable[[], FramedClient]]:
    """Open ``FramedClient``s to ``hsock_server``; closed at teardown."""
    clients: list[FramedClient] = []

    def make() -> FramedClient:
        clients.append(FramedClient(hsock_server.host, hsock_server.port))
        return clients[-1]

    yield make
    for client in clients:
        client.close()


def test_callback_client_reads_framed_replies(
    hsock_server: MockServer, connect: Callable[[], FramedClient]
) -> None:
    hsock_server.expect(frame(b"HELLO")).respond(frame(b"WORLD") + frame(b"") + frame(BLOB))
    client = connect()

    client.send(b"HELLO")

    assert client.receive() == b"WORLD"
    assert client.receive() == b""
    assert client.receive() == BLOB
    assert client.messages.empty()


def test_a_frame_split_across_segments_is_reassembled(
    hsock_server: MockServer, connect: Callable[[], FramedClient]
) -> None:
    # The reply arrives in three pieces, cut inside the header and inside the payload.
    reply = frame(b"split payload")
    rule = hsock_server.expect(frame(b"GO"))
    rule.respond(reply[:2]).delay(0.05)
    rule.respond(reply[2:9]).delay(0.05)
    rule.respond(reply[9:])
    client = connect()

    client.send(b"GO")

    assert client.receive() == b"split payload"
    sent = [entry.data for entry in hsock_server.transcripts[0].entries if entry.kind == "out"]
    assert sent == [reply[:2], reply[2:9], reply[9:]]


def test_a_responder_function_answers_from_the_request(
    hsock_server: MockServer, connect: Callable[[], FramedClient]
) -> None:
    # respond() takes a function of the matched bytes: here an "upper-case" service.
    for word in (b"alpha", b"beta"):
        hsock_server.expect(frame(word)).respond(lambda request: frame(request[4:].upper()))
    client = connect()

    client.send(b"alpha")
    client.send(b"beta")

    assert [client.receive(), client.receive()] == [b"ALPHA", b"BETA"]


def test_callback_client_against_a_callback_server(
    hsock_server: MockServer, connect: Callable[[], FramedClient]
) -> None:
    # Both sides in hs.socket style: the server reads frames the same way and answers each
    # with its payload reversed.
    def on_frame(data: bytes, tag: int, client: hsocket.Socket) -> None:
        if tag == TAG_LEN:
            client.read(HEADER.unpack(data)[0], TAG_BODY)
        else:
            client.write(frame(data[::-1]))
            client.read(HEADER.size, TAG_LEN)

    def on_connect(client: hsocket.Socket) -> None:
        client.read(HEADER.size, TAG_LEN)

    hsock_server.set_callback(on_frame)
    hsock_server.on_connect(on_connect)
    client = connect()

    client.send(b"stressed")
    client.send(BLOB)

    assert client.receive() == b"desserts"
    assert client.receive() == BLOB[::-1]


def read_frame(client: TestClient) -> bytes:
    """Read one frame with two blocking tagged reads."""
    header = client.expect(HEADER.size, tag=TAG_LEN)
    assert header.tag == TAG_LEN
    (length,) = HEADER.unpack(header)
    return client.expect(length, tag=TAG_BODY) if length else b""


def test_test_client_reads_frames_with_expect(
    hsock_server: MockServer, hsock_client: Callable[..., TestClient]
) -> None:
    hsock_server.expect(frame(b"LIST")).respond(
        frame(b"alpha") + frame(b"beta") + frame(b"") + frame(BLOB)
    )
    client = hsock_client(hsock_server)

    client.write(frame(b"LIST"))

    assert [read_frame(client) for _ in range(4)] == [b"alpha", b"beta", b"", BLOB]


def test_test_client_length_then_body(
    hsock_server: MockServer, hsock_client: Callable[..., TestClient]
) -> None:
    hsock_server.expect(frame(b"\x01\x02")).respond(frame(b"\x00\xff\x10"))
    client = hsock_client(hsock_server)

    client.write(frame(b"\x01\x02"))
    header = client.expect(4, tag=TAG_LEN)
    body = client.expect(HEADER.unpack(header)[0], tag=TAG_BODY)

    assert header == b"\x00\x00\x00\x03"
    assert (body, body.tag) == (b"\x00\xff\x10", TAG_BODY)
