"""The fault proxy: pure toxic schedules, then measured effects over real loopback sockets.

The I/O tests talk through the proxy with plain blocking sockets (or redis-py) to small
upstream servers in threads, and measure what the toxics do with ``time.perf_counter``.
Synchronisation is by events with timeouts, never by sleeping.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import random
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable, Optional, cast

import pytest
import redis
import trustme
from hypothesis import given, settings
from hypothesis import strategies as st
from redis.backoff import AbstractBackoff, NoBackoff
from redis.retry import Retry

from pytest_hsocket._core.toxics import (
    CLOSE,
    RESET,
    Bandwidth,
    Drop,
    End,
    Finish,
    Latency,
    LimitData,
    Pipe,
    ResetPeer,
    Send,
    Slicer,
    Timeout,
    ToxicSpec,
    Wait,
)
from pytest_hsocket._helpers.mockserver import MockServer
from pytest_hsocket._helpers.proxy import (
    DOWNSTREAM,
    UPSTREAM,
    FaultProxy,
    RecordEntry,
    Toxic,
    dump_recording,
    load_recording,
)
from pytest_hsocket._loop.hub import get_loop
from pytest_hsocket.plugin.proxy import ProxyFactory

WAIT = 5.0


# -- pure schedules ---------------------------------------------------------------------------


def pipe_with(*specs: ToxicSpec, now: float = 0.0, seed: int = 1) -> Pipe:
    pipe = Pipe(random.Random(seed))
    for index, spec in enumerate(specs):
        pipe.add(index, spec, now)
    return pipe


def drain(pipe: Pipe, start: float = 0.0) -> list[tuple[float, bytes]]:
    """Play the pipe on a virtual clock that jumps to each wait: [(send time, piece)]."""
    sent: list[tuple[float, bytes]] = []
    now = start
    while True:
        step = pipe.next_step(now)
        if isinstance(step, Send):
            sent.append((now, step.data))
            pipe.commit(step, now)
        elif isinstance(step, Wait) and step.until is not None:
            now = step.until
        else:
            return sent


def test_no_toxic_sends_each_chunk_at_once() -> None:
    pipe = pipe_with()
    pipe.feed(b"hello", 1.0)
    step = pipe.next_step(1.0)
    assert isinstance(step, Send)
    assert step.data == b"hello"
    pipe.commit(step, 1.0)
    assert pipe.next_step(1.0) == Wait(None)
    pipe.close_input()
    assert pipe.next_step(1.0) == Finish()


def test_latency_delays_each_chunk_from_its_arrival() -> None:
    pipe = pipe_with(Latency(100))
    pipe.feed(b"a", 0.0)
    pipe.feed(b"b", 0.05)
    step = pipe.next_step(0.0)
    assert isinstance(step, Wait)
    assert step.until == pytest.approx(0.1)
    sent = drain(pipe)
    assert [piece for _, piece in sent] == [b"a", b"b"]
    assert [at for at, _ in sent] == pytest.approx([0.1, 0.15])


def test_latency_jitter_stays_in_bounds_and_varies() -> None:
    pipe = pipe_with(Latency(100, jitter=20))
    for index in range(50):
        pipe.feed(b"x", float(index))
    delays = [at - index for index, (at, _) in enumerate(drain(pipe))]
    assert all(0.08 <= d <= 0.12 for d in delays)
    assert len({round(d, 6) for d in delays}) > 10


def test_latency_jitter_is_drawn_once_per_chunk() -> None:
    pipe = pipe_with(Latency(100, jitter=50), Slicer(1))
    pipe.feed(b"abc", 0.0)
    times = [at for at, _ in drain(pipe)]
    assert len(set(times)) == 1  # every slice of the chunk waits the same delay


def test_bandwidth_spreads_bytes_at_the_rate() -> None:
    pipe = pipe_with(Bandwidth(200_000))
    pipe.feed(b"x" * 100_000, 0.0)
    sent = drain(pipe)
    assert {len(piece) for _, piece in sent} == {2000}  # 1/100 s worth each
    assert sent[-1][0] == pytest.approx(0.5)
    assert sum(len(piece) for _, piece in sent) == 100_000


def test_bandwidth_gives_no_credit_for_idle_time() -> None:
    pipe = pipe_with(Bandwidth(1000))
    pipe.feed(b"x" * 10, 0.0)
    drain(pipe)
    pipe.feed(b"y" * 10, 100.0)
    [(at, piece)] = drain(pipe, 100.0)
    assert at == pytest.approx(100.01)
    assert piece == b"y" * 10


def test_slicer_cuts_exact_sizes_with_delay_between() -> None:
    pipe = pipe_with(Slicer(3, delay=0.01))
    pipe.feed(b"abcdefgh", 0.0)
    sent = drain(pipe)
    assert [piece for _, piece in sent] == [b"abc", b"def", b"gh"]
    assert [at for at, _ in sent] == pytest.approx([0.0, 0.01, 0.02])


def test_timeout_drops_and_closes_at_its_deadline() -> None:
    pipe = pipe_with(Timeout(2), now=10.0)
    pipe.feed(b"lost", 10.5)
    step = pipe.next_step(10.5)
    assert step == Drop(4)
    pipe.drop(step)
    assert pipe.next_step(10.5) == Wait(12.0)
    pipe.close_input()
    assert pipe.next_step(11.9) == Wait(12.0)  # not even the end of the stream goes through
    assert pipe.next_step(12.0) == End(CLOSE)


def test_timeout_zero_holds_the_connection_until_removed() -> None:
    pipe = pipe_with(Timeout(0))
    pipe.feed(b"lost", 0.0)
    pipe.drop(Drop(4))
    assert pipe.next_step(1e9) == Wait(None)
    pipe.remove(0)
    pipe.feed(b"kept", 2.0)
    assert drain(pipe, 2.0) == [(2.0, b"kept")]


@pytest.mark.parametrize(
    ("spec", "how"),
    [
        pytest.param(ResetPeer(5), RESET, id="reset_peer"),
        pytest.param(LimitData(5), CLOSE, id="limit_data"),
    ],
)
def test_counting_toxics_pass_exactly_n_bytes_then_end(spec: ToxicSpec, how: str) -> None:
    pipe = pipe_with(spec)
    pipe.feed(b"abc", 0.0)
    pipe.feed(b"defgh", 0.0)
    assert [piece for _, piece in drain(pipe)] == [b"abc", b"de"]
    assert pipe.next_step(0.0) == End(how)


def test_counting_toxic_at_zero_ends_at_once() -> None:
    assert pipe_with(ResetPeer(0)).next_step(0.0) == End(RESET)
    assert pipe_with(LimitData(0)).next_step(0.0) == End(CLOSE)


def test_toxics_apply_in_the_order_added() -> None:
    pipe = pipe_with(Latency(100), Slicer(2, delay=0.01), LimitData(5))
    pipe.feed(b"abcdefgh", 0.0)
    sent = drain(pipe)
    assert [piece for _, piece in sent] == [b"ab", b"cd", b"e"]
    assert [at for at, _ in sent] == pytest.approx([0.1, 0.11, 0.12])
    assert pipe.next_step(0.12) == End(CLOSE)


def test_removing_a_toxic_releases_what_it_held() -> None:
    pipe = pipe_with(Slicer(1, delay=1.0))
    pipe.feed(b"abcd", 0.0)
    step = pipe.next_step(0.0)
    assert isinstance(step, Send)
    pipe.commit(step, 0.0)
    assert pipe.next_step(0.5) == Wait(1.0)
    pipe.remove(0)
    step = pipe.next_step(0.5)
    assert isinstance(step, Send)
    assert step.data == b"bcd"


def test_a_toxic_removed_during_a_send_learns_nothing() -> None:
    pipe = pipe_with(LimitData(2))
    pipe.feed(b"ab", 0.0)
    step = pipe.next_step(0.0)
    assert isinstance(step, Send)
    pipe.remove(0)
    pipe.commit(step, 0.0)
    pipe.add(1, LimitData(2), 0.0)
    pipe.feed(b"cd", 0.0)
    assert [piece for _, piece in drain(pipe)] == [b"cd"]


_SHAPING = st.one_of(
    st.builds(Latency, st.integers(0, 500), st.integers(0, 100)),
    st.builds(Bandwidth, st.integers(1, 10**6)),
    st.builds(Slicer, st.integers(1, 64), st.floats(0, 0.05)),
)


@given(
    chunks=st.lists(st.tuples(st.binary(min_size=1, max_size=300), st.floats(0, 1)), max_size=8),
    specs=st.lists(_SHAPING, max_size=3),
    limit=st.one_of(st.none(), st.integers(0, 1000)),
)
@settings(max_examples=200, deadline=None)
def test_any_chain_keeps_bytes_and_order(
    chunks: list[tuple[bytes, float]], specs: list[ToxicSpec], limit: Optional[int]
) -> None:
    pipe = pipe_with(*specs, *([LimitData(limit)] if limit is not None else []))
    arrived = 0.0
    for data, gap in chunks:
        arrived += gap
        pipe.feed(data, arrived)
    sent = drain(pipe)
    everything = b"".join(data for data, _ in chunks)
    expected = everything if limit is None else everything[:limit]
    assert b"".join(piece for _, piece in sent) == expected
    assert [at for at, _ in sent] == sorted(at for at, _ in sent)
    for spec in specs:
        if isinstance(spec, Slicer):
            assert all(len(piece) <= spec.size for _, piece in sent)
    if limit is not None and len(everything) >= limit:
        assert pipe.next_step(sent[-1][0] if sent else 0.0) == End(CLOSE)


def test_commit_refuses_a_stale_step() -> None:
    pipe = pipe_with()
    pipe.feed(b"ab", 0.0)
    step = pipe.next_step(0.0)
    assert isinstance(step, Send)
    pipe.commit(step, 0.0)
    with pytest.raises(ValueError, match="next_step"):
        pipe.commit(step, 0.0)


@pytest.mark.parametrize(
    ("build", "error", "message"),
    [
        pytest.param(lambda: Latency(-1), ValueError, "latency\\(\\) ms", id="negative-latency"),
        pytest.param(
            lambda: Latency(10, jitter=cast(Any, "5")), TypeError, "jitter", id="text-jitter"
        ),
        pytest.param(lambda: Bandwidth(0), ValueError, "positive", id="zero-rate"),
        pytest.param(lambda: Slicer(0), ValueError, "size", id="zero-slice"),
        pytest.param(lambda: Slicer(cast(Any, 1.5)), TypeError, "size", id="float-slice"),
        pytest.param(lambda: Timeout(float("nan")), ValueError, "seconds", id="nan-timeout"),
        pytest.param(lambda: ResetPeer(-1), ValueError, "after_bytes", id="negative-reset"),
        pytest.param(lambda: LimitData(cast(Any, True)), TypeError, "after_bytes", id="bool-limit"),
    ],
)
def test_bad_toxic_arguments_are_refused(
    build: Callable[[], object], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        build()


def test_specs_describe_the_call_that_adds_them() -> None:
    assert Latency(200, jitter=20).describe() == "latency(200, jitter=20)"
    assert repr(Slicer(1, delay=0.01)) == "slicer(1, delay=0.01)"


# -- the record file --------------------------------------------------------------------------


def test_record_file_round_trips_text_and_binary(tmp_path: Path) -> None:
    entries = [
        RecordEntry(0.001, UPSTREAM, 1, b"PING\r\n"),
        RecordEntry(0.0025, DOWNSTREAM, 1, b"\xff\x00\x01"),
        RecordEntry(1.5, UPSTREAM, 2, "héllo".encode()),
    ]
    path = tmp_path / "talk.jsonl"
    dump_recording(entries, path)
    lines = [json.loads(line) for line in path.read_text("utf-8").splitlines()]
    assert lines == [
        {"t": 0.001, "dir": "upstream", "conn": 1, "text": "PING\r\n"},
        {"t": 0.0025, "dir": "downstream", "conn": 1, "b64": "/wAB"},
        {"t": 1.5, "dir": "upstream", "conn": 2, "text": "héllo"},
    ]
    assert load_recording(path) == entries


@pytest.mark.parametrize(
    "line",
    [
        pytest.param('{"t": 0, "dir": "up", "conn": 1, "text": ""}', id="bad-direction"),
        pytest.param('{"t": 0, "dir": "upstream", "conn": 1}', id="no-data"),
        pytest.param('{"t": 0, "dir": "upstream", "conn": 1, "text": "", "b64": ""}', id="both"),
        pytest.param('{"t": 0, "dir": "upstream", "conn": 1, "b64": "!!"}', id="bad-base64"),
        pytest.param("[1, 2]", id="not-an-object"),
        pytest.param("{", id="not-json"),
    ],
)
def test_a_malformed_record_line_names_its_line(tmp_path: Path, line: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"t": 0, "dir": "upstream", "conn": 1, "text": "ok"}\n\n' + line + "\n")
    with pytest.raises(ValueError, match="line 3"):
        load_recording(path)


# -- upstream servers in threads --------------------------------------------------------------

Handler = Callable[[socket.socket, "Upstream"], None]


class Upstream:
    """A loopback TCP server in a thread; each connection runs ``handler(conn, self)``."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.received = bytearray()
        self.closed = threading.Event()  # set when a connection's peer ended its stream
        self.error: Optional[BaseException] = None
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.address: tuple[str, int] = self._listener.getsockname()[:2]
        self._conns: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._stopping = False
        self._start(self._accept_loop)

    def _start(self, target: Callable[..., None], *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept_loop(self) -> None:
        while True:
            conn, _ = self._listener.accept()
            if self._stopping:
                conn.close()
                return
            self._conns.append(conn)
            self._start(self._serve, conn)

    def _serve(self, conn: socket.socket) -> None:
        try:
            self.handler(conn, self)
        except OSError as exc:
            self.error = exc

    def close(self) -> None:
        self._stopping = True
        socket.create_connection(self.address).close()  # wakes accept()
        for conn in self._conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        for thread in self._threads:
            thread.join(WAIT)
        for conn in self._conns:
            conn.close()
        self._listener.close()


def echo(conn: socket.socket, server: Upstream) -> None:
    while data := conn.recv(65536):
        conn.sendall(data)
    conn.shutdown(socket.SHUT_WR)  # the client's end of stream, echoed too


def sink(conn: socket.socket, server: Upstream) -> None:
    try:
        while data := conn.recv(65536):
            server.received += data
    except OSError as exc:
        server.error = exc
    finally:
        server.closed.set()


def blaster(size: int) -> Handler:
    """Send ``size`` bytes of a counting pattern for every line received."""
    payload = bytes(i % 251 for i in range(size))

    def handle(conn: socket.socket, server: Upstream) -> None:
        reader = conn.makefile("rb")
        try:
            while reader.readline():
                conn.sendall(payload)
        finally:
            reader.close()

    return handle


@pytest.fixture
def upstream() -> Iterator[Callable[[Handler], Upstream]]:
    servers: list[Upstream] = []

    def make(handler: Handler) -> Upstream:
        servers.append(Upstream(handler))
        return servers[-1]

    yield make
    for server in servers:
        server.close()


@pytest.fixture
def connect() -> Iterator[Callable[[FaultProxy], socket.socket]]:
    """Open blocking client sockets to a proxy (timeout WAIT); closed at teardown."""
    socks: list[socket.socket] = []

    def make(proxy: FaultProxy) -> socket.socket:
        socks.append(socket.create_connection(proxy.address, timeout=WAIT))
        return socks[-1]

    yield make
    for sock in socks:
        sock.close()


def recv_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise AssertionError(f"connection closed after {len(data)} of {size} bytes")
        data += chunk
    return data


def recv_until_end(sock: socket.socket) -> tuple[bytes, Optional[OSError]]:
    """Read until the end of the stream or an error; return the bytes and the error."""
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except OSError as exc:
            return data, exc
        if not chunk:
            return data, None
        data += chunk


def round_trip(sock: socket.socket, message: bytes = b"ping\n") -> float:
    start = time.perf_counter()
    sock.sendall(message)
    assert recv_exactly(sock, len(message)) == message
    return time.perf_counter() - start


# -- forwarding -------------------------------------------------------------------------------


def test_proxy_forwards_both_ways(
    hsock_proxy: ProxyFactory, upstream: Callable[[Handler], Upstream], connect: Any
) -> None:
    server = upstream(echo)
    proxy = hsock_proxy(*server.address, record=False)
    assert proxy.host == "127.0.0.1"
    assert proxy.address == ("127.0.0.1", proxy.port)
    assert proxy.upstream_address == server.address
    client = connect(proxy)
    round_trip(client, b"hello\n")
    big = bytes(range(256)) * 4096  # 1 MiB: backpressure, many reads
    sender = threading.Thread(target=client.sendall, args=(big,))
    sender.start()
    assert recv_exactly(client, len(big)) == big
    sender.join(WAIT)
    assert proxy.records == []  # record=False keeps no bytes


def test_proxy_accepts_a_server_object(
    hsock_proxy: ProxyFactory, hsock_server: MockServer, connect: Any
) -> None:
    hsock_server.expect(b"PING\r\n").respond(b"+PONG\r\n")
    proxy = hsock_proxy(hsock_server)
    client = connect(proxy)
    client.sendall(b"PING\r\n")
    assert recv_exactly(client, 7) == b"+PONG\r\n"


def test_half_close_passes_through(
    hsock_proxy: ProxyFactory, upstream: Callable[[Handler], Upstream], connect: Any
) -> None:
    server = upstream(echo)
    client = connect(hsock_proxy(*server.address))
    client.sendall(b"last words")
    client.shutdown(socket.SHUT_WR)
    assert recv_until_end(client) == (b"last words", None)


def test_unreachable_upstream_closes_the_client(hsock_proxy: ProxyFactory, connect: Any) -> None:
    port = _free_port()
    proxy = hsock_proxy("127.0.0.1", port)  # nobody listens there any more
    assert recv_until_end(connect(proxy)) == (b"", None)


# -- toxics, measured -------------------------------------------------------------------------


def test_latency_delays_every_round_trip_at_least_by_its_sum(
    hsock_proxy: ProxyFactory, upstream: Callable[[Handler], Upstream], connect: Any
) -> None:
    # Over real sockets only lower bounds hold on a busy machine; the exact schedule is pinned
    # on the virtual clock above (test_latency_delays_each_chunk_from_its_arrival).
    proxy = hsock_proxy(*upstream(echo).address)
    client = connect(proxy)
    round_trip(client)  # the twin: no toxic, the echo comes back
    proxy.downstream.latency(100)
    samples = [round_trip(client) for _ in range(5)]
    assert all(s >= 0.1 for s in samples), samples
    proxy.upstream.latency(100)
    both = round_trip(client)
    assert both >= 0.2, both


def test_bandwidth_takes_at_least_size_over_rate(
    hsock_proxy: ProxyFactory, upstream: Callable[[Handler], Upstream], connect: Any
) -> None:
    # The rate's exact schedule is pinned on the virtual clock
    # (test_bandwidth_spreads_bytes_at_the_rate); over sockets, a lower bound.
    proxy = hsock_proxy(*upstream(blaster(100_000)).address)
    client = connect(proxy)
    client.sendall(b"go\n")
    recv_exactly(client, 100_000)  # the twin: unlimited
    proxy.downstream.bandwidth(200_000)
    start = time.perf_counter()
    client.sendall(b"go\n")
    data = recv_exactly(client, 100_000)
    elapsed = time.perf_counter() - start
    # The first tick's worth (1/100 s) may go at once: 0.5 s - 0.01 s at the soonest.
    assert elapsed >= 0.49, f"100 kB at 200 kB/s took {elapsed:.3f} s"
    assert data == bytes(i % 251 for i in range(100_000))


def test_slicer_chunk_sizes_are_exact(
    hsock_proxy: ProxyFactory, upstream: Callable[[Handler], Upstream], connect: Any
) -> None:
    proxy = hsock_proxy(*upstream(echo).address)
    client = connect(proxy)
    message = bytes(range(100)) + b"\n"
    client.sendall(message)
    assert len(client.recv(4096)) == len(message)  # the twin: one piece
    proxy.downstream.slicer(7, delay=0.01)
    client.sendall(message)
    sizes, data = [], b""
    while len(data) < len(message):
        chunk = client.recv(4096)
        sizes.append(len(chunk))
        data += chunk
    assert data == message
    # What the proxy sent, piece by piece: a busy client may find two pieces in one recv().
    recorded = [e for e in proxy.records if e.direction == DOWNSTREAM][1:]
    assert [len(e.data) for e in recorded] == [7] * 14 + [3]
    assert len(sizes) <= 15
    gaps = [b.t - a.t for a, b in zip(recorded, recorded[1:])]
    assert min(gaps) >= 0.01


def test_reset_peer_resets_the_client_after_exactly_n_bytes(
    hsock_proxy: ProxyFactory, upstream: Callable[[Handler], Upstream], connect: Any
) -> None:
    proxy = hsock_proxy(*upstream(blaster(100_000)).address)
    proxy.downstream.reset_peer(12_345)
    client = connect(proxy)
    client.sendall(b"go\n")
    data, error = recv_until_end(client)
    assert len(data) == 12_345
    assert isinstance(error, ConnectionResetError)


def test_reset_peer_upstream_delivers_exactly_n_bytes_to_the_server(
    hsock_proxy: ProxyFactory, upstream: Callable[[Handler], Upstream], connect: Any
) -> None:
    server = upstream(sink)
    proxy = hsock_proxy(*server.address)
    proxy.upstream.reset_peer(10)
    client = connect(proxy)
    client.sendall(b"0123456789abcdef")
    assert isinstance(recv_until_end(client)[1], ConnectionResetError)
    assert server.closed.wait(WAIT)
    assert bytes(server.received) == b"0123456789"
    assert isinstance(server.error, ConnectionResetError)  # both peers were reset


def test_limit_data_closes_after_exactly_n_bytes(
    hsock_proxy: ProxyFactory, upstream: Callable[[Handler], Upstream], connect: Any
) -> None:
    proxy = hsock_proxy(*upstream(blaster(100_000)).address)
    proxy.downstream.limit_data(54_321)
    client = connect(proxy)
    client.sendall(b"go\n")
    data, error = recv_until_end(client)
    assert (len(data), error) == (54_321, None)
    assert data == bytes(i % 251 for i in range(54_321))


def test_limit_data_upstream_gives_the_server_exactly_n_bytes(
    hsock_proxy: ProxyFactory, upstream: Callable[[Handler], Upstream], connect: Any
) -> None:
    server = upstream(sink)
    proxy = hsock_proxy(*server.address)
    proxy.upstream.limit_data(4)
    client = connect(proxy)
    client.sendall(b"abcdefgh")
    assert server.closed.wait(WAIT)
    assert bytes(server.received) == b"abcd"
    assert server.error is None  # a clean end of stream, not a reset
    assert recv_until_end(client) == (b"", None)


def test_timeout_stops_forwarding_then_closes(
    hsock_proxy: ProxyFactory, upstream: Callable[[Handler], Upstream], connect: Any
) -> None:
    proxy = hsock_proxy(*upstream(echo).address)
    client = connect(proxy)
    round_trip(client)
    start = time.perf_counter()
    proxy.downstream.timeout(0.3)
    client.sendall(b"anyone?\n")
    data, error = recv_until_end(client)
    elapsed = time.perf_counter() - start
    assert (data, error) == (b"", None)  # the echo was swallowed, then the stream ended
    assert elapsed >= 0.3, elapsed  # never early; the exact deadline is pinned on the clock


def test_timeout_zero_hangs_until_removed(
    hsock_proxy: ProxyFactory, upstream: Callable[[Handler], Upstream], connect: Any
) -> None:
    proxy = hsock_proxy(*upstream(echo).address)
    client = connect(proxy)
    toxic = proxy.upstream.timeout(0)
    client.sendall(b"dropped\n")
    client.settimeout(0.2)
    with pytest.raises(socket.timeout):
        client.recv(100)
    client.settimeout(WAIT)
    toxic.remove()
    assert not toxic.active
    round_trip(client, b"after\n")


def test_toxic_added_while_connected_applies_at_once(
    hsock_proxy: ProxyFactory, upstream: Callable[[Handler], Upstream], connect: Any
) -> None:
    proxy = hsock_proxy(*upstream(echo).address)
    client = connect(proxy)
    round_trip(client)
    with proxy.upstream.latency(50) as toxic:
        assert isinstance(toxic, Toxic)
        assert proxy.upstream.toxics == [toxic]
        assert round_trip(client) >= 0.05
    assert proxy.upstream.toxics == []
    # Removed: a latency far longer than the wait would fail this round trip if it stayed.
    proxy.upstream.latency(60_000).remove()
    round_trip(client)


def test_removing_a_slicer_mid_transfer_releases_the_rest(
    hsock_proxy: ProxyFactory, upstream: Callable[[Handler], Upstream], connect: Any
) -> None:
    proxy = hsock_proxy(*upstream(blaster(20_000)).address)
    toxic = proxy.downstream.slicer(1, delay=0.01)  # 200 s for the whole payload
    client = connect(proxy)
    client.sendall(b"go\n")
    head = recv_exactly(client, 5)
    toxic.remove()
    rest = recv_exactly(client, 20_000 - 5)  # within WAIT (5 s), far under the 200 s
    assert head + rest == bytes(i % 251 for i in range(20_000))


def test_removing_latency_releases_held_bytes(
    hsock_proxy: ProxyFactory, upstream: Callable[[Handler], Upstream], connect: Any
) -> None:
    proxy = hsock_proxy(*upstream(echo).address)
    toxic = proxy.downstream.latency(10_000)
    client = connect(proxy)
    client.sendall(b"held\n")
    client.settimeout(0.1)
    with pytest.raises(socket.timeout):
        client.recv(100)
    client.settimeout(WAIT)
    toxic.remove()
    assert recv_exactly(client, 5) == b"held\n"  # within WAIT (5 s), under the 10 s latency


def test_clear_removes_every_toxic_of_a_direction(
    hsock_proxy: ProxyFactory, upstream: Callable[[Handler], Upstream]
) -> None:
    proxy = hsock_proxy(*upstream(echo).address)
    proxy.downstream.latency(10)
    proxy.downstream.slicer(2)
    kept = proxy.upstream.bandwidth(1000)
    assert "latency(10), slicer(2, delay=0)" in repr(proxy.downstream)
    proxy.downstream.clear()
    assert proxy.downstream.toxics == []
    assert proxy.upstream.toxics == [kept]


# -- on and off -------------------------------------------------------------------------------


def test_disable_cuts_live_connections_and_refuses_new_ones(
    hsock_proxy: ProxyFactory, upstream: Callable[[Handler], Upstream], connect: Any
) -> None:
    proxy = hsock_proxy(*upstream(echo).address)
    live = connect(proxy)
    round_trip(live)
    proxy.disable()
    assert not proxy.enabled
    assert proxy.connections == 0
    assert recv_until_end(live) == (b"", None)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(proxy.address, timeout=WAIT).close()
    proxy.enable()
    assert proxy.enabled
    round_trip(connect(proxy))


def test_disable_with_reset_resets_live_connections(
    hsock_proxy: ProxyFactory, upstream: Callable[[Handler], Upstream], connect: Any
) -> None:
    proxy = hsock_proxy(*upstream(echo).address)
    live = connect(proxy)
    round_trip(live)
    proxy.disable(reset=True)
    assert isinstance(recv_until_end(live)[1], ConnectionResetError)


def test_close_is_idempotent_and_ends_everything(
    upstream: Callable[[Handler], Upstream], connect: Any
) -> None:
    server = upstream(echo)
    with FaultProxy.start(*server.address) as proxy:
        client = connect(proxy)
        round_trip(client)
        assert proxy.connections == 1
    assert "closed" in repr(proxy)
    assert proxy.connections == 0
    assert recv_until_end(client) == (b"", None)
    proxy.close()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(proxy.address, timeout=WAIT).close()


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _live_greenlets() -> int:
    import greenlet
    from gevent.hub import Hub

    from pytest_hsocket._loop.callbacks import CallbackWorker

    gc.collect()
    return sum(
        1
        for o in gc.get_objects()
        if isinstance(o, greenlet.greenlet)
        and not isinstance(o, (Hub, CallbackWorker))
        and not o.dead
        and o.parent is not None
    )


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts descriptors in /proc")
@pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")
def test_close_leaks_no_socket_and_no_greenlet() -> None:
    # A socket dropped unclosed on the loop is closed by the collector with a ResourceWarning
    # that pytest reports as unraisable: the filter above makes that fail this test.
    get_loop().run_sync(lambda: None)
    before = (_open_fds(), _live_greenlets())
    server = Upstream(echo)
    proxy = FaultProxy.start(*server.address)
    clients = [socket.create_connection(proxy.address, timeout=WAIT) for _ in range(3)]
    for client in clients:
        round_trip(client)
    proxy.downstream.latency(10_000)
    clients[0].sendall(b"held\n")  # a writer waiting on its toxic
    proxy.upstream.bandwidth(1)
    clients[1].sendall(b"slow\n")  # another waiting on its rate
    proxy.close()
    assert [recv_until_end(client)[1] for client in clients] == [None, None, None]
    for client in clients:
        client.close()
    server.close()
    get_loop().run_sync(lambda: None)  # the greenlet that ran close() has returned
    assert (_open_fds(), _live_greenlets()) == before


def test_bad_factory_arguments_are_refused(hsock_proxy: ProxyFactory) -> None:
    with pytest.raises(TypeError, match="port"):
        hsock_proxy("127.0.0.1")
    with pytest.raises(TypeError, match=r"\.address"):
        hsock_proxy(object())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="upstream_port"):
        hsock_proxy("127.0.0.1", 0)


