"""Per-test overhead of the ``hsock_server`` + ``hsock_client`` fixtures next to pytest-httpserver.

Run it from the repository root, with the package, ``pytest-httpserver`` and ``pytest-xdist``
importable::

    python benchmarks/bench_fixtures.py            # 500 tests per suite, about a minute
    python benchmarks/bench_fixtures.py --quick    # 100 tests per suite
    python benchmarks/bench_fixtures.py --quick --json out.json

The benchmark writes (into a temporary directory, removed afterwards; never into the repository)
three generated test files of ``N`` tests each (500; 100 with ``--quick``), one test function
per test, no parametrisation:

- *hsocket*: each test takes ``hsock_server`` and ``hsock_client`` and does one
  request/response: ``hsock_server.expect(b"PING\\r\\n").respond(b"+PONG\\r\\n")``,
  ``client = hsock_client(hsock_server)``, ``client.write(b"PING\\r\\n")``,
  ``assert client.expect(b"\\r\\n") == b"+PONG\\r\\n"``. Every test gets its own server (a new
  ``MockServer`` on a listener the session pools, unless ``--hsock-fresh-servers``) and its
  own client connection; at teardown the fixtures close both and check the script.
- *httpserver* (the peer): each test takes pytest-httpserver's ``httpserver``:
  ``httpserver.expect_request("/ping").respond_with_data("pong")``, then one ``GET /ping`` with
  ``http.client.HTTPConnection`` (status and body checked), ``conn.close()`` and
  ``httpserver.check_assertions()`` (what ours' teardown does on its own). Note that
  pytest-httpserver's server is *session*-scoped (started once, cleared after each test), and
  each request is a new TCP connection to it.
- *bare* (a reference, not compared): ``def test_NNN(): pass``, to show pytest's own floor
  (interpreter start, plugin loading, collection, reporting) on this machine.

Each suite runs in a subprocess, ``python -m pytest -q -p no:cacheprovider <file>`` in the
temporary directory (a ``pytest.ini`` there pins the rootdir, so no outside configuration
applies; installed plugins load as usual, so both suites carry the same plugins). A
``conftest.py`` there adds up each test's ``setup + call + teardown`` durations as pytest
reports them (``pytest_runtest_logreport``) and writes them to a JSON file at the end of the
session (on the controller only under xdist). The figures, per suite:

- **median ms/test** and **p90 ms/test**: over the N per-test durations of a run. The first
  test's setup and the last test's teardown carry session-wide set-up and tear-down (a
  session-scoped server, the socket loop's thread), which these figures mostly ignore.
- **sum s**: the N durations added up: the time spent in tests.
- **wall s**: the subprocess from start to exit, as the parent sees it: everything a user waits.

Every suite runs ``--repeat`` times (3 at least), interleaved with the others (the order reverses
every other round), and the table shows the medians of the runs' figures, plus ours/peer ratios
(below 1 = ours cheaper). Then the same with ``-n 2`` (pytest-xdist, two workers) unless
``--no-xdist``: there the wall time is the figure that matters (the durations are still shown).

A run fails unless pytest exits 0 and the JSON has a passed report for each of the N tests.
There is no sleep anywhere: every subprocess runs with a timeout (``--timeout``), and every wait
inside the generated tests has one (the fixtures' default 5 s; ``timeout=5`` for http.client).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import asdict, dataclass, field
from importlib import metadata
from typing import Optional

from _common import (
    BenchmarkError,
    cell,
    check_repeat,
    interleaved,
    new_parser,
    platform_fields,
    print_report,
    ruled,
    write_report,
)

TESTS_FULL = 500
TESTS_QUICK = 100

OURS, PEER, BARE = "hsocket", "httpserver", "bare"

CONFTEST = '''\
"""Written by benchmarks/bench_fixtures.py: per-test setup+call+teardown durations to JSON."""

import json
import os

_durations = {}
_phases = {"setup": {}, "call": {}, "teardown": {}}
_outcomes = {}


def pytest_runtest_logreport(report):
    _durations[report.nodeid] = _durations.get(report.nodeid, 0.0) + report.duration
    _phases[report.when][report.nodeid] = report.duration
    if not report.passed:
        _outcomes[report.nodeid] = report.outcome
    else:
        _outcomes.setdefault(report.nodeid, "passed")


def pytest_sessionfinish(session):
    if hasattr(session.config, "workerinput"):
        return  # an xdist worker: the controller gets every report and writes the file
    with open(os.environ["BENCH_FIXTURES_JSON"], "w", encoding="utf-8") as out:
        json.dump({"durations": _durations, "phases": _phases, "outcomes": _outcomes}, out)
'''

HEADERS = {
    OURS: "",
    PEER: "import http.client\n",
    BARE: "",
}

BODIES = {
    OURS: """
