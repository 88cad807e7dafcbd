"""hs.socket.udp over real loopback datagrams."""

from __future__ import annotations

import logging
import re
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from pytest_hsocket import CallbackError, udp

from .conftest import WAIT, Signal

UDP_INFO_KEYS = {
    "connectedAddress", "connectedHost", "connectedPort", "isClosed", "isConnected", "isIPv4",
    "isIPv4Enabled", "isIPv4Preferred", "isIPv6", "isIPv6Enabled", "isIPv6Preferred",
    "isIPVersionNeutral", "localAddress", "localHost", "localPort", "localAddress_IPv4",
    "localHost_IPv4", "localPort_IPv4", "localAddress_IPv6", "localHost_IPv6", "localPort_IPv6",
    "maxReceiveIPv4BufferSize", "maxReceiveIPv6BufferSize", "timeout", "userData",
}  # fmt: skip


def _port(sock: udp.UdpSocket) -> int:
    port = sock.info()["localPort"]
    assert isinstance(port, int)
    return port


@pytest.fixture
def upper_server() -> Iterator[udp.UdpSocket]:
    """Answers every datagram, upper-cased, to its sender."""

    def answer(data: bytes, sockaddr: bytes) -> None:
        sender = udp.parse_address(sockaddr)
        assert sender is not None
        server.send(data.upper(), sender["host"], sender["port"])

    server = udp.server(0, answer)
    assert server.receive() is server
    yield server
    server.close()
    server.check()


@pytest.fixture
def raw() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(WAIT)
    yield sock
    sock.close()


def test_query_and_answer_with_a_stdlib_client(
    upper_server: udp.UdpSocket, raw: socket.socket
) -> None:
    raw.sendto(b"what time is it", ("127.0.0.1", _port(upper_server)))
    data, sender = raw.recvfrom(1000)
    assert data == b"WHAT TIME IS IT"
    assert sender == ("127.0.0.1", _port(upper_server))


def test_connected_client_gets_bytes_and_the_sender_address(upper_server: udp.UdpSocket) -> None:
    got = Signal()
    sent = Signal()
    client = udp.new(got).connect("127.0.0.1", _port(upper_server))
    assert client is not None
    assert client.connected()  # an IP literal connects before connect() returns
    client.receive()
    client.send(b"\x00\xffbinary", tag=4, fn=sent)
    assert sent.wait() == [(4,)]
    [(data, sockaddr)] = got.wait()
    assert data == b"\x00\xffBINARY"
    assert udp.parse_address(sockaddr) == {
        "host": "127.0.0.1",
        "port": _port(upper_server),
        "addressFamily": socket.AF_INET,
    }
    client.close()


def test_receive_one_delivers_a_single_datagram(raw: socket.socket) -> None:
    got = Signal()
    server = udp.server(0, got)
    server.receive_one()
    for n in range(3):
        raw.sendto(b"d%d" % n, ("127.0.0.1", _port(server)))
    assert [c[0] for c in got.wait(1)] == [b"d0"]
    # The others wait in the kernel until asked for.
    server.receive()
    assert [c[0] for c in got.wait(3)] == [b"d0", b"d1", b"d2"]
    server.close()


def test_pause_keeps_datagrams_for_the_next_receive(raw: socket.socket) -> None:
    got = Signal()
    server = udp.server(0, got).pause()
    server.receive()
    raw.sendto(b"first", ("127.0.0.1", _port(server)))
    got.wait(1)
    server.pause()
    raw.sendto(b"second", ("127.0.0.1", _port(server)))
    later = Signal()
    server.receive(later)  # a new callback takes the datagram that waited
    assert later.wait(1)[0][0] == b"second"
    assert len(got.calls) == 1
    server.close()


def test_datagram_longer_than_the_buffer_is_truncated_with_a_warning(
    raw: socket.socket, caplog: pytest.LogCaptureFixture
) -> None:
    got = Signal()
    server = udp.server(0, got).set_buffer_size(8)
    assert server.info()["maxReceiveIPv4BufferSize"] == 8
    server.receive()
    raw.sendto(b"0123456789abcdef", ("127.0.0.1", _port(server)))
    assert got.wait()[0][0] == b"01234567"
    assert any("truncated to 8 bytes" in m for m in caplog.messages)
    server.close()


