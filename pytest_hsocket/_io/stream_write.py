"""The writing half of a ``Stream``: sends inline when the kernel takes the bytes at once,
otherwise from one writer greenlet, which is the only sender (TLS records first, then the next
write), each write with its timeout. Every method runs on the loop thread.
"""

from __future__ import annotations

import logging
import socket
import ssl
from collections import deque
from typing import Any, Optional

import gevent

from pytest_hsocket._core.errors import reason_of
from pytest_hsocket._io.sockets import WRITE_TIMEOUT, Closed, WriteCallback
from pytest_hsocket._io.stream_tls import _TLS_BARRIER, StreamTls
from pytest_hsocket._io.tls import TlsSession, describe_error

log = logging.getLogger(__name__)


class StreamWriter(StreamTls):
    """Writing for ``Stream`` (a mixin over the TLS half, whose records it sends)."""

    sock: Optional[socket.socket]
    closed: bool
    tls: Optional[TlsSession]
    tls_wanted: bool
    _tls_pending: Any
    _write_at_barrier: bool
    _writes: deque[list[Any]]
    _writer: Any
    _ciphertext: bytearray
    _wake: Any
    _hub: Any
    _write_watcher: Any
    _close_when_flushed: bool
    _shutdown_when_flushed: bool
    _owner_ref: Any

    def close(self, reason: str = ..., error: bool = False) -> None:
        raise NotImplementedError  # pragma: no cover - the stream's

    def finish(self, linger: Optional[float] = None) -> None:
        raise NotImplementedError  # pragma: no cover - the stream's

    def half_close(self) -> None:
        raise NotImplementedError  # pragma: no cover - the stream's

    def push_write(
        self, data: memoryview, tag: int, fn: Optional[WriteCallback], timeout: float
    ) -> None:
        """Queue bytes to send; sends inline what the kernel takes at once."""
        tls = self.tls
        if (
            tls is not None
            and tls.handshake_done
            and self._writer is None
            and not self._writes
            and not self._ciphertext
            and self._tls_pending is None
            and not self.closed
        ):
            tls.encrypt(data)
            if self._send_ciphertext(tls.take_outgoing()):
                self._written(tag, fn)
                return
            # The rest waits in _ciphertext; an empty write then reports when it is sent.
            data = data[:0]
        elif (
            self.sock is not None
            and not self._writes
            and not self.closed
            and tls is None
            and self._tls_pending is None
            and not self.tls_wanted
        ):
            try:
                sent = self.sock.send(data) if data.nbytes else 0
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError as exc:
                self.close(reason_of(exc), error=True)
                return
            if sent == data.nbytes:
                self._written(tag, fn)
                return
            data = data[sent:]
        self._writes.append([data, tag, fn, timeout])
        self._kick_writer()

    def _kick_writer(self) -> None:
        if self.sock is None or self.closed:
            return
        if self._writer is None:
            self._writer = gevent.spawn(self._write_loop)
        else:
            self._wake.set()

    def _written(self, tag: int, fn: Optional[WriteCallback]) -> None:
        owner = self._owner_ref()
        if owner is not None:
            owner._stream_written(self, tag, fn)

    def _write_loop(self) -> None:
        # The only sender: TLS records OpenSSL queued go first, then the next write.
        sock = self.sock
        assert sock is not None
        writes = self._writes
        try:
            while not self.closed:
                tls = self.tls
                if self._ciphertext:
                    pending = bytes(self._ciphertext)
                    self._ciphertext.clear()
                    self._send_all(sock, [memoryview(pending), -1, None, -1.0])
                    continue
                if tls is not None and tls.has_outgoing:
                    self._send_all(sock, [memoryview(tls.take_outgoing()), -1, None, -1.0])
                    continue
                if not writes:
                    break
                item = writes[0]
                if item is _TLS_BARRIER:
                    writes.popleft()
                    # What was queued before start_tls went out as it was; from here on,
                    # never a byte in the clear (DESIGN 1b.17).
                    self.tls_wanted = True
                    self._write_at_barrier = True
                    self._maybe_begin_tls()
                    continue
                if self._write_at_barrier or (tls is not None and not tls.handshake_done):
                    self._wake.clear()
                    self._wake.wait()  # plaintext waits for the handshake
                    continue
                timeout: float = item[3]
                timer = gevent.Timeout(timeout) if timeout >= 0 else None
                if timer is not None:
                    timer.start()
                try:
                    if tls is not None:
                        tls.encrypt(item[0])
                        self._send_all(sock, [memoryview(tls.take_outgoing()), -1, None, -1.0])
                    elif self.tls_wanted:
                        # TLS was asked for and is not on: never send this in the clear.
                        raise ssl.SSLError("TLS is not established")
                    else:
                        self._send_all(sock, item)
                except gevent.Timeout as exc:
                    if exc is not timer:
                        raise
                    self._writer = None
                    self.close(WRITE_TIMEOUT, error=True)
                    return
                finally:
                    if timer is not None:
                        timer.close()
                writes.popleft()
                self._written(item[1], item[2])
        except Closed:
            return
        except ssl.SSLError as exc:  # before OSError, whose subclass it is
            self._writer = None
            self.close(describe_error(exc), error=True)
            return
        except OSError as exc:
            if not self.closed:
                self._writer = None
                self.close(reason_of(exc), error=True)
            return
        except Exception as exc:  # the writer must never die silently, leaving writes queued
            self._writer = None
            log.exception("internal error writing to %r", self)
            reason = describe_error(exc) if self.tls_wanted else f"internal error: {exc!r}"
            self.close(reason, error=True)
            return
        self._writer = None
        if self._close_when_flushed:
            self.finish()
        elif self._shutdown_when_flushed:
            self._shutdown_when_flushed = False
            self.half_close()

    def _send_all(self, sock: socket.socket, item: list[Any]) -> None:
        data: memoryview = item[0]
        while data.nbytes:
            try:
                sent = sock.send(data)
            except (BlockingIOError, InterruptedError):
                self._hub.wait(self._write_watcher)
                if self.closed:
                    raise Closed() from None
                continue
            data = data[sent:]
            item[0] = data

    def unsent(self) -> int:
        """Bytes queued for sending and not yet handed to the kernel."""
        return sum(item[0].nbytes for item in self._writes)