def test_ping_{i:04d}(hsock_server, hsock_client):
    hsock_server.expect(b"PING\\r\\n").respond(b"+PONG\\r\\n")
    client = hsock_client(hsock_server)
    client.write(b"PING\\r\\n")
    assert client.expect(b"\\r\\n") == b"+PONG\\r\\n"
""",
    PEER: """
def test_ping_{i:04d}(httpserver):
    httpserver.expect_request("/ping").respond_with_data("pong")
    conn = http.client.HTTPConnection(httpserver.host, httpserver.port, timeout=5)
    try:
        conn.request("GET", "/ping")
        response = conn.getresponse()
        assert response.status == 200
        assert response.read() == b"pong"
    finally:
        conn.close()
    httpserver.check_assertions()
""",
    BARE: """
def test_ping_{i:04d}():
    pass
""",
}


def write_suites(folder: str, tests: int) -> dict[str, str]:
    """Write ``pytest.ini``, ``conftest.py`` and one test file per suite; return the paths."""
    with open(os.path.join(folder, "pytest.ini"), "w", encoding="utf-8") as out:
        out.write("[pytest]\n")
    with open(os.path.join(folder, "conftest.py"), "w", encoding="utf-8") as out:
        out.write(CONFTEST)
    paths = {}
    for suite, body in BODIES.items():
        path = os.path.join(folder, f"test_{suite}.py")
        with open(path, "w", encoding="utf-8") as out:
            out.write(f'"""Generated by benchmarks/bench_fixtures.py: {tests} tests."""\n\n')
            out.write(HEADERS[suite])
            for i in range(tests):
                out.write("\n" + textwrap.dedent(body).format(i=i))
        paths[suite] = path
    return paths


# -- one run -----------------------------------------------------------------------------------


PHASES = ("setup", "call", "teardown")


@dataclass(frozen=True)
class Run:
    """One pytest subprocess: wall seconds and each test's setup+call+teardown seconds.

    ``phases`` holds each phase's per-test seconds apart.
    """

    wall: float
    durations: list[float]
    phases: dict[str, list[float]]

    def phase_median_ms(self, phase: str) -> float:
        return statistics.median(self.phases[phase]) * 1e3

    @property
    def median_ms(self) -> float:
        return statistics.median(self.durations) * 1e3

    @property
    def p90_ms(self) -> float:
        return statistics.quantiles(self.durations, n=10, method="inclusive")[-1] * 1e3

    @property
    def total(self) -> float:
        return sum(self.durations)


def run_suite(
    folder: str, path: str, tests: int, workers: Optional[int], timeout: float, index: int
) -> Run:
    """Run one suite in a pytest subprocess; check that every test passed.

    Raises:
        BenchmarkError: If pytest times out, fails, or reports another number of tests.
    """
    report = os.path.join(folder, f"durations-{index}.json")
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", path]
    if workers is not None:
        command += ["-n", str(workers)]
    env = dict(os.environ, BENCH_FIXTURES_JSON=report, PYTHONDONTWRITEBYTECODE="1")
    started = time.perf_counter()
    try:
        done = subprocess.run(
            command, cwd=folder, env=env, capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        raise BenchmarkError(f"{' '.join(command)}: no exit within {timeout} s") from None
    wall = time.perf_counter() - started
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).splitlines()[-40:])
        raise BenchmarkError(f"{' '.join(command)}: exit status {done.returncode}\n{tail}")
    with open(report, encoding="utf-8") as source:
        data = json.load(source)
    os.unlink(report)
    outcomes = data["outcomes"]
    passed = sum(1 for outcome in outcomes.values() if outcome == "passed")
    if len(data["durations"]) != tests or passed != tests:
        raise BenchmarkError(
            f"{' '.join(command)}: {len(data['durations'])} tests reported, {passed} passed, "
            f"expected {tests}"
        )
    phases = {phase: list(data["phases"][phase].values()) for phase in PHASES}
    return Run(wall, list(data["durations"].values()), phases)


# -- measuring and reporting -------------------------------------------------------------------


@dataclass
class Measurement:
    """The runs of one suite with one worker setting."""

    suite: str
    mode: str
    tests: int
    walls: list[float] = field(default_factory=list)
    medians_ms: list[float] = field(default_factory=list)
    p90s_ms: list[float] = field(default_factory=list)
    totals: list[float] = field(default_factory=list)
    phase_medians_ms: dict[str, list[float]] = field(
        default_factory=lambda: {phase: [] for phase in PHASES}
    )

    def add(self, run: Run) -> None:
        self.walls.append(run.wall)
        self.medians_ms.append(run.median_ms)
        self.p90s_ms.append(run.p90_ms)
        self.totals.append(run.total)
        for phase in PHASES:
            self.phase_medians_ms[phase].append(run.phase_median_ms(phase))

    def phase_ms(self, phase: str) -> float:
        """The median over the runs of a phase's median per-test milliseconds."""
        return statistics.median(self.phase_medians_ms[phase])

    @property
    def wall(self) -> float:
        return statistics.median(self.walls)

    @property
    def median_ms(self) -> float:
        return statistics.median(self.medians_ms)

    @property
    def p90_ms(self) -> float:
        return statistics.median(self.p90s_ms)

    @property
    def total(self) -> float:
        return statistics.median(self.totals)


