"""How a TCP socket hands the reads its stream completed to the read callback, on the loop.

A :class:`ReadDelivery` is a part of every TCP socket (``Socket`` has one; it is not a base
class): it owns the batch being delivered and the fast-read path's state, and reads the
socket's configuration (callback, stream, tap, server) through :class:`DeliveryOwner`.
Three ways, each giving the same data in the same order: a batch in a callback greenlet (the
ordinary way, :meth:`ReadDelivery.dispatch`); the fast-read path inside it, while a callback
keeps queueing its next delimiter read from bytes already buffered; and, for a server callback
of ours that never waits nor runs user code (a mock server playing a plain script), in the
loop's turn that read the data.
"""

from __future__ import annotations

import inspect
import logging
from typing import TYPE_CHECKING, Any, Callable, Optional, Protocol, runtime_checkable

import gevent

from pytest_hsocket._core.framing import Completed, ReadQueue
from pytest_hsocket._core.reads import completed

if TYPE_CHECKING:
    from pytest_hsocket._io.stream import Stream
    from pytest_hsocket._loop.callbacks import CallbackQueue
    from pytest_hsocket._loop.hub import SocketLoop

log = logging.getLogger("pytest_hsocket._hs.tcp")

ReadCallback = Callable[..., object]
"""``fn(data: bytes, tag: int)``, or on a server ``fn(data, tag, client)``."""
Tap = Callable[[str, bytes, int, str], None]
"""``tap(kind, data, tag, note)``: sees every event of a connection (for transcripts)."""

INLINE_LIMIT = 64
"""Reads a connection hands to its server's callback in one loop turn (see ReadDelivery)."""

READ_CALLBACK = "hs.socket:read callback"


def takes_client(fn: Callable[..., Any]) -> bool:
    """Whether a read callback takes a third argument, the client connection."""
    # Read the code object where there is one: inspect.signature costs ~50 us a socket.
    func = getattr(fn, "__func__", fn)
    code = getattr(func, "__code__", None)
    if code is not None and not code.co_kwonlyargcount:
        if code.co_flags & inspect.CO_VARARGS:
            return True
        positional = code.co_argcount - (0 if func is fn else 1)
        required = positional - len(getattr(func, "__defaults__", None) or ())
        return bool(positional >= 3 and required <= 3)
    try:
        inspect.signature(fn).bind(b"", -1, None)
    except (TypeError, ValueError):
        return False
    return True


@runtime_checkable
class DeliveryOwner(Protocol):
    """What a :class:`ReadDelivery` reads of its socket, and of that socket's server.

    The socket's configuration, read where a read is delivered (it may change between two
    reads). Underscored so that the public socket does not show them; a documented contract of
    ``Socket`` (tests/test_private_state.py checks the calls against this list).
    """

    @property
    def parent(self) -> Optional[DeliveryOwner]: ...

    _stream: Optional[Stream]
    _tap: Optional[Tap]
    _callback: Optional[ReadCallback]
    _callback_takes_client: bool

    def _callback_failed(self, where: str, exc: BaseException) -> None: ...

    def _reads_inline(self, client: Any) -> bool: ...


