"""How a TCP socket hands the reads its stream completed to the read callback, on the loop.

Three ways, each giving the same data in the same order: a batch in a callback greenlet (the
ordinary way, :meth:`ReadDelivery._dispatch_reads`); the fast-read path inside it, while a
callback keeps queueing its next delimiter read from bytes already buffered
(:meth:`ReadDelivery._run_fast_reads`); and, for a server callback of ours that never waits nor runs
user code (a mock server playing a plain script), in the loop's turn that read the data
(:meth:`ReadDelivery._dispatch_inline`).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Callable, Optional

import gevent

from pytest_hsocket._core.framing import Completed, ReadQueue
from pytest_hsocket._core.reads import completed
from pytest_hsocket._loop.callbacks import CallbackQueue

if TYPE_CHECKING:
    from pytest_hsocket._io.stream import Stream
    from pytest_hsocket._loop.hub import SocketLoop

log = logging.getLogger("pytest_hsocket._hs.tcp")

ReadCallback = Callable[..., object]
"""``fn(data: bytes, tag: int)``, or on a server ``fn(data, tag, client)``."""
Tap = Callable[[str, bytes, int, str], None]
"""``tap(kind, data, tag, note)``: sees every event of a connection (for transcripts)."""

INLINE_LIMIT = 64
"""Reads a connection hands to its server's callback in one loop turn (see _dispatch_inline)."""


