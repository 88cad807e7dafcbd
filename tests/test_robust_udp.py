"""UDP: each sender of ``hsock_udp_server`` plays its script on its own (issue 17, item 9), and
the hs.socket.udp calls the original's own tests make (item 13).

Order is asserted with events and ``select``, never with a timing window.
"""

from __future__ import annotations

import select
import socket
import threading
from collections.abc import Iterator

import pytest

from pytest_hsocket import udp
from pytest_hsocket._core.address import parse_address
from pytest_hsocket.testing import UdpMockServer

from .conftest import WAIT


@pytest.fixture
def senders() -> Iterator[tuple[socket.socket, socket.socket]]:
    a, b = (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM),
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM),
    )
    for sock in a, b:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(WAIT)
    yield a, b
    a.close()
    b.close()


def test_one_senders_delay_does_not_hold_back_another_senders_answer(
    hsock_udp_server: UdpMockServer, senders: tuple[socket.socket, socket.socket]
) -> None:
    a, b = senders
    # The first answer is resolved when the datagram is matched: A's "ack" proves A's delay
    # has begun before B sends anything.
    hsock_udp_server.expect(b"slow", times=None, ordered=False).respond(b"ack").delay(1.0).respond(
        b"late"
    )
    hsock_udp_server.expect(b"fast", times=None, ordered=False).respond(b"quick")
    a.sendto(b"slow", hsock_udp_server.address)
    assert a.recv(100) == b"ack"
    b.sendto(b"fast", hsock_udp_server.address)
    readable, _, _ = select.select([a, b], [], [], WAIT)
    # B's answer comes while A's is still waiting on its delay (before the fix, B's waited
    # behind A's delay and came after A's "late").
    assert readable == [b]
    assert b.recv(100) == b"quick"
    assert a.recv(100) == b"late"  # A's script still plays whole, in its order


def test_a_senders_answers_keep_their_order_behind_its_own_delay(
    hsock_udp_server: UdpMockServer, senders: tuple[socket.socket, socket.socket]
) -> None:
    a, _ = senders
    hsock_udp_server.expect(b"one").delay(0.05).respond(b"1")
    hsock_udp_server.expect(b"two").respond(b"2")  # no delay, but queued behind "1"
    a.sendto(b"one", hsock_udp_server.address)
    a.sendto(b"two", hsock_udp_server.address)
    assert [a.recv(100), a.recv(100)] == [b"1", b"2"]


def test_close_waits_for_delayed_answers_then_the_transcript_has_them() -> None:
    server = UdpMockServer.start(wait_timeout=WAIT)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        client.settimeout(WAIT)
        server.expect(b"q").respond(b"now").delay(0.05).respond(b"later")
        client.sendto(b"q", server.address)
        assert client.recv(100) == b"now"
        server.close()  # settles: the delayed answer is sent before the socket goes
        assert client.recv(100) == b"later"
    server.check()
    assert server.transcripts[0].sent() == b"nowlater"


def test_close_past_the_wait_stops_a_long_delay_cleanly() -> None:
    server = UdpMockServer.start(wait_timeout=0.05)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        client.settimeout(WAIT)
        server.expect(b"q").respond(b"now").delay(3600).respond(b"never")
        client.sendto(b"q", server.address)
        assert client.recv(100) == b"now"
        server.close()
        assert server.closed()
    assert server.transcripts[0].sent() == b"now"


@pytest.mark.parametrize("slow", [1, 4])
def test_any_number_of_delayed_senders_never_hold_back_a_quick_one(slow: int) -> None:
    # The class: however many senders wait on a delay, a sender whose rule does not wait is
    # answered first, and each delayed sender then gets its own answers, in its order.
    server = UdpMockServer.start(wait_timeout=WAIT)
    server.expect(b"slow", times=None, ordered=False).respond(lambda m: b"ack").delay(1.0).respond(
        b"late"
    )
    server.expect(b"fast", times=None, ordered=False).respond(b"quick")
    clients = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(slow + 1)]
    try:
        for client in clients:
            client.bind(("127.0.0.1", 0))
            client.settimeout(WAIT)
        *waiting, quick = clients
        for client in waiting:
            client.sendto(b"slow", server.address)
            assert client.recv(100) == b"ack"
        quick.sendto(b"fast", server.address)
        readable, _, _ = select.select(clients, [], [], WAIT)
        assert readable == [quick]
        assert quick.recv(100) == b"quick"
        assert [client.recv(100) for client in waiting] == [b"late"] * slow
    finally:
        server.close()
        for client in clients:
            client.close()
    server.check()


