"""Reads a server hands to its callback in the loop's turn that read them (no greenlet): the
same data in the same order as the ordinary way, and a plain mock script played that way."""

from __future__ import annotations

import socket
import threading
from typing import Callable

import greenlet
import pytest

import pytest_hsocket as hsocket
from pytest_hsocket._core.rules import Action, Rule
from pytest_hsocket._hs.read_delivery import INLINE_LIMIT
from pytest_hsocket._loop.callbacks import CallbackWorker
from pytest_hsocket._loop.hub import get_loop
from pytest_hsocket.testing import MockServer, TestClient

from .conftest import WAIT, port_of

FRAMES = [b"%04d" % i for i in range(INLINE_LIMIT * 5)]


class InlineServer(hsocket.Socket):
    """A server whose connections' reads go inline, as a plain mock server's do."""

    def _reads_inline(self, client: object) -> bool:
        return True


def test_a_burst_is_delivered_in_order_and_handed_over_past_the_limit() -> None:
    got: list[bytes] = []
    where: list[str] = []
    done = threading.Event()

    def on_frame(data: bytes, tag: int, client: hsocket.Socket) -> None:
        got.append(bytes(data))
        current = greenlet.getcurrent()
        where.append("worker" if isinstance(current, CallbackWorker) else "hub")
        if len(got) == len(FRAMES):
            done.set()
        else:
            client.read(4, tag)  # completes at once from the buffer: joins the batch

    server = InlineServer(on_frame)
    server.on_connect(lambda client: client.read(4, 1))
    assert server.listen(0) is not None
    try:
        with socket.create_connection(("127.0.0.1", port_of(server)), timeout=WAIT) as peer:
            peer.sendall(b"".join(FRAMES))
            assert done.wait(WAIT), f"{len(got)} of {len(FRAMES)} frames arrived"
    finally:
        server.disconnect()
    assert got == FRAMES
    # A batch in the hub stops at the limit; the rest goes to a callback greenlet, in order.
    assert "hub" in where
    assert "worker" in where
    assert where.index("worker") <= INLINE_LIMIT
    server.check()


def test_a_failing_inline_callback_is_reported_like_any_callback() -> None:
    fired = threading.Event()

    def boom(data: bytes, tag: int, client: hsocket.Socket) -> None:
        fired.set()
        raise ValueError("boom")

    server = InlineServer(boom)
    server.on_connect(lambda client: client.read(b"\n", 1))
    assert server.listen(0) is not None
    try:
        with socket.create_connection(("127.0.0.1", port_of(server)), timeout=WAIT) as peer:
            peer.sendall(b"x\n")
            assert fired.wait(WAIT)
            get_loop().run_sync(lambda: None)  # the error is kept before the loop goes on
    finally:
        server.disconnect()
    assert [str(e.__cause__) for e in server.callback_errors] == ["boom"]
    with pytest.raises(hsocket.CallbackError):
        server.check()


@pytest.mark.parametrize(
    ("step", "plain"),
    [
        pytest.param(lambda rule: rule.respond(b"+PONG\r\n"), True, id="bytes"),
        pytest.param(lambda rule: rule.respond(lambda m: b"+PONG\r\n"), False, id="function"),
        pytest.param(lambda rule: rule.delay(0).respond(b"+PONG\r\n"), False, id="delay"),
    ],
)
def test_a_mock_script_answers_the_same_whichever_way_it_is_played(
    step: Callable[[Rule], object], plain: bool
) -> None:
    server = MockServer.start(wait_timeout=WAIT)
    rule = server.expect(b"PING\r\n", times=None)
    step(rule)
    assert rule.plain is plain
    client = TestClient.open(*server.address, wait_timeout=WAIT)
    try:
        client.write(b"PING\r\n" * 3)
        for _ in range(3):
            assert client.expect(b"\r\n") == b"+PONG\r\n"
        client.write(b"PING\r\n")
        assert client.expect(b"\r\n") == b"+PONG\r\n"
    finally:
        client.disconnect()
        server.close()
    server.check()
    transcript = server.transcripts[0]
    assert transcript.received() == b"PING\r\n" * 4
    assert transcript.sent() == b"+PONG\r\n" * 4
    kinds = [entry.kind for entry in transcript.entries]
    assert kinds[:1] == ["connected"]
    assert kinds.count("matched") == 4


def test_rule_plain_follows_its_steps() -> None:
    server = MockServer(name="plain")
    assert server.expect(b"a").respond(b"x").close().plain
    assert server.expect(b"b").truncate(b"xyz", 1).plain
    assert not server.expect(b"c").respond(lambda m: m).plain
    assert not server.expect(b"d").delay(0.1).plain
    assert not server.expect(b"e").dribble(b"xy").plain
    assert not server.expect(b"f").start_tls().plain


def test_a_wait_that_reaches_the_loop_turn_goes_to_a_greenlet() -> None:
    # A rule can gain a delay between the moment its script was found plain and the match:
    # the actions from the delay on must then run in a greenlet, not block (or break) the hub.
    server = MockServer.start(wait_timeout=WAIT)
    server.expect(b"hello\n")
    client = TestClient.open(*server.address, wait_timeout=WAIT)
    try:
        client.write(b"hello\n")
        server.settle()  # the connection is known to the server now
        conn = server._player.connections[0]
        actions = [Action("delay", seconds=0.0), Action("send", b"late\n")]
        get_loop().run_sync(lambda: server._player.perform(conn, actions))  # runs in the hub
        assert client.expect(b"\n") == b"late\n"
    finally:
        client.disconnect()
        server.close()
    assert not server.callback_errors