class ReadDelivery:
    """The read-delivering part of a TCP socket (a base of ``SocketCore``, which sets these)."""

    _plain_push = True
    """False in a subclass that routes reads through its own ``_push_read`` (the test client)."""

    parent: Any  # the listening Socket that accepted this connection, or None
    _loop: SocketLoop
    _stream: Optional[Stream]
    _callback: Optional[ReadCallback]
    _callback_takes_client: bool
    _callbacks: CallbackQueue
    _read_batch: Optional[list[Completed]]
    _tap: Optional[Tap]
    _fast_reads: int
    _fast_queue: Optional[ReadQueue]
    _fast_data: Optional[bytes]
    _fast_tag: int
    _fast_stop: bool

    def _callback_failed(self, where: str, exc: BaseException) -> None:
        raise NotImplementedError  # pragma: no cover - SocketCore's

    def _stream_read(self, stream: Stream, done: list[Completed]) -> None:
        if self._tap is not None:
            for data, tag in done:
                self._tap("in", data, tag, "")
        batch = self._read_batch
        if batch is not None:
            batch += done  # the batch still being dispatched takes them, in order
            if self._fast_queue is not None:
                self._fast_stop = True
            return
        batch = self._read_batch = list(done)
        parent = self.parent
        if (
            parent is not None
            and not self._callbacks.busy
            and parent._reads_inline(self)
            and not log.isEnabledFor(logging.DEBUG)  # the ordinary way logs each read
        ):
            self._dispatch_inline(parent, batch)
        else:
            self._callbacks.post("hs.socket:read callback", self._dispatch_reads, batch)

    def _reads_inline(self, client: ReadDelivery) -> bool:
        """Whether ``client``'s reads may be handed to this server's callback in the loop's
        turn that read them: only for a callback of ours that never waits nor runs user code
        (a mock server playing a plain script)."""
        return False

    def _dispatch_inline(self, parent: ReadDelivery, batch: list[Completed]) -> None:
        # As _dispatch_reads, in the hub: no greenlet, no loop turn. Reads that complete
        # meanwhile (the callback queues the next one) join the batch. Past INLINE_LIMIT (so
        # that one busy connection cannot hold the loop), or if the callback changed, the rest
        # goes the ordinary way; unless something was posted meanwhile: what the batch holds
        # came before it, so it is all delivered here first.
        fn = parent._callback
        index = 0
        try:
            while index < len(batch):
                if (index >= INLINE_LIMIT or parent._callback is not fn) and (
                    self._read_batch is batch
                ):
                    rest = self._read_batch = batch[index:]
                    self._callbacks.post("hs.socket:read callback", self._dispatch_reads, rest)
                    return
                data, tag = batch[index]
                index += 1
                try:
                    fn(data, tag, self)  # type: ignore[misc]  # a server's: never None here
                except gevent.GreenletExit:
                    raise
                except BaseException as exc:  # pytest.fail() too: never swallowed
                    self._callback_failed("hs.socket:read callback", exc)
        finally:
            if self._read_batch is batch:
                self._read_batch = None

    def _dispatch_reads(self, batch: list[Completed]) -> None:
        owner = self.parent or self
        index = 0
        debug = log.isEnabledFor(logging.DEBUG)  # once a batch: free when DEBUG is off
        # The stream the fast-read path may run on (see _run_fast_reads), or None.
        fast_stream = self._stream if self._tap is None and not debug and self._plain_push else None
        try:
            while index < len(batch):  # the batch may grow while its callbacks run
                data, tag = batch[index]
                index += 1
                if debug:
                    log.debug("Data read from TCP socket")
                if not index & 1023:
                    gevent.sleep(0)  # a long batch must not starve the loop's other sockets
                fn = owner._callback
                if fn is None:
                    log.warning(
                        "read (tag %d) completed with no callback set: %r dropped", tag, data
                    )
                    continue
                if (
                    fast_stream is not None
                    and index == len(batch)
                    and not fast_stream.closed
                    and fast_stream.queue.buffered
                ):
                    # Only with bytes buffered: a request/response peer's next line is not
                    # there yet, and the fast-read path would only be set up to find nothing.
                    self._run_fast_reads(owner, fn, data, tag, batch, index, fast_stream)
                    continue
                try:
                    if owner._callback_takes_client:
                        fn(data, tag, self)
                    else:
                        fn(data, tag)
                except gevent.GreenletExit:
                    raise
                except BaseException as exc:  # pytest.fail() too: never swallowed
                    self._callback_failed("hs.socket:read callback", exc)
        finally:
            if self._read_batch is batch:
                self._read_batch = None

    def _run_fast_reads(
        self,
        owner: ReadDelivery,
        fn: ReadCallback,
        data: bytes,
        tag: int,
        batch: list[Completed],
        index: int,
        stream: Stream,
    ) -> None:
        # The fast-read path, for the last read of a batch: while the callback queues its next
        # delimiter read, read() completes it at once from the buffer (ReadQueue.take) and
        # leaves it in _fast_data, and it is delivered here, with no request, push or batch in
        # between. What completes, and in what order, is what a push would give; a read that
        # finds the fast-read path closed (a second read in a callback, a length, another greenlet)
        # takes the ordinary path. Transcripts (a tap) and DEBUG logs never use the fast-read path.
        self._fast_queue = stream.queue
        reader_id = self._loop.thread_id or 0
        takes_client = owner._callback_takes_client
        count = 0
        self._fast_reads = (
            reader_id  # open while the fast-read path runs; a read takes it once per callback
        )
        try:
            while True:
                try:
                    if takes_client:
                        fn(data, tag, self)
                    else:
                        fn(data, tag)
                except gevent.GreenletExit:
                    raise
                except BaseException as exc:  # pytest.fail() too: never swallowed
                    self._callback_failed("hs.socket:read callback", exc)
                taken = self._fast_data
                if taken is None:
                    break
                self._fast_data = None
                data, tag = taken, self._fast_tag
                count += 1
                # Leave the fast-read path when a read completed into the batch behind this one (its
                # callback must not take the bytes after it first: _stream_read says so),
                # the callback changed, or for fairness.
                if self._fast_stop or owner._callback is not fn or not count & 1023:
                    self._fast_reads = 0
                    batch.insert(index, completed((data, tag)))  # next, ahead of the rest
                    if not count & 1023:
                        stream.resume_reading()
                        gevent.sleep(0)  # let the loop's other sockets (and the reader) run
                    break
        finally:
            self._fast_reads = 0
            self._fast_queue = None
            self._fast_stop = False
        if stream.eof:
            stream.check_eof()  # as _deliver does after a batch
