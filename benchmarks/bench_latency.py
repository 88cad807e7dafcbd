"""Round-trip latency and many concurrent connections of ``pytest_hsocket``, beside the floor
and asyncio, in one run.

Run it from the repository root, with the package importable::

    python benchmarks/bench_latency.py            # full run, about a minute and a half
    python benchmarks/bench_latency.py --quick    # 2,000 round trips, 500 connections
    python benchmarks/bench_latency.py --quick --json out.json
    python benchmarks/bench_latency.py --one-cpu  # figure 3 with every thread on one CPU
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

   Reading the floor: on a small virtual machine most of raw's round trip is the time the
   kernel takes to wake a thread sleeping on another CPU (twice per round trip: the server,
   then the client), not Python or the TCP stack; it also varies from run to run with where
   the scheduler puts the two threads. Every variant crosses threads as often (ours: the test's
   thread and the socket loop's), so the ratios are fair, but they say how far ours is from
   the *machine's* floor. ``--one-cpu`` runs figure 3 with every thread of the process on one
   CPU (``sched_setaffinity``): no cross-CPU wake-ups, so raw shrinks to the cost of the
   system calls and the ratios show the CPU ours spends per round trip over the floor's.

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
import asyncio
import contextlib
import cProfile
import gc
import io
import json
import math
import multiprocessing
import os
import platform
import pstats
import resource
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from multiprocessing.connection import Connection
from typing import Any, Callable, Optional

import pytest_hsocket as hsocket
from pytest_hsocket._loop import get_loop  # --profile only: to enable cProfile on the loop
from pytest_hsocket.testing import MockServer, TestClient

HOST = "127.0.0.1"
PING = b"PING\r\n"
PONG = b"+PONG\r\n"
CRLF = b"\r\n"
ROUND_TRIPS_FULL = 10_000
ROUND_TRIPS_QUICK = 2_000
WARMUP_ROUND_TRIPS = 200
CONNECTIONS_FULL = 5_000
CONNECTIONS_QUICK = 500
MESSAGES_PER_CONNECTION = 10
LISTEN_BACKLOG = 4096
"""asyncio's listen backlog, the same as ours (``_listener.LISTEN_BACKLOG``)."""
CONNECT_WINDOW = 1024
"""asyncio's connects in flight at most: a burst beyond the accept queue waits 1 s for SYNs."""
FD_MARGIN = 64
"""Descriptors kept free beside the two per connection (listener, epoll, pipes, stdio)."""
PROFILE_TOP = 25
"""Functions shown per profile."""

RAW, FIXTURE, SERVER = "raw", "fixture", "server"
OURS, ASYNCIO = "ours", "asyncio"


class BenchmarkError(RuntimeError):
    """A run timed out, or a reply was not the one expected."""


# -- round-trip latency: the variants ----------------------------------------------------------
#
# A variant opens its server and a client, makes the warm-up round trips, then times N round
# trips one by one; it returns the N times and the run's wall and CPU time, after closing and
# checking everything.


@dataclass(frozen=True)
class LatencyRun:
    """One run: each round trip's nanoseconds, wall-clock and process CPU seconds of all N."""

    samples_ns: list[int]
    seconds: float
    cpu_seconds: float


class _Watchdog:
    """Shuts a blocking socket down if a run overruns, so a blocked call returns and fails."""

    def __init__(self, sock: socket.socket, timeout: float) -> None:
        self.fired = False
        self._sock = sock
        self._timer = threading.Timer(timeout, self._fire)
        self._timer.daemon = True
        self._timer.start()

    def _fire(self) -> None:
        self.fired = True
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)

    def cancel(self) -> None:
        self._timer.cancel()
        self._timer.join()


def _raw_round_trips(sock: socket.socket, count: int, timed: bool) -> list[int]:
    # The blocking client: sendall, then recv until the reply's CRLF; checks every reply.
    samples: list[int] = []
    sendall = sock.sendall
    recv = sock.recv
    clock = time.perf_counter_ns
    for i in range(count):
        started = clock()
        sendall(PING)
        reply = recv(64)
        while not reply.endswith(CRLF):
            more = recv(64)
            if not more:
                raise BenchmarkError(f"raw client: the server closed at round trip {i}")
            reply += more
        if timed:
            samples.append(clock() - started)
        if reply != PONG:
            raise BenchmarkError(f"raw client: got {reply!r} at round trip {i}")
    return samples


