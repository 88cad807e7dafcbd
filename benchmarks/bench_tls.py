"""TLS handshake rate of ``pytest_hsocket`` next to the stdlib ``ssl`` module, in one run.

Run it from the repository root, with the package and ``trustme`` importable::

    python benchmarks/bench_tls.py              # full run, well under a minute
    python benchmarks/bench_tls.py --quick      # 100 connections per run, 3 runs
    python benchmarks/bench_tls.py --quick --json out.json
    python benchmarks/bench_tls.py --profile    # then profile ours (see below)

One run is ``N`` sequential connections (200; 100 with ``--quick``) to a server on 127.0.0.1,
each: TCP connect, a full TLS handshake (no session resumption), the client writes
``b"ping\\n"``, the server writes the line back, the client reads it, the client closes. The
echoed line proves that the handshake completed on *both* sides and that records flow both
ways. A run's clock starts before the first connect and stops after the last close; making and
closing the server are outside it. The figure is **handshakes/s = N / elapsed** (higher is
better); ``ms/conn`` is its inverse.

Certificates come from ``trustme``: one CA (ECDSA P-256, trustme's default) and a server
certificate for ``127.0.0.1``. The server context is
``ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)`` with that certificate; the client
context is ``ssl.create_default_context()`` trusting the CA only, so the client verifies the
chain *and* the name. The same two contexts serve every run of a TLS version, on both sides.

Client/server pairings, every one in this process:

- *ours/ours*: an ``hsocket.server(0, cb)`` with ``server.start_tls(context=server_ctx)`` (TLS
  from the first byte), ``on_connect(lambda c: c.read(b"\\n", 1))`` and an echo callback
  ``cb(data, tag, client)`` that writes the line back; per connection an hsocket client:
  ``hsocket.new(cb).connect("127.0.0.1", port)``, ``.start_tls(context=client_ctx)``,
  ``.write(b"ping\\n").read(b"\\n", 1)``, a wait on a ``threading.Event`` the callback sets,
  then ``.disconnect()``. Client and server share the socket loop's one thread.
- *stdlib/ours*: the same server; the client is the blocking stdlib one below. This measures
  our server side alone.
- *ours/stdlib*: the hsocket client against the stdlib server: our client side alone.
- *stdlib/stdlib* (the peer every row is compared with): a thread with a blocking ``accept``
  loop that wraps each connection with ``server_ctx.wrap_socket(conn, server_side=True)``
  (handshake on wrap), reads the line, writes it back and closes; the client is
  ``socket.create_connection`` + ``client_ctx.wrap_socket(sock, server_hostname=...)``,
  ``sendall``, ``recv`` up to the newline, close. Note that the stdlib's client and server run
  on two threads and OpenSSL releases the GIL during the handshake, so on two cores their
  cryptography can overlap; ours/ours runs both ends on one thread. The ``cpu`` column (this
  process's CPU time over wall time) shows it: above 100 % = more than one core busy.

Because every side runs on threads of its own, the CPU time each side spends per connection is
measured too (``time.thread_time`` of each thread over the timed part, median of the runs): the
*client* side is the main thread (plus, for ours, the socket loop's thread), the *server* side
is the loop's thread for ours and the server thread for the stdlib. For ours/ours the two share
the loop, so only the process total is shown. ``x`` is a side's CPU time over the same side of
stdlib/stdlib: it says how much more each of our ends costs than the stdlib's, whatever the
scheduling.

Each pairing runs ``--repeat`` times (5; 3 with ``--quick``), interleaved (the order reverses
every other round, so a slow spell of the machine hits every pairing alike), after one short
untimed warm-up round; the table shows medians. Then the same with TLS 1.2 forced
(``maximum_version = TLSv1_2`` on both contexts) unless ``--no-tls12``. ``vs stdlib`` is a
pairing's handshakes/s over stdlib/stdlib's: above 1 = faster.

Every run checks that each client got its line back, that the server echoed N lines, that every
stdlib end negotiated the expected TLS version, and (for our server) that all N connections
were closed on the server side too. There is no sleep anywhere: every wait is an event, a
socket or a thread join with a timeout (``--timeout``), and a timeout fails the run.

With ``--profile``, one more run of ours/ours and of stdlib/ours (TLS 1.3) is made under
``cProfile``, enabled on the socket loop's thread (where all of ours' socket and TLS work
runs) for the whole run with that thread's CPU time as its clock (so waiting for the peer costs
nothing), and the top functions by own time are printed. Profiled runs are not part of the
table.
"""

