"""Async tests drive the helpers without blocking their loop; received() and assert_received()."""

from __future__ import annotations

import asyncio
import socket

import pytest

from pytest_hsocket.testing import MockServer, TestClient

from .conftest import WAIT


def test_aexpect_under_asyncio_keeps_the_loop_running() -> None:
    with MockServer.start() as server:
        server.expect(b"PING\r\n").respond(b"+PONG\r\n")
        with TestClient.open(*server.address) as client:
            ticks = 0

            async def ticker() -> None:
                # The request is sent from another task, after the await began: the reply
                # can only come if the event loop kept running while it was awaited.
                nonlocal ticks
                while True:
                    ticks += 1
                    if ticks == 3:
                        client.write(b"PING\r\n")
                    await asyncio.sleep(0)

            async def main() -> bytes:
                task = asyncio.ensure_future(ticker())
                reply = await client.aexpect(b"\r\n", tag=3)
                task.cancel()
                return reply

            reply = asyncio.run(main())
            assert reply == b"+PONG\r\n"
            assert reply.tag == 3
            assert ticks >= 3  # the loop ran while the reply was awaited


def test_async_wait_under_trio() -> None:
    trio = pytest.importorskip("trio")
    with MockServer.start() as server:
        server.greet(b"hello\n")
        with TestClient.open(*server.address) as client:
            client.read(b"\n", 9)

            async def main() -> bytes:
                return await client.async_wait(tag=9)

            assert trio.run(main) == b"hello\n"


def test_aexpect_under_anyio() -> None:
    anyio = pytest.importorskip("anyio")
    with MockServer.start() as server:
        server.expect(b"x").respond(b"y")
        with TestClient.open(*server.address) as client:
            client.write(b"x")

            async def main() -> bytes:
                return await client.aexpect(1)

            assert anyio.run(main) == b"y"


def test_received_and_assert_received() -> None:
    with MockServer.start() as server:
        server.expect(b"HELLO\r\n").respond(b"hi\r\n")
        server.expect(b"\x00\x01").respond(b"ok")
        with TestClient.open(*server.address) as client:
            client.write(b"HELLO\r\n")
            client.expect(b"\r\n")
            client.write(b"\x00\x01")
            client.expect(2)
        assert server.received(1) == b"HELLO\r\n\x00\x01"
        assert server.received() == b"HELLO\r\n\x00\x01"
        server.assert_received(b"HELLO\r\n\x00\x01")
        with pytest.raises(
            AssertionError, match="first difference at byte 8: expected 0x02, received 0x01"
        ):
            server.assert_received(b"HELLO\r\n\x00\x02")
        with pytest.raises(ValueError, match="received\\(\\) connection must be 1-1, not 2"):
            server.received(2)


def test_a_client_to_an_ip_address_is_usable_at_once(hsock_server: MockServer) -> None:
    # Connected from the test's thread; the loop takes the socket over after open() returns.
    hsock_server.expect(b"hi\n").respond(b"yo\n")
    client = TestClient.open(*hsock_server.address, wait_timeout=WAIT)
    assert client.connected()
    client.write(b"hi\n")
    assert client.expect(b"\n") == b"yo\n"
    client.disconnect()
    assert not client.connected()
    assert "connected" in client.transcript.render()


def test_clients_closed_before_the_loop_takes_them_over(hsock_server: MockServer) -> None:
    clients = [TestClient.open(*hsock_server.address, wait_timeout=WAIT) for _ in range(20)]
    for client in clients:
        client.disconnect()  # most before the loop got to them: no socket may leak
    assert not any(client.connected() for client in clients)


def test_a_client_whose_connect_hangs_times_out() -> None:
    # A listener with a full backlog (listen(0), one connection waiting) ignores the next SYN:
    # that connect is still in progress when open() gives up, which must not count as made.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    waiting = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
    try:
        with pytest.raises(ConnectionError, match=r"within 0\.3 s"):
            TestClient.open("127.0.0.1", port, wait_timeout=0.3)
    finally:
        waiting.close()
        listener.close()


def test_expect_the_inbox_and_a_callback_share_one_order(hsock_server: MockServer) -> None:
    # Tickets and the inbox are filled in the loop's turn, a user callback later in a
    # greenlet: the three must still get the lines in the order their reads were queued.
    hsock_server.expect(b"go\n").respond(b"one\ntwo\nthree\nfour\n")
    client = TestClient.open(*hsock_server.address, wait_timeout=WAIT)
    got: list[tuple[bytes, int]] = []
    client.write(b"go\n")
    assert client.expect(b"\n", tag=1) == b"one\n"
    client.read(b"\n", 2)  # to the inbox (no callback set when it completes)
    assert client.wait(tag=2) == b"two\n"
    client.set_callback(lambda data, tag: got.append((bytes(data), tag)))
    client.read(b"\n", 3)  # to the callback
    fourth = client.expect(b"\n", tag=4)
    assert (fourth, fourth.tag) == (b"four\n", 4)
    client.disconnect()
    assert got == [(b"three\n", 3)]


def test_expect_logs_each_read_at_debug(
    hsock_server: MockServer, caplog: pytest.LogCaptureFixture
) -> None:
    hsock_server.expect(b"hi\n").respond(b"yo\n")
    client = TestClient.open(*hsock_server.address, wait_timeout=WAIT)
    with caplog.at_level("DEBUG", logger="pytest_hsocket"):
        client.write(b"hi\n")
        assert client.expect(b"\n") == b"yo\n"
    client.disconnect()
    assert "Data read from TCP socket" in caplog.messages
