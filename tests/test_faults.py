"""Faults a mock server can play: slow, cut, reset, garbage, stalled and half-closed replies.

Each fault's exact schedule is checked on the pure conversation; over a real client socket the
tests assert bytes, order and lower bounds only (a busy machine wakes late).
"""

from __future__ import annotations

import random
import socket
import time
from collections.abc import Callable, Iterator

import pytest

from pytest_hsocket._core.script import Conversation, Script
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


def _schedule(rule: Callable[[Script], object]) -> list[tuple[str, object]]:
    # The pure conversation says what a fault sends and waits, exactly, with no clock.
    script = Script()
    rule(script)
    actions = Conversation(script).feed(b"GET\n")
    return [(a.kind, a.data if a.kind == "send" else a.seconds) for a in actions[1:]]


def test_dribble_schedule_is_exact_slices_with_the_delay() -> None:
    steps = _schedule(lambda s: s.expect(b"GET\n").dribble(b"abcdefgh", size=2, delay=0.05))
    assert steps == [
        ("send", b"ab"),
        ("delay", 0.05),
        ("send", b"cd"),
        ("delay", 0.05),
        ("send", b"ef"),
        ("delay", 0.05),
        ("send", b"gh"),
    ]


def test_trickle_schedule_sends_20_ms_slices_at_the_rate() -> None:
    payload = bytes(range(256)) * 40  # 10,240 bytes
    steps = _schedule(lambda s: s.expect(b"GET\n").trickle(payload, 20_000))
    sends = [value for kind, value in steps if kind == "send"]
    delays = [value for kind, value in steps if kind == "delay"]
    assert b"".join(sends) == payload  # type: ignore[arg-type]
    assert [len(piece) for piece in sends] == [400] * 25 + [240]  # type: ignore[arg-type]
    assert delays == [0.02] * 25  # 10,000 bytes waited for at 20,000 B/s = 0.5 s


def test_dribble_sends_the_slices_in_order_never_early(
    hsock_server: MockServer, client: socket.socket
) -> None:
    # Over a real socket a busy machine may merge slices or wake late: assert the bytes, their
    # order and a lower bound; the exact schedule is pinned above.
    hsock_server.expect(b"GET\n").dribble(b"abcdefgh", size=2, delay=0.05).close()
    start = time.perf_counter()
    client.sendall(b"GET\n")
    sizes, times, data = _read_all(client)
    assert data == b"abcdefgh"
    assert all(size % 2 == 0 for size in sizes), sizes
    assert times[-1] - start >= 3 * 0.05


def test_trickle_takes_at_least_size_over_rate(
    hsock_server: MockServer, client: socket.socket
) -> None:
    payload = bytes(range(256)) * 40  # 10,240 bytes
    rate = 20_000
    hsock_server.expect(b"GET\n").trickle(payload, rate).close()
    start = time.perf_counter()
    client.sendall(b"GET\n")
    _, times, data = _read_all(client)
    assert data == payload
    assert times[-1] - start >= 25 * 0.02  # every slice but the first waits 20 ms


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
