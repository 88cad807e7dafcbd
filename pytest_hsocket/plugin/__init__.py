"""The pytest11 entry point of pytest-hsocket: fixtures, options and report hooks."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest

from .._mockserver import MockServer
from .._udpserver import UdpMockServer
from .assertions import pytest_assertrepr_compare
from .fixtures import (
    TRANSCRIPT_SOURCES,
    ClientFactory,
    ServerFactory,
    _hsock_callback_errors,
    hsock_client,
    hsock_server,
    hsock_server_factory,
    hsock_timeout,
    hsock_tls_server,
    hsock_udp_client,
    hsock_udp_server,
    hsock_unix_server,
)
from .options import pytest_addoption, pytest_configure, show_transcripts
from .proxy import ProxyFactory, hsock_proxy
from .tls import hsock_ca, hsock_tls_material


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, Any, None]:
    """Add each connection's transcript to the report of a failed test."""
    outcome = yield
    report = outcome.get_result()
    if not report.failed or not show_transcripts(item):
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
    "ProxyFactory",
    "ServerFactory",
    "_hsock_callback_errors",
    "hsock_ca",
    "hsock_client",
    "hsock_proxy",
    "hsock_server",
    "hsock_server_factory",
    "hsock_timeout",
    "hsock_tls_material",
    "hsock_tls_server",
    "hsock_udp_client",
    "hsock_udp_server",
    "hsock_unix_server",
    "pytest_addoption",
    "pytest_assertrepr_compare",
    "pytest_configure",
    "pytest_runtest_makereport",
]