def test_works_in_a_gevent_monkey_patched_process(tmp_path: Path) -> None:
    script = tmp_path / "patched.py"
    script.write_text(
        "from gevent import monkey; monkey.patch_all()\n"
        "import socket, time\n"
        "import pytest_hsocket as hsocket\n"
        "from pytest_hsocket._helpers.proxy import FaultProxy\n"
        "server = hsocket.server(0, lambda d, t, c: c.write(d.upper()))\n"
        "server.on_connect(lambda c: c.read(b'\\n'))\n"
        "with FaultProxy.start('127.0.0.1', server.info()['localPort']) as proxy:\n"
        "    proxy.downstream.latency(50)\n"
        "    with socket.create_connection(proxy.address, timeout=5) as plain:\n"
        "        start = time.perf_counter()\n"
        "        plain.sendall(b'green\\n')\n"
        "        reply = plain.recv(100)\n"
        "        elapsed = time.perf_counter() - start\n"
        "server.disconnect()\n"
        "print(reply, elapsed >= 0.05)\n"
    )
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "b'GREEN\\n' True"
    assert "Exception ignored" not in result.stderr


# -- TLS passes through -----------------------------------------------------------------------


def test_tls_passes_through_untouched(
    hsock_tls_server: MockServer, hsock_client: Any, hsock_proxy: ProxyFactory
) -> None:
    hsock_tls_server.expect(b"PING\r\n").respond(b"+PONG\r\n")
    proxy = hsock_proxy(hsock_tls_server)
    proxy.downstream.slicer(100, delay=0.001)  # records cut in pieces still decrypt
    client = hsock_client(proxy, tls=True, peer_name="localhost")
    client.write(b"PING\r\n")
    assert client.expect(b"\r\n") == b"+PONG\r\n"
    client.close()
    sent = b"".join(e.data for e in proxy.records if e.direction == UPSTREAM)
    assert sent[:1] == b"\x16"  # a TLS handshake record: the proxy did not terminate TLS
    assert b"PING" not in sent


