"""Shared helpers for the I/O tests: wait on events, never sleep."""

from __future__ import annotations

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