def _raw_client(port: int, rounds: int, timeout: float, who: str) -> LatencyRun:
    # The raw blocking client against any server on ``port``: warm-up, then the timed part.
    sock = socket.create_connection((HOST, port), timeout=timeout)
    sock.settimeout(None)  # fully blocking: no poll() before each recv; the watchdog bounds it
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    watchdog = _Watchdog(sock, timeout)
    try:
        _raw_round_trips(sock, WARMUP_ROUND_TRIPS, timed=False)
        cpu = time.process_time()
        wall = time.perf_counter()
        samples = _raw_round_trips(sock, rounds, timed=True)
        run = LatencyRun(samples, time.perf_counter() - wall, time.process_time() - cpu)
    except OSError as exc:
        if watchdog.fired:
            raise BenchmarkError(
                f"{who}: {rounds} round trips not done within {timeout} s"
            ) from exc
        raise
    finally:
        watchdog.cancel()
        sock.close()
    if watchdog.fired:
        raise BenchmarkError(f"{who}: {rounds} round trips not done within {timeout} s")
    return run


class RawServer:
    """A thread with a blocking accept and one blocking connection answering PING lines."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.answered = 0
        self.error: Optional[BaseException] = None
        self._conn: Optional[socket.socket] = None
        self._listener = socket.create_server((HOST, 0))
        self._listener.settimeout(timeout)
        self.port = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, name="raw-echo-server", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        try:
            conn, _ = self._listener.accept()
            self._conn = conn
            conn.settimeout(None)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with conn:
                buffer = b""
                while True:
                    data = conn.recv(4096)
                    if not data:
                        break
                    buffer += data
                    while CRLF in buffer:
                        line, _, buffer = buffer.partition(CRLF)
                        if line + CRLF != PING:
                            raise BenchmarkError(f"raw server: got {line!r}")
                        conn.sendall(PONG)
                        self.answered += 1
        except BaseException as exc:
            self.error = exc
        finally:
            self._listener.close()

    def finish(self) -> None:
        """Wait for the thread (the client has closed); raise what it failed with.

        Raises:
            BenchmarkError: If it does not end in time or failed.
        """
        self._thread.join(self.timeout)
        if self._thread.is_alive():
            for sock in (self._conn, self._listener):
                if sock is not None:
                    with contextlib.suppress(OSError):
                        sock.shutdown(socket.SHUT_RDWR)
            self._thread.join(self.timeout)
            raise BenchmarkError(f"raw server: still running after {self.timeout} s")
        if self.error is not None:
            raise BenchmarkError(f"raw server: {self.error!r}") from self.error


def latency_raw(rounds: int, timeout: float, profilers: Profilers) -> LatencyRun:
    """The floor: the raw blocking client against the raw blocking server thread."""
    server = RawServer(timeout)
    try:
        run = _raw_client(server.port, rounds, timeout, "raw")
    finally:
        server.finish()
    if server.answered != rounds + WARMUP_ROUND_TRIPS:
        raise BenchmarkError(f"raw server: answered {server.answered} of {rounds} + warm-up")
    return run


def latency_fixture(rounds: int, timeout: float, profilers: Profilers) -> LatencyRun:
    """``TestClient.expect`` against a scripted ``MockServer``: what a user's test does."""
    server = MockServer.start(wait_timeout=timeout)
    try:
        server.expect(PING, times=None).respond(PONG)
        client = TestClient.open(*server.address, wait_timeout=timeout)
        try:
            for i in range(WARMUP_ROUND_TRIPS):
                client.write(PING)
                if client.expect(CRLF) != PONG:
                    raise BenchmarkError(f"fixture: wrong reply at warm-up round trip {i}")
            samples: list[int] = []
            append = samples.append
            clock = time.perf_counter_ns
            write = client.write
            expect = client.expect
            profilers.enable()
            cpu = time.process_time()
            wall = time.perf_counter()
            for i in range(rounds):
                started = clock()
                write(PING)
                reply = expect(CRLF)
                append(clock() - started)
                if reply != PONG:
                    raise BenchmarkError(f"fixture: got {bytes(reply)!r} at round trip {i}")
            run = LatencyRun(samples, time.perf_counter() - wall, time.process_time() - cpu)
            profilers.disable()
        finally:
            client.disconnect()
        client.check()
    finally:
        server.close()
    server.check()
    return run


