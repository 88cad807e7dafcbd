"""The reading side of the test client: ``expect`` and ``wait``, with a ticket for each read
``expect`` queued and an inbox for the reads queued with ``read``."""

from __future__ import annotations

import contextlib
import functools
import logging
import time
from collections import deque
from typing import Any, Optional

from pytest_hsocket._core.checks import check_wait
from pytest_hsocket._core.errors import (
    ConnectionClosed,
    InvalidThreadUseError,
    LoopError,
    ReadTimeout,
)
from pytest_hsocket._core.framing import Completed, ReadRequest, make_request
from pytest_hsocket._core.tracebackhide import hide_helper_frames
from pytest_hsocket._core.transcript import TaggedBytes, Transcript
from pytest_hsocket._hs.base import log
from pytest_hsocket._hs.tcp import ReadCallback, ReadDelimiter, Socket
from pytest_hsocket._io.stream import PEER_CLOSED, Stream
from pytest_hsocket._loop.offload import to_thread
from pytest_hsocket._loop.originals import allocate_lock, get_ident
from pytest_hsocket._loop.sync import Gate

# How long a helper giving up waits for the loop to take its read back.
_CANCEL_TIMEOUT = 5.0

# pytest leaves this module's frames out of the failures it raises for the test.
__tracebackhide__ = hide_helper_frames


class Ticket:
    """A read a blocking helper (``expect``) waits for: the loop fills ``data`` and opens
    ``gate``; ``abandoned`` once the helper gave up (its bytes then go to the inbox).

    Attributes:
        request: The queued read.
        gate: Opened on the loop when the read completes (or the connection ends).
        data: The completed read, or ``None``.
        abandoned: Whether the helper that queued it stopped waiting.
    """

    __slots__ = ("abandoned", "data", "gate", "request")

    def __init__(self, request: ReadRequest) -> None:
        self.request = request
        self.gate = Gate()
        self.data: Optional[TaggedBytes] = None
        self.abandoned = False


