"""The UDP fixtures: a scripted server, a test client, and a real stdlib client."""

from __future__ import annotations

import re
import socket
import struct

import pytest

from pytest_hsocket.testing import UdpMockServer, UdpTestClient

from .conftest import WAIT


def _dns_query(name: str, ident: int) -> bytes:
    header = struct.pack("!HHHHHH", ident, 0x0100, 1, 0, 0, 0)
    labels = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\x00"
    return header + labels + struct.pack("!HH", 1, 1)


def _dns_answer(query: bytes, address: str) -> bytes:
    ident = query[:2]
    question = query[12:]
    header = ident + struct.pack("!HHHHH", 0x8180, 1, 1, 0, 0)
    answer = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 60, 4) + socket.inet_aton(address)
    return header + question + answer


def test_dns_style_query_from_a_stdlib_client(hsock_udp_server: UdpMockServer) -> None:
    hsock_udp_server.expect(
        re.compile(rb"..\x01\x00\x00\x01.*\x07example\x03com\x00", re.S)
    ).respond(lambda query: _dns_answer(query, "93.184.216.34"))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        client.settimeout(WAIT)
        client.sendto(_dns_query("example.com", 0xBEEF), hsock_udp_server.address)
        reply, _ = client.recvfrom(512)
    assert reply[:2] == b"\xbe\xef"
    assert reply[-4:] == socket.inet_aton("93.184.216.34")


def test_udp_client_request_and_repeating_rules(
    hsock_udp_server: UdpMockServer, hsock_udp_client: object
) -> None:
    hsock_udp_server.expect(b"ping", times=None).respond(b"pong")
    client: UdpTestClient = hsock_udp_client(hsock_udp_server)  # type: ignore[operator]
    assert [client.request(b"ping") for _ in range(3)] == [b"pong"] * 3


def test_each_sender_gets_its_own_conversation(
    hsock_udp_server: UdpMockServer, hsock_udp_client: object
) -> None:
    hsock_udp_server.expect(b"hello").respond(b"first")
    hsock_udp_server.expect(b"hello").respond(b"second")
    one: UdpTestClient = hsock_udp_client(hsock_udp_server)  # type: ignore[operator]
    two: UdpTestClient = hsock_udp_client(hsock_udp_server)  # type: ignore[operator]
    assert one.request(b"hello") == b"first"
    assert two.request(b"hello") == b"first"
    assert one.request(b"hello") == b"second"
    assert two.request(b"hello") == b"second"


def test_unexpected_datagram_fails_at_teardown(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        def test_wrong(hsock_udp_server, hsock_udp_client):
            hsock_udp_server.expect(b"A").respond(b"a")
            client = hsock_udp_client(hsock_udp_server)
            client.send(b"B")
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "hsock_udp_server (127.0.0.1:*): 2 problem(s)",
            "  - peer 127.0.0.1:*: unmet expect(b'A') matched 0 of 1 times",
            "  - peer 127.0.0.1:*: unexpected datagram b'B' (expected expect(b'A'))",
        ]
    )


def test_udp_client_times_out_clearly(
    hsock_udp_server: UdpMockServer, hsock_udp_client: object
) -> None:
    from pytest_hsocket import ReadTimeout

    hsock_udp_server.expect(b"quiet")
    client: UdpTestClient = hsock_udp_client(hsock_udp_server)  # type: ignore[operator]
    with pytest.raises(ReadTimeout, match=r"no datagram within 0\.1 s"):
        client.request(b"quiet", timeout=0.1)


def test_server_chaos_rates_land_near_what_was_asked(hsock_udp_server: UdpMockServer) -> None:
    import socket as _socket

    hsock_udp_server.expect(re.compile(rb"q\d+"), times=None).respond(lambda q: b"a" + q[1:])
    hsock_udp_server.chaos(drop=0.2, duplicate=0.1, seed=4)
    answered: list[bytes] = []
    with _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM) as client:
        client.settimeout(WAIT)
        for n in range(0, 2000, 100):
            for m in range(n, n + 100):
                client.sendto(b"q%d" % m, hsock_udp_server.address)
            hsock_udp_server.settle()  # every answer of this window is out
            client.setblocking(False)
            try:
                while True:
                    answered.append(client.recv(100))
            except BlockingIOError:
                pass
            client.setblocking(True)
    stats = hsock_udp_server.chaos_stats
    assert stats["answers"] == 2000
    assert 0.17 <= stats["dropped"] / 2000 <= 0.23
    assert 0.08 <= stats["duplicated"] / (2000 - stats["dropped"]) <= 0.12
    assert len(answered) == 2000 - stats["dropped"] + stats["duplicated"]


def test_server_chaos_truncates_and_checks_its_arguments(
    hsock_udp_server: UdpMockServer, hsock_udp_client: object
) -> None:
    hsock_udp_server.expect(b"long?", times=None).respond(b"0123456789")
    hsock_udp_server.chaos(truncate=4)
    client: UdpTestClient = hsock_udp_client(hsock_udp_server)  # type: ignore[operator]
    assert client.request(b"long?") == b"0123"
    with pytest.raises(ValueError, match="chaos\\(\\) drop must be at most 1"):
        hsock_udp_server.chaos(drop=1.5)