@dataclass
class Row:
    """One line of the table: a suite's medians, and (ours only) ours over the peer's."""

    mode: str
    suite: str
    median_ms: float
    p90_ms: float
    total: float
    wall: float
    setup_ms: float
    call_ms: float
    teardown_ms: float
    median_ratio: Optional[float] = None
    p90_ratio: Optional[float] = None
    total_ratio: Optional[float] = None
    wall_ratio: Optional[float] = None


def measure(
    folder: str,
    paths: dict[str, str],
    tests: int,
    modes: list[tuple[str, Optional[int]]],
    repeat: int,
    timeout: float,
) -> list[Measurement]:
    """Run every suite in every mode ``repeat`` times, interleaved; print each as it ends."""
    plan = [(suite, mode, workers) for mode, workers in modes for suite in (OURS, PEER, BARE)]
    results = {(suite, mode): Measurement(suite, mode, tests) for suite, mode, _ in plan}
    for index, (round_, (suite, mode, workers)) in enumerate(interleaved(plan, repeat), 1):
        gc.collect()
        run = run_suite(folder, paths[suite], tests, workers, timeout, index)
        results[(suite, mode)].add(run)
        print(
            f"  round {round_ + 1} {mode:<8} {suite:<10} wall {run.wall:6.2f} s  "
            f"median {run.median_ms:6.2f} ms  p90 {run.p90_ms:6.2f} ms  "
            f"sum {run.total:6.2f} s",
            flush=True,
        )
    return list(results.values())


def rows_of(measurements: list[Measurement]) -> list[Row]:
    """A row per suite and mode; ours' rows carry the ratios to the peer's."""
    by_key = {(m.suite, m.mode): m for m in measurements}
    rows = []
    for m in measurements:
        row = Row(
            m.mode,
            m.suite,
            m.median_ms,
            m.p90_ms,
            m.total,
            m.wall,
            m.phase_ms("setup"),
            m.phase_ms("call"),
            m.phase_ms("teardown"),
        )
        peer = by_key.get((PEER, m.mode))
        if m.suite == OURS and peer is not None:
            row.median_ratio = m.median_ms / peer.median_ms
            row.p90_ratio = m.p90_ms / peer.p90_ms
            row.total_ratio = m.total / peer.total
            row.wall_ratio = m.wall / peer.wall
        rows.append(row)
    return rows


def _ratio(value: Optional[float]) -> str:
    return cell(value, 6)


