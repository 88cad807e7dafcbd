"""Receive throughput of ``pytest_hsocket`` next to asyncio and blocking sockets, in one run.

Run it from the repository root, with the package importable::

    python benchmarks/bench_socket.py            # full run, a few minutes
    python benchmarks/bench_socket.py --quick    # smaller sizes, about a minute
    python benchmarks/bench_socket.py --quick --json out.json

Every figure is the median of ``--repeat`` runs (3 at least; three times as many at the 1x
size, whose runs are the shortest and the noisiest) and is printed as a table of
``figure, ours, peer, ours/peer``; ``--json`` writes the same rows plus every sample. The runs
of one workload are interleaved: each round runs every size (ascending, then descending) and
at each size every receiver in turn, so a slow spell of the machine hits all sizes and
receivers alike. Bulk runs first: a run before it can leave glibc's allocator in a state that
slows asyncio's bulk 5x. Before a workload, each receiver runs once untimed on a tenth of its
1x size (a process's first runs pay for start-up). At the end of each workload, one line
per measurement shows the median time, MB/s, µs per message, the receiving process's CPU time
over wall time (``cpu``: near 100 % = the receiver is the bottleneck; well below = it waited
for the sender or the kernel) and every sample.

What is measured is always the *receiver*. The sender is a plain blocking stdlib socket in a
separate process (started once, with the ``spawn`` method) that writes pre-built 1 MiB chunks
with ``sendall`` to 127.0.0.1 and then closes. A separate process keeps the sender off the
receiver's GIL, so no receiver is slowed down by the sender's Python code. On a machine with
two CPUs or more the sender process is pinned to one and this process (every receiver, and
ours' socket loop) to another (``--no-pin`` leaves them to the scheduler): left free, the
scheduler at times ran the sender on the receiver's CPU for the start of a run, which made
ours' 1 GiB runs vary from 0.18 to 0.26 s and the scaling figure read ~0.77 (faster with
size). A run's clock starts just before the sender is told to connect and stops when the
receiver has the last message, so connection set-up (well under a millisecond) is included.

The figures:

1. **Delimiter-framed throughput.** ``N`` = 1,000,000 messages of 64 bytes, each ending in
   ``b"\\n"``; MB/s = ``N * 64 / elapsed`` (1 MB = 10**6 bytes). Receivers:

   - *ours*: ``hsocket.server(0, cb)`` with ``on_connect(lambda c: c.read(b"\\n", 1))`` and a
     callback ``cb(data, tag, client)`` that counts the message and re-queues
     ``client.read(b"\\n", 1)``: one tagged read per message, callback style, as a user writes
     it. The callback sets a ``threading.Event`` after the N-th message.
   - *asyncio*: an ``asyncio.start_server`` handler that awaits ``reader.readuntil(b"\\n")`` N
     times (default stream limits, default event loop).
   - *makefile*: a blocking socket's ``makefile("rb").readline()``, N times.

2. **Length-framed bulk throughput.** 1 GiB (256 MiB with ``--quick``) received as 64 KiB
   messages. *ours*: ``client.read(65536, 2)`` re-queued in the callback; *asyncio*:
   ``reader.readexactly(65536)``; *recv_into*: a blocking ``recv_into`` of at most 64 KiB into
   one preallocated buffer until every byte is in (no framing and no copy: the upper bound).

3. **Scaling.** Figures 1 and 2 again at 4x and (full run only) 16x their size, for every
   receiver, reported as time per message (µs per line, µs per 64 KiB block) so that
   linearity is visible: the ``ours/1x`` column is ours' time per message over its time at 1x
   (1.00 = the cost per message does not grow with the size). The 1x rows are figures 1 and 2.

With ``--profile``, one more run of ours per workload is made under ``cProfile`` (enabled on the
socket loop's thread from the first read to the last message) and the top functions by own time
are printed. Profiled runs are not part of the table.

Each receiver adds up the lengths of the messages it got, and a run fails unless that total,
the message count and the sender's byte count agree. There is no sleep anywhere: every wait is
an event, a socket or a pipe with a timeout (``--timeout``), and a timeout fails the run.
Servers and sockets are closed after each run (``disconnect()`` for ours).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import gc
import multiprocessing
import os
import socket
import statistics
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from multiprocessing.connection import Connection
from typing import Callable, Optional, Union

import _placement
from _common import (
    HOST,
    BenchmarkError,
    Stopwatch,
    Timing,
    Watchdog,
    check_repeat,
    listening_port,
    new_parser,
    platform_fields,
    print_profile,
    print_report,
    ruled,
    stop_process,
    write_report,
)

import pytest_hsocket as hsocket

LINE_SIZE = 64
LINE_COUNT = 1_000_000
BLOCK_SIZE = 64 * 1024
BULK_FULL = 1024**3
BULK_QUICK = 256 * 1024**2
CHUNK_SIZE = 1024 * 1024
"""Bytes the sender hands to one ``sendall``."""
MB = 1e6
PROFILE_TOP = 25
"""Functions shown per profile."""

LINES, BULK = "lines", "bulk"


# -- the sender process -----------------------------------------------------------------------


def _line_chunk() -> bytes:
    # 64-byte lines, each numbered, so the buffer is not one repeated pattern.
    lines = [(b"%010d " % i).ljust(LINE_SIZE - 1, b".") + b"\n" for i in range(CHUNK_SIZE // 64)]
    return b"".join(lines)


def _sender_main(conn: Connection) -> None:
    # Runs in the sender process: ("lines", port, nbytes) / ("bulk", port, nbytes) -> sends
    # nbytes to 127.0.0.1:port and answers ("ok", nbytes) or ("error", message); None stops.
    chunks = {LINES: _line_chunk(), BULK: bytes(range(256)) * (CHUNK_SIZE // 256)}
    while True:
        command = conn.recv()
        if command is None:
            return
        kind, port, nbytes = command
        chunk = chunks[kind]
        try:
            with socket.create_connection((HOST, port)) as sock:
                left = nbytes
                while left >= len(chunk):
                    sock.sendall(chunk)
                    left -= len(chunk)
                if left:
                    sock.sendall(chunk[:left])
                sock.shutdown(socket.SHUT_WR)
        except OSError as exc:
            conn.send(("error", f"sender: {exc!r}"))
        else:
            conn.send(("ok", nbytes))


class Sender:
    """The sender process and the pipe that drives it."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._process = context.Process(target=_sender_main, args=(child,), daemon=True)
        self._process.start()
        child.close()
        self.pid: Optional[int] = self._process.pid

    def start(self, kind: str, port: int, nbytes: int) -> None:
        """Tell the sender to connect to ``port`` and send ``nbytes`` of ``kind``."""
        self._conn.send((kind, port, nbytes))

    def finish(self, nbytes: int) -> None:
        """Wait for the sender's report on the current run.

        Raises:
            BenchmarkError: If it does not answer in time, failed, or sent another count.
        """
        if not self._conn.poll(self.timeout):
            raise BenchmarkError(f"the sender did not finish within {self.timeout} s")
        status, detail = self._conn.recv()
        if status != "ok":
            raise BenchmarkError(detail)
        if detail != nbytes:
            raise BenchmarkError(f"the sender sent {detail} bytes, not {nbytes}")

    def close(self) -> None:
        """Stop the sender process."""
        with contextlib.suppress(OSError):
            self._conn.send(None)
        stop_process(self._process, self.timeout)
        self._conn.close()


