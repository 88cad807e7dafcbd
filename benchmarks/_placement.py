"""Where the threads of a latency run are placed: left to the scheduler, or pinned.

A request/response round trip between two threads costs very different amounts depending on
whether the scheduler runs them on one CPU (each wake-up is a context switch) or on two (each
wake-up is an inter-processor interrupt, slow on a virtual machine). Linux puts a pair of
threads that wake each other through a socket on one CPU when it can (a socket's wake-up tells
it the waker is about to sleep), and a pair that wakes each other through a lock or an
eventfd, as the test's thread and the socket loop do, on two. Left free, the floor and ours
can thus be measured in different placements. The placements:

- ``free``: as the scheduler decides (what a user gets);
- ``same``: every thread of the process on one CPU;
- ``split``: the main thread (the client side: the test) on one CPU, every other thread (the
  server side: the server thread, the socket loop) on another.

Not a script: ``bench_latency.py`` sets the placement and the variants of ``_latency_peers.py``
apply it once their threads exist (:func:`apply`).
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator

FREE, SAME, SPLIT = "free", "same", "split"
PLACEMENTS = (FREE, SAME, SPLIT)

_current = [FREE]
_original: list[set[int]] = []


def supported() -> bool:
    """Whether threads can be pinned here (Linux, two CPUs or more for ``split``)."""
    return hasattr(os, "sched_setaffinity") and os.path.isdir("/proc/self/task")


def _tasks() -> list[int]:
    try:
        return [int(tid) for tid in os.listdir("/proc/self/task")]
    except OSError:
        return []


def _pin(tid: int, cpus: set[int]) -> None:
    with contextlib.suppress(OSError):  # a thread that just ended
        os.sched_setaffinity(tid, cpus)


def pin_all(cpus: set[int]) -> None:
    """Pin every thread of this process to ``cpus`` (threads started later inherit it)."""
    for tid in _tasks():
        _pin(tid, cpus)


def apply() -> None:
    """Pin every thread of the process as the current placement says (``free``: unpin)."""
    if not supported() or not _original:
        return
    allowed = _original[0]
    first = min(allowed)
    other = min((cpu for cpu in allowed if cpu != first), default=first)
    if _current[0] == SAME:
        pin_all({first})
    elif _current[0] == SPLIT:
        main = threading.main_thread().native_id
        for tid in _tasks():
            _pin(tid, {first} if tid == main else {other})
    else:
        pin_all(allowed)


@contextlib.contextmanager
def placed(placement: str) -> Iterator[None]:
    """Make ``placement`` current for the block (variants :func:`apply` it); unpin after."""
    if placement not in PLACEMENTS:
        raise ValueError(f"placement must be one of {PLACEMENTS}, not {placement!r}")
    if supported() and not _original:
        _original.append(os.sched_getaffinity(0))
    _current[0] = placement
    apply()
    try:
        yield
    finally:
        _current[0] = FREE
        apply()
