"""Round-trip latency and many concurrent connections of ``pytest_hsocket``, beside the floor
and asyncio, in one run.

Run it from the repository root, with the package importable::

    python benchmarks/bench_latency.py            # full run, about a minute and a half
    python benchmarks/bench_latency.py --quick    # 2,000 round trips, 500 connections
    python benchmarks/bench_latency.py --quick --json out.json
    python benchmarks/bench_latency.py --one-cpu  # figure 3 only with every thread on one CPU
    python benchmarks/bench_latency.py --placements free  # figure 3 as the scheduler places it
    python benchmarks/bench_latency.py --profile  # then profile ours (see below)

Every figure is the median of ``--repeat`` runs (5; 3 with ``--quick``); the runs of the
variants compared on one workload are interleaved (the order reverses every other round, so a
slow spell of the machine hits all of them alike). The tables show ``ours/peer`` ratios;
``--json`` writes the same rows plus every run's figures. There is no sleep anywhere: every
wait is an event, a lock, a socket, a pipe or a thread join with a timeout (``--timeout``), and
a timeout fails the run. Every server, client and process is closed at the end of its run.

3. **Round-trip latency.** ``N`` = 10,000 request/response pairs per run (2,000 with
   ``--quick``) over one connection to 127.0.0.1: the client sends ``b"PING\\r\\n"``, the server
   answers ``b"+PONG\\r\\n"``, the client reads up to ``b"\\r\\n"``; the next request goes once
   the answer is in. Each pair is timed on its own (``perf_counter_ns`` before the write, after
   the reply); the figures of a run are the **median** and **p99** (nearest rank) of its N
   times, and **mean** = the run's wall time / N. ``cpu`` = this process's CPU time (every
   thread) per round trip. Before the clock starts, each connection makes 200 untimed round
   trips (warm-up). Variants, every one in this process:

   - *raw* (the floor every row is compared with): a blocking stdlib client (``sendall``, then
     ``recv`` until ``b"\\r\\n"``) against a blocking echo server thread (``accept``, then
     ``recv`` and one ``sendall(b"+PONG\\r\\n")`` per complete line). TCP_NODELAY on both ends.
   - *loop* (a reference: the floor of the fixtures' design): no ``pytest_hsocket`` code. The
     main thread hands each ``b"PING\\r\\n"`` to **one** background thread that owns both ends
     of the connection (a selector, a wake-up pipe, a lock to wait on), as DESIGN.md puts every
     socket on the socket loop: each round trip crosses threads twice, like raw, but both
     ends' system calls run one after the other in that thread. ``fixture / loop`` is what
     ours costs over any implementation of that design (see ``_design_floor.py``).
   - *fixture*: the fixture path, as a user's test does it: ``MockServer.start()`` scripted with
     ``expect(b"PING\\r\\n", times=None).respond(b"+PONG\\r\\n")`` (what ``hsock_server`` is), and
     ``TestClient.open(*server.address)`` (what ``hsock_client(hsock_server)`` is) doing
     ``client.write(b"PING\\r\\n")`` then ``client.expect(b"\\r\\n")`` (the reply is checked). At
     the end ``client.disconnect()``, ``server.close()`` and ``server.check()``, as the fixtures'
     teardown. Both ends run on the socket loop's thread; the test's calls on the main thread.
   - *server*: our server side alone: ``hsocket.server(0, cb)`` whose callback
     ``cb(data, tag, client)`` checks the line, ``client.write(b"+PONG\\r\\n")`` and re-queues
     ``client.read(b"\\r\\n", 1)``; the client is the raw blocking one above.

   ``x raw`` = a variant's figure over raw's (below 1 = faster). The issue's target: the
   *fixture* median within 3x of raw's.

   **Placements.** Every variant runs three times over, with its threads placed three ways
   (``--placements``, see ``_placement.py``): *free* (as the scheduler decides: the issue's
   figure), *same* (every thread on one CPU) and *split* (the client side, the main thread,
   on one CPU; the server side, the server thread or the socket loop, on another). Each
   placement has its own table and verdict. The reason: on a small virtual machine most of a
   round trip between two threads is the kernel waking the other one, and that costs a
   context switch (~3 µs) on one CPU but an inter-processor interrupt (~25 µs here) across
   two. Linux puts a pair of threads that wake each other through a socket (raw) on one CPU
   when it can, and a pair that wake each other through a lock or an eventfd (the test's
   thread and the socket loop, or loop's model) on two. Left free, raw is thus measured
   either way from run to run (~13 or ~55 µs) while ours stays split: ``free`` can compare a
   same-CPU floor with a two-CPU fixture. ``same`` and ``split`` compare like with like;
   ``same`` also shows the CPU each variant spends per round trip, as nothing waits for
   another CPU. ``--one-cpu`` runs the ``same`` placement only.

5. **Concurrency.** ``C`` = 5,000 connections (500 with ``--quick``) held open at once by one
   process against one server in the same process, each making 10 request/response pairs in
   sequence (the next request goes when the reply is in; all connections at once): ``C * 10``
   messages. A request is ``b"conn 000042 msg 7\\n"``, the server echoes each line, the client
   checks that the reply is its request. Every reply is counted: **lost** = messages sent whose
   reply never came (a run waits ``--timeout`` s, then reports what is missing); it must be 0.
   Each run is a fresh process (``spawn``), so that memory from an earlier run is not reused:

   - *ours*: ``hsocket.server(0, echo)`` with ``on_connect`` queueing ``read(b"\\n", 1)`` and
     ``echo(data, tag, client)`` writing the line back and re-queueing the read; C hsocket
     clients ``hsocket.new(cb).connect(host, port, on_connected)`` on the same socket loop (no
     thread per connection), whose callback ``cb(data, tag)`` checks and counts the reply and
     writes the next request + ``read(b"\\n", 1)``. The main thread opens the C connections and
     then starts each client's first request (``write`` + ``read``), through the public API.
   - *asyncio* (the peer): ``asyncio.start_server`` whose handler awaits
     ``reader.readuntil(b"\\n")`` and writes the line back, until EOF; C clients from
     ``asyncio.open_connection``, each a coroutine doing ``writer.write(request)`` then
     ``await reader.readuntil(b"\\n")`` 10 times, run with ``asyncio.gather`` (default event
     loop, listen backlog 4096 as ours). Its connects are issued at most 1,024 at a time: all C
     in one go overflow the kernel's accept queue (``somaxconn``, often 4096) before the loop
     gets to accept, and the dropped SYNs are retried a second later. Ours needs no window:
     the main thread issues the connects while the loop thread accepts.

   Phases of a run: the server listens, ``gc.collect()``, RSS is read; the C connections are
   opened (all connects issued at once) and both ends of every connection are up
   (**connect s**); ``gc.collect()``, RSS again; then the messages (**total s**, from the first
   request to the last reply; **msgs/s** = ``C * 10 / total s``); RSS once more, with every
   connection still open; then everything is closed. **KiB/conn** = (RSS with the connections
   open - RSS before) / C, from ``VmRSS`` in ``/proc/self/status``: one connection is *both* of
   its ends, client and server, as both are in the process. ``after`` is the same once the
   messages went through (buffers the traffic allocated). The fd limit: the soft
   ``RLIMIT_NOFILE`` is raised to the hard limit at start (children inherit it); if the hard
   limit is below ``2 * C + 64``, C is lowered to fit, with a note. A connect phase much
   slower than the others of its peer usually means the kernel's accept queue overflowed and
   SYNs were retransmitted after a second: each run's progress line shows the growth of
   ``TcpExt: ListenOverflows`` (``/proc/net/netstat``, the whole network namespace) over its
   connect phase.

With ``--profile``, one more run of each of ours' latency variants (fixture and server) is made
under ``cProfile``, on the socket loop's thread and (fixture) the main thread, with each
thread's CPU time as the clock (so waiting costs nothing), and one more concurrency run of ours
with the connect phase (main and loop threads) and the messages phase (loop thread) profiled
apart; the top functions by own time are printed. Profiled runs are not part of the tables.
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Optional

import _placement
from _common import (
    NO_PROFILE,
    Profilers,
    cell,
    check_repeat,
    interleaved,
    new_parser,
    platform_fields,
    print_profile,
    print_report,
    ruled,
    write_report,
)
from _latency_peers import (
    ASYNCIO,
    CONCURRENCY_PEERS,
    FIXTURE,
    LATENCY_VARIANTS,
    LOOP,
    MESSAGES_PER_CONNECTION,
    OURS,
    PROFILE_TOP,
    SERVER,
    ConcurrencyRun,
    LatencyRun,
    latency_fixture,
    latency_server,
    run_child,
)

ROUND_TRIPS_FULL = 10_000
ROUND_TRIPS_QUICK = 2_000
CONNECTIONS_FULL = 5_000
CONNECTIONS_QUICK = 500
FD_MARGIN = 64
PLACEMENT_TEXT = {
    _placement.FREE: "placed by the scheduler",
    _placement.SAME: "all on one CPU",
    _placement.SPLIT: "client side on one CPU, server side on another",
}
"""Descriptors kept free beside the two per connection (listener, epoll, pipes, stdio)."""


# -- the process's limits --------------------------------------------------------------------------


def raise_fd_limit(connections: int) -> tuple[int, str]:
    """Raise the soft RLIMIT_NOFILE to the hard limit; return the connections that fit and a
    note (empty when all of them fit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = 2 * connections + FD_MARGIN
    target = hard if hard != resource.RLIM_INFINITY else max(soft, needed)
    if target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    if soft >= needed:
        return connections, ""
    fit = max((soft - FD_MARGIN) // 2, 1)
    return fit, (
        f"note: RLIMIT_NOFILE allows {soft} descriptors (hard limit {hard}), fewer than the "
        f"{needed} that {connections:,} connections need: measuring {fit:,} connections instead"
    )


# -- measuring and reporting -------------------------------------------------------------------


def nearest_rank(sorted_values: list[int], fraction: float) -> int:
    """The value at ``fraction`` (0-1] of the sorted values, nearest-rank method."""
    index = max(math.ceil(fraction * len(sorted_values)) - 1, 0)
    return sorted_values[index]


@dataclass
class LatencyMeasurement:
    """The runs of one latency variant: per run, its median, p99, mean and CPU µs per pair."""

    variant: str
    round_trips: int
    medians_us: list[float] = field(default_factory=list)
    p99s_us: list[float] = field(default_factory=list)
    means_us: list[float] = field(default_factory=list)
    cpus_us: list[float] = field(default_factory=list)
    maxes_us: list[float] = field(default_factory=list)

    def add(self, run: LatencyRun) -> None:
        ordered = sorted(run.samples_ns)
        self.medians_us.append(statistics.median(ordered) / 1e3)
        self.p99s_us.append(nearest_rank(ordered, 0.99) / 1e3)
        self.maxes_us.append(ordered[-1] / 1e3)
        self.means_us.append(run.seconds / len(ordered) * 1e6)
        self.cpus_us.append(run.cpu_seconds / len(ordered) * 1e6)

    @property
    def median_us(self) -> float:
        return statistics.median(self.medians_us)

    @property
    def p99_us(self) -> float:
        return statistics.median(self.p99s_us)

    @property
    def mean_us(self) -> float:
        return statistics.median(self.means_us)

    @property
    def cpu_us(self) -> float:
        return statistics.median(self.cpus_us)


@dataclass
class LatencyRow:
    """One line of the latency table; the ratios are over raw's figure (< 1 = faster)."""

    variant: str
    median_us: float
    p99_us: float
    mean_us: float
    cpu_us: float
    median_x_raw: float
    p99_x_raw: float
    mean_x_raw: float


def measure_latency(
    rounds: int, repeat: int, timeout: float, placement: str
) -> list[LatencyMeasurement]:
    """Run every variant ``repeat`` times, interleaved, with its threads placed as
    ``placement`` says (see ``_placement``); print each as it ends."""
    results = [LatencyMeasurement(name, rounds) for name, _ in LATENCY_VARIANTS]
    order = list(zip(LATENCY_VARIANTS, results))
    for round_, ((name, variant), result) in interleaved(order, repeat):
        gc.collect()
        with _placement.placed(placement):
            result.add(variant(rounds, timeout, NO_PROFILE))
        print(
            f"  {placement:<5} round {round_ + 1} {name:<8} "
            f"median {result.medians_us[-1]:7.1f} us  "
            f"p99 {result.p99s_us[-1]:7.1f} us  mean {result.means_us[-1]:7.1f} us  "
            f"cpu {result.cpus_us[-1]:7.1f} us/rt",
            flush=True,
        )
    return results


def latency_rows(results: list[LatencyMeasurement]) -> list[LatencyRow]:
    """A row per variant, each over the floor (raw)."""
    floor = results[0]
    return [
        LatencyRow(
            variant=m.variant,
            median_us=m.median_us,
            p99_us=m.p99_us,
            mean_us=m.mean_us,
            cpu_us=m.cpu_us,
            median_x_raw=m.median_us / floor.median_us,
            p99_x_raw=m.p99_us / floor.p99_us,
            mean_x_raw=m.mean_us / floor.mean_us,
        )
        for m in results
    ]


def format_latency(rows: list[LatencyRow], rounds: int, repeat: int, placement: str) -> str:
    """Render the latency rows of one placement as a fixed-width text table."""
    header = (
        f"{'variant':<8} {'median us':>9} {'p99 us':>8} {'mean us':>8} {'cpu us':>7}  "
        f"{'median x raw':>12} {'p99 x raw':>9} {'mean x raw':>10}"
    )
    lines = [
        f"3. round-trip latency, threads {PLACEMENT_TEXT[placement]}: {rounds:,} PING/+PONG "
        f"pairs per run, median of {repeat} runs",
        *ruled(header),
    ]
    for row in rows:
        lines.append(
            f"{row.variant:<8} {row.median_us:>9.1f} {row.p99_us:>8.1f} {row.mean_us:>8.1f} "
            f"{row.cpu_us:>7.1f}  {row.median_x_raw:>12.2f} {row.p99_x_raw:>9.2f} "
            f"{row.mean_x_raw:>10.2f}"
        )
    fixture = next(row for row in rows if row.variant == FIXTURE)
    loop = next(row for row in rows if row.variant == LOOP)
    verdict = "met" if fixture.median_x_raw <= 3.0 else "NOT met"
    lines += [
        "raw = blocking client + blocking server thread (the floor); loop = no hsocket code: the",
        "test's thread hands each PING to one thread owning both ends (the fixtures' design, at",
        "its floor); fixture = TestClient.expect against a scripted MockServer; server = raw",
        "client against an hsocket.server callback. cpu = process CPU time per round trip (all",
        "threads). x raw < 1 = faster than the floor.",
        f"target (fixture median within 3x of raw): {fixture.median_x_raw:.2f}x, {verdict}; "
        f"fixture over loop: {fixture.median_us / loop.median_us:.2f}x",
    ]
    return "\n".join(lines)


@dataclass
class ConcurrencyMeasurement:
    """The runs of one peer on the concurrency workload."""

    peer: str
    connections: int
    runs: list[ConcurrencyRun] = field(default_factory=list)

    def _median(self, pick: Callable[[ConcurrencyRun], float]) -> float:
        return statistics.median(pick(run) for run in self.runs)

    @property
    def messages(self) -> int:
        return self.connections * MESSAGES_PER_CONNECTION

    @property
    def lost(self) -> int:
        """Lost messages over every run."""
        return sum(run.lost for run in self.runs)

    @property
    def wrong(self) -> int:
        return sum(run.wrong for run in self.runs)

    @property
    def seconds(self) -> float:
        return self._median(lambda run: run.seconds)

    @property
    def connect_seconds(self) -> float:
        return self._median(lambda run: run.connect_seconds)

    @property
    def rate(self) -> float:
        """Request/response pairs per second, from the median run."""
        return self.messages / self.seconds

    @property
    def cpu_us(self) -> float:
        """Median process CPU µs per request/response pair."""
        return self._median(lambda run: run.cpu_seconds / run.messages * 1e6)

    @property
    def kib_open(self) -> float:
        return self._median(lambda run: run.kib_open)

    @property
    def kib_after(self) -> float:
        return self._median(lambda run: run.kib_after)


@dataclass
class ConcurrencyRow:
    """One line of the concurrency table; ours' row carries ours over asyncio's."""

    peer: str
    connections: int
    messages: int
    lost: int
    wrong: int
    connect_seconds: float
    seconds: float
    rate: float
    cpu_us: float
    kib_open: float
    kib_after: float
    connect_ratio: Optional[float] = None
    seconds_ratio: Optional[float] = None
    rate_ratio: Optional[float] = None
    cpu_ratio: Optional[float] = None
    kib_ratio: Optional[float] = None
    kib_after_ratio: Optional[float] = None


def measure_concurrency(
    connections: int, repeat: int, timeout: float
) -> list[ConcurrencyMeasurement]:
    """Run each peer ``repeat`` times, each run a fresh process, interleaved."""
    results = [ConcurrencyMeasurement(peer, connections) for peer in CONCURRENCY_PEERS]
    for round_, result in interleaved(results, repeat):
        run = run_child(result.peer, connections, timeout)
        result.runs.append(run)
        print(
            f"  round {round_ + 1} {result.peer:<8} connect {run.connect_seconds:6.2f} s  "
            f"messages {run.seconds:6.2f} s  {run.messages / run.seconds:9.0f} msgs/s  "
            f"lost {run.lost}  KiB/conn {run.kib_open:6.1f} open {run.kib_after:6.1f} after  "
            f"close {run.close_seconds:4.2f} s  overflows {run.listen_overflows}",
            flush=True,
        )
        if run.error:
            print(f"    FAILED: {run.error}", flush=True)
    return results


def concurrency_rows(results: list[ConcurrencyMeasurement]) -> list[ConcurrencyRow]:
    """A row per peer; ours' row carries the ratios to asyncio's."""
    by_peer = {m.peer: m for m in results}
    peer = by_peer[ASYNCIO]
    rows = []
    for m in results:
        row = ConcurrencyRow(
            m.peer,
            m.connections,
            m.messages,
            m.lost,
            m.wrong,
            m.connect_seconds,
            m.seconds,
            m.rate,
            m.cpu_us,
            m.kib_open,
            m.kib_after,
        )
        if m.peer == OURS:
            row.connect_ratio = m.connect_seconds / peer.connect_seconds
            row.seconds_ratio = m.seconds / peer.seconds
            row.rate_ratio = m.rate / peer.rate
            row.cpu_ratio = m.cpu_us / peer.cpu_us
            row.kib_ratio = m.kib_open / peer.kib_open if peer.kib_open > 0 else None
            row.kib_after_ratio = m.kib_after / peer.kib_after if peer.kib_after > 0 else None
        rows.append(row)
    return rows


def _ratio(value: Optional[float], width: int) -> str:
    return cell(value, width)


def format_concurrency(rows: list[ConcurrencyRow], repeat: int) -> str:
    """Render the concurrency rows as a fixed-width text table."""
    header = (
        f"{'peer':<8} {'conns':>6} {'msgs':>7} {'lost':>5} {'connect s':>9} {'total s':>8} "
        f"{'msgs/s':>8} {'cpu us':>7} {'KiB/conn':>8} {'after':>7}"
    )
    lines = [
        f"5. concurrency: {MESSAGES_PER_CONNECTION} request/responses per connection, "
        f"all connections at once, median of {repeat} runs (lost: all runs)",
        *ruled(header),
    ]
    for row in rows:
        lines.append(
            f"{row.peer:<8} {row.connections:>6,} {row.messages:>7,} {row.lost:>5} "
            f"{row.connect_seconds:>9.2f} {row.seconds:>8.2f} {row.rate:>8.0f} {row.cpu_us:>7.1f} "
            f"{row.kib_open:>8.1f} {row.kib_after:>7.1f}"
        )
    for row in rows:
        if row.rate_ratio is not None:
            lines.append(
                f"{'ours/asyncio':<29} {_ratio(row.connect_ratio, 9)} "
                f"{_ratio(row.seconds_ratio, 8)} {_ratio(row.rate_ratio, 8)} "
                f"{_ratio(row.cpu_ratio, 7)} {_ratio(row.kib_ratio, 8)} "
                f"{_ratio(row.kib_after_ratio, 7)}"
            )
    lines += [
        "total s = first request to last reply; msgs/s = request/response pairs per second;",
        "cpu = process CPU per pair; KiB/conn = RSS growth per connection (both of its ends, in",
        "one process) with all open; after = the same once the messages went through.",
        "ours/asyncio: seconds, cpu and KiB < 1 = ours better; msgs/s > 1 = ours better.",
    ]
    return "\n".join(lines)


def profile_ours(rounds: int, connections: int, timeout: float) -> None:
    """Profile a run of each of ours' latency variants and of ours' concurrency; print them."""
    for name, variant, profilers in (
        (FIXTURE, latency_fixture, Profilers(main=True, loop=True)),
        (SERVER, latency_server, Profilers(loop=True)),
    ):
        gc.collect()
        run = variant(rounds, timeout, profilers)
        for thread, profiler in (("main", profilers.main), ("socket loop", profilers.loop)):
            if profiler is None:
                continue
            print(
                f"\nprofile of {name}, {rounds:,} round trips ({run.seconds:.3f} s under "
                f"cProfile), {thread} thread, by that thread's CPU time"
            )
            print_profile(profiler, PROFILE_TOP)
    held = run_child(OURS, connections, timeout, profile=True)
    print(
        f"\nprofile of ours' concurrency, {connections:,} connections x "
        f"{MESSAGES_PER_CONNECTION} (connect {held.connect_seconds:.3f} s, messages "
        f"{held.seconds:.3f} s under cProfile), by each thread's CPU time"
    )
    print(held.profile)


def _git_revision() -> str:
    # The checkout measured (``-dirty`` = with uncommitted changes); "" outside a git tree.
    try:
        done = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            cwd=os.path.dirname(os.path.abspath(__file__)),
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout.strip()


def _measurements_json(measurements: list[LatencyMeasurement]) -> list[dict[str, Any]]:
    return [
        {
            **asdict(m),
            "median_us": m.median_us,
            "p99_us": m.p99_us,
            "mean_us": m.mean_us,
            "cpu_us": m.cpu_us,
        }
        for m in measurements
    ]


def write_json(
    args: argparse.Namespace,
    wall: float,
    placed: dict[str, tuple[list[LatencyRow], list[LatencyMeasurement]]],
    concurrency: tuple[list[ConcurrencyRow], list[ConcurrencyMeasurement]],
) -> None:
    """Write the tables' rows, every run's figures and the platform to ``args.json``.

    ``latency_rows`` and ``latency_measurements`` are the first placement's (``free`` unless
    only others were asked for); ``latency_placements`` has every placement's.
    """
    latency = placed[args.placements[0]]
    report: dict[str, Any] = {
        "quick": args.quick,
        "repeat": args.repeat,
        "round_trips": args.round_trips,
        "connections": args.connections,
        "messages_per_connection": MESSAGES_PER_CONNECTION,
        "wall_seconds": wall,
        **platform_fields(),
        "git_revision": _git_revision(),
        "placements": args.placements,
        "rlimit_nofile": list(resource.getrlimit(resource.RLIMIT_NOFILE)),
        "latency_rows": [asdict(row) for row in latency[0]],
        "latency_measurements": _measurements_json(latency[1]),
        "latency_placements": {
            placement: {
                "rows": [asdict(row) for row in rows],
                "measurements": _measurements_json(measurements),
            }
            for placement, (rows, measurements) in placed.items()
        },
        "concurrency_rows": [asdict(row) for row in concurrency[0]],
        "concurrency_runs": [
            {
                **{k: v for k, v in asdict(run).items() if k != "profile"},
                "kib_open": run.kib_open,
                "kib_after": run.kib_after,
            }
            for m in concurrency[1]
            for run in m.runs
        ],
    }
    write_report(args.json, report)


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = new_parser(
        __doc__, "2,000 round trips, 500 connections", "runs per variant (>= 3; 5, --quick 3)"
    )
    parser.add_argument(
        "--round-trips", type=int, help="round trips per latency run (10,000, --quick 2,000)"
    )
    parser.add_argument(
        "--connections", type=int, help="concurrent connections (5,000, --quick 500)"
    )
    parser.add_argument(
        "--timeout", type=float, default=60.0, help="seconds any single wait may take"
    )
    parser.add_argument(
        "--placements",
        default=",".join(_placement.PLACEMENTS),
        help="figure 3's thread placements, comma-separated (free,same,split; the first "
        "is the one the issue's figure reads)",
    )
    parser.add_argument(
        "--one-cpu", action="store_true", help="figure 3 with every thread on one CPU only"
    )
    parser.add_argument(
        "--profile", action="store_true", help="then profile ours (latency and concurrency)"
    )
    args = parser.parse_args(argv)
    check_repeat(parser, args)
    args.placements = ["same"] if args.one_cpu else args.placements.split(",")
    unknown = [p for p in args.placements if p not in _placement.PLACEMENTS]
    if unknown or not args.placements:
        parser.error(f"--placements: choose from {','.join(_placement.PLACEMENTS)}")
    if not _placement.supported() or (os.cpu_count() or 1) < 2:
        args.placements = [p for p in args.placements if p == _placement.FREE] or ["free"]
    if args.round_trips is None:
        args.round_trips = ROUND_TRIPS_QUICK if args.quick else ROUND_TRIPS_FULL
    if args.connections is None:
        args.connections = CONNECTIONS_QUICK if args.quick else CONNECTIONS_FULL
    if args.round_trips < 100:
        parser.error("--round-trips must be 100 or more (for a p99)")
    if args.connections < 1:
        parser.error("--connections must be 1 or more")
    return args


def main(argv: Optional[list[str]] = None) -> int:
    """Run the benchmark; return the process exit status (1 if a message was lost)."""
    args = parse_args(argv)
    started = time.perf_counter()
    args.connections, note = raise_fd_limit(args.connections)
    if note:
        print(note, flush=True)
    print(
        f"{args.repeat} runs per variant, {os.cpu_count()} CPUs, RLIMIT_NOFILE "
        f"{resource.getrlimit(resource.RLIMIT_NOFILE)[0]}",
        flush=True,
    )
    print(f"3. round-trip latency: {args.round_trips:,} round trips per run")
    placed: dict[str, tuple[list[LatencyRow], list[LatencyMeasurement]]] = {}
    for placement in args.placements:
        results = measure_latency(args.round_trips, args.repeat, args.timeout, placement)
        placed[placement] = (latency_rows(results), results)
    print(
        f"5. concurrency: {args.connections:,} connections x {MESSAGES_PER_CONNECTION} "
        "request/responses"
    )
    concurrency_results = measure_concurrency(args.connections, args.repeat, args.timeout)
    concurrency = (concurrency_rows(concurrency_results), concurrency_results)
    wall = time.perf_counter() - started
    tables = [
        *(
            format_latency(rows, args.round_trips, args.repeat, p)
            for p, (rows, _) in placed.items()
        ),
        format_concurrency(concurrency[0], args.repeat),
    ]
    print_report(tables, args.quick, wall)
    if args.json:
        write_json(args, wall, placed, concurrency)
    if args.profile:
        profile_ours(args.round_trips, args.connections, args.timeout)
    failed = [run.error for m in concurrency_results for run in m.runs if run.error]
    lost = sum(m.lost + m.wrong for m in concurrency_results)
    if failed or lost:
        print(f"FAILED: {lost} messages lost or wrong; {'; '.join(failed)}", flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
