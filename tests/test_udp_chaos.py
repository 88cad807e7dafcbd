"""The UDP chaos proxy: pure decisions on a virtual clock, then measured effects on loopback.

The I/O tests send with plain blocking sockets through the proxy to a plain socket standing in
for the server, in windows: each window is settled (everything the proxy read is forwarded or
dropped) and then exactly the forwarded number of datagrams is read, so the kernel never has a
reason to drop one and no count depends on timing. No sleeps.
"""

from __future__ import annotations

import bisect
import random
import socket
import statistics
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any, Callable, Optional

import pytest

from pytest_hsocket import HSocketError, udp
from pytest_hsocket._core.chaos import (
    ChaosSpec,
    Delay,
    Drop,
    Duplicate,
    Emit,
    Lane,
    Reorder,
    Truncate,
)
from pytest_hsocket._core.errors import ReadTimeout
from pytest_hsocket._helpers.udp_proxy import UdpProxy
from pytest_hsocket.plugin.udp_proxy import UdpProxyFactory
from pytest_hsocket.testing import UdpMockServer, UdpTestClient

from .conftest import WAIT, _live_greenlets, _open_fds

WINDOW = 100
"""Datagrams in flight at once: the default receive buffer holds ~256 small ones."""


# -- pure decisions ---------------------------------------------------------------------------


class Scripted(random.Random):
    """A generator whose ``random()`` plays a script: decisions chosen by the test."""

    values: list[float]

    def random(self) -> float:
        return self.values.pop(0)


def scripted(*values: float) -> Scripted:
    # Set after construction: before 3.11, Random.__new__ seeds itself from the arguments.
    rng = Scripted()
    rng.values = list(values)
    return rng


def lane_with(*specs: ChaosSpec, rng: Optional[random.Random] = None) -> Lane:
    lane = Lane(rng or random.Random(0))
    for index, spec in enumerate(specs):
        lane.add(index, spec)
    return lane


def test_drop_rate_is_drawn_from_the_seeded_generator() -> None:
    lane = lane_with(Drop(0.2))
    kept = sum(len(lane.feed(b"%d" % n, 0.0)) for n in range(5000))
    assert lane.stats.received == 5000
    assert lane.stats.dropped == 5000 - kept
    assert 0.17 <= lane.stats.dropped / 5000 <= 0.23


def test_rate_zero_never_and_rate_one_always() -> None:
    never, always = lane_with(Drop(0)), lane_with(Drop(1))
    for n in range(200):
        assert never.feed(b"%d" % n, 0.0) == [Emit(b"%d" % n, 0.0, None)]
        assert always.feed(b"%d" % n, 0.0) == []


def test_duplicate_sends_the_copy_right_after_the_original() -> None:
    lane = lane_with(Duplicate(0.5), rng=scripted(0.1, 0.9))
    assert lane.feed(b"a", 1.0, "to") == [Emit(b"a", 1.0, "to"), Emit(b"a", 1.0, "to")]
    assert lane.feed(b"b", 2.0, "to") == [Emit(b"b", 2.0, "to")]
    assert lane.stats.duplicated == 1


def test_truncate_cuts_only_datagrams_longer_than_the_size() -> None:
    lane = lane_with(Truncate(1, 4))
    assert [e.data for e in lane.feed(b"0123456789", 0.0)] == [b"0123"]
    assert [e.data for e in lane.feed(b"0123", 0.0)] == [b"0123"]
    assert [e.data for e in lane.feed(b"01", 0.0)] == [b"01"]
    assert lane.stats.truncated == 1
    assert [e.data for e in lane_with(Truncate(1, 0)).feed(b"abc", 0.0)] == [b""]