class ReadDelivery:
    """Delivers a TCP socket's completed reads to its read callback (or its server's), in order.

    Attributes:
        batch: The reads being delivered now, or None; reads that complete meanwhile join it.
        fast_reads: The loop thread's id while the fast-read path is open (a callback's next
            delimiter read may complete at once from the buffer), else 0.
        fast_queue: The stream's read queue the fast-read path takes from, while open.
        fast_data: The read the fast-read path completed, not yet handed back; or None.
        fast_tag: Its tag.
        fast_stop: Set when a read completed into the batch behind the one running (the
            fast-read path must not take the bytes after it first).
    """

    def __init__(
        self,
        sock: DeliveryOwner,
        loop: SocketLoop,
        callbacks: CallbackQueue,
        *,
        plain_push: bool = True,
    ) -> None:
        """Deliver for ``sock``, posting to its ``callbacks``; ``plain_push`` False for a socket
        whose reads go through its own push (the test client), which never takes the fast path."""
        self._sock = sock
        self._loop = loop
        self._callbacks = callbacks
        self._plain_push = plain_push
        self.batch: Optional[list[Completed]] = None
        self.fast_reads = 0
        self.fast_queue: Optional[ReadQueue] = None
        self.fast_data: Optional[bytes] = None
        self.fast_tag = -1
        self.fast_stop = False

    def end_batch(self) -> None:
        """Close the batch: something else was posted, so later reads start a new batch (FIFO)."""
        self.batch = None

    def close_fast_reads(self) -> None:
        """Close an open fast-read path: the next read goes the ordinary way."""
        self.fast_reads = 0

    def post(self, batch: list[Completed]) -> None:
        """Deliver ``batch`` (and what joins it) the ordinary way: in a callback greenlet."""
        self.batch = batch
        self._callbacks.post(READ_CALLBACK, self.dispatch, batch)

    def deliver(self, done: list[Completed]) -> None:
        """Deliver the reads ``done`` just completed (on the loop, in the turn that read them)."""
        batch = self.batch
        if batch is not None:
            batch += done  # the batch still being dispatched takes them, in order
            if self.fast_queue is not None:
                self.fast_stop = True
            return
        batch = self.batch = list(done)
        sock = self._sock
        parent = sock.parent
        if (
            parent is not None
            and not self._callbacks.busy
            and parent._reads_inline(sock)
            and not log.isEnabledFor(logging.DEBUG)  # the ordinary way logs each read
        ):
            self._dispatch_inline(parent, batch)
        else:
            self._callbacks.post(READ_CALLBACK, self.dispatch, batch)

    def _dispatch_inline(self, parent: DeliveryOwner, batch: list[Completed]) -> None:
        # As dispatch, in the hub: no greenlet, no loop turn. Reads that complete meanwhile
        # (the callback queues the next one) join the batch. Past INLINE_LIMIT (so that one
        # busy connection cannot hold the loop), or if the callback changed, the rest goes
        # the ordinary way; unless something was posted meanwhile: what the batch holds came
        # before it, so it is all delivered here first.
        fn = parent._callback
        sock = self._sock
        index = 0
        try:
            while index < len(batch):
                if (index >= INLINE_LIMIT or parent._callback is not fn) and self.batch is batch:
                    self.post(batch[index:])
                    return
                data, tag = batch[index]
                index += 1
                try:
                    fn(data, tag, sock)  # type: ignore[misc]  # a server's: never None here
                except gevent.GreenletExit:
                    raise
                except BaseException as exc:  # pytest.fail() too: never swallowed
                    sock._callback_failed(READ_CALLBACK, exc)
        finally:
            if self.batch is batch:
                self.batch = None

    def dispatch(self, batch: list[Completed]) -> None:
        """Run the read callback on each read of ``batch``, in order (in a callback greenlet)."""
        sock = self._sock
        owner = sock.parent or sock
        index = 0
        debug = log.isEnabledFor(logging.DEBUG)  # once a batch: free when DEBUG is off
        # The stream the fast-read path may run on (see _run_fast_reads), or None.
        stream = sock._stream
        fast_stream = stream if sock._tap is None and not debug and self._plain_push else None
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
                        fn(data, tag, sock)
                    else:
                        fn(data, tag)
                except gevent.GreenletExit:
                    raise
                except BaseException as exc:  # pytest.fail() too: never swallowed
                    sock._callback_failed(READ_CALLBACK, exc)
        finally:
            if self.batch is batch:
                self.batch = None

    def _run_fast_reads(
        self,
        owner: DeliveryOwner,
        fn: ReadCallback,
        data: bytes,
        tag: int,
        batch: list[Completed],
        index: int,
        stream: Stream,
    ) -> None:
        # The fast-read path, for the last read of a batch: while the callback queues its next
        # delimiter read, Socket.read() completes it at once from the buffer (ReadQueue.take)
        # and leaves it in fast_data, and it is delivered here, with no request, push or batch
        # in between. What completes, and in what order, is what a push would give; a read
        # that finds the fast-read path closed (a second read in a callback, a length, another
        # greenlet) takes the ordinary path. Transcripts (a tap) and DEBUG logs never use it.
        sock = self._sock
        self.fast_queue = stream.queue
        takes_client = owner._callback_takes_client
        count = 0
        self.fast_reads = self._loop.thread_id or 0  # a read takes it once per callback
        try:
            while True:
                try:
                    if takes_client:
                        fn(data, tag, sock)
                    else:
                        fn(data, tag)
                except gevent.GreenletExit:
                    raise
                except BaseException as exc:  # pytest.fail() too: never swallowed
                    sock._callback_failed(READ_CALLBACK, exc)
                taken = self.fast_data
                if taken is None:
                    break
                self.fast_data = None
                data, tag = taken, self.fast_tag
                count += 1
                # Leave the fast-read path when a read completed into the batch behind this
                # one (its callback must not take the bytes after it first: deliver says so),
                # the callback changed, or for fairness.
                if self.fast_stop or owner._callback is not fn or not count & 1023:
                    self.fast_reads = 0
                    batch.insert(index, completed((data, tag)))  # next, ahead of the rest
                    if not count & 1023:
                        stream.resume_reading()
                        gevent.sleep(0)  # let the loop's other sockets (and the reader) run
                    break
        finally:
            self.fast_reads = 0
            self.fast_queue = None
            self.fast_stop = False
        if stream.eof:
            stream.check_eof()  # as a push does after a batch