class ClientReads(Socket):
    """A client socket whose reads go to the ``expect`` waiting for each (its ticket), or to an
    inbox that ``wait`` takes from; or, once set, to a user callback (the base of ``TestClient``).

    Attributes:
        wait_timeout: Default seconds ``expect``/``wait`` wait.
        transcript: Everything this connection sent and received.
    """

    _plain_push = False  # reads go through _push_read, which files a ticket for each

    def __init__(self, *, wait_timeout: float, name: str) -> None:
        """An unconnected client named ``name`` (in its transcript)."""
        super().__init__(self._on_read)
        self.wait_timeout = wait_timeout
        self.transcript = Transcript(name)
        self._tap = self.transcript
        self._tickets: deque[Optional[Ticket]] = deque()
        self._inbox: list[TaggedBytes] = []
        self._lock: Any = allocate_lock()
        self._changed = Gate()
        self._user_callback: Optional[ReadCallback] = None
        self.on_disconnect(self._disconnected)

    def _closed(self) -> bool:
        # Closed, or never connected.
        return self._stream is None

    def _push_read(self, request: ReadRequest) -> None:
        # Socket.read() ends here on the loop: reads it queues land in the inbox.
        self._push_ticket(request, None)

    def _push_ticket(self, request: ReadRequest, ticket: Optional[Ticket]) -> None:
        stream = self._stream
        if stream is None or stream.closed:
            if ticket is not None:
                ticket.gate.open()
            return
        self._tickets.append(ticket)
        stream.push_read(request)

    def _stream_read(self, stream: Stream, done: list[Completed]) -> None:
        # A ticket or the inbox takes the data without running user code (a lock held for a
        # few instructions, a gate opened): done here, in the loop's turn, the waiting test
        # wakes a greenlet switch and a loop turn sooner. With a user callback, or callbacks
        # of this client still queued (FIFO), the data goes the ordinary way.
        if (
            self._user_callback is not None
            or self._delivery.batch is not None
            or self._callbacks.busy
            or log.isEnabledFor(logging.DEBUG)  # the ordinary way logs each read
        ):
            super()._stream_read(stream, done)
            return
        if self._tap is not None:
            for data, tag in done:
                self._tap("in", data, tag, "")
        for index, (data, tag) in enumerate(done):
            if not self._fill(data, tag):
                # A user callback was set meanwhile (from another thread): it runs in a
                # callback greenlet, never here; the reads from this one on go that way.
                self._delivery.post(done[index:])
                return

    def _on_read(self, data: bytes, tag: int) -> None:
        if self._fill(data, tag):
            return
        if self._tickets:
            self._tickets.popleft()  # the read's place: a read() of the user callback's
        fn = self._user_callback
        if fn is not None:
            fn(data, tag)
        else:  # cleared meanwhile
            self._to_inbox(data, tag)

    def _fill(self, data: bytes, tag: int) -> bool:
        # Give a completed read to its expect() ticket, or to the inbox; False, and nothing
        # taken, when it is the user callback's.
        tickets = self._tickets
        ticket = tickets[0] if tickets else None
        with self._lock:
            if ticket is not None and not ticket.abandoned:
                tickets.popleft()
                ticket.data = TaggedBytes(data, tag, self.transcript)
                ticket.gate.open()
                return True
        if self._user_callback is not None:
            return False
        if tickets:
            tickets.popleft()
        self._to_inbox(data, tag)
        return True

    def _to_inbox(self, data: bytes, tag: int) -> None:
        tagged = TaggedBytes(data, tag, self.transcript)
        with self._lock:
            self._inbox.append(tagged)
            changed, self._changed = self._changed, Gate()
        changed.open()

    def _cancel(self, ticket: Ticket) -> None:
        stream = self._stream
        if stream is not None and stream.queue.cancel(ticket.request):
            if ticket in self._tickets:
                self._tickets.remove(ticket)
            stream.arm_read_timer()

    def _disconnected(self, reason: str) -> None:
        tickets = list(self._tickets)
        self._tickets.clear()
        for ticket in tickets:
            if ticket is not None:
                ticket.gate.open()
        self._wake_waiters()

    def _refuse_on_loop(self, what: str) -> None:
        if get_ident() == self._loop.thread_id:
            raise InvalidThreadUseError(
                f"{what}() blocks; call it from the test, not from a socket callback"
            )

    def _limit(self, timeout: Optional[float], what: str) -> Optional[float]:
        # Seconds to wait, or None for no limit (inf, or more than a lock can wait: an
        # OverflowError from deep inside would leave a read queued).
        return self.wait_timeout if timeout is None else check_wait(timeout, what)

    def _queue_expect(
        self, delimiter: ReadDelimiter, tag: int, timeout: Optional[float]
    ) -> tuple[Ticket, Optional[float]]:
        # Everything that can raise comes before the read is queued: nothing to take back.
        self._refuse_on_loop("expect")
        if self.callback_errors:
            self.check()
        request = make_request(delimiter, tag, self._timeout)
        limit = self._limit(timeout, "expect()")
        ticket = Ticket(request)
        if self._closed():
            raise self._closed_error(request)
        self._loop.call(self._push_ticket, request, ticket)
        return ticket, limit

    def _give_up(self, ticket: Ticket) -> None:
        # Every way out of expect()/aexpect() without the data ends here (DESIGN 1b.19): the
        # read is taken back, so the bytes it would have had serve the next read. A read that
        # completed in the meantime was not taken by anyone: it goes to the inbox (wait()).
        with self._lock:
            if not ticket.gate.is_open:
                ticket.abandoned = True
        if ticket.abandoned:
            # Taken back before this returns. Only queued, the cancel could run after bytes the
            # test had the peer send next: they completed this read, went to the inbox, and
            # the next expect() timed out (a cancelled aexpect, seen under load).
            # A stuck or orphaned loop: the error the caller is leaving with matters more.
            with contextlib.suppress(LoopError):
                self._loop.run_sync(functools.partial(self._cancel, ticket), _CANCEL_TIMEOUT)
            ticket.gate.open()  # lets a worker thread still waiting on it (aexpect) go
        elif ticket.data is not None:
            data, ticket.data = ticket.data, None
            self._to_inbox(data, data.tag)

    def _outcome(self, ticket: Ticket, limit: Optional[float]) -> TaggedBytes:
        if self.callback_errors:
            self.check()
        if ticket.data is not None:
            return ticket.data
        request = ticket.request
        if ticket.abandoned:
            raise ReadTimeout(
                f"no data for read to {request.describe()} (tag {request.tag}) within {limit} s; "
                f"{self._buffered_text()}\n{self.transcript.render()}"
            )
        raise self._closed_error(request)

    def expect(
        self, delimiter: ReadDelimiter, tag: int = -1, timeout: Optional[float] = None
    ) -> TaggedBytes:
        """Queue a read and wait for its data.

        However the wait ends without the data (a timeout, an exception raised into it such
        as ``KeyboardInterrupt``), the read is taken back: bytes that arrive later stay
        buffered for the next read. A read that completed while ``expect`` was giving up goes
        to the inbox, where ``wait()`` finds it.

        Args:
            delimiter: As ``read``: a byte count, or bytes/str/regex to read up to and including.
            tag: The read's tag, carried by the result.
            timeout: Seconds to wait (``float("inf")``: no limit); ``wait_timeout`` by default.
        Returns:
            The data, as bytes carrying ``.tag``.
        Raises:
            ReadTimeout: If it does not complete in time (the message shows what is buffered).
            ConnectionClosed: If the connection closes first (the message shows unread bytes).
            CallbackError: If a callback of this client raised.
            InvalidThreadUseError: If called on the socket loop.
        """
        ticket, limit = self._queue_expect(delimiter, tag, timeout)
        try:
            if not ticket.gate.wait(limit):
                self._give_up(ticket)
        except BaseException:
            self._give_up(ticket)
            raise
        return self._outcome(ticket, limit)

    async def aexpect(
        self, delimiter: ReadDelimiter, tag: int = -1, timeout: Optional[float] = None
    ) -> TaggedBytes:
        """``expect`` for async tests (asyncio, trio, anyio): the event loop keeps running.

        Cancelled (``asyncio.wait_for`` timing out, a task group ending), it takes its read
        back as ``expect`` does on a timeout.

        Returns:
            As ``expect``.
        Raises:
            As ``expect``.
        """
        ticket, limit = self._queue_expect(delimiter, tag, timeout)
        try:
            if not await to_thread(ticket.gate.wait, limit):
                self._give_up(ticket)
        except BaseException:
            self._give_up(ticket)
            raise
        return self._outcome(ticket, limit)

    async def async_wait(
        self, tag: Optional[int] = None, timeout: Optional[float] = None
    ) -> TaggedBytes:
        """``wait`` for async tests: the event loop keeps running.

        Returns:
            As ``wait``.
        Raises:
            As ``wait``.
        """
        limit = self._limit(timeout, "wait()")
        deadline = None if limit is None else time.monotonic() + limit
        while True:
            found, gate = self._take(tag)
            if found is not None:
                return found
            remaining = None if deadline is None else deadline - time.monotonic()
            try:
                # Only the gate is waited on in the worker: an item is taken here, so a
                # cancelled wait cannot take one that nobody then receives.
                woke = (remaining is None or remaining > 0) and await to_thread(
                    gate.wait, remaining
                )
            except BaseException:
                self._wake_waiters()  # the worker thread goes now, not at its timeout
                raise
            if not woke:
                raise self._wait_timeout(tag, limit)

    def wait(self, tag: Optional[int] = None, timeout: Optional[float] = None) -> TaggedBytes:
        """Wait for the next completed read (queued with ``read``) with ``tag`` (any if None).

        Returns:
            The data, as bytes carrying ``.tag``; it is taken out of the inbox.
        Raises:
            ReadTimeout: If none arrives in time.
            ConnectionClosed: If the connection closes with none left to take.
            InvalidThreadUseError: If called on the socket loop.
        """
        self._refuse_on_loop("wait")
        limit = self._limit(timeout, "wait()")
        deadline = None if limit is None else time.monotonic() + limit
        while True:
            found, gate = self._take(tag)
            if found is not None:
                return found
            if deadline is None:
                gate.wait(None)
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not gate.wait(remaining):
                raise self._wait_timeout(tag, limit)

    def _take(self, tag: Optional[int]) -> tuple[Optional[TaggedBytes], Gate]:
        # The first inbox item with ``tag``, taken; else the gate that opens on a change.
        self.check()
        with self._lock:
            for index, item in enumerate(self._inbox):
                if tag is None or item.tag == tag:
                    return self._inbox.pop(index), self._changed
            gate = self._changed
        if self._closed():
            raise self._closed_error(None, tag)
        return None, gate

    def _wake_waiters(self) -> None:
        with self._lock:
            changed, self._changed = self._changed, Gate()
        changed.open()

    def _wait_timeout(self, tag: Optional[int], limit: Optional[float]) -> ReadTimeout:
        what = "any tag" if tag is None else f"tag {tag}"
        return ReadTimeout(
            f"no completed read with {what} within {limit} s; "
            f"{self._buffered_text()}\n{self.transcript.render()}"
        )

    def _buffered_text(self) -> str:
        stream = self._stream
        if stream is None:
            return "the connection is closed"
        try:
            unread = self._loop.run_sync(stream.queue.unread, timeout=2.0)
        except Exception:
            unread = b""
        return f"{len(unread)} bytes buffered: {unread[:64]!r}"

    def _closed_error(
        self, request: Optional[ReadRequest], tag: Optional[int] = None
    ) -> ConnectionClosed:
        reason = self.last_disconnect_reason or "never connected"
        unread = self.unread
        lost = request if request is not None else (self.lost_reads[0] if self.lost_reads else None)
        if lost is not None:
            reading = f"while reading to {lost.describe()}, tag {lost.tag}"
        else:
            reading = f"while waiting for {'any tag' if tag is None else f'tag {tag}'}"
        if reason == PEER_CLOSED:
            message = f"peer closed after {unread!r} {reading}"
        else:
            message = f"connection closed ({reason}) {reading}; unread: {unread!r}"
        return ConnectionClosed(f"{message}\n{self.transcript.render()}", reason, unread)
