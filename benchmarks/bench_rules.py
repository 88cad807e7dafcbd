"""A mock-server rule waiting for a large request: time per MiB must not grow with the size.

Run it from the repository root, with the package importable::

    python benchmarks/bench_rules.py             # 1, 16 and 64 MiB, 3 runs each
    python benchmarks/bench_rules.py --repeat 5

For each rule kind (a byte count, ``until(b"\\r\\n")``, ``Prefixed("!I")``, exact bytes) and
each size, a ``MockServer`` is scripted with one rule that waits for the whole upload and
answers ``b"ok"``. A plain blocking stdlib socket connects, sends the request with
``sendall`` (the kernel cuts it into chunks of its choosing, as it would for a client under
test) and reads the answer. The clock starts before the connect and stops when ``b"ok"`` is
in: the upload, the rule's matching and the answer. Each row gives the median over
``--repeat`` runs, the time per MiB, and that over the 1 MiB time per MiB (``/1MiB``; 1.00 =
linear, the figure issue 17 item 8 asks to keep flat; a matcher that rescanned or copied
its buffer per chunk made 64 MiB cost ~7.6 s, 30x the time per MiB of 1 MiB).
"""

from __future__ import annotations

import argparse
import socket
import statistics
import struct
import sys
import time
from pathlib import Path
from typing import Callable, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pytest_hsocket import Prefixed
from pytest_hsocket.testing import MockServer, until

MIB = 1024 * 1024
SIZES = (1, 16, 64)


def _request(kind: str, size: int) -> tuple[object, bytes]:
    body = b"x" * (size * MIB)
    if kind == "count":
        return size * MIB, body
    if kind == "until":
        return until(b"\r\n"), body + b"\r\n"
    if kind == "prefixed":
        return Prefixed("!I", max_length=128 * MIB), struct.pack("!I", len(body)) + body
    return body, body  # exact bytes


def run_once(kind: str, size: int) -> float:
    """Return the seconds one upload of ``size`` MiB to a rule of ``kind`` takes."""
    spec, request = _request(kind, size)
    with MockServer.start(wait_timeout=120) as server:
        server.expect(spec).respond(b"ok")  # type: ignore[arg-type]
        started = time.perf_counter()
        with socket.create_connection(server.address, timeout=120) as sock:
            sock.sendall(request)
            reply = b""
            while len(reply) < 2:
                chunk = sock.recv(16)
                if not chunk:
                    raise RuntimeError(f"{kind} {size} MiB: the server closed without answering")
                reply += chunk
        elapsed = time.perf_counter() - started
    if reply != b"ok":
        raise RuntimeError(f"{kind} {size} MiB: answer {reply!r}")
    return elapsed


def main(argv: Optional[list[str]] = None) -> int:
    """Run every kind at every size and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure (3)")
    parser.add_argument("--kinds", default="count,until,prefixed,exact")
    args = parser.parse_args(argv)
    print(f"{'rule':10} {'MiB':>4} {'median s':>9} {'ms/MiB':>8} {'/1MiB':>6}  samples")
    for kind in args.kinds.split(","):
        base: Optional[float] = None
        run: Callable[[str, int], float] = run_once
        run(kind, 1)  # warm-up: the loop's start and first allocations
        for size in SIZES:
            samples = [run(kind, size) for _ in range(args.repeat)]
            per_mib = statistics.median(samples) / size * 1000
            base = per_mib if base is None else base
            shown = ", ".join(f"{s:.3f}" for s in samples)
            print(
                f"{kind:10} {size:>4} {statistics.median(samples):>9.3f} {per_mib:>8.2f} "
                f"{per_mib / base:>6.2f}  [{shown}]"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