# -- receivers ---------------------------------------------------------------------------------
#
# Each receiver takes the sender, the framing (a delimiter or a length), the number of messages
# and the total bytes; it returns the wall-clock and CPU seconds from telling the sender to go
# to having the last message, after checking that it got exactly what was sent. The sender is
# another process, so the CPU time (``Stopwatch``) is the receiver's alone (every thread of
# this process: for ours, mostly the socket loop's).

Framing = Union[bytes, int]
"""A delimiter (bytes) or a message length (int)."""
Receiver = Callable[[Sender, Framing, int, int], Timing]


def _kind(framing: Framing) -> str:
    return LINES if isinstance(framing, bytes) else BULK


def _check(name: str, messages: int, got_messages: int, nbytes: int, got_bytes: int) -> None:
    if got_messages != messages or got_bytes != nbytes:
        raise BenchmarkError(
            f"{name}: received {got_messages} messages / {got_bytes} bytes, "
            f"expected {messages} / {nbytes}"
        )


def receive_ours(
    sender: Sender,
    framing: Framing,
    messages: int,
    nbytes: int,
    *,
    profiler: Optional[cProfile.Profile] = None,
) -> Timing:
    """``hsocket.server`` with a callback that re-queues one tagged read per message.

    With ``profiler``, profile the socket loop's thread from the first read to the last.
    """
    read_tag = 1 if isinstance(framing, bytes) else 2
    done = threading.Event()
    count = 0
    total = 0

    def on_data(data: bytes, tag: int, client: hsocket.Socket) -> None:
        nonlocal count, total
        count += 1
        total += len(data)
        if count == messages:
            if profiler is not None:
                profiler.disable()
            done.set()
        else:
            client.read(framing, read_tag)

    server = hsocket.server(0, on_data)
    try:

        def first_read(client: hsocket.Socket) -> None:
            if profiler is not None:
                profiler.enable()  # hooks run on the socket loop's thread
            client.read(framing, read_tag)

        server.on_connect(first_read)
        port = listening_port(server, "ours")
        clock = Stopwatch()
        sender.start(_kind(framing), port, nbytes)
        if not done.wait(sender.timeout):
            raise BenchmarkError(f"ours: {count} of {messages} messages within {sender.timeout} s")
        timing = clock.stop()
        sender.finish(nbytes)
    finally:
        server.disconnect()
    server.check()
    _check("ours", messages, count, nbytes, total)
    return timing


