"""A stream's graceful end: the FIN after the queued writes, then, if asked, lingering until
the peer ends its side too. Every method runs on the loop thread."""

from __future__ import annotations

import contextlib
import socket
from typing import TYPE_CHECKING, Any, Optional

from pytest_hsocket._io.sockets import LOCAL_CLOSE

if TYPE_CHECKING:
    from pytest_hsocket._io.stream import Stream


class Ending:
    """How ``stream`` ends when asked to end gracefully (an abort is ``Stream.close``).

    Args:
        stream: The stream (its socket, writer, TLS layer, and ``close``/``pull_now``).
        hub: The loop's hub (the linger timer).

    Attributes:
        lingering: True while the FIN is sent and the peer's end is awaited: the stream's
            ``check_eof`` then closes at the peer's FIN.
    """

    def __init__(self, stream: Stream, hub: Any) -> None:
        self._stream = stream
        self._hub = hub
        self._close_when_flushed = False
        self._shutdown_when_flushed = False
        self._linger: Optional[float] = None
        self._timer: Any = None
        self.lingering = False

    def finish(self, linger: Optional[float] = None) -> None:
        """Close once every queued write is in the kernel (FIN after the data).

        Args:
            linger: None closes right after the FIN. A number of seconds keeps reading until
                the peer ends its side too (at most that long), then closes: a socket closed
                with bytes unread makes the kernel send a reset, which can destroy data the
                peer has not read yet (a TLS peer's session tickets arriving late do that).
        """
        stream = self._stream
        if stream.closed:
            return
        if linger is not None:
            self._linger = linger
        sock = stream.sock
        if sock is None or not stream.writer.idle:
            self._close_when_flushed = True
            return
        stream.tls_layer.close_notify()
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_WR)
        if self._linger is None or stream.eof:
            stream.close(LOCAL_CLOSE)
            return
        self.lingering = True
        self._timer = self._hub.loop.timer(min(max(self._linger, 0.0), 1e9))
        self._timer.start(self._linger_over)

    def _linger_over(self) -> None:
        # The peer kept its side open: take what it sent (unread bytes would turn the close
        # into a reset), then close.
        self._stream.pull_now()
        self._stream.close(LOCAL_CLOSE)

    def half_close(self) -> None:
        """Shut down the sending side once queued writes are out; keep reading."""
        stream = self._stream
        sock = stream.sock
        if stream.closed or sock is None:
            return
        if not stream.writer.idle:
            self._shutdown_when_flushed = True
            return
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_WR)

    def writes_flushed(self) -> None:
        """The writer emptied its queue: a ``finish`` or ``half_close`` that waited for it
        goes ahead."""
        if self._close_when_flushed:
            self.finish()
        elif self._shutdown_when_flushed:
            self._shutdown_when_flushed = False
            self.half_close()

    def cancel(self) -> None:
        """The stream closed: stop the linger timer."""
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.stop()
            timer.close()