def latency_server(rounds: int, timeout: float, profilers: Profilers) -> LatencyRun:
    """``hsocket.server`` with a callback answering, driven by the raw blocking client."""
    wrong: list[bytes] = []
    answered = 0

    def answer(data: bytes, tag: int, client: hsocket.Socket) -> None:
        nonlocal answered
        answered += 1  # callbacks run one at a time, on the loop
        if data != PING:
            wrong.append(data)
        client.write(PONG)
        client.read(CRLF, 1)

    server = hsocket.server(0, answer)
    try:
        server.on_connect(lambda client: client.read(CRLF, 1))
        port = server.info()["localPort"]
        if not isinstance(port, int) or not port:
            raise BenchmarkError(f"server: not listening: {server!r}")
        profilers.enable()
        run = _raw_client(port, rounds, timeout, "server")
        profilers.disable()
    finally:
        server.disconnect()
    server.check()
    if wrong or answered != rounds + WARMUP_ROUND_TRIPS:
        raise BenchmarkError(
            f"server: answered {answered} of {rounds} + warm-up; wrong lines: {wrong[:3]!r}"
        )
    return run


class Profilers:
    """cProfile on the main thread and/or the socket loop's thread, by each one's CPU time."""

    def __init__(self, main: bool = False, loop: bool = False) -> None:
        self.main = cProfile.Profile(time.thread_time) if main else None
        self.loop = cProfile.Profile(time.thread_time) if loop else None

    def enable(self) -> None:
        if self.loop is not None:
            get_loop().run_sync(self.loop.enable)
        if self.main is not None:
            self.main.enable()

    def disable(self) -> None:
        if self.main is not None:
            self.main.disable()
        if self.loop is not None:
            get_loop().run_sync(self.loop.disable)


NO_PROFILE = Profilers()
LatencyVariant = Callable[[int, float, Profilers], LatencyRun]
LATENCY_VARIANTS: list[tuple[str, LatencyVariant]] = [
    (RAW, latency_raw),
    (FIXTURE, latency_fixture),
    (SERVER, latency_server),
]
"""The first is the floor every row is compared with."""


# -- concurrency: the child processes ----------------------------------------------------------


def rss_kib() -> int:
    """This process's resident set size, KiB (``VmRSS`` in ``/proc/self/status``)."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise BenchmarkError("no VmRSS in /proc/self/status")


def listen_overflows() -> int:
    """``TcpExt: ListenOverflows`` of this network namespace (0 if the kernel has none)."""
    try:
        with open("/proc/net/netstat", encoding="ascii") as netstat:
            lines = netstat.read().splitlines()
    except OSError:
        return 0
    for names, values in zip(lines[::2], lines[1::2]):
        if names.startswith("TcpExt:"):
            fields = dict(zip(names.split()[1:], values.split()[1:]))
            return int(fields.get("ListenOverflows", 0))
    return 0


def _settled_rss() -> int:
    gc.collect()
    return rss_kib()


def request(connection: int, number: int) -> bytes:
    """The ``number``-th request of ``connection``."""
    return b"conn %06d msg %d\n" % (connection, number)


@dataclass
class ConcurrencyRun:
    """What one child process measured.

    ``replies`` counts correct replies; ``wrong`` replies that were not the request sent;
    ``lost`` requests sent whose reply never came (or requests never sent because of it).
    """

    peer: str
    connections: int
    messages: int
    replies: int = 0
    wrong: int = 0
    lost: int = 0
    connect_seconds: float = 0.0
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    close_seconds: float = 0.0
    rss_before_kib: int = 0
    rss_open_kib: int = 0
    rss_after_kib: int = 0
    listen_overflows: int = 0
    error: str = ""
    profile: str = ""

    @property
    def kib_open(self) -> float:
        return (self.rss_open_kib - self.rss_before_kib) / self.connections

    @property
    def kib_after(self) -> float:
        return (self.rss_after_kib - self.rss_before_kib) / self.connections


class _OursClient:
    """One hsocket client's state; ``on_reply`` is its read callback (runs on the loop)."""

    __slots__ = ("done", "index", "sent", "shared", "sock")

    def __init__(self, index: int, shared: _OursShared) -> None:
        self.index = index
        self.shared = shared
        self.done = 0
        self.sent = b""
        self.sock: Optional[hsocket.Socket] = None

    def on_connected(self) -> None:
        shared = self.shared
        shared.connected += 1
        if shared.connected == shared.run.connections:
            shared.all_connected.set()

    def start(self) -> None:
        assert self.sock is not None
        self.sent = request(self.index, 0)
        self.sock.write(self.sent)
        self.sock.read(b"\n", 1)

    def on_reply(self, data: bytes, tag: int) -> None:
        shared = self.shared
        run = shared.run
        if data == self.sent:
            run.replies += 1
        else:
            run.wrong += 1
        self.done += 1
        if self.done == MESSAGES_PER_CONNECTION:
            shared.finished += 1
            if shared.finished == run.connections:
                shared.all_done.set()
            return
        self.sent = request(self.index, self.done)
        sock = self.sock
        assert sock is not None
        sock.write(self.sent)
        sock.read(b"\n", 1)


