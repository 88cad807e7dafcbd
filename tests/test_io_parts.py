"""The stream's parts, each through its own API, over real loopback sockets and real TLS.

A :class:`Stream` *has* a reader, a writer, a TLS layer, an ending and (a client) a connector;
these tests drive each part as the stream does, on the loop, and check what a peer on a plain
blocking socket in the test's thread sees. No sleeps: the test waits for reports.
"""

from __future__ import annotations

import ast
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable, Optional, TypeVar

import gevent
import pytest
import trustme

import pytest_hsocket._io as io_package
from pytest_hsocket._core.framing import ReadQueue
from pytest_hsocket._core.reads import Completed, ReadRequest
from pytest_hsocket._io.sockets import LOCAL_CLOSE, Closed, WriteCallback, os_socket
from pytest_hsocket._io.stream import Stream
from pytest_hsocket._io.stream_connect import Connector
from pytest_hsocket._io.stream_end import Ending
from pytest_hsocket._io.stream_read import Reader
from pytest_hsocket._io.stream_tls import TlsLayer
from pytest_hsocket._io.stream_write import Writer
from pytest_hsocket._loop.hub import get_loop

from .conftest import WAIT, Signal

T = TypeVar("T")
MIB = 1024 * 1024


def on_loop(fn: Callable[[], T]) -> T:
    return get_loop().run_sync(fn, timeout=WAIT)


class Owner:
    """A stream's owner that records every report, in order, for the test's thread."""

    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []
        self._cond = threading.Condition()

    def _add(self, *event: Any) -> None:
        with self._cond:
            self.events.append(event)
            self._cond.notify_all()

    def wait(self, kind: str, count: int = 1) -> list[tuple[Any, ...]]:
        with self._cond:
            ok = self._cond.wait_for(lambda: sum(e[0] == kind for e in self.events) >= count, WAIT)
            assert ok, f"expected {count} {kind!r} within {WAIT}s, got {self.events}"
            return list(self.events)

    def _stream_connected(self, stream: Stream) -> None:
        self._add("connected")

    def _stream_read(self, stream: Stream, done: list[Completed]) -> None:
        for data, tag in done:
            self._add("read", data, tag)

    def _stream_written(self, stream: Stream, tag: int, fn: Optional[WriteCallback]) -> None:
        self._add("written", tag)

    def _stream_secured(self, stream: Stream) -> None:
        self._add("secured")

    def _stream_closed(
        self, stream: Stream, reason: str, unread: bytes, lost: list[ReadRequest], error: bool
    ) -> None:
        self._add("closed", reason, error)


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    sock.settimeout(WAIT)
    yield sock
    sock.close()


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def recv_exactly(sock: socket.socket, count: int) -> bytes:
    chunks = []
    while count:
        chunk = sock.recv(min(count, MIB))
        assert chunk, f"EOF with {count} bytes still expected"
        chunks.append(chunk)
        count -= len(chunk)
    return b"".join(chunks)