def receive_asyncio(sender: Sender, framing: Framing, messages: int, nbytes: int) -> Timing:
    """An asyncio server whose handler awaits ``readuntil`` or ``readexactly`` per message."""
    return asyncio.run(_asyncio_main(sender, framing, messages, nbytes))


async def _asyncio_main(sender: Sender, framing: Framing, messages: int, nbytes: int) -> Timing:
    loop = asyncio.get_running_loop()
    result: asyncio.Future[tuple[int, int]] = loop.create_future()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        count = 0
        total = 0
        try:
            if isinstance(framing, bytes):
                for _ in range(messages):
                    total += len(await reader.readuntil(framing))
                    count += 1
            else:
                for _ in range(messages):
                    total += len(await reader.readexactly(framing))
                    count += 1
        except Exception as exc:
            if not result.done():
                result.set_exception(exc)
        else:
            result.set_result((count, total))
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        port = server.sockets[0].getsockname()[1]
        clock = Stopwatch()
        sender.start(_kind(framing), port, nbytes)
        try:
            count, total = await asyncio.wait_for(result, sender.timeout)
        except asyncio.TimeoutError:
            raise BenchmarkError(f"asyncio: no result within {sender.timeout} s") from None
        timing = clock.stop()
        sender.finish(nbytes)
    finally:
        server.close()
        await server.wait_closed()
    _check("asyncio", messages, count, nbytes, total)
    return timing


def _accept(
    sender: Sender, kind: str, nbytes: int
) -> tuple[socket.socket, socket.socket, Stopwatch]:
    # A blocking listener; accept() has the run's timeout, the accepted socket has none.
    listener = socket.create_server((HOST, 0))
    try:
        listener.settimeout(sender.timeout)
        clock = Stopwatch()
        sender.start(kind, listener.getsockname()[1], nbytes)
        conn, _ = listener.accept()
    except BaseException:
        listener.close()
        raise
    conn.setblocking(True)
    return listener, conn, clock


