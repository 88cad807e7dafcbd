"""Issue 17 item 2: a read that completed leaves no timer armed (a client that reads its reply
and then idles is not cut off with "Read operation timed out"); item 15: ``TestClient.open``
refuses a host that is not a str as ``connect()`` does."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

import pytest_hsocket as hsocket
from pytest_hsocket._loop.hub import get_loop
from pytest_hsocket.testing import TestClient

from .conftest import WAIT, Inbox, Signal, port_of


def _timer_armed(sock: hsocket.Socket) -> bool:
    # Read on the loop, where the stream lives: no race with the reader.
    def probe() -> bool:
        stream = sock._stream
        return stream is not None and stream._timer is not None

    return bool(get_loop().run_sync(probe))


def test_a_completed_read_disarms_its_timer(echo_server: hsocket.Socket, inbox: Inbox) -> None:
    client = hsocket.new(inbox).set_timeout(0.3)
    gone = Signal()
    client.on_disconnect(gone)
    assert client.connect("127.0.0.1", port_of(echo_server)) is client
    client.write(b"hello\n").read(b"\n", 1)
    assert inbox.wait_for(1) == [(b"hello\n", 1)]
    assert not _timer_armed(client)
    # Idle for well over the timeout (a lower bound: a slower machine only waits longer).
    with pytest.raises(AssertionError):
        gone.wait(timeout=1.5)
    assert client.connected()
    client.disconnect()


def test_the_timeout_still_cuts_a_read_that_never_completes(echo_server: hsocket.Socket) -> None:
    client = hsocket.new(lambda d, t: None).set_timeout(0.2)
    gone = Signal()
    client.on_disconnect(gone)
    assert client.connect("127.0.0.1", port_of(echo_server)) is client
    client.read(b"\n", 1)  # the echo server answers nothing: nothing was written
    assert gone.wait() == [("Read operation timed out",)]


@pytest.fixture
def peer() -> Iterator[tuple[socket.socket, int]]:
    listener = socket.create_server(("127.0.0.1", 0))
    yield listener, listener.getsockname()[1]
    listener.close()


class ReadTimers(RuleBasedStateMachine):
    """Reads queued, completed, timed out and cancelled in any order: a timer is armed exactly
    while a read is queued, and a read given up on (a ReadTimeout, a cancelled aexpect) leaves
    nothing queued."""

    def __init__(self) -> None:
        super().__init__()
        listener = socket.create_server(("127.0.0.1", 0))
        self.client = TestClient.open("127.0.0.1", listener.getsockname()[1], wait_timeout=WAIT)
        self.client.set_timeout(60.0)  # never fires: the state is what is checked
        self.peer, _ = listener.accept()
        listener.close()
        self.aloop = asyncio.new_event_loop()  # one loop: a cancelled call's worker stays in it
        self.pending = 0
        self.buffered = 0
        self.completed = 0
        self.taken = 0

    def _catch_up(self) -> None:
        while self.taken < self.completed:
            assert self.client.wait() == b"line\n"
            self.taken += 1

    @rule()
    def read(self) -> None:
        self.client.read(b"\n")
        if self.buffered:
            self.buffered -= 1
            self.completed += 1
        else:
            self.pending += 1
        self._catch_up()

    @rule()
    def send_line(self) -> None:
        self.peer.sendall(b"line\n")
        if self.pending:
            self.pending -= 1
            self.completed += 1
        else:
            self.buffered += 1
        self._catch_up()

    @rule()
    def expect_now(self) -> None:
        if self.pending:
            return  # it would queue behind the reads ahead of it
        if self.buffered:
            assert self.client.expect(b"\n") == b"line\n"
            self.buffered -= 1
            return
        with pytest.raises(hsocket.ReadTimeout):
            self.client.expect(b"\n", timeout=0.01)

    @rule()
    def aexpect_cancelled(self) -> None:
        if self.pending or self.buffered:
            return  # it would complete, or queue behind the reads ahead of it

        async def give_up() -> None:
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(self.client.aexpect(b"\n"), 0.01)

        self.aloop.run_until_complete(give_up())

    @invariant()
    def timer_armed_only_while_a_read_is_queued(self) -> None:
        def probe() -> tuple[int, bool]:
            stream: Any = self.client._stream
            return stream.queue.pending, stream._timer is not None

        queued, armed = get_loop().run_sync(probe)
        # The peer's bytes may still be on the way: a queued read is then still pending.
        assert queued >= self.pending
        assert armed == bool(queued)
        if not self.pending:
            assert queued == 0
            assert not armed

    def teardown(self) -> None:
        self.peer.close()  # first: the client's close() then sees the end of the stream
        self.client.close()
        self.aloop.run_until_complete(self.aloop.shutdown_default_executor())
        self.aloop.close()


TestReadTimers = ReadTimers.TestCase
TestReadTimers.settings = settings(
    max_examples=25,
    stateful_step_count=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@pytest.mark.parametrize("host", [None, 5, ("127.0.0.1",), b"127.0.0.1", 1.5, ["h"]])
def test_open_refuses_a_host_that_is_not_a_str(host: Any, echo_server: hsocket.Socket) -> None:
    with pytest.raises(TypeError, match=r"^connect\(\) host must be a str, not "):
        TestClient.open(host, port_of(echo_server))
    with pytest.raises(TypeError, match=r"^connect\(\) host must be a str, not "):
        TestClient.open(host)