def test_reorder_releases_a_held_datagram_after_window_overtakers() -> None:
    lane = lane_with(Reorder(0.5, window=2), rng=scripted(0.1, 0.9, 0.9, 0.9))
    assert lane.feed(b"0", 0.0) == []
    assert lane.held == 1
    assert [e.data for e in lane.feed(b"1", 0.1)] == [b"1"]
    assert [e.data for e in lane.feed(b"2", 0.2)] == [b"2", b"0"]
    assert lane.feed(b"3", 0.3)[0].data == b"3"
    assert lane.stats.reordered == 1
    assert lane.held == 0


def test_reorder_releases_when_too_few_follow_within_max_hold() -> None:
    lane = lane_with(Reorder(1, window=3, max_hold_ms=50))
    assert lane.feed(b"alone", 10.0) == []
    assert lane.next_due() == pytest.approx(10.05)
    assert lane.due(10.049) == []
    assert lane.due(10.05) == [Emit(b"alone", 10.05, None)]
    assert lane.next_due() is None
    assert lane.stats.reordered == 0  # nothing overtook it: late, but in order


def test_removing_reorder_releases_what_it_held_through_the_later_effects() -> None:
    lane = Lane(random.Random(0))
    lane.add("reorder", Reorder(1, window=5, max_hold_ms=10_000))
    lane.add("delay", Delay(100))
    assert lane.feed(b"a", 1.0) == []
    assert lane.feed(b"b", 1.5) == []
    assert lane.remove("reorder", 2.0) == [Emit(b"a", 2.1, None), Emit(b"b", 2.1, None)]
    assert lane.remove("reorder", 2.0) == []  # gone already
    assert lane.feed(b"c", 3.0) == [Emit(b"c", 3.1, None)]


def test_delay_with_jitter_stays_within_the_jitter() -> None:
    lane = lane_with(Delay(50, jitter=10))
    delays = [lane.feed(b"x", 100.0)[0].at - 100.0 for _ in range(2000)]
    assert min(delays) >= 0.040
    assert max(delays) <= 0.060
    assert statistics.mean(delays) == pytest.approx(0.050, abs=0.001)
    assert lane_with(Delay(0, jitter=5)).feed(b"x", 1.0)[0].at >= 1.0  # never before arrival


def test_effects_apply_in_the_order_they_were_added() -> None:
    # Truncate then duplicate: both copies are cut. Duplicate then truncate: each copy draws.
    cut_first = lane_with(Truncate(1, 1), Duplicate(1))
    assert [e.data for e in cut_first.feed(b"abc", 0.0)] == [b"a", b"a"]
    copy_first = lane_with(Duplicate(1), Truncate(0.5, 1), rng=scripted(0.0, 0.1, 0.9))
    assert [e.data for e in copy_first.feed(b"abc", 0.0)] == [b"a", b"abc"]


def _decisions(seed: int) -> list[Emit]:
    lane = lane_with(
        Drop(0.2), Duplicate(0.1), Truncate(0.3, 2), Reorder(0.2), Delay(5, jitter=2),
        rng=random.Random(seed),
    )  # fmt: skip
    out: list[Emit] = []
    for n in range(1000):
        out += lane.feed(b"%04d" % n, n / 1000)
        out += lane.due(n / 1000)
    return out


def test_same_seed_same_decisions_and_another_seed_differs() -> None:
    assert _decisions(7) == _decisions(7)
    assert _decisions(7) != _decisions(8)


@pytest.mark.parametrize(
    ("make", "error"),
    [
        pytest.param(lambda: Drop(1.5), ValueError, id="rate-above-1"),
        pytest.param(lambda: Drop(-0.1), ValueError, id="rate-negative"),
        pytest.param(lambda: Drop(True), TypeError, id="rate-bool"),
        pytest.param(lambda: Duplicate("0.1"), TypeError, id="rate-str"),  # type: ignore[arg-type]
        pytest.param(lambda: Duplicate(float("nan")), ValueError, id="rate-nan"),
        pytest.param(lambda: Truncate(0.5, -1), ValueError, id="size-negative"),
        pytest.param(lambda: Truncate(0.5, 1.5), TypeError, id="size-float"),  # type: ignore[arg-type]
        pytest.param(lambda: Reorder(0.5, window=0), ValueError, id="window-0"),
        pytest.param(lambda: Reorder(0.5, max_hold_ms=-1), ValueError, id="hold-negative"),
        pytest.param(lambda: Delay(-1), ValueError, id="delay-negative"),
        pytest.param(lambda: Delay(10, jitter=float("inf")), ValueError, id="jitter-inf"),
    ],
)
def test_bad_arguments_are_refused(make: Callable[[], object], error: type[Exception]) -> None:
    with pytest.raises(error):
        make()


