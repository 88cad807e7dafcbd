"""The receiving side of a stream: a read watcher that pulls bytes from the kernel.

The watcher's callback runs in the hub: no greenlet (nor its saved stack) per connection, and
no switch per message. It receives as soon as bytes arrive, read or not, so data is buffered
early and a peer close is noticed with no read pending. Every method runs on the loop thread.
"""

from __future__ import annotations

import logging
import socket
from typing import Any, Callable, Union

from pytest_hsocket._core.errors import reason_of
from pytest_hsocket._core.framing import ReadQueue
from pytest_hsocket._io.sockets import HIGH_WATER, RECV_SIZE

log = logging.getLogger(__name__)

# One receive buffer for every stream: readers all run on the loop's thread, and each copies
# what it received (into its read queue or TLS input) before it can yield. A buffer per
# connection cost 256 KiB each (2.5 GB for 5,000 connections) and zero-filling it at connect.
_SCRATCH = bytearray(RECV_SIZE)
_SCRATCH_VIEW = memoryview(_SCRATCH)


class Reader:
    """Receives a stream's bytes and hands them on, one chunk per wake-up.

    Args:
        hub: The loop's hub (the read watcher).
        queue: The stream's read queue (reading stops at its high-water mark).
        received: Called with each chunk (a view of a shared buffer: copy it before yielding).
        received_eof: Called once at the peer's close; reading stops.
        failed: Called with the reason when receiving fails; reading stops.

    Attributes:
        reading: True while the watcher runs (False before :meth:`attach`, after a stop at the
            high-water mark, at the peer's close, and after :meth:`close`).
        closed: True once :meth:`close` ran.
    """

    def __init__(
        self,
        hub: Any,
        queue: ReadQueue,
        received: Callable[[Union[bytes, memoryview]], None],
        received_eof: Callable[[], None],
        failed: Callable[[str], None],
    ) -> None:
        self._hub = hub
        self._queue = queue
        self._received = received
        self._received_eof = received_eof
        self._failed = failed
        self._sock: Any = None
        self._watcher: Any = None
        self.reading = False
        self.closed = False

    def attach(self, sock: socket.socket) -> None:
        """Read from ``sock`` (connected, non-blocking; the stream owns it); call :meth:`start`
        to begin."""
        self._sock = sock
        self._watcher = self._hub.loop.io(sock.fileno(), 1)

    def start(self) -> None:
        """Watch the socket: receive whenever it is readable."""
        self.reading = True
        self._watcher.start(self._on_readable)

    def stop(self) -> None:
        """Stop watching (bytes stay in the kernel until :meth:`start`)."""
        self.reading = False
        if self._watcher is not None:
            self._watcher.stop()

    def close(self) -> None:
        """Stop for good; the stream closes the socket after this."""
        self.closed = True
        self.reading = False
        if self._watcher is not None:
            self._watcher.close()  # a plain callback: no greenlet waits on it

    def _on_readable(self) -> None:
        # One chunk per wake-up: the watcher fires again on the loop's next turn while more is
        # waiting, after the callbacks of what completed ran, so the buffer stays near one
        # chunk and other connections get a turn.
        if self.closed:
            return
        queue = self._queue
        if queue.buffered >= HIGH_WATER and not queue.pending:
            # Leave the rest in the kernel (as the original does) until a read asks.
            self.stop()
            return
        self.receive_once()

    def pull_now(self) -> int:
        """Receive at once whatever the kernel holds (without waiting); return the byte count."""
        total = 0
        while not self.closed:
            n = self.receive_once()
            if n <= 0:
                break
            total += n
        return total

    def receive_once(self) -> int:
        """One receive into the shared buffer, handed on.

        Returns:
            The bytes received: 0 at the peer's close or on an error (both reported, and
            reading stops), -1 if none waited.
        """
        try:
            n: int = self._sock.recv_into(_SCRATCH)
        except (BlockingIOError, InterruptedError):
            return -1
        except OSError as exc:
            self.stop()
            self._failed(reason_of(exc))
            return 0
        try:
            if n == 0:
                self.stop()
                self._received_eof()
            else:
                self._received(_SCRATCH_VIEW[:n])  # copied before anything can switch
        except Exception as exc:  # a bug here must end this connection, not the loop's turn
            log.exception("internal error reading from %r", self._sock)
            self.stop()
            self._failed(f"internal error: {exc!r}")
            return 0
        return n
