"""The callback queue: FIFO order per socket, batches in reused (parked) greenlets."""

from __future__ import annotations

import contextvars
import threading
from typing import Any

import gevent
import gevent.event
import greenlet

from pytest_hsocket._loop.callbacks import _IDLE, MAX_IDLE_WORKERS, CallbackQueue, CallbackWorker
from pytest_hsocket._loop.hub import get_loop

from .conftest import WAIT


def _on_loop(fn: Any) -> Any:
    return get_loop().run_sync(fn)


def _errors() -> list[tuple[str, BaseException]]:
    return []


def test_batches_run_in_order_in_a_reused_worker() -> None:
    errors = _errors()
    queue = CallbackQueue(lambda where, exc: errors.append((where, exc)))
    seen: list[tuple[int, Any]] = []
    done = threading.Event()

    def record(n: int) -> None:
        seen.append((n, greenlet.getcurrent()))
        if n == 5:
            done.set()

    def first_batch() -> None:
        for n in range(3):
            queue.post("test", record, n)

    _on_loop(first_batch)
    # The second batch is posted from a callback of the loop's next turn, after the first ended.
    _on_loop(lambda: queue.post("test", lambda: [queue.post("test", record, n) for n in (3, 4, 5)]))
    assert done.wait(WAIT)
    assert [n for n, _ in seen] == [0, 1, 2, 3, 4, 5]
    workers = {id(g) for _, g in seen}
    assert all(isinstance(g, CallbackWorker) for _, g in seen)
    assert len(workers) == 1, "the second batch ran in a new greenlet, not the parked one"
    assert not errors
    assert not queue.busy


def test_a_waiting_callback_holds_its_queue_not_the_others() -> None:
    errors = _errors()
    first = CallbackQueue(lambda where, exc: errors.append((where, exc)))
    second = CallbackQueue(lambda where, exc: errors.append((where, exc)))
    order: list[str] = []
    release = gevent.event.Event()
    done = threading.Event()

    def wait_then_go() -> None:
        order.append("first waits")
        release.wait(WAIT)
        order.append("first resumes")

    def start() -> None:
        first.post("test", wait_then_go)
        first.post("test", lambda: (order.append("first's next"), done.set()))
        second.post("test", lambda: (order.append("second runs"), release.set()))

    _on_loop(start)
    assert done.wait(WAIT)
    assert order == ["first waits", "second runs", "first resumes", "first's next"]
    assert not errors


def test_a_failing_callback_is_reported_and_the_worker_goes_on() -> None:
    errors = _errors()
    queue = CallbackQueue(lambda where, exc: errors.append((where, exc)))
    done = threading.Event()

    def boom() -> None:
        raise ValueError("boom")

    def start() -> None:
        queue.post("the failing one", boom)
        queue.post("test", done.set)

    _on_loop(start)
    assert done.wait(WAIT)
    assert [(where, str(exc)) for where, exc in errors] == [("the failing one", "boom")]


def test_no_more_than_the_limit_of_workers_stay_parked() -> None:
    count = MAX_IDLE_WORKERS + 8
    queues = [CallbackQueue(lambda where, exc: None) for _ in range(count)]
    release = gevent.event.Event()
    finished: list[int] = []
    done = threading.Event()
    workers: set[int] = set()

    def hold(n: int) -> None:
        workers.add(id(greenlet.getcurrent()))
        release.wait(WAIT)
        finished.append(n)
        if len(finished) == count:
            done.set()

    def start() -> None:
        for n, queue in enumerate(queues):
            queue.post("test", hold, n)
        # Another queue's batch, started after theirs: every hold() is waiting by then.
        CallbackQueue(lambda where, exc: None).post("test", release.set)

    _on_loop(start)
    assert done.wait(WAIT)
    assert len(workers) == count  # one greenlet each while they wait
    parked = _on_loop(lambda: len(getattr(gevent.get_hub(), _IDLE)))
    assert parked <= MAX_IDLE_WORKERS


def test_a_batch_starts_in_an_empty_context_even_in_a_reused_worker() -> None:
    var: contextvars.ContextVar[str] = contextvars.ContextVar("hsock_test", default="unset")
    seen: list[tuple[str, int]] = []
    done = threading.Event()

    first_done = threading.Event()

    def first() -> None:
        var.set("set by the first socket's callback")
        seen.append((var.get(), id(greenlet.getcurrent())))
        first_done.set()  # its worker parks as this returns, before the loop runs anything else

    def second() -> None:
        seen.append((var.get(), id(greenlet.getcurrent())))
        done.set()

    _on_loop(lambda: CallbackQueue(lambda where, exc: None).post("test", first))
    assert first_done.wait(WAIT)
    _on_loop(lambda: CallbackQueue(lambda where, exc: None).post("test", second))
    assert done.wait(WAIT)
    assert seen[0][0] == "set by the first socket's callback"
    assert seen[1][0] == "unset"
    assert seen[0][1] == seen[1][1], "the second batch did not reuse the parked worker"