from __future__ import annotations

import argparse
import gc
import os
import socket
import ssl
import statistics
import sys
import threading
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Callable, Optional, Union

import trustme
from _common import (
    HOST,
    NO_PROFILE,
    BenchmarkError,
    Profilers,
    ServerThread,
    cell,
    check_repeat,
    interleaved,
    listening_port,
    new_parser,
    platform_fields,
    print_profile,
    print_report,
    ruled,
    write_report,
)

import pytest_hsocket as hsocket
from pytest_hsocket._loop.hub import get_loop  # to read the loop thread's CPU time

CONNECTIONS_FULL = 200
CONNECTIONS_QUICK = 100
WARMUP_CONNECTIONS = 10
LINE = b"ping\n"
PROFILE_TOP = 30
"""Functions shown per profile."""


# -- TLS material -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Contexts:
    """The server and client contexts of one TLS version."""

    name: str
    version: str
    """What ``SSLSocket.version()`` must report."""
    server: ssl.SSLContext
    client: ssl.SSLContext


def make_contexts(ca: trustme.CA, cert: trustme.LeafCert, tls12: bool) -> Contexts:
    """Contexts for ``cert`` (server) and trusting ``ca`` (client); TLS 1.2 at most if asked."""
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server)
    client = ssl.create_default_context()
    ca.configure_trust(client)
    if tls12:
        server.maximum_version = client.maximum_version = ssl.TLSVersion.TLSv1_2
        return Contexts("TLS 1.2", "TLSv1.2", server, client)
    return Contexts("TLS 1.3", "TLSv1.3", server, client)


# -- timing ------------------------------------------------------------------------------------


def loop_cpu_time() -> float:
    """CPU seconds the socket loop's thread has used (it runs all of ours' socket work)."""
    return get_loop().run_sync(time.thread_time)


@dataclass(frozen=True)
class Timing:
    """One run: wall-clock seconds and CPU seconds, for the process and per thread.

    ``main_cpu`` is the thread running the clients (the stdlib client, or the calls into
    ours), ``loop_cpu`` the socket loop's thread, ``server_thread_cpu`` the stdlib server's.
    """

    seconds: float
    cpu_seconds: float
    main_cpu: float
    loop_cpu: float
    server_thread_cpu: float


class Stopwatch:
    """Started on creation; ``stop()`` returns the wall-clock and CPU times since."""

    def __init__(self) -> None:
        self._loop = loop_cpu_time()
        self._main = time.thread_time()
        self._cpu = time.process_time()
        self._wall = time.perf_counter()

    def stop(self, server_thread_cpu: float) -> Timing:
        wall = time.perf_counter() - self._wall
        cpu = time.process_time() - self._cpu
        main = time.thread_time() - self._main
        return Timing(wall, cpu, main, loop_cpu_time() - self._loop, server_thread_cpu)


# -- servers -----------------------------------------------------------------------------------
#
# A server is made before a run's clock starts and closed after it stops: ``port`` to connect
# to, ``finish()`` to wait for the server side of the N connections and check it.