def test_describe_gives_the_call() -> None:
    assert [spec.describe() for spec in (Drop(0.2), Truncate(1, 8), Delay(40, jitter=5))] == [
        "drop(0.2)",
        "truncate(1, 8)",
        "delay(40, jitter=5)",
    ]


# -- through real sockets ---------------------------------------------------------------------


class Peer:
    """A plain UDP socket: a client of the proxy, or the server behind it."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)  # room for a window
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(WAIT)
        self.address: tuple[str, int] = self.sock.getsockname()

    def take(self, count: int) -> list[bytes]:
        return [self.sock.recv(65536) for _ in range(count)]

    def take_timed(self, count: int) -> list[tuple[float, bytes]]:
        got = []
        for _ in range(count):
            data = self.sock.recv(65536)
            got.append((time.perf_counter(), data))
        return got

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def server() -> Iterator[Peer]:
    peer = Peer()
    yield peer
    peer.close()


@pytest.fixture
def client() -> Iterator[Peer]:
    peer = Peer()
    yield peer
    peer.close()


def pump(proxy: UdpProxy, client: Peer, server: Peer, payloads: Sequence[bytes]) -> list[bytes]:
    """Send through the proxy in windows; return what the server got, in arrival order."""
    got: list[bytes] = []
    errors_before = _udp_receive_errors()
    for start in range(0, len(payloads), WINDOW):
        for payload in payloads[start : start + WINDOW]:
            client.sock.sendto(payload, proxy.address)
        proxy.settle()
        forwarded = proxy.stats.upstream.forwarded
        try:
            got += server.take(forwarded - len(got))
        except socket.timeout:
            kernel = _udp_receive_errors() - errors_before
            pytest.fail(
                f"the proxy forwarded {forwarded} datagrams, the server got {len(got)} "
                f"(the kernel dropped {kernel} system-wide); {proxy.stats.upstream}"
            )
    stats = proxy.stats.upstream
    kernel = _udp_receive_errors() - errors_before
    # Exact, per socket: nothing lost on the way in (received) or out (take() got them all).
    assert stats.received == len(payloads), f"the kernel dropped datagrams ({kernel} system-wide)"
    return got


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


def numbered(count: int, size: int = 5) -> list[bytes]:
    return [b"%0*d" % (size, n) for n in range(count)]


def test_forwards_both_ways_and_each_client_gets_its_own_replies(
    hsock_udp_proxy: UdpProxyFactory, server: Peer
) -> None:
    proxy = hsock_udp_proxy(*server.address)
    one, two = Peer(), Peer()
    try:
        one.sock.sendto(b"from one", proxy.address)
        two.sock.sendto(b"from two", proxy.address)
        senders = {}
        for _ in range(2):
            data, sender = server.sock.recvfrom(100)
            senders[data] = sender
            server.sock.sendto(b"reply to " + data, sender)
        assert senders[b"from one"] != senders[b"from two"]  # one upstream socket per client
        assert one.sock.recvfrom(100) == (b"reply to from one", proxy.address)
        assert two.sock.recvfrom(100) == (b"reply to from two", proxy.address)
        assert proxy.clients == 2
        assert proxy.stats.downstream.forwarded == 2
    finally:
        one.close()
        two.close()


def test_drop_20_percent_over_5000_datagrams(
    hsock_udp_proxy: UdpProxyFactory, client: Peer, server: Peer
) -> None:
    proxy = hsock_udp_proxy(*server.address)
    proxy.upstream.drop(0.2)
    got = pump(proxy, client, server, numbered(5000))
    stats = proxy.stats.upstream
    assert len(set(got)) == len(got) == stats.forwarded == 5000 - stats.dropped
    assert got == sorted(got)  # dropping does not reorder
    assert 0.17 <= stats.dropped / 5000 <= 0.23


def test_duplicate_10_percent_over_5000_datagrams(
    hsock_udp_proxy: UdpProxyFactory, client: Peer, server: Peer
) -> None:
    proxy = hsock_udp_proxy(*server.address)
    proxy.upstream.duplicate(0.1)
    got = pump(proxy, client, server, numbered(5000))
    extra = len(got) - len(set(got))
    assert set(got) == set(numbered(5000))
    assert extra == proxy.stats.upstream.duplicated
    assert 0.08 <= extra / 5000 <= 0.12
    assert all(a <= b for a, b in zip(got, got[1:]))  # each copy right after its original


def test_reorder_delivers_every_datagram_some_out_of_order(
    hsock_udp_proxy: UdpProxyFactory, client: Peer, server: Peer
) -> None:
    proxy = hsock_udp_proxy(*server.address)
    proxy.upstream.reorder(0.1, window=3, max_hold_ms=20)
    got = pump(proxy, client, server, numbered(1000))
    assert sorted(got) == numbered(1000)  # none lost, none doubled
    seen: list[bytes] = []
    overtaken = []
    for data in got:
        overtaken.append(len(seen) - bisect.bisect(seen, data))  # higher ones that came first
        bisect.insort(seen, data)
    late = sum(1 for n in overtaken if n)
    assert late == proxy.stats.upstream.reordered > 0
    assert max(overtaken) <= 3  # at most `window` datagrams overtake one


def test_truncate_cuts_to_the_size_both_ways(
    hsock_udp_proxy: UdpProxyFactory, client: Peer, server: Peer
) -> None:
    proxy = hsock_udp_proxy(*server.address)
    proxy.upstream.truncate(0.5, 8)
    payloads = numbered(1000, size=64)
    got = pump(proxy, client, server, payloads)
    cut = [data for data in got if len(data) == 8]
    assert len(got) == 1000
    assert all(data in payloads or data == payloads[n][:8] for n, data in enumerate(got))
    assert len(cut) == proxy.stats.upstream.truncated
    assert 0.4 <= len(cut) / 1000 <= 0.6
    proxy.downstream.truncate(1, 3)
    client.sock.sendto(b"ask", proxy.address)
    server.sock.sendto(b"a long reply", server.sock.recvfrom(100)[1])
    assert client.sock.recv(100) == b"a l"


@pytest.mark.parametrize(
    ("ms", "jitter"), [pytest.param(40, 0, id="40ms"), pytest.param(40, 10, id="40ms-jitter10")]
)
def test_delay_is_never_shorter_than_what_was_asked(
    hsock_udp_proxy: UdpProxyFactory, client: Peer, server: Peer, ms: float, jitter: float
) -> None:
    proxy = hsock_udp_proxy(*server.address)
    proxy.upstream.delay(ms, jitter=jitter)
    measured: list[float] = []
    # Over real sockets, a busy machine only makes datagrams later: assert the lower bound and
    # the order; the exact delays and the jitter's spread are pinned on the pure lane
    # (test_delay_with_jitter_stays_within_the_jitter).
    for round_ in range(5):
        payloads = [b"%d-%d" % (round_, n) for n in range(10)]
        sent_at = {}
        for payload in payloads:
            sent_at[payload] = time.perf_counter()
            client.sock.sendto(payload, proxy.address)
        arrivals = server.take_timed(10)
        measured += [(at - sent_at[data]) * 1000 for at, data in arrivals]
        if not jitter:
            assert [data for _, data in arrivals] == payloads  # the order is kept
    assert min(measured) >= ms - jitter  # never early: sent at read time + delay at the soonest


def test_delay_downstream_delays_the_replies(
    hsock_udp_proxy: UdpProxyFactory, client: Peer, server: Peer
) -> None:
    proxy = hsock_udp_proxy(*server.address)
    proxy.downstream.delay(30)
    round_trips = []
    for _ in range(5):
        started = time.perf_counter()
        client.sock.sendto(b"ping", proxy.address)
        server.sock.sendto(b"pong", server.sock.recvfrom(100)[1])
        assert client.sock.recv(100) == b"pong"
        round_trips.append((time.perf_counter() - started) * 1000)
    assert min(round_trips) >= 30


def test_same_seed_gives_the_same_datagrams_through_the_proxy(
    hsock_udp_proxy: UdpProxyFactory,
) -> None:
    runs = {}
    for label, seed in (("a", 7), ("b", 7), ("other", 8)):
        client, server = Peer(), Peer()
        try:
            proxy = hsock_udp_proxy(*server.address, seed=seed)
            proxy.upstream.drop(0.3)
            proxy.upstream.duplicate(0.2)
            proxy.upstream.truncate(0.2, 3)
            runs[label] = pump(proxy, client, server, numbered(500))
        finally:
            client.close()
            server.close()
    assert runs["a"] == runs["b"]
    assert runs["a"] != runs["other"]


class Traffic:
    """A thread sending numbered datagrams to the proxy without pause, settling every 50."""

    def __init__(self, proxy: UdpProxy, client: Peer) -> None:
        self.proxy = proxy
        self.client = client
        self.sent = 0
        self._cond = threading.Condition()
        self._stop = False
        self.errors: list[BaseException] = []
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop:
                self.client.sock.sendto(b"%06d" % self.sent, self.proxy.address)
                with self._cond:
                    self.sent += 1
                    self._cond.notify_all()
                if self.sent % 50 == 0:
                    self.proxy.settle()
        except BaseException as exc:  # pragma: no cover - reported by stop()
            self.errors.append(exc)

    def wait_sent(self, count: int) -> int:
        with self._cond:
            assert self._cond.wait_for(lambda: self.sent >= count, WAIT), "traffic stalled"
            return self.sent

    def stop(self) -> int:
        self._stop = True
        self._thread.join(WAIT)
        assert not self.errors, self.errors
        return self.sent


class Collector:
    """A thread reading what the server gets; tells a waiter when a count is reached."""

    def __init__(self, server: Peer) -> None:
        self.server = server
        self.got: list[bytes] = []
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._stop = False
        server.sock.settimeout(0.05)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop:
            try:
                data = self.server.sock.recv(100)
            except (socket.timeout, OSError):
                continue
            with self._cond:
                self.got.append(data)
                self._cond.notify_all()

    def wait_for(self, count: int) -> None:
        with self._cond:
            assert self._cond.wait_for(lambda: len(self.got) >= count, WAIT), len(self.got)

    def stop(self) -> list[bytes]:
        self._stop = True
        self._thread.join(WAIT)
        return self.got


def test_chaos_added_and_removed_while_traffic_flows(
    hsock_udp_proxy: UdpProxyFactory, client: Peer, server: Peer
) -> None:
    proxy = hsock_udp_proxy(*server.address)
    collector = Collector(server)
    traffic = Traffic(proxy, client)
    try:
        collector.wait_for(200)
        blackout = proxy.upstream.drop(1)
        traffic.wait_sent(traffic.sent + 200)
        blackout.remove()
        traffic.wait_sent(traffic.sent + 200)
        with proxy.upstream.duplicate(1) as doubling:
            assert doubling.active
            traffic.wait_sent(traffic.sent + 200)
        assert not doubling.active
        traffic.wait_sent(traffic.sent + 200)
    finally:
        sent = traffic.stop()
    proxy.settle()
    stats = proxy.stats.upstream
    collector.wait_for(stats.forwarded)
    got = [int(data) for data in collector.stop()]
    assert stats.received == sent
    missing = sorted(set(range(sent)) - set(got))
    doubled = sorted({n for n in got if got.count(n) == 2})
    # One blackout, then one stretch of doubles, each a single run of consecutive numbers.
    assert len(missing) == stats.dropped >= 150
    assert missing == list(range(missing[0], missing[0] + len(missing)))
    assert len(doubled) == stats.duplicated >= 150
    assert doubled == list(range(doubled[0], doubled[0] + len(doubled)))
    assert missing[-1] < doubled[0]
    assert got == sorted(got)


def test_removing_reorder_releases_held_datagrams_and_settle_fails_while_held(
    hsock_udp_proxy: UdpProxyFactory, client: Peer, server: Peer
) -> None:
    proxy = hsock_udp_proxy(*server.address)
    holding = proxy.upstream.reorder(1, window=3, max_hold_ms=60_000)
    client.sock.sendto(b"one", proxy.address)
    client.sock.sendto(b"two", proxy.address)
    with pytest.raises(HSocketError, match=r"2 datagram\(s\) still delayed or held"):
        proxy.settle(timeout=0.05)
    holding.remove()
    assert server.take(2) == [b"one", b"two"]
    proxy.settle()
    assert repr(holding) == "<Chaos upstream.reorder(1, window=3, max_hold_ms=60000) (removed)>"


def test_with_the_udp_fixtures_a_dropped_reply_times_out(
    hsock_udp_proxy: UdpProxyFactory,
    hsock_udp_server: UdpMockServer,
    hsock_udp_client: Callable[..., UdpTestClient],
) -> None:
    hsock_udp_server.expect(b"PING", times=None).respond(b"PONG")
    proxy = hsock_udp_proxy(hsock_udp_server)
    client = hsock_udp_client(proxy)
    assert client.request(b"PING") == b"PONG"
    with proxy.downstream.drop(1):
        with pytest.raises(ReadTimeout):
            client.request(b"PING", timeout=0.1)
    assert client.request(b"PING") == b"PONG"
    assert proxy.stats.downstream.dropped == 1


def test_close_is_idempotent_and_leaves_no_socket_or_greenlet(server: Peer) -> None:
    proxy = UdpProxy.start(*server.address)
    proxy.close()  # the loop's own descriptors and greenlets exist from here on
    fds, greenlets = _open_fds(), _live_greenlets()
    clients = [Peer() for _ in range(3)]
    proxy = UdpProxy.start(*server.address)
    proxy.downstream.delay(10_000)
    for peer in clients:
        peer.sock.sendto(b"hello", proxy.address)
    senders = [server.sock.recvfrom(100)[1] for _ in clients]
    for sender in senders:
        server.sock.sendto(b"held back by the delay", sender)
    proxy.close()
    proxy.close()
    for peer in clients:
        peer.close()
    assert proxy.closed
    assert _open_fds() == fds
    assert _live_greenlets() == greenlets
    proxy.settle()  # nothing to wait for once closed


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(("127.0.0.1",), id="host-without-port"),
        pytest.param((object(),), id="no-address"),
    ],
)
def test_fixture_refuses_a_target_without_an_address(
    hsock_udp_proxy: UdpProxyFactory, args: tuple[Any, ...]
) -> None:
    with pytest.raises(TypeError, match="hsock_udp_proxy"):
        hsock_udp_proxy(*args)


def test_udp_module_client_through_the_proxy(
    hsock_udp_proxy: UdpProxyFactory, server: Peer
) -> None:
    proxy = hsock_udp_proxy(*server.address, seed=3)
    sock = udp.new().connect(*proxy.address)
    assert sock is not None
    sock.send(b"hs.socket.udp")
    assert server.take(1) == [b"hs.socket.udp"]
    sock.close()