def test_stdlib_tls_client_sees_the_servers_certificate(
    hsock_tls_server: MockServer, hsock_ca: trustme.CA, hsock_proxy: ProxyFactory
) -> None:
    hsock_tls_server.expect(b"hello\n").respond(b"world\n")
    proxy = hsock_proxy(hsock_tls_server)
    context = ssl.create_default_context()
    hsock_ca.configure_trust(context)
    with socket.create_connection(proxy.address, timeout=WAIT) as raw:
        with context.wrap_socket(raw, server_hostname="localhost") as tls:
            tls.sendall(b"hello\n")
            assert recv_exactly(tls, 6) == b"world\n"
            assert ("DNS", "localhost") in tls.getpeercert()["subjectAltName"]  # type: ignore[index]


def test_tls_fails_through_the_proxy_with_the_wrong_ca(
    hsock_tls_server: MockServer, hsock_proxy: ProxyFactory
) -> None:
    proxy = hsock_proxy(hsock_tls_server)
    context = ssl.create_default_context()
    trustme.CA().configure_trust(context)  # the twin: a CA that did not sign the server
    with socket.create_connection(proxy.address, timeout=WAIT) as raw:
        with pytest.raises(ssl.SSLCertVerificationError):
            context.wrap_socket(raw, server_hostname="localhost")