class OursServer:
    """``hsocket.server`` with TLS from the first byte and a callback echoing one line."""

    def __init__(self, contexts: Contexts, connections: int, timeout: float) -> None:
        self.timeout = timeout
        self.connections = connections
        self.echoed = 0
        self.closed = 0
        self.thread_cpu = 0.0  # no thread of its own: its work is on the socket loop
        self._all_closed = threading.Event()

        def echo(data: bytes, tag: int, client: hsocket.Socket) -> None:
            self.echoed += 1  # callbacks run one at a time, on the loop
            client.write(data)

        def on_closed(reason: str) -> None:
            self.closed += 1
            if self.closed == self.connections:
                self._all_closed.set()

        def on_connect(client: hsocket.Socket) -> None:
            client.on_disconnect(on_closed)
            client.read(b"\n", 1)

        self.server = hsocket.server(0, echo)
        self.server.start_tls(context=contexts.server)
        self.server.on_connect(on_connect)
        try:
            self.port = listening_port(self.server, "ours")
        except BenchmarkError:
            self.server.disconnect()
            raise

    def finish(self) -> None:
        """Wait until the server side closed every connection; check the echo count.

        Raises:
            BenchmarkError: If that takes longer than the timeout, or a line was not echoed.
        """
        try:
            if not self._all_closed.wait(self.timeout):
                raise BenchmarkError(
                    f"ours server: {self.closed} of {self.connections} connections closed "
                    f"within {self.timeout} s"
                )
        finally:
            self.server.disconnect()
        self.server.check()
        if self.echoed != self.connections:
            raise BenchmarkError(f"ours server: echoed {self.echoed} of {self.connections} lines")


class StdlibServer(ServerThread):
    """A thread with a blocking accept loop serving exactly N connections, one at a time."""

    def __init__(self, contexts: Contexts, connections: int, timeout: float) -> None:
        self.connections = connections
        self.echoed = 0
        self.thread_cpu = 0.0
        self._contexts = contexts
        super().__init__("stdlib-tls-server", timeout)

    def serve(self) -> None:
        context = self._contexts.server
        started = time.thread_time()  # blocked in accept() until the clock runs: no CPU
        try:
            for _ in range(self.connections):
                conn, _ = self._listener.accept()
                conn.settimeout(self.timeout)
                with context.wrap_socket(conn, server_side=True) as tls:
                    if tls.version() != self._contexts.version:
                        raise BenchmarkError(f"stdlib server: negotiated {tls.version()}")
                    tls.sendall(_read_line(tls, "stdlib server"))
                    self.echoed += 1
        finally:
            self.thread_cpu = time.thread_time() - started

    def finish(self) -> None:
        """Wait for the thread; raise what it failed with.

        Raises:
            BenchmarkError: If it does not end in time or did not echo N lines.
        """
        self.join("stdlib server")
        if self.echoed != self.connections:
            raise BenchmarkError(f"stdlib server: echoed {self.echoed} of {self.connections} lines")


def _read_line(sock: ssl.SSLSocket, who: str) -> bytes:
    # recv until the newline; the socket's timeout bounds each recv.
    data = b""
    while not data.endswith(b"\n"):
        chunk = sock.recv(1024)
        if not chunk:
            raise BenchmarkError(f"{who}: the peer closed after {data!r}")
        data += chunk
    return data


# -- clients -----------------------------------------------------------------------------------
#
# A client makes the run's N connections one after the other to ``port`` and checks each reply.


class _Reply:
    """An hsocket read callback that keeps the data and sets an event."""

    def __init__(self) -> None:
        self.got: list[bytes] = []
        self.event = threading.Event()

    def __call__(self, data: bytes, tag: int) -> None:
        self.got.append(data)
        self.event.set()


def ours_client(contexts: Contexts, port: int, connections: int, timeout: float) -> None:
    """Per connection: an hsocket client, start_tls, write + read a line, disconnect."""
    for i in range(connections):
        reply = _Reply()
        client = hsocket.new(reply).connect(HOST, port)
        if client is None:
            raise BenchmarkError(f"ours client: connect() refused on connection {i}")
        try:
            client.start_tls(context=contexts.client)
            client.write(LINE).read(b"\n", 1)  # type: ignore[union-attr]  # as users chain it
            if not reply.event.wait(timeout):
                raise BenchmarkError(
                    f"ours client: no reply on connection {i} within {timeout} s "
                    f"({client.last_disconnect_reason or 'still connected'})"
                )
        finally:
            client.disconnect()
        client.check()
        if reply.got != [LINE]:
            raise BenchmarkError(f"ours client: got {reply.got!r} on connection {i}")


