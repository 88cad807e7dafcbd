"""TLS over a stream: the STARTTLS barrier, the handshake, and records in and out.

OpenSSL never touches the socket: a :class:`~pytest_hsocket._io.tls.TlsSession` (an
``ssl.SSLObject`` over two memory BIOs) is fed the bytes the stream receives, and what it
wants sent goes out through the stream's :class:`~pytest_hsocket._io.stream_write.Writer`,
inline when nothing is queued before it. ``start`` puts a barrier in both the read queue and
the write queue; TLS begins when both reached it. Every method runs on the loop thread.
"""

from __future__ import annotations

import ssl
from typing import Callable, Optional, Union

from pytest_hsocket._core.framing import BARRIER, ReadQueue, ReadRequest
from pytest_hsocket._io.stream_write import Writer
from pytest_hsocket._io.tls import TlsSession, describe_error


class TlsLayer:
    """A stream's TLS: off until :meth:`start`, then on for good (see the module docstring).

    Args:
        queue: The stream's read queue (the read-side barrier goes there, and the bytes that
            arrived with the plaintext are taken from it when TLS begins).
        writer: The stream's writer (the write-side barrier, and the records to send).
        secured: Called once, when the handshake completed.
        plain: Called with ``(plaintext, ended)`` when a step decrypted bytes or found that
            the peer ended TLS (close_notify or a bare EOF).
        failed: Called with the reason when TLS fails; the stream closes then.

    Attributes:
        session: The TLS session once TLS began, else ``None``.
        pending: The ``(context, server_side, server_hostname)`` of a :meth:`start` whose
            barriers are not both reached yet, else ``None``.
    """

    def __init__(
        self,
        queue: ReadQueue,
        writer: Writer,
        secured: Callable[[], None],
        plain: Callable[[bytes, bool], None],
        failed: Callable[[str], None],
    ) -> None:
        self._queue = queue
        self._writer = writer
        self._secured = secured
        self._plain = plain
        self._failed = failed
        self.session: Optional[TlsSession] = None
        self.pending: Optional[tuple[ssl.SSLContext, bool, Optional[str]]] = None
        self._writes_at_barrier = False
        self._closed = False

    def start(
        self, context: ssl.SSLContext, server_side: bool, server_hostname: Optional[str]
    ) -> bool:
        """Queue the upgrade after the reads and writes queued so far.

        Returns:
            False if TLS is already on or queued, or the stream closed (the call is ignored,
            as in the original).
        """
        if self.session is not None or self.pending is not None or self._closed:
            return False
        self.pending = (context, server_side, server_hostname)
        self._queue.push(ReadRequest(BARRIER))
        self._writer.push_barrier(self._writes_reached_barrier)
        return True

    def _writes_reached_barrier(self) -> None:
        self._writes_at_barrier = True
        self.maybe_begin()

    def maybe_begin(self) -> None:
        """Begin TLS if both queues reached the barrier: every read and write queued before
        :meth:`start` is done. The stream calls this after it delivered reads."""
        pending = self.pending
        if (
            pending is None
            or not self._writes_at_barrier
            or not self._queue.at_barrier
            or self._closed
        ):
            return
        context, server_side, hostname = pending
        self.pending = None
        self._writes_at_barrier = False
        try:
            session = TlsSession(context, server_side=server_side, server_hostname=hostname)
        except Exception as exc:  # any failure: the connection ends, never stays plaintext
            self._failed(describe_error(exc))
            return
        self.session = session
        self._writer.encrypt_with(session)
        # Bytes that came with the plaintext (a ClientHello right behind STARTTLS) are TLS.
        early = self._queue.take_unread()
        self._queue.pop_barrier()
        if early:
            session.receive(early)
        self._step(session)
        self._writer.kick()

    def receive(self, data: Union[bytes, memoryview]) -> None:
        """Decrypt bytes received from the peer (TLS is on)."""
        session = self.session
        assert session is not None
        session.receive(data)
        self._step(session)

    def receive_eof(self) -> None:
        """Tell the session that the peer closed the transport (TLS is on)."""
        session = self.session
        assert session is not None
        session.receive_eof()
        self._step(session)

    def _step(self, session: TlsSession) -> None:
        if self._closed:
            return
        try:
            plain, secured, ended = session.step()
        except Exception as exc:  # an SSLError, or anything else OpenSSL's wrapper raises
            self._send_alert(session)
            self._failed(describe_error(exc))
            return
        if secured:
            self._secured()
            self._writer.wake()
        if session.has_outgoing:
            self._writer.send_records(session.take_outgoing())
        if plain or ended:
            self._plain(plain, ended)

    def close(self, notify: bool) -> None:
        """The stream closes: with ``notify``, send TLS's close_notify first (the peer then
        sees a clean end, not a bare EOF); no step runs after this."""
        session = self.session
        if notify and session is not None:
            session.close_notify()
            self._send_alert(session)
        self._closed = True
        self.pending = None

    def close_notify(self) -> None:
        """Send TLS's close_notify now, if TLS is on (a graceful end, before the FIN)."""
        session = self.session
        if session is not None:
            session.close_notify()
            self._send_alert(session)

    def _send_alert(self, session: TlsSession) -> None:
        # Best effort, without waiting: tell the peer why before closing.
        self._writer.send_last(session.take_outgoing())