class _OursShared:
    """Counters of a run of ours, changed on the loop only; events the main thread waits on."""

    def __init__(self, run: ConcurrencyRun) -> None:
        self.run = run
        self.accepted = 0
        self.connected = 0
        self.finished = 0
        self.echoed = 0
        self.all_accepted = threading.Event()
        self.all_connected = threading.Event()
        self.all_done = threading.Event()


def concurrency_ours(connections: int, timeout: float, profile: bool) -> ConcurrencyRun:
    """C hsocket clients against an hsocket echo server, all on the socket loop."""
    run = ConcurrencyRun(OURS, connections, connections * MESSAGES_PER_CONNECTION)
    shared = _OursShared(run)

    def echo(data: bytes, tag: int, client: hsocket.Socket) -> None:
        shared.echoed += 1
        client.write(data)
        client.read(b"\n", 1)

    def on_accept(client: hsocket.Socket) -> None:
        client.read(b"\n", 1)
        shared.accepted += 1
        if shared.accepted == connections:
            shared.all_accepted.set()

    server = hsocket.server(0, echo)
    clients: list[_OursClient] = []
    connecting = Profilers(main=profile, loop=profile)
    messaging = Profilers(loop=profile)
    try:
        server.on_connect(on_accept)
        port = server.info()["localPort"]
        if not isinstance(port, int) or not port:
            raise BenchmarkError(f"ours: the server is not listening: {server!r}")
        run.rss_before_kib = _settled_rss()
        overflows = listen_overflows()
        connecting.enable()
        started = time.perf_counter()
        for index in range(connections):
            client = _OursClient(index, shared)
            client.sock = hsocket.new(client.on_reply).connect(HOST, port, client.on_connected)
            if client.sock is None:
                raise BenchmarkError(f"ours: connect() refused on connection {index}")
            clients.append(client)
        deadline = time.monotonic() + timeout
        for event, what in ((shared.all_connected, "connected"), (shared.all_accepted, "accepted")):
            if not event.wait(max(deadline - time.monotonic(), 0.0)):
                raise BenchmarkError(
                    f"ours: {shared.connected} connected, {shared.accepted} accepted of "
                    f"{connections} within {timeout} s ({what} missing)"
                )
        run.connect_seconds = time.perf_counter() - started
        connecting.disable()
        run.listen_overflows = listen_overflows() - overflows
        run.rss_open_kib = _settled_rss()
        messaging.enable()
        cpu = time.process_time()
        started = time.perf_counter()
        for client in clients:
            client.start()
        finished = shared.all_done.wait(timeout)
        run.seconds = time.perf_counter() - started
        run.cpu_seconds = time.process_time() - cpu
        messaging.disable()
        if not finished:
            run.error = f"ours: {shared.finished} of {connections} clients done within {timeout} s"
        run.rss_after_kib = _settled_rss()
    finally:
        closing = time.perf_counter()
        for client in clients:
            if client.sock is not None:
                client.sock.disconnect()
        server.disconnect()
        run.close_seconds = time.perf_counter() - closing
    run.lost = run.messages - run.replies - run.wrong
    errors = [e for c in clients if c.sock is not None for e in c.sock.callback_errors]
    errors += server.callback_errors
    if errors and not run.error:
        run.error = f"ours: {len(errors)} callback errors, the first: {errors[0]}"
    if shared.echoed != run.replies + run.wrong and not run.error:
        run.error = f"ours: the server echoed {shared.echoed} lines, the clients got {run.replies}"
    if profile:
        run.profile = "\n".join(
            f"-- {title}\n{_profile_text(profiler)}"
            for title, profiler in (
                ("connect phase, main thread", connecting.main),
                ("connect phase, socket loop thread", connecting.loop),
                ("messages phase, socket loop thread", messaging.loop),
            )
            if profiler is not None
        )
    return run