def recv_to_eof(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(MIB):
        chunks.append(chunk)
    return b"".join(chunks)


def loop_side_pair() -> tuple[socket.socket, socket.socket]:
    """A connected pair: the first (non-blocking) for the loop, the second for the test."""
    ours, peer = socket.socketpair()
    peer.settimeout(WAIT)
    loop_sock = os_socket(fileno=ours.detach())
    loop_sock.setblocking(False)
    return loop_sock, peer


# -- structure ----------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", [Stream, Reader, Writer, TlsLayer, Ending, Connector])
def test_the_stream_and_its_parts_are_plain_classes(cls: type) -> None:
    assert cls.__mro__ == (cls, object)


def test_no_io_module_stubs_a_method() -> None:
    stubs = []
    for path in sorted(Path(io_package.__file__).parent.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Raise) and node.exc is not None:
                exc = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
                if isinstance(exc, ast.Name) and exc.id == "NotImplementedError":
                    stubs.append(f"{path.name}:{node.lineno}")
    assert not stubs


# -- Writer -------------------------------------------------------------------------------------


def test_the_writer_sends_in_order_and_reports_each_tag_once() -> None:
    sock, peer = loop_side_pair()
    written, failed, flushed = Signal(), Signal(), Signal()
    # Big writes among small ones: more than the kernel takes at once, so the sender
    # greenlet sends the rest, after the inline sends, in order.
    chunks = [bytes([65 + i % 26]) * (MIB if i % 5 == 0 else 100 + i) for i in range(40)]

    def push_all() -> tuple[Writer, Any, int]:
        hub = gevent.get_hub()
        watcher = hub.loop.io(sock.fileno(), 2)
        writer = Writer(hub, written, failed, flushed)
        writer.attach(sock, watcher)
        for tag, chunk in enumerate(chunks):
            writer.push(memoryview(chunk), tag, None, -1.0)
        return writer, watcher, writer.unsent()

    writer, watcher, unsent = on_loop(push_all)
    try:
        assert unsent > 0  # the sender, not only inline sends, had work
        assert recv_exactly(peer, sum(map(len, chunks))) == b"".join(chunks)
        calls = written.wait(len(chunks))
        assert [tag for tag, _ in calls] == list(range(len(chunks)))
        flushed.wait()
        assert on_loop(lambda: (writer.idle, writer.unsent())) == (True, 0)
        assert not failed.calls
    finally:

        def close() -> None:
            writer.close()
            gevent.get_hub().cancel_waits_close_and_then([watcher], Closed, sock.close)

        on_loop(close)
        peer.close()
    assert len(written.calls) == len(chunks)  # each once, none after close


def test_a_closed_writer_drops_its_queue_and_reports_nothing_more() -> None:
    sock, peer = loop_side_pair()
    written, failed, flushed = Signal(), Signal(), Signal()

    def push_and_close() -> int:
        writer = Writer(gevent.get_hub(), written, failed, flushed)
        writer.push(memoryview(b"never sent"), 7, None, -1.0)  # no socket yet: queued
        queued = writer.unsent()
        writer.close()
        writer.push(memoryview(b"after close"), 8, None, -1.0)
        return queued

    try:
        assert on_loop(push_and_close) == len(b"never sent")
        on_loop(lambda: None)  # a turn of the loop for anything that would still run
        assert (written.calls, failed.calls, flushed.calls) == ([], [], [])
    finally:
        sock.close()
        peer.close()


# -- Reader -------------------------------------------------------------------------------------


def test_the_reader_hands_on_what_the_kernel_holds_then_the_eof_once() -> None:
    sock, peer = loop_side_pair()
    got: list[bytes] = []
    eof, failed = Signal(), Signal()

    def make() -> Reader:
        reader = Reader(gevent.get_hub(), ReadQueue(), lambda d: got.append(bytes(d)), eof, failed)
        reader.attach(sock)
        return reader

    reader = on_loop(make)
    try:
        peer.sendall(b"abc")  # a Unix socket pair: in the loop side's buffer on return
        assert on_loop(reader.pull_now) == 3
        assert got == [b"abc"]
        peer.close()
        assert on_loop(reader.pull_now) == 0
        assert len(eof.calls) == 1
        assert not reader.reading
        assert not failed.calls
    finally:
        on_loop(reader.close)
        sock.close()
        peer.close()


# -- Connector ----------------------------------------------------------------------------------


def test_the_connector_hands_over_a_connected_socket(listener: socket.socket) -> None:
    connected, failed = Signal(), Signal()
    address = listener.getsockname()

    def start() -> None:
        Connector(gevent.get_hub(), connected, failed).start(socket.AF_INET, [address], WAIT)

    on_loop(start)
    accepted, _ = listener.accept()
    try:
        (sock,) = connected.wait()[0]
        assert sock.getpeername() == address
        assert not failed.calls
        on_loop(sock.close)
    finally:
        accepted.close()


def test_the_connector_reports_a_refused_connection() -> None:
    closed_port = socket.socket()
    closed_port.bind(("127.0.0.1", 0))
    address = closed_port.getsockname()
    closed_port.close()  # nothing listens there now
    connected, failed = Signal(), Signal()

    def start() -> None:
        Connector(gevent.get_hub(), connected, failed).start(socket.AF_INET, [address], WAIT)

    on_loop(start)
    (reason,) = failed.wait()[0]
    assert "refused" in reason.lower()
    assert not connected.calls


# -- the stream with its parts: TLS barrier, graceful end ---------------------------------------


def connect_stream(owner: Owner, listener: socket.socket, before: Callable[[Stream], None]) -> Any:
    """A client stream to ``listener``; ``before(stream)`` runs before it is connected."""

    def start() -> Stream:
        stream = Stream(owner)
        before(stream)
        stream.connect(socket.AF_INET, [listener.getsockname()], WAIT)
        return stream

    stream = on_loop(start)
    peer, _ = listener.accept()
    peer.settimeout(WAIT)
    owner.wait("connected")
    return stream, peer


def test_the_tls_barrier_holds_later_writes_until_the_handshake(
    listener: socket.socket, ca: trustme.CA
) -> None:
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(server_context)
    owner = Owner()

    def before(stream: Stream) -> None:
        stream.push_read(ReadRequest(b"\n", 5, -1.0))
        stream.push_write(memoryview(b"PLAIN\n"), 1, None, -1.0)
        assert stream.start_tls(client_context, False, "localhost")
        assert not stream.start_tls(client_context, False, "localhost")  # queued already
        stream.push_write(memoryview(b"SECRET\n"), 2, None, -1.0)

    stream, peer = connect_stream(owner, listener, before)
    try:
        assert recv_exactly(peer, 6) == b"PLAIN\n"  # queued before STARTTLS: in the clear
        peer.sendall(b"GO\n")  # completes the read queued before STARTTLS
        assert peer.recv(1, socket.MSG_PEEK) == b"\x16"  # then a TLS record, never SECRET
        with server_context.wrap_socket(peer, server_side=True) as tls_peer:
            assert recv_exactly(tls_peer, 7) == b"SECRET\n"
            events = owner.wait("written", 2)
            kinds = [e for e in events if e[0] in ("read", "written", "secured")]
            assert kinds == [("written", 1), ("read", b"GO\n", 5), ("secured",), ("written", 2)]
            assert on_loop(lambda: stream.tls is not None and stream.tls.version is not None)
            tls_peer.sendall(b"over TLS\n")
            on_loop(lambda: stream.push_read(ReadRequest(b"\n", 6, -1.0)))
            owner.wait("read", 2)
            assert owner.events[-1] == ("read", b"over TLS\n", 6)
            on_loop(stream.close)
            assert tls_peer.recv(1) == b""  # close_notify: a clean end
    finally:
        on_loop(stream.close)
        peer.close()
    assert owner.wait("closed")[-1] == ("closed", LOCAL_CLOSE, False)


def test_finish_loses_nothing_already_written(listener: socket.socket) -> None:
    owner = Owner()
    stream, peer = connect_stream(owner, listener, lambda stream: None)
    data = bytes(range(256)) * (16 * MIB // 256)  # more than the kernel's buffers hold

    def write_and_finish() -> None:
        stream.push_write(memoryview(data), 3, None, -1.0)
        stream.finish()  # the FIN waits for the writes

    try:
        on_loop(write_and_finish)
        assert recv_to_eof(peer) == data
        events = owner.wait("closed")
        assert [e for e in events if e[0] != "connected"] == [
            ("written", 3),
            ("closed", LOCAL_CLOSE, False),
        ]
    finally:
        on_loop(stream.close)
        peer.close()


def test_half_close_sends_the_fin_after_the_writes_and_keeps_reading(
    listener: socket.socket,
) -> None:
    owner = Owner()
    stream, peer = connect_stream(owner, listener, lambda stream: None)
    data = b"x" * (4 * MIB)

    def write_and_half_close() -> None:
        stream.push_write(memoryview(data), 4, None, -1.0)
        stream.half_close()
        stream.push_read(ReadRequest(b"\n", 9, -1.0))

    try:
        on_loop(write_and_half_close)
        assert recv_to_eof(peer) == data
        peer.sendall(b"still read\n")
        owner.wait("read")
        assert owner.events[-1] == ("read", b"still read\n", 9)
        assert not on_loop(lambda: stream.closed)
    finally:
        on_loop(stream.close)
        peer.close()
