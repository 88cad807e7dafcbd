"""Cross-thread waiting built on real OS locks (never gevent's, even when monkey-patched)."""

from __future__ import annotations

from typing import Any, Optional

from pytest_hsocket._loop.originals import allocate_lock


class Gate:
    """A one-shot event: ``open()`` once from any thread, ``wait()`` from others."""

    __slots__ = ("_lock", "_open")

    def __init__(self) -> None:
        self._lock: Any = allocate_lock()
        self._lock.acquire()
        self._open = False

    def open(self) -> None:
        """Let every waiter through; later calls do nothing."""
        if not self._open:
            self._open = True
            self._lock.release()

    @property
    def is_open(self) -> bool:
        """Whether ``open()`` was called."""
        return self._open

    def wait(self, timeout: Optional[float]) -> bool:
        """Wait until open or ``timeout`` seconds pass (``None`` = forever); return if open."""
        if self._open:
            return True
        got = self._lock.acquire(timeout=-1 if timeout is None else max(timeout, 0.0))
        if got:
            self._lock.release()
        return bool(got)
