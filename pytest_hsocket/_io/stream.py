"""One connected byte stream on the socket loop: the I/O side of a TCP or Unix connection.

A :class:`Stream` owns a non-blocking OS socket, the
:class:`~pytest_hsocket._core.framing.ReadQueue` it feeds and delivers from (the shape of
httpcore's ``_receive_event``), the read timer, and the close. It *has* its parts, each with its
own state and API, wired at construction with the callbacks they report through: the
:class:`~pytest_hsocket._io.stream_read.Reader` (bytes from the kernel), the
:class:`~pytest_hsocket._io.stream_write.Writer` (the write queue and its sender), the
:class:`~pytest_hsocket._io.stream_tls.TlsLayer` (STARTTLS, handshake, records), the
:class:`~pytest_hsocket._io.stream_end.Ending` (FIN, linger) and, for a client, the
:class:`~pytest_hsocket._io.stream_connect.Connector`. It reports to its owner (the public
socket) through the five methods of :class:`StreamOwner`; it never calls user code itself.

Every method here runs on the loop thread.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import struct
import weakref
from typing import Any, Callable, Optional, Protocol, Union

import gevent
import gevent.event

from pytest_hsocket._core.framing import BARRIER, Completed, ReadQueue, ReadRequest
from pytest_hsocket._io.sockets import (
    CONNECT_TIMEOUT,
    HIGH_WATER,
    LOCAL_CLOSE,
    LOW_WATER,
    PEER_CLOSED,
    READ_TIMEOUT,
    RECV_SIZE,
    WRITE_TIMEOUT,
    Closed,
    WriteCallback,
    os_socket,
)
from pytest_hsocket._io.stream_connect import Connector
from pytest_hsocket._io.stream_end import Ending
from pytest_hsocket._io.stream_read import Reader
from pytest_hsocket._io.stream_tls import TlsLayer
from pytest_hsocket._io.stream_write import Writer
from pytest_hsocket._io.tls import TlsSession

log = logging.getLogger(__name__)

__all__ = [
    "CONNECT_TIMEOUT",
    "HIGH_WATER",
    "LOCAL_CLOSE",
    "PEER_CLOSED",
    "READ_TIMEOUT",
    "RECV_SIZE",
    "WRITE_TIMEOUT",
    "Closed",
    "Stream",
    "StreamOwner",
    "WriteCallback",
    "os_socket",
]


class StreamOwner(Protocol):
    """What a stream reports to (the public socket)."""

    def _stream_connected(self, stream: Stream) -> None: ...
    def _stream_read(self, stream: Stream, done: list[Completed]) -> None: ...
    def _stream_written(self, stream: Stream, tag: int, fn: Optional[WriteCallback]) -> None: ...
    def _stream_secured(self, stream: Stream) -> None: ...
    def _stream_closed(
        self, stream: Stream, reason: str, unread: bytes, lost: list[ReadRequest], error: bool
    ) -> None: ...


class Stream:
    """A connection's I/O engine (see the module docstring).

    Attributes:
        sock: The OS socket once connected, else ``None``.
        queue: The read queue.
        connected: True from connect until close (including a peer close with data left).
        closed: True once closed (for good).
        eof: True once the peer has closed its side.
        reader: Receives the bytes (the read watcher).
        writer: The write queue and its sender.
        tls_layer: STARTTLS, the handshake and the records.
        ending: The graceful end (``finish``, ``half_close``).
        connector: The connect attempt of a client stream, else ``None``.
    """

    def __init__(self, owner: StreamOwner) -> None:
        self._owner_ref: Callable[[], Optional[StreamOwner]] = weakref.ref(owner)
        self._hub: Any = gevent.get_hub()
        self.sock: Optional[socket.socket] = None
        self.queue = ReadQueue()
        self.connected = False
        self.closed = False
        self.eof = False
        self._write_watcher: Any = None
        self._timer: Any = None
        self._timed: Optional[ReadRequest] = None
        self.reader = Reader(
            self._hub, self.queue, self._received, self._received_eof, self._failed
        )
        self.ending = Ending(self, self._hub)
        self.writer = Writer(self._hub, self._written, self._failed, self.ending.writes_flushed)
        self.tls_layer = TlsLayer(
            self.queue, self.writer, self._secured, self._received_plain, self._failed
        )
        self.connector: Optional[Connector] = None

    # -- connecting -------------------------------------------------------------------------

    def connect(self, family: int, addresses: list[Any], timeout: float) -> None:
        """Connect in a greenlet to the first of ``addresses`` that accepts, then attach.

        ``addresses`` are socket addresses for ``family``, or ``[(host, port)]`` to resolve.
        """
        self.connector = Connector(self._hub, self.attach, self._failed)
        self.connector.start(family, addresses, timeout)

    def attach(self, sock: socket.socket) -> None:
        """Take a connected non-blocking socket and start the I/O."""
        if self.closed:
            sock.close()
            return
        self.sock = sock
        self.connected = True
        self.reader.attach(sock)
        self._write_watcher = self._hub.loop.io(sock.fileno(), 2)
        self.writer.attach(sock, self._write_watcher)
        owner = self._owner_ref()
        if owner is not None:
            owner._stream_connected(self)
        if self.closed:
            return
        self.reader.start()
        self.writer.start()
        self.arm_read_timer()

    # -- writing and TLS (the parts) --------------------------------------------------------

    def push_write(
        self, data: memoryview, tag: int, fn: Optional[WriteCallback], timeout: float
    ) -> None:
        """Queue bytes to send (see :meth:`Writer.push`)."""
        self.writer.push(data, tag, fn, timeout)

    def start_tls(
        self, context: ssl.SSLContext, server_side: bool, server_hostname: Optional[str]
    ) -> bool:
        """Queue a TLS upgrade after the reads and writes queued so far.

        Returns:
            False if TLS is already on or queued, or the stream closed (the call is ignored,
            as in the original).
        """
        return not self.closed and self.tls_layer.start(context, server_side, server_hostname)

    @property
    def tls(self) -> Optional[TlsSession]:
        """The TLS session once TLS began, else ``None``."""
        return self.tls_layer.session

    def finish(self, linger: Optional[float] = None) -> None:
        """Close gracefully once every queued write is in the kernel (see :meth:`Ending.finish`)."""
        self.ending.finish(linger)

    def half_close(self) -> None:
        """Shut down the sending side once queued writes are out; keep reading."""
        self.ending.half_close()

    # -- the parts' reports -----------------------------------------------------------------

    def _written(self, tag: int, fn: Optional[WriteCallback]) -> None:
        owner = self._owner_ref()
        if owner is not None:
            owner._stream_written(self, tag, fn)

    def _secured(self) -> None:
        owner = self._owner_ref()
        if owner is not None:
            owner._stream_secured(self)

    def _failed(self, reason: str) -> None:
        self.close(reason, error=True)

    def _received_plain(self, plain: bytes, ended: bool) -> None:
        # What the TLS layer decrypted, and whether the peer ended TLS.
        if plain:
            done = self.queue.feed(plain)
            if self.queue.error is not None:
                self._framing_failed(done)
                return
            if done:
                self._deliver(done)
        if ended and not self.closed:
            self.eof = True
            self.check_eof()

    # -- reading ----------------------------------------------------------------------------

    def push_read(self, request: ReadRequest) -> None:
        """Queue a read; it completes from buffered bytes or as bytes arrive."""
        done = self.queue.push(request)
        if self.queue.error is not None:
            self._framing_failed(done)
            return
        if done:
            self._deliver(done)
        elif self.sock is not None:
            self.arm_read_timer()
            if self.eof:
                self.check_eof()
            elif not self.reader.reading and not self.closed:
                # Reading paused at the high-water mark with no read pending.
                self.reader.start()

    def resume_reading(self) -> None:
        """Read again, if reading stopped at the high-water mark and the buffer is under the
        low-water mark."""
        if (
            not self.reader.reading
            and not self.eof
            and not self.closed
            and self.sock is not None
            and self.queue.buffered < LOW_WATER
        ):
            self.reader.start()

    def pull_now(self) -> int:
        """Read at once whatever the kernel holds (without waiting); return the byte count.

        Used to settle a conversation before it is checked: bytes a peer sent just before it
        closed are processed, not dropped.
        """
        if self.closed or self.sock is None or self.eof:
            return 0
        return self.reader.pull_now()

    def _received(self, data: Union[bytes, memoryview]) -> None:
        tls_layer = self.tls_layer
        if tls_layer.session is not None:
            tls_layer.receive(data)
            return
        done = self.queue.feed(data)
        if self.queue.error is not None:
            self._framing_failed(done)
            return
        if done:
            self._deliver(done)

    def _framing_failed(self, done: list[Completed]) -> None:
        # A Prefixed header over its max_length: what completed before it is delivered, then
        # the connection ends with the reason (the frame's bytes stay reported as unread).
        error = self.queue.error
        if done:
            self._deliver(done)
        if not self.closed and error is not None:
            self.close(error, error=True)

    def _received_eof(self) -> None:
        if self.tls_layer.session is not None:
            self.tls_layer.receive_eof()
        self.eof = True
        self.check_eof()

    def _deliver(self, done: list[Completed]) -> None:
        owner = self._owner_ref()
        if owner is not None:
            owner._stream_read(self, done)
        if self.eof:
            self.check_eof()
        else:
            if not self.reader.reading:
                self.resume_reading()
            if self._timer is not None:
                self._timed = None  # the timed read completed: the next one gets its own timer
            self.arm_read_timer()
            if self.tls_layer.pending is not None:
                self.tls_layer.maybe_begin()

    def check_eof(self) -> None:
        """Close after the peer's FIN once the buffer is drained, or the current read can no
        longer complete (on the loop); for whoever delivered reads without a push."""
        if self.closed:
            return
        if self.ending.lingering:
            self.close(LOCAL_CLOSE)  # finish() waited for this end: both sides are done
            return
        if self.queue.pending or not self.queue.buffered:
            self.close(PEER_CLOSED)

    def arm_read_timer(self) -> None:
        """Time the current read (``timeout`` > 0), or stop timing (on the loop); for whoever
        changed the read queue without a push."""
        requests = self.queue.reads_queued  # hot path: one read a message, no property call
        head = requests[0] if requests else None
        if head is self._timed and (head is not None or self._timer is None):
            return  # a completed read with nothing queued after it must not stay timed
        self._timed = head
        if self._timer is not None:
            self._timer.stop()
            self._timer.close()
            self._timer = None
        if head is not None and head.timeout >= 0 and self.sock is not None and not self.closed:
            self._timer = self._hub.loop.timer(head.timeout)
            self._timer.start(self._read_timed_out)

    def _read_timed_out(self) -> None:
        self.close(READ_TIMEOUT, error=True)

    # -- closing ----------------------------------------------------------------------------

    def reset(self) -> None:
        """Abort the connection: the peer sees a TCP RST (``Connection reset by peer``)."""
        if self.sock is not None and not self.closed:
            with contextlib.suppress(OSError):
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close(LOCAL_CLOSE)

    def close(self, reason: str = LOCAL_CLOSE, error: bool = False) -> None:
        """Close the connection, drop queued reads and writes, and tell the owner why.

        Idempotent. Safe from any of the stream's own greenlets.
        """
        if self.closed:
            return
        self.tls_layer.close(notify=reason == LOCAL_CLOSE)
        self.closed = True
        self.connected = False
        if self._timer is not None:
            self._timer.stop()
            self._timer.close()
            self._timer = None
        self.ending.cancel()
        if self.connector is not None:
            self.connector.cancel()
        self.reader.close()
        self.writer.close()
        lost, unread = self.queue.clear()
        lost = [r for r in lost if r.matcher != BARRIER]
        sock = self.sock
        if sock is not None:
            # The writer greenlet may wait on the write watcher: it gets Closed before the
            # socket closes.
            self._hub.cancel_waits_close_and_then([self._write_watcher], Closed, sock.close)
            self._write_watcher = None
        owner = self._owner_ref()
        if owner is not None:
            owner._stream_closed(self, reason, unread, lost, error)