def stdlib_client(contexts: Contexts, port: int, connections: int, timeout: float) -> None:
    """Per connection: create_connection, wrap_socket (handshake), sendall, read a line, close."""
    context = contexts.client
    for i in range(connections):
        with socket.create_connection((HOST, port), timeout=timeout) as raw:
            with context.wrap_socket(raw, server_hostname=HOST) as tls:
                if tls.version() != contexts.version:
                    raise BenchmarkError(f"stdlib client: negotiated {tls.version()}")
                tls.sendall(LINE)
                got = _read_line(tls, "stdlib client")
        if got != LINE:
            raise BenchmarkError(f"stdlib client: got {got!r} on connection {i}")


Server = Callable[[Contexts, int, float], Union[OursServer, StdlibServer]]
Client = Callable[[Contexts, int, int, float], None]

PAIRINGS: list[tuple[str, Client, Server]] = [
    ("ours/ours", ours_client, OursServer),
    ("stdlib/ours", stdlib_client, OursServer),
    ("ours/stdlib", ours_client, StdlibServer),
    ("stdlib/stdlib", stdlib_client, StdlibServer),
]
"""``client/server`` pairings; the last one is the peer."""
PEER = "stdlib/stdlib"


def run_once(
    client: Client,
    server_type: Server,
    contexts: Contexts,
    connections: int,
    timeout: float,
    profilers: Profilers = NO_PROFILE,
) -> Timing:
    """Make a server, time ``connections`` sequential connections to it, check and close it.

    The clock stops once the client closed the last connection; the server's thread CPU time is
    read after ``finish()`` (the stdlib server's thread has ended by then). With ``profilers``,
    profile (the socket loop's thread) during the timed part.
    """
    server = server_type(contexts, connections, timeout)
    try:
        profilers.enable()
        clock = Stopwatch()
        client(contexts, server.port, connections, timeout)
        timing = clock.stop(0.0)
        profilers.disable()
    finally:
        server.finish()
    return replace(timing, server_thread_cpu=server.thread_cpu)


# -- measuring and reporting -------------------------------------------------------------------


@dataclass
class Measurement:
    """The runs of one pairing on one TLS version."""

    pairing: str
    tls: str
    connections: int
    timings: list[Timing] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(t.seconds for t in self.timings)

    @property
    def rate(self) -> float:
        """Handshakes (whole connections) per second, from the median run."""
        return self.connections / self.median

    @property
    def ms_per_connection(self) -> float:
        return self.median / self.connections * 1e3

    @property
    def cpu_share(self) -> float:
        """The median of process CPU time over wall time (1.0 = one core busy all along)."""
        return statistics.median(t.cpu_seconds / t.seconds for t in self.timings)

    def _cpu_ms(self, pick: Callable[[Timing], float]) -> float:
        return statistics.median(pick(t) for t in self.timings) / self.connections * 1e3

    @property
    def process_cpu_ms(self) -> float:
        """Median process CPU time per connection, ms."""
        return self._cpu_ms(lambda t: t.cpu_seconds)

    @property
    def client_cpu_ms(self) -> Optional[float]:
        """Median CPU time per connection of the client side alone, ms (None: not separable)."""
        client, server = self.pairing.split("/")
        if client == "stdlib":
            return self._cpu_ms(lambda t: t.main_cpu)
        if server == "stdlib":  # ours' client work: the calls on the main thread + the loop
            return self._cpu_ms(lambda t: t.main_cpu + t.loop_cpu)
        return None  # ours/ours: both ends share the loop's thread

    @property
    def server_cpu_ms(self) -> Optional[float]:
        """Median CPU time per connection of the server side alone, ms (None: not separable)."""
        client, server = self.pairing.split("/")
        if server == "stdlib":
            return self._cpu_ms(lambda t: t.server_thread_cpu)
        if client == "stdlib":
            return self._cpu_ms(lambda t: t.loop_cpu)
        return None


