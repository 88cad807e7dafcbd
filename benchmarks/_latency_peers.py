"""The peers of ``bench_latency.py``: the round-trip latency variants (raw, fixture, server),
and the concurrency runs (ours, asyncio), each in a child process of its own.

Not a script: ``bench_latency.py`` imports it (see that script's docstring for what is measured).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import multiprocessing
import socket
import threading
import time
from dataclasses import asdict, astuple, dataclass
from multiprocessing.connection import Connection
from typing import Callable, Optional

import _placement
from _common import (
    HOST,
    BenchmarkError,
    Profilers,
    ServerThread,
    Stopwatch,
    Watchdog,
    listening_port,
    profile_text,
    stop_process,
)
from _design_floor import DesignFloor

import pytest_hsocket as hsocket
from pytest_hsocket.testing import MockServer, TestClient

PING = b"PING\r\n"
PONG = b"+PONG\r\n"
CRLF = b"\r\n"
WARMUP_ROUND_TRIPS = 200
MESSAGES_PER_CONNECTION = 10
LISTEN_BACKLOG = 4096
"""asyncio's listen backlog, the same as ours (``_listener.LISTEN_BACKLOG``)."""
CONNECT_WINDOW = 1024
"""asyncio's connects in flight at most: a burst beyond the accept queue waits 1 s for SYNs."""
PROFILE_TOP = 25
"""Functions shown per profile."""

RAW, LOOP, FIXTURE, SERVER = "raw", "loop", "fixture", "server"
OURS, ASYNCIO = "ours", "asyncio"


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
    _placement.apply()  # every thread of the run exists now
    watchdog = Watchdog(sock, timeout)
    try:
        _raw_round_trips(sock, WARMUP_ROUND_TRIPS, timed=False)
        stopwatch = Stopwatch()
        samples = _raw_round_trips(sock, rounds, timed=True)
        run = LatencyRun(samples, *astuple(stopwatch.stop()))
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


class RawServer(ServerThread):
    """A thread with a blocking accept and one blocking connection answering PING lines."""

    def __init__(self, timeout: float) -> None:
        self.answered = 0
        self._conn: Optional[socket.socket] = None
        super().__init__("raw-echo-server", timeout)

    def serve(self) -> None:
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

    def unblock(self) -> None:
        for sock in (self._conn, self._listener):
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
        self._thread.join(self.timeout)

    def finish(self) -> None:
        """Wait for the thread (the client has closed); raise what it failed with.

        Raises:
            BenchmarkError: If it does not end in time or failed.
        """
        self.join("raw server")


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
            _placement.apply()
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
            stopwatch = Stopwatch()
            for i in range(rounds):
                started = clock()
                write(PING)
                reply = expect(CRLF)
                append(clock() - started)
                if reply != PONG:
                    raise BenchmarkError(f"fixture: got {bytes(reply)!r} at round trip {i}")
            run = LatencyRun(samples, *astuple(stopwatch.stop()))
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
        port = listening_port(server, "server")
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


def latency_loop(rounds: int, timeout: float, profilers: Profilers) -> LatencyRun:
    """The floor of the fixtures' design: one thread owns both ends (no hsocket code)."""
    floor = DesignFloor(timeout)
    try:
        _placement.apply()
        for i in range(WARMUP_ROUND_TRIPS):
            if floor.round_trip() != PONG:
                raise BenchmarkError(f"loop floor: wrong reply at warm-up round trip {i}")
        samples: list[int] = []
        clock = time.perf_counter_ns
        round_trip = floor.round_trip
        stopwatch = Stopwatch()
        for i in range(rounds):
            started = clock()
            reply = round_trip()
            samples.append(clock() - started)
            if reply != PONG:
                raise BenchmarkError(f"loop floor: got {reply!r} at round trip {i}")
        run = LatencyRun(samples, *astuple(stopwatch.stop()))
    finally:
        floor.close()
    if floor.answered != rounds + WARMUP_ROUND_TRIPS:
        raise BenchmarkError(f"loop floor: answered {floor.answered} of {rounds} + warm-up")
    return run


LatencyVariant = Callable[[int, float, Profilers], LatencyRun]
LATENCY_VARIANTS: list[tuple[str, LatencyVariant]] = [
    (RAW, latency_raw),
    (LOOP, latency_loop),
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
        port = listening_port(server, "ours")
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
            f"-- {title}\n{profile_text(profiler, PROFILE_TOP)}"
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
        stop_process(process, timeout)
    if status != "ok":
        raise BenchmarkError(detail)
    return ConcurrencyRun(**detail)
