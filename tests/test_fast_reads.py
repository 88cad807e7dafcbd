"""Fast reads: a callback re-queueing its delimiter read gets exactly what a queued
read would get, in the same order, over real loopback sockets, whatever else it does."""

from __future__ import annotations

import socket
import threading
from typing import Any, Callable, Optional

import pytest

import pytest_hsocket as hsocket

from .conftest import WAIT, Signal, port_of

Handler = Callable[[bytes, int, hsocket.Socket], None]

LINES = [b"%05d line\n" % i for i in range(3000)]
STREAM = b"".join(LINES)


class Recorder:
    """A server callback that records ``(data, tag)`` and runs ``then`` for each read."""

    def __init__(self, then: Handler, until: int) -> None:
        self.got: list[tuple[bytes, int]] = []
        self.then = then
        self.until = until
        self.done = threading.Event()

    def __call__(self, data: bytes, tag: int, client: hsocket.Socket) -> None:
        self.got.append((data, tag))
        if len(self.got) >= self.until:
            self.done.set()
        self.then(data, tag, client)

    def wait(self) -> list[tuple[bytes, int]]:
        assert self.done.wait(WAIT), f"{len(self.got)} of {self.until} reads arrived"
        return self.got


def _serve(
    recorder: Recorder, first: Callable[[hsocket.Socket], object], payload: bytes
) -> tuple[hsocket.Socket, socket.socket]:
    server = hsocket.server(0, recorder)
    server.on_connect(first)
    peer = socket.create_connection(("127.0.0.1", port_of(server)), timeout=WAIT)
    peer.sendall(payload)
    return server, peer


@pytest.fixture
def cleanup() -> Any:
    opened: list[tuple[hsocket.Socket, socket.socket]] = []
    yield opened.append
    for server, peer in opened:
        peer.close()
        server.disconnect()
        server.check()


def test_every_line_arrives_once_in_order(cleanup: Any) -> None:
    recorder = Recorder(lambda d, t, c: c.read(b"\n", 1), until=len(LINES))
    cleanup(_serve(recorder, lambda c: c.read(b"\n", 1), STREAM))
    assert recorder.wait() == [(line, 1) for line in LINES]


def test_two_reads_in_one_callback_keep_the_stream_order(cleanup: Any) -> None:
    # The second read completes into the batch behind the first: the first's callback must
    # not then take the line after it ahead of it.
    def twice(data: bytes, tag: int, client: hsocket.Socket) -> None:
        if tag == 1:
            client.read(b"\n", 2).read(b"\n", 3)
        elif tag == 2:
            client.read(b"\n", 1)

    recorder = Recorder(twice, until=len(LINES))
    cleanup(_serve(recorder, lambda c: c.read(b"\n", 1), STREAM))
    got = recorder.wait()
    assert [data for data, _ in got] == LINES
    assert [tag for _, tag in got] == ([1, 2, 3] * 1000)[: len(LINES)]


def test_lines_and_lengths_interleaved(cleanup: Any) -> None:
    payloads = [(b"x%d" % i) * (i % 7) for i in range(1000)]
    stream = b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in payloads)

    def resp(data: bytes, tag: int, client: hsocket.Socket) -> None:
        if tag == 1:
            client.read(int(data[1:-2]) + 2, 2)
        else:
            client.read(b"\r\n", 1)

    recorder = Recorder(resp, until=2 * len(payloads))
    cleanup(_serve(recorder, lambda c: c.read(b"\r\n", 1), stream))
    got = recorder.wait()
    assert [data[:-2] for data, tag in got if tag == 2] == payloads


@pytest.mark.parametrize("tail", [b"", b"tail"])
def test_peer_close_is_reported_once_every_line_is_delivered(cleanup: Any, tail: bytes) -> None:
    gone = Signal()
    clients: list[hsocket.Socket] = []
    recorder = Recorder(lambda d, t, c: c.read(b"\n", 1), until=len(LINES))

    def first(client: hsocket.Socket) -> None:
        clients.append(client)
        client.on_disconnect(gone)
        client.read(b"\n", 1)

    server, peer = _serve(recorder, first, STREAM + tail)
    cleanup((server, peer))
    peer.shutdown(socket.SHUT_WR)
    assert gone.wait() == [("Socket closed by remote peer",)]
    assert recorder.wait() == [(line, 1) for line in LINES]
    (client,) = clients
    assert client.unread == tail
    if tail:
        assert [r.tag for r in client.lost_reads] == [1]  # the read waiting on the tail
    assert not client.connected()