def format_table(rows: list[Row], tests: int) -> str:
    """Render the rows as a fixed-width text table."""
    header = (
        f"{'mode':<8} {'suite':<11} {'median ms':>9} {'p90 ms':>8} {'sum s':>7} {'wall s':>7}  "
        f"{'median':>6} {'p90':>6} {'sum':>6} {'wall':>6}"
    )
    lines = [f"{tests} tests per suite; the last four columns are ours/httpserver"]
    lines += ruled(header)
    for row in rows:
        lines.append(
            f"{row.mode:<8} {row.suite:<11} {row.median_ms:>9.2f} {row.p90_ms:>8.2f} "
            f"{row.total:>7.2f} {row.wall:>7.2f}  {_ratio(row.median_ratio)} "
            f"{_ratio(row.p90_ratio)} {_ratio(row.total_ratio)} {_ratio(row.wall_ratio)}"
        )
    lines += [
        "median/p90 ms = per-test setup+call+teardown; sum = all tests' durations; wall = the",
        "pytest process start to exit. Ratios below 1 = ours cheaper. 'bare' = empty tests.",
        "",
        "median ms per test and phase",
    ]
    header = f"{'mode':<8} {'suite':<11} {'setup':>7} {'call':>7} {'teardown':>8}"
    lines += ruled(header)
    for row in rows:
        lines.append(
            f"{row.mode:<8} {row.suite:<11} {row.setup_ms:>7.3f} {row.call_ms:>7.3f} "
            f"{row.teardown_ms:>8.3f}"
        )
    return "\n".join(lines)


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "not installed"


def write_json(
    args: argparse.Namespace, wall: float, rows: list[Row], measurements: list[Measurement]
) -> None:
    """Write the table's rows, every sample and the platform to ``args.json``."""
    report = {
        "quick": args.quick,
        "repeat": args.repeat,
        "tests": args.tests,
        "wall_seconds": wall,
        **platform_fields(),
        "versions": {
            name: _version(name) for name in ("pytest", "pytest-httpserver", "pytest-xdist")
        },
        "rows": [asdict(row) for row in rows],
        "measurements": [
            {
                **asdict(m),
                "wall": m.wall,
                "median_ms": m.median_ms,
                "p90_ms": m.p90_ms,
                "total": m.total,
                "phase_ms": {phase: m.phase_ms(phase) for phase in PHASES},
            }
            for m in measurements
        ],
    }
    write_report(args.json, report)


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = new_parser(__doc__, "100 tests per suite", "runs per suite (>= 3)", 3)
    parser.add_argument("--tests", type=int, help="tests per suite (500, --quick 100)")
    parser.add_argument("--no-xdist", action="store_true", help="skip the -n 2 runs")
    parser.add_argument(
        "--timeout", type=float, default=600.0, help="seconds a pytest run may take"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args(argv)
    if args.tests is None:
        args.tests = TESTS_QUICK if args.quick else TESTS_FULL
    check_repeat(parser, args)
    if args.tests < 10:
        parser.error("--tests must be 10 or more (for a p90)")
    return args


def main(argv: Optional[list[str]] = None) -> int:
    """Run the benchmark; return the process exit status."""
    args = parse_args(argv)
    started = time.perf_counter()
    modes: list[tuple[str, Optional[int]]] = [("serial", None)]
    if not args.no_xdist:
        modes.append(("-n 2", 2))
    folder = tempfile.mkdtemp(prefix="bench-fixtures-")
    try:
        paths = write_suites(folder, args.tests)
        print(
            f"{args.tests} tests per suite, {args.repeat} runs each, in {folder}; "
            f"pytest {_version('pytest')}, pytest-httpserver {_version('pytest-httpserver')}, "
            f"pytest-xdist {_version('pytest-xdist')}, {os.cpu_count()} CPUs",
            flush=True,
        )
        measurements = measure(folder, paths, args.tests, modes, args.repeat, args.timeout)
    finally:
        if args.keep:
            print(f"kept {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)
    rows = rows_of(measurements)
    wall = time.perf_counter() - started
    print_report([format_table(rows, args.tests)], args.quick, wall)
    if args.json:
        write_json(args, wall, rows, measurements)
    return 0


if __name__ == "__main__":
    sys.exit(main())
