"""The plugin is a guest in every pytest run of its environment: loading it costs nothing
beyond pytest's own imports, and a test that uses no hsock fixture sees no thread and no module
of ours (issue 16: "lazy everything")."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

HEAVY = (
    "gevent",
    "greenlet",
    "trustme",
    "cryptography",
    "ssl",
    "asyncio",
    "pytest_hsocket._hs.tcp",
)

# A run as bare as an adopter's own: no other installed plugin (some import asyncio or ssl
# themselves), the plugin loaded by name as its entry point loads it.
BARE = ("-p", "pytest_hsocket.plugin", "-p", "no:cacheprovider")


@pytest.fixture
def bare(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    return pytester


@pytest.mark.parametrize("module", ["pytest_hsocket.plugin", "pytest_hsocket"])
def test_importing_the_plugin_loads_nothing_heavy(module: str) -> None:
    code = f"import sys, {module}\nprint(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout
    assert out.strip() == "[]"


LAYER_PACKAGES = {
    f"pytest_hsocket.{layer}" for layer in ("_core", "_loop", "_io", "_hs", "_helpers")
}


def test_a_run_loads_nothing_beyond_the_plugins_own_modules(tmp_path: Path) -> None:
    # The deterministic half of "free to load" (benchmarks/bench_plugin_load.py times it):
    # a trivial run with the plugin imports only pytest_hsocket modules more than one without.
    (tmp_path / "test_trivial.py").write_text("def test_nothing():\n    pass\n")
    code = (
        "import sys, pytest\n"
        "pytest.main(['-q', '-p', 'no:cacheprovider', *sys.argv[1:]])\n"
        "print('MODULES', ' '.join(sorted(sys.modules)))\n"
    )

    def modules(*options: str) -> set[str]:
        out = subprocess.run(
            [sys.executable, "-c", code, *options, str(tmp_path)],
            check=True,
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env={**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"},
        ).stdout
        return set(out.split("MODULES ", 1)[1].split())

    added = modules("-p", "pytest_hsocket.plugin") - modules()
    # The layer folders' own packages (``_core``, ``_loop``: a docstring each) do not count.
    ours = {
        name
        for name in added
        if name.split(".")[0] == "pytest_hsocket" and name not in LAYER_PACKAGES
    }
    assert len(ours) <= 10, sorted(ours)
    # Beyond ours, a few small ones (socket for its original class; what pytest itself loads
    # for a -p plugin on some versions), never the heavy ones.
    others = {name.split(".")[0] for name in added - ours}
    assert not others & set(HEAVY), sorted(others)
    assert len(others) <= 5, sorted(others)


def test_the_api_loads_on_first_use() -> None:
    code = textwrap.dedent(
        """
        import sys
        import pytest_hsocket as hsocket
        assert "gevent" not in sys.modules
        with hsocket.server(0) as server:
            assert server.info()["localPort"] > 0
        print("gevent" in sys.modules, hsocket.udp.new is not None)
        """
    )
    out = subprocess.run(
        [sys.executable, "-W", "error", "-c", code], check=True, capture_output=True, text=True
    ).stdout
    assert out.split() == ["True", "True"]


def test_a_test_without_hsock_fixtures_sees_no_thread_and_no_module(bare: pytest.Pytester) -> None:
    bare.makepyfile(
        f"""
        import os, sys, threading

        def test_unrelated():
            assert threading.active_count() == 1
            if os.path.isdir("/proc/self/task"):  # OS threads, not only threading's
                assert len(os.listdir("/proc/self/task")) == 1
            assert [m for m in {HEAVY!r} if m in sys.modules] == []

        def test_then_one_that_uses_them(hsock_server, hsock_client):
            hsock_server.expect(b"PING\\r\\n").respond(b"+PONG\\r\\n")
            client = hsock_client(hsock_server)
            client.write(b"PING\\r\\n")
            assert client.expect(b"\\r\\n") == b"+PONG\\r\\n"
            assert "gevent" in sys.modules
        """
    )
    result = bare.runpytest_subprocess(*BARE, "-W", "error")
    result.assert_outcomes(passed=2)


def test_a_failed_comparison_of_plain_bytes_loads_nothing(bare: pytest.Pytester) -> None:
    bare.makepyfile(
        f"""
        import sys

        def test_compare():
            assert b"abc" == b"abd"

        def test_after():
            assert [m for m in {HEAVY!r} if m in sys.modules] == []
        """
    )
    result = bare.runpytest_subprocess(*BARE)
    result.assert_outcomes(passed=1, failed=1)


@pytest.mark.skipif(sys.version_info < (3, 12), reason="the fork warning is Python 3.12+")
@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs os.fork")
def test_an_unrelated_test_that_forks_gets_no_warning(bare: pytest.Pytester) -> None:
    bare.makepyfile(
        """
        import os

        def test_forks():
            pid = os.fork()
            if pid == 0:
                os._exit(0)
            assert os.waitpid(pid, 0)[1] == 0
        """
    )
    # pytest shows the warning in its summary (under -W error it turns into an unraisable
    # exception, which a test run does not always fail on): look for it there.
    result = bare.runpytest_subprocess(*BARE)
    assert result.parseoutcomes() == {"passed": 1}
    assert "multi-threaded" not in result.stdout.str()