# -- item 13: what the original's own test suite does ------------------------------------------


@pytest.mark.parametrize(
    ("disabled", "host", "family"),
    [
        pytest.param(4, "::1", socket.AF_INET6, id="ipv4-disabled-binds-::1"),
        pytest.param(6, "127.0.0.1", socket.AF_INET, id="ipv6-disabled-binds-127.0.0.1"),
        pytest.param(None, "127.0.0.1", socket.AF_INET, id="both-bind-127.0.0.1"),
    ],
)
def test_listen_binds_the_loopback_of_an_enabled_version(
    disabled: int, host: str, family: int
) -> None:
    got: list[tuple[bytes, bytes]] = []
    arrived = threading.Event()

    def on_datagram(data: bytes, sockaddr: bytes) -> None:
        got.append((data, sockaddr))
        arrived.set()

    sock = udp.new(on_datagram)
    try:
        if disabled is not None:
            sock.enable_ipv(disabled, False)
        assert sock.listen(0) is sock  # before the fix: None, "no usable address for ..."
        info = sock.info()
        assert info["localHost"] == host
        sock.receive()
        with socket.socket(family, socket.SOCK_DGRAM) as raw:
            raw.sendto(b"hello", (host, info["localPort"]))
            assert arrived.wait(WAIT)
        data, sockaddr = got[0]
        assert data == b"hello"
        sender = parse_address(sockaddr)
        assert sender is not None
        assert sender["host"] == host
    finally:
        sock.close()


def test_listen_with_both_versions_disabled_is_refused_with_a_reason(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The twin: no version left, no address to bind.
    with udp.new() as sock:
        sock.enable_ipv(4, False)
        sock.enable_ipv(6, False)
        assert sock.listen(0) is None
    assert any("no usable address" in m for m in caplog.messages)


def test_buffer_size_zero_delivers_nothing_as_the_original() -> None:
    got: list[bytes] = []
    server = UdpMockServer.start(wait_timeout=WAIT)
    try:
        server.set_callback(lambda data, sockaddr: got.append(data))
        server.set_buffer_size(0)  # before the fix: ValueError
        assert server.info()["maxReceiveIPv4BufferSize"] == 0
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as raw:
            raw.sendto(b"swallowed", server.address)
            raw.sendto(b"", server.address)
            server.settle()  # every datagram that arrived is read and handed on
            assert got == []
            server.set_buffer_size(100)  # the twin: a size again, datagrams again
            raw.sendto(b"seen", server.address)
            server.settle()
        assert got == [b"seen"]
    finally:
        server.close()


@pytest.mark.parametrize("size", [0, 1, 8, 65535, 10**400])
def test_any_buffer_size_of_0_or_more_is_accepted(size: int) -> None:
    with udp.new() as sock:
        sock.set_buffer_size(size)
        assert sock.info()["maxReceiveIPv4BufferSize"] == min(size, 65535)


def _open_fds() -> set[str]:
    import os

    return set(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not __import__("os").path.isdir("/proc/self/fd"), reason="needs /proc")
@pytest.mark.parametrize("sends", [1, 3], ids=["one-send", "three-sends"])
def test_close_right_after_a_first_send_closes_the_os_socket(sends: int) -> None:
    # The OS socket of a first send is made on the loop; close() asked only the caller's view
    # (no socket yet), returned without going to the loop, and the socket made after it leaked.
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    port = receiver.getsockname()[1]
    try:
        udp.new().send(b"warm", "127.0.0.1", port).close()  # the loop and its fds exist now
        before = _open_fds()
        for _ in range(20):
            sock = udp.new()
            for _ in range(sends):
                sock.send(b"x", "127.0.0.1", port)
            sock.close()
            assert sock.closed()
        assert _open_fds() == before
    finally:
        receiver.close()
