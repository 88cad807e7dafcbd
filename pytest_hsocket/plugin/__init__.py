"""The pytest11 entry point of pytest-hsocket: fixtures, options and report hooks.

It loads in every pytest run of the environment, so importing it imports pytest and the
plugin's own definitions only: the library, gevent, trustme, ssl and asyncio load when a test
first uses a fixture (or the API), and the socket loop thread starts then.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest

from .assertions import pytest_assertrepr_compare
from .fixtures import (
    FRAGMENTER,
    ClientFactory,
    hsock_ca,
    hsock_client,
    hsock_fragmentation,
    hsock_timeout,
    hsock_tls_material,
    hsock_udp_client,
    hsock_udp_server,
)
from .options import pytest_addoption, pytest_configure, show_transcripts
from .proxy import ProxyFactory, hsock_proxy
from .servers import (
    ServerFactory,
    hsock_server,
    hsock_server_factory,
    hsock_tls_server,
    hsock_unix_server,
)
from .state import (
    HsockTest,
    current_test,
    finish,
    pytest_runtest_setup,
    pytest_runtest_teardown,
    pytest_sessionfinish,
    state_of,
)
from .udp_proxy import UdpProxyFactory, hsock_udp_proxy


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run a test marked ``hsock_fragment`` once per fragmentation pattern."""
    marker = metafunc.definition.get_closest_marker("hsock_fragment")
    if marker is None or "hsock_fragmentation" not in metafunc.fixturenames:
        return
    runs = marker.kwargs.get("runs", marker.args[0] if marker.args else 20)
    if isinstance(runs, bool) or not isinstance(runs, int) or runs < 1:
        raise pytest.UsageError(
            f"@pytest.mark.hsock_fragment runs must be a positive int, not {runs!r}"
        )
    metafunc.parametrize(
        "hsock_fragmentation", range(runs), indirect=True, ids=[f"split{n}" for n in range(runs)]
    )


def _attach(report: pytest.TestReport, title: str, text: str) -> None:
    # Into the failure's own text: the terminal shows it under the traceback, and --junitxml
    # writes it into <failure>/<error> whatever junit_logging says (CI report pages show that
    # text); xdist and pytest-html carry it along.
    longrepr = report.longrepr
    addsection = getattr(longrepr, "addsection", None)
    if callable(addsection):
        addsection(title, text)
    elif isinstance(longrepr, str):
        report.longrepr = f"{longrepr}\n{f' {title} ':-^80}\n{text}"
    else:
        report.sections.append((title, text))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, Any, None]:
    """Add each connection's transcript (and the fragmentation run) to a failed test's report;
    after the teardown report, let go of what the test held."""
    outcome = yield
    report = outcome.get_result()
    test = state_of(item)
    try:
        if report.failed and test is not None:
            _describe_failure(item, test, report, call.when)
    finally:
        if call.when == "teardown":
            finish(item)


def _describe_failure(
    item: pytest.Item, test: HsockTest, report: pytest.TestReport, when: str
) -> None:
    # Under pytest-rerunfailures every attempt makes its own report: name the attempt.
    label = (
        f"{when}, attempt {test.attempt}"
        if test.attempt > 1 or hasattr(item, "execution_count")
        else when
    )
    fragmenter = item.stash.get(FRAGMENTER, None)
    if fragmenter is not None:
        replay = (
            f"replay exactly this run: pytest '{item.nodeid}' "
            f"--hsock-fragment-seed={fragmenter.seed}"
        )
        _attach(report, f"hsocket fragmentation ({label})", f"{fragmenter.describe()}\n{replay}")
    if not show_transcripts(item):
        return
    texts = test.transcripts()
    if texts:
        _attach(report, f"hsocket transcripts ({label})", "\n\n".join(texts))


__all__ = [
    "ClientFactory",
    "HsockTest",
    "ProxyFactory",
    "ServerFactory",
    "UdpProxyFactory",
    "current_test",
    "hsock_ca",
    "hsock_client",
    "hsock_fragmentation",
    "hsock_proxy",
    "hsock_server",
    "hsock_server_factory",
    "hsock_timeout",
    "hsock_tls_material",
    "hsock_tls_server",
    "hsock_udp_client",
    "hsock_udp_proxy",
    "hsock_udp_server",
    "hsock_unix_server",
    "pytest_addoption",
    "pytest_assertrepr_compare",
    "pytest_configure",
    "pytest_generate_tests",
    "pytest_runtest_makereport",
    "pytest_runtest_setup",
    "pytest_runtest_teardown",
    "pytest_sessionfinish",
]