@dataclass
class Row:
    """One line of the table: a pairing's figures next to stdlib/stdlib's.

    ``ratio`` is handshakes/s over stdlib/stdlib's (> 1 = faster); ``client_x``/``server_x``
    are that side's CPU time per connection over the stdlib side's (< 1 = cheaper).
    """

    tls: str
    pairing: str
    rate: float
    ms_per_connection: float
    peer_rate: float
    ratio: float
    process_cpu_ms: float
    cpu_share: float
    client_cpu_ms: Optional[float]
    server_cpu_ms: Optional[float]
    client_x: Optional[float]
    server_x: Optional[float]


def measure(contexts: Contexts, connections: int, repeat: int, timeout: float) -> list[Measurement]:
    """Run every pairing ``repeat`` times, interleaved, after an untimed warm-up round."""
    for _, client, server in PAIRINGS:
        run_once(client, server, contexts, WARMUP_CONNECTIONS, timeout)
    results = [Measurement(name, contexts.name, connections) for name, _, _ in PAIRINGS]
    for _, ((_, client, server), result) in interleaved(list(zip(PAIRINGS, results)), repeat):
        gc.collect()
        result.timings.append(run_once(client, server, contexts, connections, timeout))
    for result in results:
        shown = ", ".join(f"{t.seconds:.3f}" for t in result.timings)
        print(
            f"  {contexts.name} {result.pairing:<14} median {result.median:6.3f} s "
            f"{result.rate:7.1f} handshakes/s {result.ms_per_connection:6.3f} ms/conn "
            f"cpu {result.cpu_share:4.0%}  [{shown}]",
            flush=True,
        )
    return results


def _ratio(ours: Optional[float], peer: Optional[float]) -> Optional[float]:
    return None if ours is None or peer is None else ours / peer


def rows_of(results: list[Measurement]) -> list[Row]:
    """A row per pairing, each compared with stdlib/stdlib."""
    peer = next(m for m in results if m.pairing == PEER)
    return [
        Row(
            tls=m.tls,
            pairing=m.pairing,
            rate=m.rate,
            ms_per_connection=m.ms_per_connection,
            peer_rate=peer.rate,
            ratio=m.rate / peer.rate,
            process_cpu_ms=m.process_cpu_ms,
            cpu_share=m.cpu_share,
            client_cpu_ms=m.client_cpu_ms,
            server_cpu_ms=m.server_cpu_ms,
            client_x=_ratio(m.client_cpu_ms, peer.client_cpu_ms),
            server_x=_ratio(m.server_cpu_ms, peer.server_cpu_ms),
        )
        for m in results
    ]


def _cell(value: Optional[float], width: int, spec: str = ".3f") -> str:
    return cell(value, width, spec, missing="-")


def format_table(rows: list[Row]) -> str:
    """Render the rows as a fixed-width text table."""
    header = (
        f"{'TLS':<8} {'client/server':<14} {'handshakes/s':>12} {'ms/conn':>8} "
        f"{'vs stdlib':>9}  {'cpu ms/conn:':>12} {'client':>7} {'x':>5} {'server':>7} {'x':>5} "
        f"{'all':>6} {'cpu':>5}"
    )
    lines = ruled(header)
    for row in rows:
        lines.append(
            f"{row.tls:<8} {row.pairing:<14} {row.rate:>12.1f} {row.ms_per_connection:>8.3f} "
            f"{row.ratio:>9.2f}  {'':>12} {_cell(row.client_cpu_ms, 7)} "
            f"{_cell(row.client_x, 5, '.2f')} {_cell(row.server_cpu_ms, 7)} "
            f"{_cell(row.server_x, 5, '.2f')} {row.process_cpu_ms:>6.3f} {row.cpu_share:>5.0%}"
        )
    lines += [
        "vs stdlib = handshakes/s over stdlib/stdlib's (> 1 = faster than the stdlib pair).",
        "cpu ms/conn = median CPU time per connection of the client side, the server side",
        "(- = ours/ours, both on one thread) and the whole process; x = that side over the",
        "stdlib side's (< 1 = cheaper). cpu = process CPU over wall time (> 100 % = 2 cores).",
    ]
    return "\n".join(lines)