def receive_makefile(sender: Sender, framing: Framing, messages: int, nbytes: int) -> Timing:
    """A blocking socket's ``makefile("rb").readline()`` per message."""
    if framing != b"\n":
        raise ValueError(f"makefile reads lines only, not {framing!r}")
    listener, conn, clock = _accept(sender, LINES, nbytes)
    watchdog = Watchdog(conn, sender.timeout)
    count = 0
    total = 0
    try:
        with conn.makefile("rb") as stream:
            readline = stream.readline
            for _ in range(messages):
                line = readline()
                if not line:
                    break
                total += len(line)
                count += 1
        timing = clock.stop()
    finally:
        watchdog.cancel()
        conn.close()
        listener.close()
    if watchdog.fired:
        raise BenchmarkError(f"makefile: {count} of {messages} lines within {sender.timeout} s")
    sender.finish(nbytes)
    _check("makefile", messages, count, nbytes, total)
    return timing


def receive_recv_into(sender: Sender, framing: Framing, messages: int, nbytes: int) -> Timing:
    """Blocking ``recv_into`` of at most one block into one preallocated buffer."""
    if not isinstance(framing, int):
        raise TypeError(f"recv_into reads blocks only, not {framing!r}")
    listener, conn, clock = _accept(sender, BULK, nbytes)
    watchdog = Watchdog(conn, sender.timeout)
    buffer = bytearray(framing)
    total = 0
    try:
        recv_into = conn.recv_into
        while total < nbytes:
            n = recv_into(buffer)
            if not n:
                break
            total += n
        timing = clock.stop()
    finally:
        watchdog.cancel()
        conn.close()
        listener.close()
    if watchdog.fired:
        raise BenchmarkError(f"recv_into: {total} of {nbytes} bytes within {sender.timeout} s")
    sender.finish(nbytes)
    _check("recv_into", messages, total // framing, nbytes, total)
    return timing


# -- measuring and reporting -------------------------------------------------------------------


@dataclass
class Measurement:
    """The runs of one receiver on one workload."""

    receiver: str
    workload: str
    messages: int
    nbytes: int
    seconds: list[float] = field(default_factory=list)
    cpu_seconds: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def cpu_share(self) -> float:
        """The median of CPU time over wall time: near 1.0, the receiver was CPU-bound."""
        return statistics.median(c / s for c, s in zip(self.cpu_seconds, self.seconds))

    @property
    def mb_per_s(self) -> float:
        return self.nbytes / MB / self.median

    @property
    def us_per_message(self) -> float:
        return self.median / self.messages * 1e6


@dataclass
class Row:
    """One line of the table: a figure of ours next to the same figure of a peer.

    ``ours_vs_1x`` (scaling rows only) is ours' time per message over ours' at 1x.
    """

    figure: str
    unit: str
    ours: float
    peer_name: str
    peer: float
    ratio: float
    ours_vs_1x: Optional[float] = None


def measure(
    sender: Sender,
    receivers: list[tuple[str, Receiver]],
    framing: Framing,
    count: int,
    scales: list[int],
    repeat: int,
) -> dict[int, list[Measurement]]:
    """Run each receiver at each size (``count * scale`` messages); keep every timing.

    First each receiver runs once, untimed, on a tenth of the 1x size: the first runs in a
    process pay for imports, the socket loop's start and the allocator's first growth. Then
    ``repeat`` rounds: each round runs every size (ascending, then descending the next round)
    and, at each size, every receiver in turn, so that a slow spell of the machine hits all
    sizes and receivers alike rather than one of them. The 1x size, whose runs are the
    shortest and the noisiest and which every scaling figure divides by, runs three times a
    round.
    """

    def nbytes(messages: int) -> int:
        return messages * (LINE_SIZE if isinstance(framing, bytes) else framing)

    results = {
        scale: [
            Measurement(
                name, f"{_kind(framing)} x{count * scale}", count * scale, nbytes(count * scale)
            )
            for name, _ in receivers
        ]
        for scale in scales
    }
    small = max(count // 10, 1)
    for _, receiver in receivers:
        receiver(sender, framing, small, nbytes(small))
    for round_ in range(repeat):
        for scale in scales if round_ % 2 == 0 else scales[::-1]:
            for _ in range(3 if scale == 1 else 1):
                for (_, receiver), result in zip(receivers, results[scale]):
                    gc.collect()
                    timing = receiver(sender, framing, result.messages, result.nbytes)
                    result.seconds.append(timing.seconds)
                    result.cpu_seconds.append(timing.cpu_seconds)
    for scale in scales:
        for result in results[scale]:
            shown = ", ".join(f"{s:.3f}" for s in result.seconds)
            print(
                f"  {result.receiver:<10} {result.workload:<14} median {result.median:7.3f} s "
                f"{result.mb_per_s:8.1f} MB/s {result.us_per_message:8.3f} us/msg "
                f"cpu {result.cpu_share:4.0%}  [{shown}]",
                flush=True,
            )
    return results


def throughput_row(figure: str, ours: Measurement, peer: Measurement) -> Row:
    """A row in MB/s: ours/peer above 1 means ours is faster."""
    return Row(
        figure=figure,
        unit="MB/s",
        ours=ours.mb_per_s,
        peer_name=peer.receiver,
        peer=peer.mb_per_s,
        ratio=ours.mb_per_s / peer.mb_per_s,
    )


def scaling_row(figure: str, ours: Measurement, peer: Measurement, base: Measurement) -> Row:
    """A row in µs per message: ours/peer below 1 means ours is faster."""
    return Row(
        figure=figure,
        unit="us/msg",
        ours=ours.us_per_message,
        peer_name=peer.receiver,
        peer=peer.us_per_message,
        ratio=ours.us_per_message / peer.us_per_message,
        ours_vs_1x=ours.us_per_message / base.us_per_message,
    )


def format_table(rows: list[Row]) -> str:
    """Render the rows as a fixed-width text table."""
    header = (
        f"{'figure':<28} {'unit':<6} {'ours':>9}  {'peer':<9} {'peer':>9} "
        f"{'ours/peer':>9} {'ours/1x':>8}"
    )
    lines = ruled(header)
    for row in rows:
        vs_1x = "" if row.ours_vs_1x is None else f"{row.ours_vs_1x:.2f}"
        lines.append(
            f"{row.figure:<28} {row.unit:<6} {row.ours:>9.2f}  {row.peer_name:<9} "
            f"{row.peer:>9.2f} {row.ratio:>9.2f} {vs_1x:>8}"
        )
    lines.append(
        "MB/s rows: ours/peer > 1 = ours faster.  us/msg rows: ours/peer < 1 = ours faster;"
    )
    lines.append("ours/1x = ours' time per message over its time at 1x (1.00 = linear).")
    return "\n".join(lines)


def run(args: argparse.Namespace, sender: Sender) -> tuple[list[Row], list[Measurement]]:
    """Measure every figure; return the table's rows and every measurement."""
    repeat = args.repeat
    lines = args.lines
    blocks = (BULK_QUICK if args.quick else BULK_FULL) // BLOCK_SIZE
    scales = [1, 4] if args.quick else [1, 4, 16]
    # Bulk first: a run of lines before it can leave glibc's allocator in a state (its dynamic
    # mmap threshold) that makes asyncio's readexactly 5x slower. Sizes are interleaved (see
    # measure): run one after the other, a slow spell at the start of a workload fell on its
    # 1x runs only, and the scaling figure read bulk as 0.66-0.77 (faster at 16x than at 1x).
    workloads: list[tuple[int, str, Framing, int, list[tuple[str, Receiver]]]] = [
        (
            2,
            "bulk",
            BLOCK_SIZE,
            blocks,
            [("asyncio", receive_asyncio), ("recv_into", receive_recv_into)],
        ),
        (1, "lines", b"\n", lines, [("asyncio", receive_asyncio), ("makefile", receive_makefile)]),
    ]
    measurements: list[Measurement] = []
    figures: list[Row] = []
    scaling: list[Row] = []
    for number, name, framing, count, peers in workloads:
        if name == "lines":
            print(f"{number}. delimiter-framed: {count:,} lines of {LINE_SIZE} bytes, x{scales}")
        else:
            print(f"{number}. length-framed: {count:,} blocks of {BLOCK_SIZE} bytes, x{scales}")
        results = measure(sender, [("ours", receive_ours), *peers], framing, count, scales, repeat)
        base = results[1][0]
        for scale in scales:
            ours, *others = results[scale]
            measurements += [ours, *others]
            for peer in others:
                if scale == 1:
                    figure = f"{number} {name}, ours vs {peer.receiver}"
                    figures.append(throughput_row(figure, ours, peer))
                figure = f"3 {name} {scale}x, vs {peer.receiver}"
                scaling.append(scaling_row(figure, ours, peer, base))
    return sorted(figures, key=lambda row: row.figure) + scaling, measurements


def profile_ours(sender: Sender, messages: int, blocks: int) -> None:
    """Profile one run of ours per workload (on the socket loop) and print the hot spots."""
    for framing, count in ((b"\n", messages), (BLOCK_SIZE, blocks)):
        profiler = cProfile.Profile()
        nbytes = count * (LINE_SIZE if isinstance(framing, bytes) else framing)
        timing = receive_ours(sender, framing, count, nbytes, profiler=profiler)
        print(
            f"\nprofile of ours, {_kind(framing)} x{count}: {timing.seconds:.3f} s under cProfile"
        )
        print_profile(profiler, PROFILE_TOP)


def write_json(
    args: argparse.Namespace, wall: float, rows: list[Row], measurements: list[Measurement]
) -> None:
    """Write the table's rows, every sample and the platform to ``args.json``."""
    report = {
        "quick": args.quick,
        "repeat": args.repeat,
        "pinned": args.pinned,
        "wall_seconds": wall,
        **platform_fields(),
        "rows": [asdict(row) for row in rows],
        "measurements": [
            {
                **asdict(m),
                "median": m.median,
                "mb_per_s": m.mb_per_s,
                "us_per_message": m.us_per_message,
                "cpu_share": m.cpu_share,
            }
            for m in measurements
        ],
    }
    write_report(args.json, report)


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = new_parser(__doc__, "256 MiB bulk, scaling to 4x only", "runs per figure (>= 3)", 3)
    parser.add_argument(
        "--lines", type=int, default=LINE_COUNT, help="messages in figure 1 (1,000,000)"
    )
    parser.add_argument(
        "--timeout", type=float, default=120.0, help="seconds a single run may take"
    )
    parser.add_argument(
        "--profile", action="store_true", help="then profile one run of ours per workload"
    )
    parser.add_argument(
        "--no-pin",
        action="store_true",
        help="leave the sender and the receivers where the scheduler puts them",
    )
    args = parser.parse_args(argv)
    check_repeat(parser, args)
    return args


def pin_apart(sender: Sender) -> bool:
    """Put the sender process on one CPU and this process (every receiver) on another; return
    whether it could (Linux, two CPUs or more)."""
    if not _placement.supported() or sender.pid is None:
        return False
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return False
    try:
        os.sched_setaffinity(sender.pid, {cpus[1]})
    except OSError:
        return False
    _placement.pin_all({cpus[0]})
    return True


def main(argv: Optional[list[str]] = None) -> int:
    """Run the benchmark; return the process exit status."""
    args = parse_args(argv)
    started = time.perf_counter()
    sender = Sender(args.timeout)
    args.pinned = not args.no_pin and pin_apart(sender)
    print(
        "sender and receivers on CPUs of their own"
        if args.pinned
        else "sender and receivers placed by the scheduler",
        flush=True,
    )
    try:
        rows, measurements = run(args, sender)
        wall = time.perf_counter() - started
        print_report([format_table(rows)], args.quick, wall)
        if args.json:
            write_json(args, wall, rows, measurements)
        if args.profile:
            blocks = (BULK_QUICK if args.quick else BULK_FULL) // BLOCK_SIZE
            profile_ours(sender, args.lines, blocks)
    finally:
        sender.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
