"""The TLS half of a ``Stream``: STARTTLS barriers, the handshake, and records in and out.

OpenSSL never touches the socket: an ``ssl.SSLObject`` over two memory BIOs (``_tls``) is fed
the bytes the reader receives, and what it wants sent goes out through the stream's writer —
inline when nothing is queued before it. ``start_tls`` is a barrier in both the read and the
write queue; TLS begins when both reach it. Every method runs on the loop thread.
"""

from __future__ import annotations

import contextlib
import ssl
from collections import deque
from typing import Any, Callable, Optional

from pytest_hsocket._core.errors import reason_of
from pytest_hsocket._core.framing import BARRIER, Completed, ReadQueue, ReadRequest
from pytest_hsocket._io.tls import TlsSession, describe_error

_TLS_BARRIER: list[Any] = [memoryview(b""), -1, None, -1.0]
"""The write-queue twin of the read queue's barrier (compared by identity)."""


class StreamTls:
    """TLS for ``Stream`` (a mixin: the attributes and methods below are the stream's)."""

    queue: ReadQueue
    sock: Any
    closed: bool
    eof: bool
    tls: Optional[TlsSession]
    tls_wanted: bool
    _tls_pending: Optional[tuple[ssl.SSLContext, bool, Optional[str]]]
    _write_at_barrier: bool
    _writes: deque[list[Any]]
    _writer: Any
    _ciphertext: bytearray
    _wake: Any
    _owner_ref: Callable[[], Any]

    def close(self, reason: str = ..., error: bool = False) -> None:
        raise NotImplementedError  # pragma: no cover - the stream's

    def _kick_writer(self) -> None:
        raise NotImplementedError  # pragma: no cover - the stream's

    def _deliver(self, done: list[Completed]) -> None:
        raise NotImplementedError  # pragma: no cover - the stream's

    def check_eof(self) -> None:
        raise NotImplementedError  # pragma: no cover - the stream's

    def _framing_failed(self, done: list[Completed]) -> None:
        raise NotImplementedError  # pragma: no cover - the stream's

    def _send_ciphertext(self, data: bytes) -> bool:
        # TLS records, sent inline when nothing is queued before them; the rest is left to the
        # writer, which sends _ciphertext before anything else. Returns whether all was sent.
        sent = 0
        if self._writer is None and not self._ciphertext and self.sock is not None:
            try:
                sent = self.sock.send(data)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError as exc:
                self.close(reason_of(exc), error=True)
                return True
        if sent == len(data):
            return True
        self._ciphertext += memoryview(data)[sent:]
        self._kick_writer()
        return False

    # -- TLS --------------------------------------------------------------------------------

    def start_tls(
        self, context: ssl.SSLContext, server_side: bool, server_hostname: Optional[str]
    ) -> bool:
        """Queue a TLS upgrade after the reads and writes queued so far.

        Returns:
            False if TLS is already on or queued (the call is ignored, as in the original).
        """
        if self.tls is not None or self._tls_pending is not None or self.closed:
            return False
        self._tls_pending = (context, server_side, server_hostname)
        self.queue.push(ReadRequest(BARRIER))
        self._writes.append(_TLS_BARRIER)
        self._kick_writer()
        return True

    def _maybe_begin_tls(self) -> None:
        # TLS begins once both queues reached the barrier: every read and write queued before
        # start_tls is done.
        pending = self._tls_pending
        if (
            pending is None
            or not self._write_at_barrier
            or not self.queue.at_barrier
            or self.sock is None
            or self.closed
        ):
            return
        context, server_side, hostname = pending
        self._tls_pending = None
        self._write_at_barrier = False
        try:
            tls = TlsSession(context, server_side=server_side, server_hostname=hostname)
        except Exception as exc:  # any failure: the connection ends, never stays plaintext
            self.close(describe_error(exc), error=True)
            return
        self.tls = tls
        # Bytes that came with the plaintext (a ClientHello right behind STARTTLS) are TLS.
        early = self.queue.take_unread()
        self.queue.pop_barrier()
        if early:
            tls.receive(early)
        self._tls_step()
        self._kick_writer()

    def _tls_step(self) -> None:
        tls = self.tls
        if tls is None or self.closed:
            return
        try:
            plain, secured, ended = tls.step()
        except Exception as exc:  # an SSLError, or anything else OpenSSL's wrapper raises
            self._send_alert(tls)
            self.close(describe_error(exc), error=True)
            return
        if secured:
            owner = self._owner_ref()
            if owner is not None:
                owner._stream_secured(self)
            self._wake.set()
        if tls.has_outgoing:
            self._send_ciphertext(tls.take_outgoing())
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

    def _send_alert(self, tls: TlsSession) -> None:
        # Best effort, without waiting: tell the peer why before closing.
        if self.sock is not None and (tls.has_outgoing or self._ciphertext):
            data = bytes(self._ciphertext) + tls.take_outgoing()
            self._ciphertext.clear()
            with contextlib.suppress(OSError):
                self.sock.send(data)
