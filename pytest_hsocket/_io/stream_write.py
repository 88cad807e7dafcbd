"""The sending side of a stream: the write queue, sent in order, each write reported once.

A write goes out inline when nothing is queued before it and the kernel takes it all; the rest
is sent by one writer greenlet, which is then the only sender (TLS records first, then the next
write), each write under its own timeout. The STARTTLS barrier is a mark in this queue: what
was queued before it goes out as it was, and from the mark on no byte leaves in the clear
(DESIGN 1b.17). Every method runs on the loop thread.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
from collections import deque
from typing import Any, Callable, Optional

import gevent
import gevent.event

from pytest_hsocket._core.errors import reason_of
from pytest_hsocket._io.sockets import WRITE_TIMEOUT, Closed, WriteCallback
from pytest_hsocket._io.tls import TlsSession, describe_error

log = logging.getLogger(__name__)

# A queued write is a list [data, tag, fn, timeout] (data shrinks as it is sent). The barrier
# is a write of nothing, known by identity.
_BARRIER: list[Any] = [memoryview(b""), -1, None, -1.0]


class Writer:
    """A stream's write queue and its sender (see the module docstring).

    Args:
        hub: The loop's hub (the sender waits on it for the socket to take more).
        written: Called with ``(tag, fn)`` once per write, when its last byte is in the kernel.
        failed: Called with the reason when sending fails (an OS error, a write timeout, TLS);
            the stream closes then, which closes this writer.
        flushed: Called when the sender found the queue empty and stopped (not after close).

    Attributes:
        sealed: True for good once the sender passed the STARTTLS barrier: from then on only
            encrypted bytes are sent.
        closed: True once :meth:`close` ran.
    """

    def __init__(
        self,
        hub: Any,
        written: Callable[[int, Optional[WriteCallback]], None],
        failed: Callable[[str], None],
        flushed: Callable[[], None],
    ) -> None:
        self._hub = hub
        self._written = written
        self._failed = failed
        self._flushed = flushed
        self._sock: Optional[socket.socket] = None
        self._watcher: Any = None
        self._writes: deque[list[Any]] = deque()
        self._records = bytearray()  # TLS records to send before the next write
        self._cipher: Optional[TlsSession] = None
        self._at_barrier: Optional[Callable[[], None]] = None
        self._sender: Optional[gevent.Greenlet] = None
        self._wake = gevent.event.Event()
        self.sealed = False
        self.closed = False

    # -- set up -----------------------------------------------------------------------------

    def attach(self, sock: socket.socket, watcher: Any) -> None:
        """Send on ``sock`` from now on; ``watcher`` is its write watcher (the stream owns both)."""
        self._sock = sock
        self._watcher = watcher

    def start(self) -> None:
        """Start sending what was queued before :meth:`attach` (the stream calls this once
        its owner knows it is connected)."""
        if self._writes:
            self.kick()

    def push_barrier(self, reached: Callable[[], None]) -> None:
        """Queue the STARTTLS barrier: ``reached()`` is called once every write queued before
        it is in the kernel; later writes wait until :meth:`encrypt_with`'s session has
        completed its handshake, and are encrypted."""
        self._at_barrier = reached
        self._writes.append(_BARRIER)
        self.kick()

    def encrypt_with(self, session: TlsSession) -> None:
        """Encrypt every write from now on with ``session`` (and send its records first)."""
        self._cipher = session

    # -- writing ----------------------------------------------------------------------------

    def push(self, data: memoryview, tag: int, fn: Optional[WriteCallback], timeout: float) -> None:
        """Queue bytes to send (``timeout`` seconds at most once the sender takes them, negative:
        no limit); sends inline what the kernel takes at once."""
        cipher = self._cipher
        if (
            cipher is not None
            and cipher.handshake_done
            and self._sender is None
            and not self._writes
            and not self._records
            and not self.closed
        ):
            cipher.encrypt(data)
            if self.send_records(cipher.take_outgoing()):
                self._written(tag, fn)
                return
            # The rest waits in _records; an empty write then reports when it is sent.
            data = data[:0]
        elif self._sock is not None and not self._writes and not self.closed and not self.sealed:
            try:
                sent = self._sock.send(data) if data.nbytes else 0
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError as exc:
                self._failed(reason_of(exc))
                return
            if sent == data.nbytes:
                self._written(tag, fn)
                return
            data = data[sent:]
        self._writes.append([data, tag, fn, timeout])
        self.kick()

    def send_records(self, data: bytes) -> bool:
        """Send TLS records inline when nothing is queued before them; the rest goes out from
        the sender ahead of the next write. Returns whether all was sent (or the stream
        failed)."""
        sent = 0
        if self._sender is None and not self._records and self._sock is not None:
            try:
                sent = self._sock.send(data)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError as exc:
                self._failed(reason_of(exc))
                return True
        if sent == len(data):
            return True
        self._records += memoryview(data)[sent:]
        self.kick()
        return False

    def send_last(self, data: bytes) -> None:
        """Send the records still queued and ``data`` now, without waiting (best effort: a TLS
        alert before the stream closes)."""
        if self._sock is not None and (data or self._records):
            pending = bytes(self._records) + data
            self._records.clear()
            with contextlib.suppress(OSError):
                self._sock.send(pending)

    def kick(self) -> None:
        """Start the sender, or wake it if it waits for the handshake."""
        if self._sock is None or self.closed:
            return
        if self._sender is None:
            self._sender = gevent.spawn(self._send_loop)
        else:
            self._wake.set()

    def wake(self) -> None:
        """Wake a sender that waits for the handshake (it completed, or the stream closed)."""
        self._wake.set()

    @property
    def idle(self) -> bool:
        """Whether nothing is queued and no sender runs: every write is in the kernel."""
        return not self._writes and not self._records and self._sender is None

    def unsent(self) -> int:
        """Bytes queued for sending and not yet handed to the kernel."""
        return sum(int(item[0].nbytes) for item in self._writes) + len(self._records)

    def close(self) -> None:
        """Drop what is queued (a broadcast's callback is told, so it does not wait for a
        closed client) and stop the sender; the stream closes the socket after this."""
        self.closed = True
        for item in self._writes:
            if hasattr(item[2], "one_done"):
                item[2].one_done()
        self._writes.clear()
        self._wake.set()
        self._sender = None

    # -- the sender -------------------------------------------------------------------------

    def _send_loop(self) -> None:
        # The only sender: TLS records queued go first, then the next write.
        sock = self._sock
        assert sock is not None
        writes = self._writes
        try:
            while not self.closed:
                cipher = self._cipher
                if self._records:
                    pending = bytes(self._records)
                    self._records.clear()
                    self._send_all(sock, [memoryview(pending), -1, None, -1.0])
                    continue
                if cipher is not None and cipher.has_outgoing:
                    self._send_all(sock, [memoryview(cipher.take_outgoing()), -1, None, -1.0])
                    continue
                if not writes:
                    break
                item = writes[0]
                if item is _BARRIER:
                    writes.popleft()
                    # What was queued before start_tls went out as it was; from here on,
                    # never a byte in the clear.
                    self.sealed = True
                    reached, self._at_barrier = self._at_barrier, None
                    if reached is not None:
                        reached()
                    continue
                if self.sealed and (cipher is None or not cipher.handshake_done):
                    self._wake.clear()
                    self._wake.wait()  # plaintext waits for the handshake
                    continue
                timeout: float = item[3]
                timer = gevent.Timeout(timeout) if timeout >= 0 else None
                if timer is not None:
                    timer.start()
                try:
                    if cipher is not None:
                        cipher.encrypt(item[0])
                        self._send_all(sock, [memoryview(cipher.take_outgoing()), -1, None, -1.0])
                    else:
                        self._send_all(sock, item)
                except gevent.Timeout as exc:
                    if exc is not timer:
                        raise
                    self._stop(WRITE_TIMEOUT)
                    return
                finally:
                    if timer is not None:
                        timer.close()
                writes.popleft()
                self._written(item[1], item[2])
        except Closed:
            return
        except ssl.SSLError as exc:  # before OSError, whose subclass it is
            self._stop(describe_error(exc))
            return
        except OSError as exc:
            if not self.closed:
                self._stop(reason_of(exc))
            return
        except Exception as exc:  # the sender must never die silently, leaving writes queued
            log.exception("internal error writing to %r", sock)
            self._stop(describe_error(exc) if self.sealed else f"internal error: {exc!r}")
            return
        self._sender = None
        if not self.closed:
            self._flushed()

    def _stop(self, reason: str) -> None:
        self._sender = None
        self._failed(reason)

    def _send_all(self, sock: socket.socket, item: list[Any]) -> None:
        data: memoryview = item[0]
        while data.nbytes:
            try:
                sent = sock.send(data)
            except (BlockingIOError, InterruptedError):
                self._hub.wait(self._watcher)
                if self.closed:
                    raise Closed() from None
                continue
            data = data[sent:]
            item[0] = data