def test_ten_thousand_datagrams_none_lost_duplicated_or_reordered() -> None:
    count, window = 10_000, 100
    got: list[int] = []
    window_done = Signal()

    def collect(data: bytes, sockaddr: bytes) -> None:
        got.append(int(data))
        if int(data) % window == window - 1:
            window_done(int(data))

    server = udp.server(0, collect)
    server.receive()
    sender = udp.new()
    drops_before = _udp_receive_errors()
    # Windows of 100 (the default receive buffer holds ~256 small datagrams), each waited for
    # by its last datagram: no sleeps, and the kernel has no reason to drop any.
    for start in range(0, count, window):
        for n in range(start, start + window):
            sender.send(b"%05d" % n, "127.0.0.1", _port(server))
        window_done.wait(start // window + 1)
    dropped = _udp_receive_errors() - drops_before
    assert got == sorted(set(got)), "duplicated or reordered datagrams"
    assert len(got) + dropped >= count, f"{count - len(got)} lost, the kernel dropped {dropped}"
    assert dropped == 0
    sender.close()
    server.close()


def _udp_receive_errors() -> int:
    try:
        with open("/proc/net/snmp") as snmp:
            lines = snmp.read().splitlines()
    except OSError:
        return 0
    heads = [line.split() for line in lines if line.startswith("Udp:")]
    if len(heads) < 2:
        return 0
    return int(dict(zip(heads[0][1:], heads[1][1:])).get("RcvbufErrors", 0))


def test_info_has_the_25_keys_and_true_values(upper_server: udp.UdpSocket) -> None:
    fresh = udp.new()
    info = fresh.info()
    assert set(info) == UDP_INFO_KEYS
    assert info["isClosed"] is True
    assert info["userData"] == ""
    assert (info["isIPv4"], info["isIPv6"]) == (True, True)  # the enabled flags, before a socket
    assert info["maxReceiveIPv4BufferSize"] == 65535
    assert info["isIPVersionNeutral"] is True
    server_info = upper_server.info()
    assert server_info["userData"] == "SERVER"
    assert server_info["localHost"] == "127.0.0.1"
    assert server_info["localHost_IPv4"] == "127.0.0.1"
    assert server_info["localPort_IPv6"] == 0
    assert udp.parse_address(server_info["localAddress"])["port"] == _port(upper_server)  # type: ignore[arg-type,index]
    assert str(upper_server) == f"hs.socket.udp: 127.0.0.1:{_port(upper_server)}"
    client = udp.new().connect("localhost", _port(upper_server))
    assert client is not None
    assert client.info()["userData"] == "DEFAULT"
    assert client.info()["connectedPort"] == _port(upper_server)
    assert str(client) == f"hs.socket.udp: 127.0.0.1:{_port(upper_server)}"
    client.close()
    assert client.info()["connectedPort"] == 0
    assert str(udp.new()) == "hs.socket.udp: (null):0"


def test_sending_implicitly_binds_so_receive_works(upper_server: udp.UdpSocket) -> None:
    got = Signal()
    client = udp.new(got)
    assert client.closed()
    client.send(b"ping", "127.0.0.1", _port(upper_server))
    sent = Signal()
    client.send(b"", "127.0.0.1", _port(upper_server), 1, sent)  # ignored, as the original
    client.receive()
    assert got.wait()[0][0] == b"PING"
    assert not client.closed()
    assert sent.calls == []
    client.close()


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        pytest.param(lambda: udp.server(70000), ValueError, "listen() port must be in 0-65535, not 70000", id="port"),
        pytest.param(lambda: udp.server("53"), TypeError, "listen() port must be an int, not '53'", id="port-str"),
        pytest.param(lambda: udp.new().connect("h", 0), ValueError, "connect() port must be in 1-65535, not 0", id="connect-0"),
        pytest.param(lambda: udp.new().connect(None, 5), TypeError, "connect() host must be a non-empty str, not None", id="connect-host"),
        pytest.param(lambda: udp.new().send(b"x"), TypeError, "send() needs host and port: the socket is not connected", id="no-dest"),
        pytest.param(lambda: udp.new().send(b"x", "h"), TypeError, "send() needs both host and port", id="half-dest"),
        pytest.param(lambda: udp.new().send(5, "h", 1), TypeError, "send() message must be bytes or str, not 5", id="message"),
        pytest.param(lambda: udp.new().send(b"x", "h", 1, "t"), TypeError, "send() tag must be an int, not 't'", id="tag"),
        pytest.param(lambda: udp.new().set_buffer_size(-1), ValueError, "set_buffer_size() size must not be negative, not -1", id="buffer-negative"),
        pytest.param(lambda: udp.new().set_buffer_size(10, 5), ValueError, "set_buffer_size() version must be 4, 6 or None, not 5", id="buffer-version"),
        pytest.param(lambda: udp.new().set_timeout(None), TypeError, "set_timeout() timeout must be a number of seconds, not None", id="timeout"),
        pytest.param(lambda: udp.new(3), TypeError, "callback must be callable or None, not 3", id="callback"),
        pytest.param(lambda: udp.new().broadcast("yes"), TypeError, "broadcast() flag must be a bool, not 'yes'", id="broadcast"),
    ],
)  # fmt: skip
def test_bad_arguments_raise_clear_errors(call: Any, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=re.escape(message)):
        call()


def test_soft_failures_return_none_and_log(caplog: pytest.LogCaptureFixture) -> None:
    first = udp.server(0)
    checks = [
        (udp.new().receive(), "No callback defined!"),
        (
            udp.new(print).receive(),
            "Unable to read from UDP socket: Must bind socket before you can receive data. You "
            "can do this explicitly via bind, or implicitly via connect or by sending data.",
        ),
        (udp.new().listen(_port(first)), "Unable to bind port: Address already in use"),
        (first.listen(0), "Unable to bind port: Cannot bind a socket more than once."),
        (udp.new().enable_ipv(0), "Invalid IP version: 0"),
    ]
    connected = udp.new().connect("127.0.0.1", _port(first))
    assert connected is not None
    checks.append(
        (
            connected.connect("127.0.0.1", 9),
            "Unable to connect: Cannot connect a socket more than once.",
        )
    )
    checks.append(
        (
            connected.listen(0),
            "Unable to bind port: Cannot bind after connecting. If needed, bind first, then connect.",
        )
    )
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    for (result, message), logged in zip(checks, errors):
        assert result is None
        assert logged == message
    assert len(errors) == len(checks)
    connected.close()
    first.close()


