"""Draw the benchmark ratios (ours / peer) from the scripts' JSON output into one PNG.

    python benchmarks/bench_socket.py --json socket.json
    python benchmarks/bench_tls.py --json tls.json
    python benchmarks/bench_fixtures.py --json fixtures.json
    python benchmarks/plot.py socket.json tls.json fixtures.json -o docs/img/benchmarks.png

Needs matplotlib (not a dependency of the package).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def _bars(documents: list[dict[str, Any]]) -> list[tuple[str, float]]:
    bars: list[tuple[str, float]] = []
    for doc in documents:
        for row in doc.get("rows", []):
            if "figure" in row and row.get("unit") == "MB/s":
                bars.append((f"{row['figure']} (MB/s)", float(row["ratio"])))
            elif "pairing" in row and row["pairing"] != "stdlib/stdlib":
                bars.append((f"{row['tls']} {row['pairing']} handshakes/s", float(row["ratio"])))
            elif row.get("suite") == "hsocket" and "median_ms" in row:
                peer = next(
                    r
                    for r in doc["rows"]
                    if r.get("suite") == "httpserver" and r["mode"] == row["mode"]
                )
                # Time per test: invert so that > 1 means faster, like the others.
                bars.append(
                    (
                        f"fixture test ({row['mode']}) vs pytest-httpserver",
                        peer["median_ms"] / row["median_ms"],
                    )
                )
    return bars


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("json", nargs="+", type=Path)
    parser.add_argument("-o", "--output", type=Path, default=Path("benchmarks.png"))
    args = parser.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bars = _bars([json.loads(p.read_text()) for p in args.json])
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(bars) + 1.2))
    labels = [label for label, _ in bars]
    values = [value for _, value in bars]
    colors = ["#2a9d8f" if v >= 1 else "#e76f51" for v in values]
    ax.barh(labels, values, color=colors)
    ax.axvline(1.0, color="black", linewidth=1)
    ax.invert_yaxis()
    ax.set_xlabel("ours / peer (> 1 = pytest-hsocket faster)")
    for index, value in enumerate(values):
        ax.text(value + 0.02, index, f"{value:.2f}", va="center", fontsize=8)
    fig.tight_layout()
    fig.savefig(args.output, dpi=110)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
