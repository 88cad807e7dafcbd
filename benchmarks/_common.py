"""What the benchmark scripts share: errors, timing, blocking-socket helpers, profiling, the
command line's common options, and the table and JSON output.

Not a script: ``bench_*.py`` import it as ``from _common import ...``, which works because a
script's own directory is on ``sys.path`` when it runs (``python benchmarks/bench_x.py``, from
any directory).
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import json
import multiprocessing.process
import os
import platform
import pstats
import socket
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import IO, Any, Optional, TypeVar

import pytest_hsocket as hsocket
from pytest_hsocket._loop.hub import get_loop  # to enable cProfile on the socket loop's thread

HOST = "127.0.0.1"

T = TypeVar("T")


class BenchmarkError(RuntimeError):
    """A run timed out, failed, or received something other than what was sent."""


# -- timing ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Timing:
    """One run: wall-clock seconds, and CPU seconds of this process (every thread)."""

    seconds: float
    cpu_seconds: float


class Stopwatch:
    """Started on creation; ``stop()`` returns the wall-clock and process CPU time since."""

    def __init__(self) -> None:
        self._wall = time.perf_counter()
        self._cpu = time.process_time()

    def stop(self) -> Timing:
        return Timing(time.perf_counter() - self._wall, time.process_time() - self._cpu)


def interleaved(items: Sequence[T], repeat: int) -> Iterator[tuple[int, T]]:
    """``(round, item)`` for ``repeat`` rounds over ``items``, the order reversed every other
    round, so that a slow spell of the machine hits every item alike."""
    for round_ in range(repeat):
        for item in items if round_ % 2 == 0 else items[::-1]:
            yield round_, item


# -- sockets, threads and processes ------------------------------------------------------------


def listening_port(server: hsocket.Socket, who: str) -> int:
    """The local port of an ``hsocket.server``.

    Raises:
        BenchmarkError: If it is not listening.
    """
    port = server.info()["localPort"]
    if not isinstance(port, int) or not port:
        raise BenchmarkError(f"{who}: the server is not listening: {server!r}")
    return port


class Watchdog:
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


class ServerThread:
    """A blocking listener on ``HOST`` and a thread serving it (``serve()``, in a subclass).

    ``accept()`` has the timeout; what ``serve()`` raises is kept and raised again by
    ``join()``, which the subclass's ``finish()`` calls once the client is done.
    """

    def __init__(self, name: str, timeout: float) -> None:
        self.timeout = timeout
        self.error: Optional[BaseException] = None
        self._listener = socket.create_server((HOST, 0))
        self._listener.settimeout(timeout)
        self.port: int = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def serve(self) -> None:
        raise NotImplementedError

    def unblock(self) -> None:
        """Make a ``serve()`` that overran return (called from ``join()``)."""
        with contextlib.suppress(OSError):
            self._listener.close()

    def _run(self) -> None:
        try:
            self.serve()
        except BaseException as exc:
            self.error = exc
        finally:
            self._listener.close()

    def join(self, who: str) -> None:
        """Wait for the thread; raise what it failed with.

        Raises:
            BenchmarkError: If it does not end in time, or failed.
        """
        self._thread.join(self.timeout)
        if self._thread.is_alive():
            self.unblock()
            raise BenchmarkError(f"{who}: still running after {self.timeout} s")
        if self.error is not None:
            raise BenchmarkError(f"{who}: {self.error!r}") from self.error


def stop_process(process: multiprocessing.process.BaseProcess, timeout: float) -> None:
    """Wait ``timeout`` s for a child process to end, then kill it."""
    process.join(timeout)
    if process.is_alive():
        process.kill()
        process.join()


# -- profiling ---------------------------------------------------------------------------------


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


def print_profile(profiler: cProfile.Profile, top: int, stream: Optional[IO[str]] = None) -> None:
    """Print the ``top`` functions by own time (to stdout by default)."""
    stats = pstats.Stats(profiler, stream=sys.stdout if stream is None else stream)
    stats.sort_stats(pstats.SortKey.TIME).print_stats(top)


def profile_text(profiler: cProfile.Profile, top: int) -> str:
    """What ``print_profile`` prints, as a string."""
    out = io.StringIO()
    print_profile(profiler, top, out)
    return out.getvalue()


# -- the command line --------------------------------------------------------------------------


def new_parser(
    doc: str, quick_help: str, repeat_help: str, repeat_default: Optional[int] = None
) -> argparse.ArgumentParser:
    """A parser described by ``doc``'s first paragraph, with ``--quick``, ``--json`` and
    ``--repeat`` (check it with ``check_repeat``)."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help=quick_help)
    parser.add_argument("--json", metavar="PATH", help="also write the results to PATH")
    parser.add_argument("--repeat", type=int, default=repeat_default, help=repeat_help)
    return parser


def check_repeat(
    parser: argparse.ArgumentParser, args: argparse.Namespace, quick: int = 3, full: int = 5
) -> None:
    """Default ``--repeat`` to ``quick`` or ``full`` runs if not given; refuse fewer than 3."""
    if args.repeat is None:
        args.repeat = quick if args.quick else full
    if args.repeat < 3:
        parser.error("--repeat must be 3 or more")


# -- output ------------------------------------------------------------------------------------


def ruled(header: str) -> list[str]:
    """A table's header line and the rule under it."""
    return [header, "-" * len(header)]


def cell(value: Optional[float], width: int, spec: str = ".2f", missing: str = "") -> str:
    """``value`` right-aligned in ``width`` with ``spec``; ``missing`` there if it is None."""
    return f"{missing:>{width}}" if value is None else f"{value:>{width}{spec}}"


def print_report(tables: Sequence[str], quick: bool, wall: float) -> None:
    """Print each table after a blank line, then the run's kind and wall time."""
    for table in tables:
        print()
        print(table)
    print(f"\n{'quick' if quick else 'full'} run, {wall:.0f} s wall time", flush=True)


def platform_fields(**after_python: Any) -> dict[str, Any]:
    """The JSON report's fields on the machine and versions (``after_python`` after python)."""
    return {
        "python": sys.version,
        **after_python,
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "hsocket_version": hsocket.__version__,
    }


def write_report(path: str, report: dict[str, Any]) -> None:
    """Write ``report`` to ``path`` as indented JSON."""
    with open(path, "w", encoding="utf-8") as out:
        json.dump(report, out, indent=2)
        out.write("\n")
