"""The socket loop: one background thread that owns a gevent hub.

The code under test is usually plain blocking Python, so all socket work runs on this one
thread. Public methods hand their work over with :meth:`SocketLoop.call` (FIFO, thread-safe);
calls made on the loop thread itself run directly, since queueing work for the loop and waiting
for it from the loop would deadlock.

Importing this module is cheap (no gevent): the pytest plugin imports it in every run, and
gevent loads when the loop starts. A child process forked after the loop started gets a fresh
loop on first use; the sockets it inherited belong to the parent's loop and refuse every call.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import logging
import os
import sys
import threading
from typing import Any, Callable, Optional, TypeVar

import pytest_hsocket._loop.originals as _originals
from pytest_hsocket._core.errors import CallbackError, LoopError

log = logging.getLogger(__name__)

T = TypeVar("T")


# Real OS threads and locks, even in a gevent-monkey-patched process (see _originals).
_start_new_thread = _originals.start_new_thread
_allocate_lock = _originals.allocate_lock
_get_ident = _originals.get_ident

RUN_SYNC_TIMEOUT = 30.0
"""Seconds a caller waits for the loop to answer a synchronous call before giving up."""


class _Result:
    __slots__ = ("done", "error", "value")

    def __init__(self) -> None:
        self.value: Any = None
        self.error: Optional[BaseException] = None
        self.done = _allocate_lock()
        self.done.acquire()


class SocketLoop:
    """A gevent hub running in a daemon OS thread, started on first use.

    Attributes:
        thread_id: The OS thread id of the loop, once started.
    """

    def __init__(self, error_sinks: Optional[list[Callable[[CallbackError], None]]] = None) -> None:
        self.thread_id: Optional[int] = None
        self._hub: Any = None
        self._keepalive: Any = None
        self._lock = _allocate_lock()
        self._stopped = _allocate_lock()
        self._error_sinks: list[Callable[[CallbackError], None]] = (
            [] if error_sinks is None else error_sinks
        )
        self._forked_from: Optional[int] = None  # the parent's pid, in a forked child

    def _refuse_if_forked(self) -> None:
        if self._forked_from is not None:
            raise LoopError(
                f"this socket belongs to the socket loop of process {self._forked_from}, "
                f"which forked this one ({os.getpid()}): sockets made before os.fork() cannot "
                "be used in the child; make new ones there"
            )

    def orphan(self) -> SocketLoop:
        """In a child process forked after the loop started: leave this loop to the parent
        (every later call on it raises :class:`LoopError`) and return a fresh one for the
        child, started on first use, that reports to the same error sinks."""
        self._forked_from = os.getppid()
        self._hub = None
        self._keepalive = None
        self.thread_id = None
        return SocketLoop(self._error_sinks)

    @property
    def running(self) -> bool:
        """Whether the loop thread is up."""
        return self._hub is not None

    def on_thread(self) -> bool:
        """Return whether the caller runs on the loop's thread."""
        return _get_ident() == self.thread_id

    def start(self) -> None:
        """Start the loop thread if it is not running; returns once it accepts calls.

        Raises:
            LoopError: If the thread did not come up within ``RUN_SYNC_TIMEOUT``.
        """
        self._refuse_if_forked()
        with self._lock:
            if self._hub is not None:
                return
            # Loaded here, where an ImportError reaches the caller rather than the thread.
            importlib.import_module("gevent")
            ready = _allocate_lock()
            ready.acquire()
            self._stopped = _allocate_lock()
            self._stopped.acquire()
            _start_new_thread(self._run, (ready, _thread_hooks()))
            if not ready.acquire(timeout=RUN_SYNC_TIMEOUT):
                raise LoopError("the socket loop thread did not start")

    def _run(self, ready: Any, hooks: tuple[Any, Any]) -> None:
        # As threading.Thread does: coverage.py (threading.settrace) and profilers see the
        # callbacks and rule functions that run here.
        trace, profile = hooks
        if trace is not None:
            sys.settrace(trace)
        if profile is not None:
            sys.setprofile(profile)
        import gevent

        from pytest_hsocket._loop.callbacks import release_workers

        try:
            hub = gevent.get_hub()
            # A hub with no active watcher exits at once: keep one referenced for the lifetime.
            keepalive = hub.loop.async_()
            keepalive.start(lambda: None)
            self._keepalive = keepalive
            self.thread_id = _get_ident()
            self._hub = hub
            ready.release()
            while self._keepalive is not None:
                hub.join()
        except BaseException:  # pragma: no cover - only on interpreter teardown
            log.exception("the socket loop stopped on an error")
        finally:
            self._hub = None
            self.thread_id = None
            with contextlib.suppress(Exception):
                hub = gevent.get_hub()
                release_workers(hub)
                hub.destroy(destroy_loop=True)
            self._stopped.release()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the loop thread; idempotent and safe when it is already gone."""
        hub = self._hub
        if hub is None:
            return
        if self.on_thread():
            raise LoopError("stop() cannot be called from the socket loop itself")

        def _shutdown() -> None:
            keepalive, self._keepalive = self._keepalive, None
            if keepalive is not None:
                keepalive.stop()
                keepalive.close()
            # Whatever greenlets are left (sockets the user never closed) must not keep the
            # hub alive at exit.
            hub.loop.break_()

        try:
            hub.loop.run_callback_threadsafe(_shutdown)
        except Exception:  # pragma: no cover - hub already torn down
            return
        self._stopped.acquire(timeout=timeout)

    def call(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` on the loop: directly if on the loop, else queued (FIFO).

        ``fn`` runs in the hub and must not block; spawn a greenlet for work that waits.
        """
        if _get_ident() == self.thread_id:
            fn(*args)
            return
        hub = self._hub
        if hub is None:
            self.start()  # refuses in a forked child
            hub = self._hub
        hub.loop.run_callback_threadsafe(self._guarded, fn, args)

    @staticmethod
    def _guarded(fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        try:
            fn(*args)
        except Exception:
            log.exception("internal error on the socket loop in %r", fn)

    def run_sync(
        self, fn: Callable[[], T], timeout: float = RUN_SYNC_TIMEOUT, *, late: bool = False
    ) -> T:
        """Run ``fn()`` on the loop and return its result (or raise its exception).

        The one way to run work on the loop and wait for it; :meth:`run_in_greenlet` is its
        variant for work that waits. ``fn`` runs in the hub and must not block. On the loop's
        own thread it runs at once.

        Args:
            fn: What to run.
            timeout: The longest to wait for the loop, in seconds.
            late: Run ``fn`` one turn later: after the callbacks that the callbacks queued
                before it queue in turn (a client closed with ``close(wait=False)`` closes its
                OS socket in one of those, and a server should read that EOF first).
        Raises:
            LoopError: If the loop did not answer within ``timeout`` seconds.
        """
        if _get_ident() == self.thread_id:
            return fn()
        if late:
            return self._run_and_wait(fn, timeout, lambda job: self._hub.loop.run_callback(job))
        return self._run_and_wait(fn, timeout, lambda job: job())

    def run_in_greenlet(self, fn: Callable[[], object], timeout: float = RUN_SYNC_TIMEOUT) -> None:
        """Run ``fn()`` in a fresh greenlet on the loop, and wait for it unless on the loop.

        For work that waits (it kills greenlets, say), which cannot run as a plain callback;
        on the loop's own thread waiting would deadlock, so there it is only started.

        Raises:
            LoopError: If ``fn`` did not finish within ``timeout`` seconds.
            BaseException: Whatever ``fn`` raised.
        """
        import gevent  # the loop layer's own dependency; imported late as the hub is

        if _get_ident() == self.thread_id:
            gevent.spawn(fn)
            return
        self._run_and_wait(fn, timeout, gevent.spawn)

    def _run_and_wait(
        self, fn: Callable[[], T], timeout: float, schedule: Callable[[Callable[[], None]], object]
    ) -> T:
        # From another thread: queue schedule(job) on the loop (FIFO with call()), where job
        # runs fn and opens the lock this thread waits on.
        if self._hub is None:
            self.start()
        result = _Result()

        def _job() -> None:
            try:
                result.value = fn()
            except BaseException as exc:
                result.error = exc
            finally:
                result.done.release()

        self._hub.loop.run_callback_threadsafe(schedule, _job)
        if not result.done.acquire(timeout=timeout):
            raise LoopError(f"the socket loop did not answer within {timeout} s")
        if result.error is not None:
            raise result.error
        return result.value  # type: ignore[no-any-return]

    def add_error_sink(self, sink: Callable[[CallbackError], None]) -> None:
        """Register ``sink(error)``, called (on the loop) for callback errors from now on.

        Sinks nest: only the one registered last is told, as a test run inside a test run
        (pytester) must not fail the outer test.
        """
        self._error_sinks.append(sink)

    def remove_error_sink(self, sink: Callable[[CallbackError], None]) -> None:
        """Unregister a sink added with :meth:`add_error_sink`; a missing one is ignored."""
        if sink in self._error_sinks:
            self._error_sinks.remove(sink)

    def callback_failed(
        self, logger: logging.Logger, where: str, exc: BaseException, *keep: list[CallbackError]
    ) -> None:
        """Log a user callback's exception with its traceback, keep it in each ``keep`` list
        (the socket's ``callback_errors``) and hand it to the innermost sink."""
        logger.error("%s: %s", where, exc, exc_info=exc)
        error = CallbackError(where, exc)
        for errors in keep:
            errors.append(error)
        self.report_callback_error(error)

    def report_callback_error(self, error: CallbackError) -> None:
        """Hand a callback error to the sink registered last (the innermost test run)."""
        if self._error_sinks:
            try:
                self._error_sinks[-1](error)
            except Exception:  # pragma: no cover
                log.exception("error sink %r raised", self._error_sinks[-1])


def _thread_hooks() -> tuple[Any, Any]:
    # threading.gettrace/getprofile are 3.10+; before, the same values are module globals.
    trace = getattr(threading, "gettrace", lambda: getattr(threading, "_trace_hook", None))()
    profile = getattr(threading, "getprofile", lambda: getattr(threading, "_profile_hook", None))()
    return trace, profile


_LOOP = SocketLoop()


def get_loop() -> SocketLoop:
    """Return the process's socket loop, starting it if needed."""
    loop = _LOOP
    if not loop.running:
        loop.start()
    return loop


def peek_loop() -> SocketLoop:
    """Return the process's socket loop without starting it (for error sinks)."""
    return _LOOP


def _after_fork_in_child() -> None:
    # The parent's loop thread does not exist here; its hub and sockets are the parent's.
    global _LOOP
    if _LOOP.running:
        _LOOP = _LOOP.orphan()


if hasattr(os, "register_at_fork"):  # not on Windows
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _stop_at_exit() -> None:
    # Never let interpreter exit print a traceback.
    with contextlib.suppress(Exception):
        _LOOP.stop()


atexit.register(_stop_at_exit)