# -- the record, over real traffic ------------------------------------------------------------


def test_record_save_and_load_round_trip(
    hsock_proxy: ProxyFactory, upstream: Callable[[Handler], Upstream], connect: Any, tmp_path: Path
) -> None:
    proxy = hsock_proxy(*upstream(echo).address)
    first = connect(proxy)
    round_trip(first, b"text\n")
    second = connect(proxy)
    round_trip(second, b"\xff\xfe\n")
    path = tmp_path / "conversation.jsonl"
    proxy.save(path)
    loaded = load_recording(path)
    assert loaded == [e._replace(t=round(e.t, 6)) for e in proxy.records]
    assert [(e.conn, e.direction, e.data) for e in loaded] == [
        (1, UPSTREAM, b"text\n"),
        (1, DOWNSTREAM, b"text\n"),
        (2, UPSTREAM, b"\xff\xfe\n"),
        (2, DOWNSTREAM, b"\xff\xfe\n"),
    ]
    assert [e.t for e in loaded] == sorted(e.t for e in loaded)
    lines = path.read_text("utf-8").splitlines()
    assert json.loads(lines[0]).keys() == {"t", "dir", "conn", "text"}
    assert json.loads(lines[2]).keys() == {"t", "dir", "conn", "b64"}


# -- a real redis-server through the proxy, with redis-py -------------------------------------


