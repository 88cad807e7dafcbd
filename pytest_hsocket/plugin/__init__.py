"""The pytest11 entry point of pytest-hsocket: fixtures, options and report hooks."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest

from .._mockserver import MockServer
from .._udpserver import UdpMockServer
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
    TRANSCRIPT_SOURCES,
    HsockTest,
    current_test,
    pytest_runtest_setup,
    pytest_runtest_teardown,
    pytest_sessionfinish,
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


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, Any, None]:
    """Add each connection's transcript (and the fragmentation run) to a failed test's report."""
    outcome = yield
    report = outcome.get_result()
    if not report.failed:
        return
    fragmenter = item.stash.get(FRAGMENTER, None)
    if fragmenter is not None:
        replay = (
            f"replay exactly this run: pytest '{item.nodeid}' "
            f"--hsock-fragment-seed={fragmenter.seed}"
        )
        report.sections.append(("hsocket fragmentation", f"{fragmenter.describe()}\n{replay}"))
    if not show_transcripts(item):
        return
    sources = item.stash.get(TRANSCRIPT_SOURCES, [])
    texts = []
    for source in sources:
        if isinstance(source, (MockServer, UdpMockServer)):
            texts += [t.render() for t in source.transcripts]
        else:
            texts.append(source.transcript.render())
    if texts:
        report.sections.append((f"hsocket transcripts ({call.when})", "\n\n".join(texts)))


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
