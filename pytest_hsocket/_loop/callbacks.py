"""Running a socket's user callbacks on the loop: later, in FIFO order, in reused greenlets."""

from __future__ import annotations

import importlib
from collections import deque
from typing import Any, Callable, Optional

import gevent

# greenlet ships no type stubs (gevent's spawn_raw makes the same object).
_RawGreenlet: Any = importlib.import_module("greenlet").greenlet

MAX_IDLE_WORKERS = 16
"""Parked callback greenlets a hub keeps for reuse; more finish once their batch is done."""

_IDLE = "_hsock_idle_callback_workers"  # the attribute of a hub that holds its parked workers


class CallbackWorker(_RawGreenlet):  # type: ignore[misc]
    """A greenlet that runs callback batches, parking on its hub between them.

    A fresh greenlet per batch cost a ``mmap`` and a ``munmap`` (Python's frame stack for
    it) and a page fault: several microseconds on every message of a request/response peer.
    """

    def __init__(self, hub: Any, idle: list[CallbackWorker]) -> None:
        super().__init__(self._work, hub)
        self._idle = idle

    def _work(self, first: list[CallbackQueue]) -> None:
        # The first queue comes in a box emptied here: greenlet holds the arguments of a run
        # function until it returns, and a parked worker must not keep a socket alive.
        queue: Optional[CallbackQueue] = first.pop()
        idle = self._idle
        park = _RawGreenlet.switch
        hub = self.parent
        while queue is not None:
            # Each batch in an empty contextvars context, as in a greenlet of its own: what
            # one socket's callback set must not show in another's.
            self.gr_context = None
            queue.run_batch()
            queue = None  # parked, it must not keep the socket alive (nor its ResourceWarning)
            if len(idle) >= MAX_IDLE_WORKERS:
                return
            idle.append(self)
            queue = park(hub)  # resumed by _start_batch with the next queue to run


def _start_batch(queue: CallbackQueue) -> None:
    hub = gevent.get_hub()
    idle = getattr(hub, _IDLE, None)
    if idle is None:
        idle = []
        setattr(hub, _IDLE, idle)
    if idle:
        hub.loop.run_callback(idle.pop().switch, queue)
    else:
        hub.loop.run_callback(CallbackWorker(hub, idle).switch, [queue])


def release_workers(hub: Any) -> None:
    """Let a hub's parked callback greenlets end; call on the hub's thread before it is
    destroyed (each is dropped there, which kills it in its own thread)."""
    idle = getattr(hub, _IDLE, None)
    if idle:
        idle.clear()


class CallbackQueue:
    """Runs a socket's user callbacks on the loop, later and in FIFO order.

    Callbacks never run inline inside the call that caused them: each batch runs in a
    greenlet of its own (a parked one reused), so a callback may itself call
    ``read``/``write`` (or wait on gevent objects) without breaking the order of the ones
    after it. :meth:`run_batch` is the worker's side of the contract.
    """

    __slots__ = ("_items", "_on_error", "_running")

    def __init__(self, on_error: Callable[[str, BaseException], None]) -> None:
        self._items: deque[tuple[str, Callable[..., Any], tuple[Any, ...]]] = deque()
        self._running = False
        self._on_error = on_error

    @property
    def busy(self) -> bool:
        """Whether callbacks are queued or running."""
        return self._running or bool(self._items)

    def post(self, where: str, fn: Callable[..., Any], *args: Any) -> None:
        """Queue ``fn(*args)``; ``where`` names it in error messages. Call on the loop."""
        self._items.append((where, fn, args))
        if not self._running:
            self._running = True
            _start_batch(self)

    def run_batch(self) -> None:
        """Run the queued callbacks until none is left (a :class:`CallbackWorker` calls it).

        Runs in the worker's greenlet, which :meth:`post` started: a callback that raises
        goes to ``on_error`` and the ones after it still run. Call nowhere else.
        """
        items = self._items
        try:
            while items:
                where, fn, args = items.popleft()
                try:
                    fn(*args)
                except gevent.GreenletExit:
                    raise  # this worker is being killed (the loop stops): not the callback's
                except BaseException as exc:  # pytest.fail() too: never swallowed (DESIGN 2)
                    self._on_error(where, exc)
                if items:
                    gevent.sleep(0)  # let other sockets on the loop run between batches
        finally:
            self._running = False
