"""Faults a mock server can play: slow, cut, reset, garbage, stalled and half-closed replies.

Each test measures the effect with a real client socket.
"""

from __future__ import annotations

import random
import socket
import time
from collections.abc import Iterator

import pytest

from pytest_hsocket.testing import MockServer

from .conftest import WAIT


@pytest.fixture
def client(hsock_server: MockServer) -> Iterator[socket.socket]:
    sock = socket.create_connection(hsock_server.address, WAIT)
    sock.settimeout(WAIT)
    yield sock
    sock.close()


def _read_all(sock: socket.socket) -> tuple[list[int], list[float], bytes]:
    sizes, times, data = [], [], b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return sizes, times, data
        sizes.append(len(chunk))
        times.append(time.perf_counter())
        data += chunk


def test_dribble_sends_exact_slices_with_the_delay(
    hsock_server: MockServer, client: socket.socket
) -> None:
    hsock_server.expect(b"GET\n").dribble(b"abcdefgh", size=2, delay=0.05).close()
    start = time.perf_counter()
    client.sendall(b"GET\n")
    sizes, times, data = _read_all(client)
    assert data == b"abcdefgh"
    assert sizes == [2, 2, 2, 2]
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert all(0.04 <= gap <= 0.2 for gap in gaps), gaps
    assert times[0] - start < 0.05


def test_trickle_caps_the_rate_within_20_percent(
    hsock_server: MockServer, client: socket.socket
) -> None:
    payload = bytes(range(256)) * 40  # 10,240 bytes
    rate = 20_000
    hsock_server.expect(b"GET\n").trickle(payload, rate).close()
    start = time.perf_counter()
    client.sendall(b"GET\n")
    _, times, data = _read_all(client)
    elapsed = times[-1] - start
    assert data == payload
    expected = len(payload) / rate
    assert 0.8 * expected <= elapsed <= 1.2 * expected, (elapsed, expected)


def test_truncate_closes_after_exactly_n_bytes(
    hsock_server: MockServer, client: socket.socket
) -> None:
    hsock_server.expect(b"GET\n").truncate(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n", 9)
    client.sendall(b"GET\n")
    _, _, data = _read_all(client)
    assert data == b"HTTP/1.1 "


def test_reset_after_n_bytes_gives_connection_reset(
    hsock_server: MockServer, client: socket.socket
) -> None:
    hsock_server.expect(b"GET\n").reset_after(b"0123456789", 4)
    client.sendall(b"GET\n")
    received = b""
    with pytest.raises(ConnectionResetError):  # noqa: PT012 - read until the reset
        while True:
            chunk = client.recv(100)
            assert chunk, "a clean EOF instead of a reset"
            received += chunk
    assert received in (b"", b"0123")  # a reset may discard bytes still in flight


def test_garbage_is_random_and_reproducible(
    hsock_server: MockServer, client: socket.socket
) -> None:
    hsock_server.expect(b"GET\n").garbage(64, seed=7).close()
    client.sendall(b"GET\n")
    _, _, data = _read_all(client)
    assert data == random.Random(7).randbytes(64)


def test_stall_keeps_the_connection_open_and_silent(
    hsock_server: MockServer, client: socket.socket
) -> None:
    hsock_server.expect(b"GET\n").stall()
    client.sendall(b"GET\n")
    client.settimeout(0.2)
    with pytest.raises(socket.timeout):
        client.recv(1)  # neither data nor EOF: the server is stuck


def test_half_close_sends_eof_and_keeps_reading(
    hsock_server: MockServer, client: socket.socket
) -> None:
    hsock_server.expect(b"GET\n").respond(b"bye\n").half_close()
    hsock_server.expect(b"STILL THERE?\n")
    client.sendall(b"GET\n")
    _, _, data = _read_all(client)
    assert data == b"bye\n"
    client.sendall(b"STILL THERE?\n")  # the server still reads: its rule is met at teardown
    client.shutdown(socket.SHUT_WR)


@pytest.mark.parametrize(
    ("step", "error"),
    [
        pytest.param(lambda r: r.dribble(b"x", size=0), ValueError, id="dribble-size"),
        pytest.param(lambda r: r.dribble(b"x", delay=-1), ValueError, id="dribble-delay"),
        pytest.param(lambda r: r.trickle(b"x", 0), ValueError, id="trickle-rate"),
        pytest.param(lambda r: r.truncate(b"x", -1), ValueError, id="truncate"),
        pytest.param(lambda r: r.garbage("5"), TypeError, id="garbage"),
        pytest.param(lambda r: r.reset_after(5, 1), TypeError, id="reset-payload"),
    ],
)
def test_bad_fault_arguments(step: object, error: type[Exception]) -> None:
    from pytest_hsocket.testing import Script

    with pytest.raises(error):
        step(Script().expect(b"x"))  # type: ignore[operator]