def test_disconnect_in_a_callback_reports_exactly_what_was_not_delivered(
    cleanup: Any,
) -> None:
    closed: list[hsocket.Socket] = []
    gone = Signal()
    # 100 lines arrive in one segment, so the ten delivered are fast reads.

    def stop_at_ten(data: bytes, tag: int, client: hsocket.Socket) -> None:
        if data == LINES[9]:
            closed.append(client)
            client.disconnect()
        else:
            client.read(b"\n", 1)

    def first(client: hsocket.Socket) -> None:
        client.on_disconnect(gone)
        client.read(b"\n", 1)

    recorder = Recorder(stop_at_ten, until=10)
    server, peer = _serve(recorder, first, STREAM[: 100 * len(LINES[0])])
    cleanup((server, peer))
    assert recorder.wait() == [(line, 1) for line in LINES[:10]]
    gone.wait()
    (client,) = closed
    assert client.unread == b"".join(LINES[10:100])
    assert recorder.got == [(line, 1) for line in LINES[:10]]  # nothing after the close


def test_a_callback_error_mid_stream_loses_no_line(cleanup: Any) -> None:
    def flaky(data: bytes, tag: int, client: hsocket.Socket) -> None:
        client.read(b"\n", 1)
        if data == LINES[5]:
            raise RuntimeError("boom at 5")

    recorder = Recorder(flaky, until=len(LINES))
    server, peer = _serve(recorder, lambda c: c.read(b"\n", 1), STREAM)
    assert recorder.wait() == [(line, 1) for line in LINES]
    peer.close()
    server.disconnect()
    with pytest.raises(hsocket.CallbackError, match="boom at 5"):
        server.check()
    assert len(server.callback_errors) == 1


def test_a_new_callback_takes_over_at_the_next_line(cleanup: Any) -> None:
    later: list[bytes] = []
    done = threading.Event()
    server_box: list[hsocket.Socket] = []

    def other(data: bytes, tag: int, client: hsocket.Socket) -> None:
        later.append(data)
        if len(later) == len(LINES) - 10:
            done.set()
        else:
            client.read(b"\n", 1)

    def switch(data: bytes, tag: int, client: hsocket.Socket) -> None:
        if data == LINES[9]:
            server_box[0].set_callback(other)
        client.read(b"\n", 1)

    recorder = Recorder(switch, until=10)
    server, peer = _serve(recorder, lambda c: c.read(b"\n", 1), b"")
    server_box.append(server)
    cleanup((server, peer))
    peer.sendall(STREAM)
    assert done.wait(WAIT)
    assert [d for d, _ in recorder.got] == LINES[:10]
    assert later == LINES[10:]


def test_a_client_socket_with_a_two_argument_callback(cleanup: Any) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    got: list[bytes] = []
    done = threading.Event()
    box: list[Optional[hsocket.Socket]] = []

    def on_line(data: bytes, tag: int) -> None:
        got.append(data)
        if len(got) == len(LINES):
            done.set()
        else:
            client = box[0]
            assert client is not None
            client.read(b"\n", 4)

    client = hsocket.new(on_line).connect("127.0.0.1", listener.getsockname()[1])
    box.append(client)
    assert client is not None
    listener.settimeout(WAIT)
    peer, _ = listener.accept()
    listener.close()
    client.read(b"\n", 4)
    peer.sendall(STREAM)
    assert done.wait(WAIT)
    assert got == LINES
    client.disconnect()
    peer.close()
    client.check()


def test_a_disconnect_early_in_a_batch_leaves_the_rest_of_it_deliverable(cleanup: Any) -> None:
    def first(client: hsocket.Socket) -> None:
        client.read(b"\n", 1).read(b"\n", 2).read(b"\n", 3)

    def close_at_one(data: bytes, tag: int, client: hsocket.Socket) -> None:
        if tag == 1:
            client.disconnect()

    recorder = Recorder(close_at_one, until=3)
    server, peer = _serve(recorder, first, b"")
    cleanup((server, peer))
    peer.sendall(b"a\nb\nc\n")  # one segment: the three reads complete in one batch
    assert recorder.wait() == [(b"a\n", 1), (b"b\n", 2), (b"c\n", 3)]


def test_a_read_after_the_callback_is_cleared_keeps_its_bytes(cleanup: Any) -> None:
    clients: list[hsocket.Socket] = []
    gone = Signal()

    def stop_at_three(data: bytes, tag: int, client: hsocket.Socket) -> None:
        if data == LINES[2]:
            assert client.parent is not None
            client.parent.set_callback(None)  # the server's callback, from inside it
            assert client.read(b"\n", 1) is None  # refused: no callback, nothing taken
            client.disconnect()
        else:
            client.read(b"\n", 1)

    def first(client: hsocket.Socket) -> None:
        clients.append(client)
        client.on_disconnect(gone)
        client.read(b"\n", 1)

    recorder = Recorder(stop_at_three, until=3)
    cleanup(_serve(recorder, first, b"".join(LINES[:10])))
    assert recorder.wait() == [(line, 1) for line in LINES[:3]]
    gone.wait()
    assert clients[0].unread == b"".join(LINES[3:10])