def profile_ours(contexts: Contexts, connections: int, timeout: float) -> None:
    """Profile one run of ours/ours and of stdlib/ours on the loop; print the hot spots.

    The profiler's clock is the loop thread's CPU time, so time the loop spends waiting for
    the peer (in the hub, charged to whichever Python frame switched to it) counts as nothing.
    """
    for name, client, server in PAIRINGS[:2]:
        profilers = Profilers(loop=True)
        gc.collect()
        timing = run_once(client, server, contexts, connections, timeout, profilers)
        print(
            f"\nprofile of {name} ({contexts.name}), {connections} connections: "
            f"{timing.seconds:.3f} s under cProfile, socket loop thread only, by CPU time "
            f"({timing.loop_cpu / connections * 1e3:.3f} ms of loop CPU per connection)"
        )
        assert profilers.loop is not None
        print_profile(profilers.loop, PROFILE_TOP)


def write_json(
    args: argparse.Namespace, wall: float, rows: list[Row], measurements: list[Measurement]
) -> None:
    """Write the table's rows, every sample and the platform to ``args.json``."""
    report = {
        "quick": args.quick,
        "repeat": args.repeat,
        "connections": args.connections,
        "wall_seconds": wall,
        **platform_fields(openssl=ssl.OPENSSL_VERSION),
        "rows": [asdict(row) for row in rows],
        "measurements": [
            {
                **asdict(m),
                "median": m.median,
                "handshakes_per_s": m.rate,
                "ms_per_connection": m.ms_per_connection,
                "cpu_share": m.cpu_share,
                "process_cpu_ms": m.process_cpu_ms,
                "client_cpu_ms": m.client_cpu_ms,
                "server_cpu_ms": m.server_cpu_ms,
            }
            for m in measurements
        ],
    }
    write_report(args.json, report)


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = new_parser(
        __doc__, "100 connections per run, 3 runs", "runs per pairing (>= 3; 5, --quick 3)"
    )
    parser.add_argument("--connections", type=int, help="connections per run (200, --quick 100)")
    parser.add_argument("--no-tls12", action="store_true", help="skip the TLS 1.2 rows")
    parser.add_argument(
        "--timeout", type=float, default=30.0, help="seconds any single wait may take"
    )
    parser.add_argument(
        "--profile", action="store_true", help="then profile ours/ours and stdlib/ours"
    )
    args = parser.parse_args(argv)
    check_repeat(parser, args)
    if args.connections is None:
        args.connections = CONNECTIONS_QUICK if args.quick else CONNECTIONS_FULL
    if args.connections < 1:
        parser.error("--connections must be 1 or more")
    return args


def main(argv: Optional[list[str]] = None) -> int:
    """Run the benchmark; return the process exit status."""
    args = parse_args(argv)
    started = time.perf_counter()
    ca = trustme.CA()
    cert = ca.issue_cert(HOST)
    versions = [make_contexts(ca, cert, tls12=False)]
    if not args.no_tls12:
        versions.append(make_contexts(ca, cert, tls12=True))
    print(
        f"{args.connections} sequential connections per run, {args.repeat} runs per pairing, "
        f"{ssl.OPENSSL_VERSION}, {os.cpu_count()} CPUs",
        flush=True,
    )
    measurements: list[Measurement] = []
    rows: list[Row] = []
    for contexts in versions:
        results = measure(contexts, args.connections, args.repeat, args.timeout)
        measurements += results
        rows += rows_of(results)
    wall = time.perf_counter() - started
    print_report([format_table(rows)], args.quick, wall)
    if args.json:
        write_json(args, wall, rows, measurements)
    if args.profile:
        profile_ours(versions[0], args.connections, args.timeout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