def _free_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port: int = probe.getsockname()[1]
        return port


def _accepts(proc: subprocess.Popen[bytes], port: int) -> bool:
    """Connect until redis-server accepts (True), exits, or 10 s pass (False)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            time.sleep(0.02)  # polling another process that is still starting
    return False


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture
def redis_port(tmp_path: Path) -> Iterator[int]:
    """A throw-away redis-server on a free loopback port."""
    executable = shutil.which("redis-server")
    if executable is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    log = tmp_path / "redis.log"
    for _attempt in range(3):  # another process may take the free port before redis binds it
        port = _free_port()
        argv = [executable, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
        argv += ["--appendonly", "no", "--dir", str(tmp_path)]
        with log.open("wb") as out:
            proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
        if _accepts(proc, port):
            break
        _stop(proc)
    else:
        pytest.fail(f"redis-server did not start:\n{log.read_text()}")
    try:
        yield port
    finally:
        _stop(proc)


@pytest.fixture
def redis_client() -> Iterator[Callable[..., redis.Redis]]:
    clients: list[redis.Redis] = []

    def make(proxy: FaultProxy, retry: Optional[Retry] = None) -> redis.Redis:
        client = redis.Redis(
            proxy.host, proxy.port, socket_timeout=0.2, retry=retry or Retry(NoBackoff(), 0)
        )
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def test_redis_times_out_under_latency(
    redis_port: int, hsock_proxy: ProxyFactory, redis_client: Callable[..., redis.Redis]
) -> None:
    proxy = hsock_proxy("127.0.0.1", redis_port)
    r = redis_client(proxy)
    assert r.set("greeting", "hello") is True
    toxic = proxy.downstream.latency(500)
    start = time.perf_counter()
    with pytest.raises(redis.exceptions.TimeoutError):
        r.get("greeting")
    elapsed = time.perf_counter() - start
    assert elapsed >= 0.2, f"socket_timeout=0.2 fired after {elapsed:.3f} s"
    toxic.remove()
    assert r.get("greeting") == b"hello"


def test_redis_retry_succeeds_once_reset_peer_is_removed(
    redis_port: int, hsock_proxy: ProxyFactory, redis_client: Callable[..., redis.Redis]
) -> None:
    proxy = hsock_proxy("127.0.0.1", redis_port)
    r = redis_client(proxy)
    toxic = proxy.downstream.reset_peer(0)
    with pytest.raises(redis.exceptions.ConnectionError):
        r.ping()
    toxic.remove()
    assert r.ping() is True  # the retry connects anew and gets through


class _RemoveOnBackoff(AbstractBackoff):
    """A backoff that takes a toxic off when redis-py is about to retry."""

    def __init__(self, toxic: Toxic) -> None:
        self.toxic = toxic
        self.calls = 0

    def compute(self, failures: int) -> float:
        self.calls += 1
        self.toxic.remove()
        return 0.0

    def __deepcopy__(self, memo: dict[int, Any]) -> _RemoveOnBackoff:
        return self  # redis-py copies its retry policy; keep this one shared


@pytest.mark.skipif(
    tuple(int(p) for p in redis.__version__.split(".")[:1]) < (8,),
    reason="redis-py before 8 connects (and reads the handshake reply) outside its retry loop",
)
def test_redis_own_retry_gets_through_after_a_reset(
    redis_port: int, hsock_proxy: ProxyFactory, redis_client: Callable[..., redis.Redis]
) -> None:
    proxy = hsock_proxy("127.0.0.1", redis_port)
    backoff = _RemoveOnBackoff(proxy.downstream.reset_peer(0))
    r = redis_client(proxy, Retry(backoff, 1))
    assert r.ping() is True
    assert backoff.calls == 1
    assert proxy.accepted == 2  # the first connection was reset, the retry got through
