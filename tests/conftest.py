"""Shared helpers for the I/O tests: wait on events, never sleep."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from typing import Any

import pytest

import pytest_hsocket as hsocket

pytest_plugins = ["pytester"]

WAIT = 5.0


class Inbox:
    """A read callback that records ``(data, tag[, client])`` and lets a test wait for it."""

    def __init__(self) -> None:
        self.items: list[tuple[bytes, int]] = []
        self.clients: list[Any] = []
        self._cond = threading.Condition()

    def __call__(self, data: bytes, tag: int, client: Any = None) -> None:
        with self._cond:
            self.items.append((data, tag))
            self.clients.append(client)
            self._cond.notify_all()

    def wait_for(self, count: int, timeout: float = WAIT) -> list[tuple[bytes, int]]:
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.items) >= count, timeout):
                raise AssertionError(f"expected {count} reads within {timeout}s, got {self.items}")
            return list(self.items)


class Signal:
    """Counts calls (from any thread) and records their arguments."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self._cond = threading.Condition()

    def __call__(self, *args: Any) -> None:
        with self._cond:
            self.calls.append(args)
            self._cond.notify_all()

    def wait(self, count: int = 1, timeout: float = WAIT) -> list[tuple[Any, ...]]:
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.calls) >= count, timeout):
                raise AssertionError(f"expected {count} calls within {timeout}s, got {self.calls}")
            return list(self.calls)


@pytest.fixture
def inbox() -> Inbox:
    return Inbox()


@pytest.fixture
def echo_server() -> Iterator[hsocket.Socket]:
    """A server that echoes every line back to the client it came from."""

    def echo(data: bytes, tag: int, client: hsocket.Socket) -> None:
        client.write(data)
        client.read(b"\n", tag)

    server = hsocket.server(0, echo)
    server.on_connect(lambda client: client.read(b"\n", 0))
    yield server
    server.disconnect()
    server.check()


def port_of(server: hsocket.Socket) -> int:
    port = server.info()["localPort"]
    assert isinstance(port, int)
    return port


# -- leak check over the whole session -------------------------------------------------------

_BASELINE: dict[str, int] = {}


def _rerun_status_servers() -> int:
    # pytest-rerunfailures starts a status server (a thread and its listening socket) in every
    # pytest session where xdist is installed, and never stops it: each in-process pytester
    # run leaves one behind. Not ours to count.
    return sum(
        1
        for t in threading.enumerate()
        if type(getattr(getattr(t, "_target", None), "__self__", None)).__name__ == "ServerStatusDB"
    )


def _open_fds() -> int:
    try:
        return len(os.listdir("/proc/self/fd")) - _rerun_status_servers()
    except OSError:  # pragma: no cover - no /proc
        return -1


def _live_greenlets() -> int:
    import gc

    import greenlet
    from gevent.hub import Hub
    from gevent.threadpool import _WorkerGreenlet as PoolWorker

    from pytest_hsocket._loop.callbacks import CallbackWorker

    return sum(
        1
        for o in gc.get_objects()
        if isinstance(o, greenlet.greenlet)
        # the resolver's pool, and parked callback greenlets: both kept for reuse
        and not isinstance(o, (Hub, PoolWorker, CallbackWorker))
        and not o.dead
        and o.parent is not None  # a thread's own root greenlet is not a leak
    )


def _user_threads() -> int:
    # trio keeps idle worker threads for a few seconds after to_thread: not ours to count.
    return (
        sum(
            1
            for t in threading.enumerate()
            if not isinstance(t, threading._DummyThread) and not t.name.startswith("Trio thread")
        )
        - _rerun_status_servers()
    )


def pytest_sessionstart(session: pytest.Session) -> None:
    import gc

    from pytest_hsocket._loop.hub import get_loop

    get_loop()  # its own descriptors are not a leak
    gc.collect()
    _BASELINE.update(fds=_open_fds(), threads=_user_threads(), greenlets=_live_greenlets())


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    import gc

    if not _BASELINE or hasattr(session.config, "workerinput"):
        return
    gc.collect()
    now = {"fds": _open_fds(), "threads": _user_threads(), "greenlets": _live_greenlets()}
    report = ", ".join(f"{k} {_BASELINE[k]} -> {now[k]}" for k in now)
    leaked = [k for k in now if now[k] > _BASELINE[k]]
    session.config.hsock_leak_report = report  # type: ignore[attr-defined]
    if leaked and exitstatus == 0 and session.testscollected > 20:
        session.exitstatus = 1
        print(f"\nhsocket leak check FAILED: {report}")


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    report = getattr(config, "hsock_leak_report", None)
    if report:
        terminalreporter.write_line(f"hsocket leak check: {report}")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Tests of Unix domain sockets cannot run where this Python has no AF_UNIX (some Windows
    # builds): they skip with the reason instead of failing on socket.AF_UNIX.
    from pytest_hsocket._core import platform as _platform

    if _platform.has_unix_sockets():
        return
    skip = pytest.mark.skip(reason=_platform.unix_sockets_missing())
    for item in items:
        if "unix" in item.name.lower():
            item.add_marker(skip)
