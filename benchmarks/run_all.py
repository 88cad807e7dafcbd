"""Run the whole benchmark suite with one command and print the issue's seven figures.

Run it from the repository root, with the package and the peers importable (``pip install -e
'.[bench]'`` or the development environment)::

    python benchmarks/run_all.py                       # full sizes, about 10 minutes
    python benchmarks/run_all.py --quick               # smaller sizes, about 2 minutes
    python benchmarks/run_all.py --quick --out results --plot docs/img/benchmarks.png

It runs ``bench_socket.py``, ``bench_tls.py``, ``bench_fixtures.py`` and ``bench_latency.py``
one after the other (each in its own process, so none disturbs another's measurements), each
with ``--json`` into ``--out`` (a temporary folder by default). Each prints its own full table
as it goes. At the end the seven figures of the performance issue are printed as one table:
ours, the peer measured *in the same run*, the ratio, the target and whether it is met; the
same table plus every script's full report goes to ``OUT/summary.json``. The exit status is 0
when every script ran (a target not met is a finding, not an error), 1 otherwise.

The figures and their targets:

1. 1,000,000 64-byte lines, one tagged read each, callback style: ours / asyncio
   ``readuntil`` (MB/s) >= 1.5.
2. 1 GiB in 64 KiB reads: ours / raw ``recv_into`` (MB/s) >= 0.5.
3. Round trip through ``hsock_client.expect`` against ``hsock_server``: ours / a raw blocking
   ping-pong (median µs) <= 3; with the threads placed by the scheduler (the issue's figure),
   then all on one CPU and each side on its own CPU (like with like: see ``_placement.py``).
4. Per test, ``hsock_server`` + ``hsock_client``: ours / pytest-httpserver (median ms) <= 1.
5. 5,000 concurrent connections x 10 request/responses: nothing lost (msgs/s and memory per
   connection against asyncio are shown, with no target).
6. TLS 1.3 handshakes per second: ours / the stdlib ``ssl`` module (no target).
7. Scaling: time per message of (1) and (2) at 4x and 16x the size over 1x, within 20 %.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPTS = ("socket", "tls", "fixtures", "latency")
"""``bench_<name>.py``, run in this order."""


@dataclass
class Figure:
    """One line of the summary: a figure of the issue, ours beside its peer, and its target."""

    number: int
    figure: str
    ours: str
    peer: str
    ratio: str
    target: str
    met: Optional[bool]
    """``None`` where the issue sets no target."""


Reports = dict[str, dict[str, Any]]


def _row(rows: list[dict[str, Any]], **match: Any) -> dict[str, Any]:
    for row in rows:
        if all(row.get(key) == value for key, value in match.items()):
            return row
    raise KeyError(f"no row with {match}")


def _socket_figures(report: dict[str, Any]) -> list[Figure]:
    rows = report["rows"]
    lines = _row(rows, figure="1 lines, ours vs asyncio")
    bulk = _row(rows, figure="2 bulk, ours vs recv_into")
    scaling = [r for r in rows if r["figure"].startswith("3 ") and r["ours_vs_1x"] is not None]
    # One ours/1x per workload and size (the rows repeat it for each peer).
    sizes = {r["figure"].split(",")[0][2:]: r["ours_vs_1x"] for r in scaling}
    worst = max(abs(value - 1.0) for value in sizes.values())
    return [
        Figure(
            1,
            "lines: 64-byte lines, one tagged read each (MB/s)",
            f"{lines['ours']:.1f}",
            f"asyncio readuntil {lines['peer']:.1f}",
            f"{lines['ratio']:.2f}",
            ">= 1.5",
            lines["ratio"] >= 1.5,
        ),
        Figure(
            2,
            "bulk: 64 KiB length-framed reads (MB/s)",
            f"{bulk['ours']:.0f}",
            f"recv_into {bulk['peer']:.0f}",
            f"{bulk['ratio']:.2f}",
            ">= 0.5",
            bulk["ratio"] >= 0.5,
        ),
        Figure(
            7,
            "scaling: time per message over 1x",
            ", ".join(f"{name} {value:.2f}" for name, value in sizes.items() if value != 1.0),
            "",
            f"{1 + worst:.2f} worst",
            "within 20 %",
            worst <= 0.2,
        ),
    ]


def _tls_figure(report: dict[str, Any]) -> Figure:
    row = _row(report["rows"], tls="TLS 1.3", pairing="ours/ours")
    return Figure(
        6,
        "TLS 1.3 handshakes per second",
        f"{row['rate']:.0f}",
        f"stdlib ssl {row['peer_rate']:.0f}",
        f"{row['ratio']:.2f}",
        "-",
        None,
    )


def _fixtures_figure(report: dict[str, Any]) -> Figure:
    ours = _row(report["rows"], mode="serial", suite="hsocket")
    peer = _row(report["rows"], mode="serial", suite="httpserver")
    return Figure(
        4,
        "per test: hsock_server + hsock_client (median ms)",
        f"{ours['median_ms']:.2f}",
        f"pytest-httpserver {peer['median_ms']:.2f}",
        f"{ours['median_ratio']:.2f}",
        "<= 1",
        ours["median_ratio"] <= 1.0,
    )


PLACED = {
    "free": "round trip: hsock_client.expect (median µs)",
    "same": "  ... with every thread on one CPU",
    "split": "  ... with each side on its own CPU",
}
"""Figure 3's lines: the issue's (threads placed by the scheduler), then like with like."""


def _latency_figures(report: dict[str, Any]) -> list[Figure]:
    placements = report.get("latency_placements") or {"free": {"rows": report["latency_rows"]}}
    figures = []
    for placement, label in PLACED.items():
        if placement not in placements:
            continue
        rows = placements[placement]["rows"]
        fixture = _row(rows, variant="fixture")
        raw = _row(rows, variant="raw")
        figures.append(
            Figure(
                3,
                label,
                f"{fixture['median_us']:.1f}",
                f"raw ping-pong {raw['median_us']:.1f}",
                f"{fixture['median_x_raw']:.2f}",
                "<= 3",
                fixture["median_x_raw"] <= 3.0,
            )
        )
    ours = _row(report["concurrency_rows"], peer="ours")
    peer = _row(report["concurrency_rows"], peer="asyncio")
    return [
        *figures,
        Figure(
            5,
            f"{ours['connections']:,} connections x 10 (msgs/s; lost; KiB/conn)",
            f"{ours['rate']:,.0f}; lost {ours['lost']}; {ours['kib_open']:.1f}",
            f"asyncio {peer['rate']:,.0f}; lost {peer['lost']}; {peer['kib_open']:.1f}",
            f"{ours['rate_ratio']:.2f}",
            "0 lost",
            ours["lost"] == 0 and ours["wrong"] == 0,
        ),
    ]


FIGURES: dict[str, Callable[[dict[str, Any]], list[Figure]]] = {
    "socket": _socket_figures,
    "tls": lambda report: [_tls_figure(report)],
    "fixtures": lambda report: [_fixtures_figure(report)],
    "latency": _latency_figures,
}


def summarise(reports: Reports) -> list[Figure]:
    """Return the issue's figures found in ``reports`` (keyed by script name), in order."""
    figures: list[Figure] = []
    for name, report in reports.items():
        figures += FIGURES[name](report)
    return sorted(figures, key=lambda f: f.number)