def test_server_on_a_port_in_use_is_returned_unbound(caplog: pytest.LogCaptureFixture) -> None:
    first = udp.server(0)
    second = udp.server(_port(first))
    assert second.closed()
    assert second.info()["userData"] == ""
    first.close()


def test_reuse_port_lets_two_sockets_bind_the_same_port() -> None:
    first = udp.new().reuse_port()
    assert first is not None
    assert first.listen(0) is first
    second = udp.new().reuse_port()
    assert second is not None
    assert second.listen(_port(first)) is second
    first.close()
    second.close()


def test_broadcast_true_enables_the_option() -> None:
    sock = udp.new().broadcast(True)
    assert sock is not None
    io = sock._io
    assert io is not None
    assert io.sock.getsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST) == 1
    sock.broadcast(False)
    assert io.sock.getsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST) == 0
    sock.close()


def test_destination_on_a_connected_socket_is_refused(
    upper_server: udp.UdpSocket, caplog: pytest.LogCaptureFixture
) -> None:
    client = udp.new().connect("127.0.0.1", _port(upper_server))
    assert client is not None
    sent = Signal()
    client.send(b"x", "127.0.0.1", _port(upper_server), 1, sent)
    client.send(b"y", tag=2, fn=sent)
    assert sent.wait() == [(2,)]
    client.close()
    assert (
        "Data not sent on UDP socket: Cannot specify destination of packet for connected socket"
        in caplog.messages
    )


def test_unresolvable_host_logs_and_keeps_the_socket(caplog: pytest.LogCaptureFixture) -> None:
    sock = udp.server(0)
    sent = Signal()
    sock.send(b"x", "no-such-host.invalid", 53, 1, sent)
    sock.send(b"y", "127.0.0.1", _port(sock), 2, sent)  # the next send still goes out
    assert sent.wait() == [(2,)]
    assert any(m.startswith("Data not sent on UDP socket:") for m in caplog.messages)
    assert not sock.closed()
    sock.close()


def test_too_large_datagram_closes_the_socket_with_a_reason(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sock = udp.server(0)
    sock.send(b"x" * 70000, "127.0.0.1", _port(sock))
    sock.set_buffer_size(1000)  # a round trip to the loop: the send ran before it
    sock._loop.run_sync(lambda: None)
    assert "UDP socket closed: Message too long" in caplog.messages
    assert sock.closed()


def test_icmp_refusal_on_a_connected_socket_closes_it(caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        dead_port = probe.getsockname()[1]
    got = Signal()
    client = udp.new(got).connect("127.0.0.1", dead_port)
    assert client is not None
    client.receive()
    client.send(b"anyone?")
    # The ICMP port-unreachable answer makes the next receive fail: the socket closes.
    for _ in range(50):
        if client.closed():
            break
        client.send(b"anyone?")
        client._loop.run_sync(lambda: None)
    assert "UDP socket closed: Connection refused" in caplog.messages
    assert client.closed()


def test_ipv6_round_trip() -> None:
    try:
        server = udp.server(0, None, host="::1")
    except OSError:  # pragma: no cover
        pytest.skip("no IPv6 loopback")
    if server.closed():
        pytest.skip("this machine has no IPv6 loopback")
    got = Signal()
    server.set_callback(got).receive()
    client = udp.new().connect("::1", _port(server))
    assert client is not None
    client.send(b"six")
    [(data, sockaddr)] = got.wait()
    assert data == b"six"
    sender = udp.parse_address(sockaddr)
    assert sender is not None
    assert sender["host"] == "::1"
    assert sender["addressFamily"] == socket.AF_INET6
    assert server.info()["localHost_IPv6"] == "::1"
    client.close()
    server.close()


def test_callback_error_is_kept_and_raised_by_check(raw: socket.socket) -> None:
    boom = Signal()

    def broken(data: bytes, sockaddr: bytes) -> None:
        boom()
        raise ValueError("bad datagram")

    server = udp.server(0, broken).receive()
    assert server is not None
    raw.sendto(b"x", ("127.0.0.1", _port(server)))
    boom.wait()
    server.close()
    with pytest.raises(CallbackError, match="bad datagram"):
        server.check()


def test_camel_case_aliases_exist() -> None:
    sock = udp.new()
    for name in ("setCallback", "setTimeout", "setBufferSize", "enableIPv", "preferIPv",
                 "enableBroadcast", "reusePort", "read", "readOne", "receiveOne", "write"):  # fmt: skip
        assert callable(getattr(sock, name)), name
    assert udp.parseAddress is udp.parse_address
