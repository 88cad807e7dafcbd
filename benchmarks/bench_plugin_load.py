"""What the plugin costs a pytest run that never uses it.

Runs ``pytest`` on one trivial test, with the plugin and with ``-p no:hsocket``, several times
each (interleaved), and prints the median CPU time (user + system) of each and their
difference: once with bytecode caching and once with ``PYTHONDONTWRITEBYTECODE=1`` (as many CI
images set it); then the top-level modules the plugin adds to ``sys.modules``::

    python benchmarks/bench_plugin_load.py --runs 9
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile

TEST = "def test_nothing():\n    assert True\n"


def _run(folder: str, extra: list[str], env: dict[str, str]) -> float:
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *extra, folder]
    # CPU seconds (user + system) of the child: what the run costs, steady on a busy machine
    # where wall time is not.
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, cwd=folder, env=env)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _modules(folder: str, extra: list[str]) -> set[str]:
    code = (
        "import sys, pytest\n"
        f"pytest.main(['-q', '-p', 'no:cacheprovider', *{extra!r}, {folder!r}])\n"
        "print('\\n'.join(sorted(sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd=folder
    ).stdout
    return {line for line in out.splitlines() if line and " " not in line}


def _measure(folder: str, runs: int, bytecode: bool) -> None:
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    if not bytecode:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    _run(folder, [], env)  # warm the page cache (and the bytecode cache, where it is written)
    _run(folder, ["-p", "no:hsocket"], env)
    with_plugin, without = [], []
    for _ in range(runs):
        with_plugin.append(_run(folder, [], env))
        without.append(_run(folder, ["-p", "no:hsocket"], env))
    a, b = statistics.median(with_plugin), statistics.median(without)
    print(f"PYTHONDONTWRITEBYTECODE={'' if bytecode else '1'} ({runs} runs each)")
    print(f"  pytest                  median {a * 1000:7.1f} ms")
    print(f"  pytest -p no:hsocket    median {b * 1000:7.1f} ms")
    print(f"  plugin cost             {(a - b) * 1000:+7.1f} ms")


def main() -> None:
    """Print the median CPU time of a trivial run with and without the plugin."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9, help="runs of each (default 9)")
    runs = parser.parse_args().runs
    with tempfile.TemporaryDirectory() as folder:
        with open(os.path.join(folder, "test_trivial.py"), "w") as out:
            out.write(TEST)
        _measure(folder, runs, bytecode=True)
        _measure(folder, runs, bytecode=False)
        extra_modules = _modules(folder, []) - _modules(folder, ["-p", "no:hsocket"])
    print(f"modules the plugin adds: {len(extra_modules)}")
    for name in sorted(extra_modules):
        if "." not in name:
            print(f"  {name}")


if __name__ == "__main__":
    main()