def format_summary(figures: list[Figure]) -> str:
    """Render the figures as a fixed-width table."""
    header = ("#", "figure", "ours", "peer (same run)", "ours/peer", "target", "met")
    cells = [header] + [
        (
            str(f.number),
            f.figure,
            f.ours,
            f.peer,
            f.ratio,
            f.target,
            "-" if f.met is None else ("yes" if f.met else "NO"),
        )
        for f in figures
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)) for row in cells]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(line.rstrip() for line in lines)


def run_script(name: str, out: str, quick: bool, timeout: float) -> Optional[dict[str, Any]]:
    """Run ``bench_<name>.py`` with ``--json``; return its report, or ``None`` if it failed."""
    path = os.path.join(out, f"{name}.json")
    command = [sys.executable, os.path.join(HERE, f"bench_{name}.py"), "--json", path]
    if quick:
        command.append("--quick")
    print(f"\n=== {' '.join(command[1:])}", flush=True)
    try:
        status = subprocess.run(command, timeout=timeout, check=False).returncode
    except subprocess.TimeoutExpired:
        print(f"bench_{name}.py did not finish within {timeout:.0f} s", file=sys.stderr)
        return None
    if status != 0 or not os.path.exists(path):
        print(f"bench_{name}.py failed (exit status {status})", file=sys.stderr)
        return None
    with open(path, encoding="utf-8") as file:
        report: dict[str, Any] = json.load(file)
    return report


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes (about 2 minutes)")
    parser.add_argument("--out", help="folder for the JSON reports (a temporary one by default)")
    parser.add_argument("--plot", metavar="PNG", help="also draw the ratios (needs matplotlib)")
    parser.add_argument(
        "--only", choices=SCRIPTS, action="append", help="run only this script (repeatable)"
    )
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds one script may take")
    return parser.parse_args(argv)


def main(argv: Optional[list[str]] = None) -> int:
    """Run the suite; return the process exit status."""
    args = parse_args(argv)
    out = args.out or tempfile.mkdtemp(prefix="hsocket-bench-")
    os.makedirs(out, exist_ok=True)
    started = time.perf_counter()
    reports: Reports = {}
    failed = []
    for name in args.only or SCRIPTS:
        report = run_script(name, out, args.quick, args.timeout)
        if report is None:
            failed.append(name)
        else:
            reports[name] = report
    figures = summarise(reports)
    print(f"\n=== the issue's figures ({'quick' if args.quick else 'full'} run)\n")
    print(format_summary(figures))
    summary = {
        "quick": args.quick,
        "wall_seconds": time.perf_counter() - started,
        "figures": [asdict(f) for f in figures],
        "failed": failed,
        "reports": reports,
    }
    path = os.path.join(out, "summary.json")
    with open(path, "w", encoding="utf-8") as file:
        json.dump(summary, file, indent=2)
    print(f"\nreports and summary.json in {out}")
    if args.plot:
        files = [
            os.path.join(out, f"{n}.json") for n in ("socket", "tls", "fixtures") if n in reports
        ]
        plotted = subprocess.run(
            [sys.executable, os.path.join(HERE, "plot.py"), *files, "-o", args.plot], check=False
        )
        if plotted.returncode != 0:
            failed.append("plot")
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