def concurrency_asyncio(connections: int, timeout: float, profile: bool) -> ConcurrencyRun:
    """C asyncio clients against an asyncio echo server, on one event loop."""
    return asyncio.run(_asyncio_main(connections, timeout))


async def _asyncio_main(connections: int, timeout: float) -> ConcurrencyRun:
    run = ConcurrencyRun(ASYNCIO, connections, connections * MESSAGES_PER_CONNECTION)
    accepted = 0
    ended = 0
    echoed = 0
    all_accepted = asyncio.Event()
    all_ended = asyncio.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal accepted, ended, echoed
        accepted += 1
        if accepted == connections:
            all_accepted.set()
        try:
            while True:
                line = await reader.readuntil(b"\n")
                echoed += 1
                writer.write(line)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the client closed
        finally:
            writer.close()
            ended += 1
            if ended == connections:
                all_ended.set()

    async def exchange(
        index: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        for number in range(MESSAGES_PER_CONNECTION):
            sent = request(index, number)
            writer.write(sent)
            if await reader.readuntil(b"\n") == sent:
                run.replies += 1
            else:
                run.wrong += 1

    server = await asyncio.start_server(handle, HOST, 0, backlog=LISTEN_BACKLOG)
    streams: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    try:
        port = server.sockets[0].getsockname()[1]
        run.rss_before_kib = _settled_rss()
        overflows = listen_overflows()
        started = time.perf_counter()
        window = asyncio.Semaphore(CONNECT_WINDOW)

        async def open_one() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
            async with window:
                return await asyncio.open_connection(HOST, port)

        opening = asyncio.gather(*(open_one() for _ in range(connections)))
        try:
            streams = await asyncio.wait_for(opening, timeout)
            await asyncio.wait_for(all_accepted.wait(), timeout)
        except asyncio.TimeoutError:
            raise BenchmarkError(
                f"asyncio: {len(streams)} connected, {accepted} accepted of {connections} "
                f"within {timeout} s"
            ) from None
        run.connect_seconds = time.perf_counter() - started
        run.listen_overflows = listen_overflows() - overflows
        run.rss_open_kib = _settled_rss()
        cpu = time.process_time()
        started = time.perf_counter()
        traffic = asyncio.gather(*(exchange(i, r, w) for i, (r, w) in enumerate(streams)))
        try:
            await asyncio.wait_for(traffic, timeout)
        except asyncio.TimeoutError:
            run.error = f"asyncio: messages not done within {timeout} s"
        run.seconds = time.perf_counter() - started
        run.cpu_seconds = time.process_time() - cpu
        run.rss_after_kib = _settled_rss()
    finally:
        closing = time.perf_counter()
        for _, writer in streams:
            writer.close()
        await asyncio.gather(*(w.wait_closed() for _, w in streams), return_exceptions=True)
        if streams:
            try:
                await asyncio.wait_for(all_ended.wait(), timeout)
            except asyncio.TimeoutError:
                if not run.error:
                    run.error = f"asyncio: {ended} of {connections} handlers ended in {timeout} s"
        server.close()
        await server.wait_closed()
        run.close_seconds = time.perf_counter() - closing
    run.lost = run.messages - run.replies - run.wrong
    if echoed != run.replies + run.wrong and not run.error:
        run.error = f"asyncio: the server echoed {echoed} lines, the clients got {run.replies}"
    return run


def _profile_text(profiler: cProfile.Profile) -> str:
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats(pstats.SortKey.TIME).print_stats(PROFILE_TOP)
    return out.getvalue()


CONCURRENCY_PEERS: dict[str, Callable[[int, float, bool], ConcurrencyRun]] = {
    OURS: concurrency_ours,
    ASYNCIO: concurrency_asyncio,
}


def _child_main(
    conn: Connection, peer: str, connections: int, timeout: float, profile: bool
) -> None:
    # Runs in a fresh process: one concurrency run, its result (or its error) sent back.
    try:
        run = CONCURRENCY_PEERS[peer](connections, timeout, profile)
    except BaseException as exc:
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
    else:
        conn.send(("ok", asdict(run)))
    finally:
        conn.close()


def run_child(peer: str, connections: int, timeout: float, profile: bool = False) -> ConcurrencyRun:
    """One concurrency run of ``peer`` in a fresh process.

    Raises:
        BenchmarkError: If the process fails, or does not answer within its time.
    """
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe(duplex=False)
    process = context.Process(
        target=_child_main, args=(child, peer, connections, timeout, profile), daemon=True
    )
    process.start()
    child.close()
    limit = 3 * timeout + 30  # connect, messages and close each wait at most ``timeout``
    try:
        if not parent.poll(limit):
            raise BenchmarkError(f"{peer}: the child process did not answer within {limit} s")
        status, detail = parent.recv()
    except EOFError:
        raise BenchmarkError(f"{peer}: the child process died ({process.exitcode})") from None
    finally:
        parent.close()
        process.join(timeout)
        if process.is_alive():
            process.kill()
            process.join()
    if status != "ok":
        raise BenchmarkError(detail)
    return ConcurrencyRun(**detail)


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


def _set_affinity(cpus: set[int]) -> None:
    # Every thread of this process (the socket loop's too, if it runs); threads started later
    # inherit the mask of the thread that starts them.
    for tid in os.listdir("/proc/self/task"):
        with contextlib.suppress(OSError):
            os.sched_setaffinity(int(tid), cpus)


@contextlib.contextmanager
def pinned_to_one_cpu(enabled: bool) -> Iterator[None]:
    """With ``enabled``, run the block with every thread of this process on one CPU."""
    if not enabled or not hasattr(os, "sched_setaffinity"):
        yield
        return
    original = os.sched_getaffinity(0)
    _set_affinity({min(original)})
    try:
        yield
    finally:
        _set_affinity(original)


def measure_latency(rounds: int, repeat: int, timeout: float) -> list[LatencyMeasurement]:
    """Run every variant ``repeat`` times, interleaved; print each as it ends."""
    results = [LatencyMeasurement(name, rounds) for name, _ in LATENCY_VARIANTS]
    order = list(zip(LATENCY_VARIANTS, results))
    for round_ in range(repeat):
        for (name, variant), result in order if round_ % 2 == 0 else order[::-1]:
            gc.collect()
            result.add(variant(rounds, timeout, NO_PROFILE))
            print(
                f"  round {round_ + 1} {name:<8} median {result.medians_us[-1]:7.1f} us  "
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


def format_latency(rows: list[LatencyRow], rounds: int, repeat: int) -> str:
    """Render the latency rows as a fixed-width text table."""
    header = (
        f"{'variant':<8} {'median us':>9} {'p99 us':>8} {'mean us':>8} {'cpu us':>7}  "
        f"{'median x raw':>12} {'p99 x raw':>9} {'mean x raw':>10}"
    )
    lines = [
        f"3. round-trip latency: {rounds:,} PING/+PONG pairs per run, median of {repeat} runs",
        header,
        "-" * len(header),
    ]
    for row in rows:
        lines.append(
            f"{row.variant:<8} {row.median_us:>9.1f} {row.p99_us:>8.1f} {row.mean_us:>8.1f} "
            f"{row.cpu_us:>7.1f}  {row.median_x_raw:>12.2f} {row.p99_x_raw:>9.2f} "
            f"{row.mean_x_raw:>10.2f}"
        )
    fixture = next(row for row in rows if row.variant == FIXTURE)
    verdict = "met" if fixture.median_x_raw <= 3.0 else "NOT met"
    lines += [
        "raw = blocking client + blocking server thread (the floor); fixture = TestClient.expect",
        "against a scripted MockServer; server = raw client against an hsocket.server callback.",
        "cpu = process CPU time per round trip (all threads). x raw < 1 = faster than the floor.",
        f"target (fixture median within 3x of raw): {fixture.median_x_raw:.2f}x, {verdict}",
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
    for round_ in range(repeat):
        for result in results if round_ % 2 == 0 else results[::-1]:
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
    return f"{'':>{width}}" if value is None else f"{value:>{width}.2f}"


def format_concurrency(rows: list[ConcurrencyRow], repeat: int) -> str:
    """Render the concurrency rows as a fixed-width text table."""
    header = (
        f"{'peer':<8} {'conns':>6} {'msgs':>7} {'lost':>5} {'connect s':>9} {'total s':>8} "
        f"{'msgs/s':>8} {'cpu us':>7} {'KiB/conn':>8} {'after':>7}"
    )
    lines = [
        f"5. concurrency: {MESSAGES_PER_CONNECTION} request/responses per connection, "
        f"all connections at once, median of {repeat} runs (lost: all runs)",
        header,
        "-" * len(header),
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
            stats = pstats.Stats(profiler, stream=sys.stdout)
            stats.sort_stats(pstats.SortKey.TIME).print_stats(PROFILE_TOP)
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


def write_json(
    args: argparse.Namespace,
    wall: float,
    latency: tuple[list[LatencyRow], list[LatencyMeasurement]],
    concurrency: tuple[list[ConcurrencyRow], list[ConcurrencyMeasurement]],
) -> None:
    """Write the tables' rows, every run's figures and the platform to ``args.json``."""
    report: dict[str, Any] = {
        "quick": args.quick,
        "repeat": args.repeat,
        "round_trips": args.round_trips,
        "connections": args.connections,
        "messages_per_connection": MESSAGES_PER_CONNECTION,
        "wall_seconds": wall,
        "python": sys.version,
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "hsocket_version": hsocket.__version__,
        "git_revision": _git_revision(),
        "one_cpu": args.one_cpu,
        "rlimit_nofile": list(resource.getrlimit(resource.RLIMIT_NOFILE)),
        "latency_rows": [asdict(row) for row in latency[0]],
        "latency_measurements": [
            {
                **asdict(m),
                "median_us": m.median_us,
                "p99_us": m.p99_us,
                "mean_us": m.mean_us,
                "cpu_us": m.cpu_us,
            }
            for m in latency[1]
        ],
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
    with open(args.json, "w", encoding="utf-8") as out:
        json.dump(report, out, indent=2)
        out.write("\n")


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2,000 round trips, 500 connections")
    parser.add_argument("--json", metavar="PATH", help="also write the results to PATH")
    parser.add_argument("--repeat", type=int, help="runs per variant (>= 3; 5, --quick 3)")
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
        "--one-cpu", action="store_true", help="run figure 3 with every thread on one CPU"
    )
    parser.add_argument(
        "--profile", action="store_true", help="then profile ours (latency and concurrency)"
    )
    args = parser.parse_args(argv)
    if args.repeat is None:
        args.repeat = 3 if args.quick else 5
    if args.round_trips is None:
        args.round_trips = ROUND_TRIPS_QUICK if args.quick else ROUND_TRIPS_FULL
    if args.connections is None:
        args.connections = CONNECTIONS_QUICK if args.quick else CONNECTIONS_FULL
    if args.repeat < 3:
        parser.error("--repeat must be 3 or more")
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
    with pinned_to_one_cpu(args.one_cpu):
        latency_results = measure_latency(args.round_trips, args.repeat, args.timeout)
    print(
        f"5. concurrency: {args.connections:,} connections x {MESSAGES_PER_CONNECTION} "
        "request/responses"
    )
    concurrency_results = measure_concurrency(args.connections, args.repeat, args.timeout)
    latency = (latency_rows(latency_results), latency_results)
    concurrency = (concurrency_rows(concurrency_results), concurrency_results)
    wall = time.perf_counter() - started
    print()
    print(format_latency(latency[0], args.round_trips, args.repeat))
    print()
    print(format_concurrency(concurrency[0], args.repeat))
    print(f"\n{'quick' if args.quick else 'full'} run, {wall:.0f} s wall time", flush=True)
    if args.json:
        write_json(args, wall, latency, concurrency)
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
