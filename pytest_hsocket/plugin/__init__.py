"""The pytest11 entry point of pytest-hsocket: fixtures, options and report hooks.

It loads in every pytest run of the environment, so importing it imports pytest and the
plugin's own definitions only: the library, gevent, trustme, ssl and asyncio load when a test
first uses a fixture (or the API), and the socket loop thread starts then.
"""

from __future__ import annotations

import importlib
from collections.abc import Generator, Iterator
from typing import TYPE_CHECKING, Any, Callable, Optional

import pytest

from pytest_hsocket.plugin.assertions import pytest_assertrepr_compare
from pytest_hsocket.plugin.options import pytest_addoption, pytest_configure, show_transcripts
from pytest_hsocket.plugin.state import (
    FRAGMENTER,
    HsockTest,
    current_test,
    finish,
    pytest_runtest_setup,
    pytest_runtest_teardown,
    pytest_sessionfinish,
    state_of,
)
from pytest_hsocket.plugin.tls import TlsMaterial

# The fixtures are declared here, and their bodies (with the library) load when a test first
# requests one: pytest must see every fixture at startup, but need not import what it does.
if TYPE_CHECKING:
    import trustme

    from pytest_hsocket._core.fragment import Fragmenter
    from pytest_hsocket._helpers.mockserver import MockServer
    from pytest_hsocket._helpers.udpserver import UdpMockServer, UdpTestClient
    from pytest_hsocket.plugin.fixtures import ClientFactory
    from pytest_hsocket.plugin.proxy import ProxyFactory
    from pytest_hsocket.plugin.servers import ServerFactory
    from pytest_hsocket.plugin.udp_proxy import UdpProxyFactory

_PROTOCOLS = {
    "ClientFactory": "fixtures",
    "ProxyFactory": "proxy",
    "ServerFactory": "servers",
    "UdpProxyFactory": "udp_proxy",
}


def __getattr__(name: str) -> Any:
    # The factories' protocols (for type hints in tests) load with the module that has them.
    if name not in _PROTOCOLS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_PROTOCOLS[name]}"), name)


@pytest.fixture
def hsock_timeout() -> float:
    """Seconds a helper waits before failing: ``@pytest.mark.hsocket(timeout=)``,
    ``--hsock-timeout``, ini ``hsock_timeout``, else 5.

    (The server and client fixtures read the same setting themselves, without this fixture:
    overriding it changes what it returns, and what ``hsock_proxy`` uses.)
    """
    from . import fixtures as _fixtures

    return _fixtures.hsock_timeout()


@pytest.fixture
def hsock_fragmentation() -> Optional[Fragmenter]:
    """This run's fragmentation pattern under ``@pytest.mark.hsock_fragment``, else ``None``."""
    from . import fixtures as _fixtures

    return _fixtures.hsock_fragmentation()


@pytest.fixture
def hsock_client() -> Iterator[ClientFactory]:
    """Open connected test clients: ``hsock_client(server)`` or ``hsock_client(host, port)``.

    Each is an hs.socket client with ``expect`` and ``wait``; closed at teardown. With
    ``tls=True`` it speaks TLS from the first byte, trusting ``hsock_ca`` and checking the name
    (the server's host, or ``peer_name``); ``client_cert=True`` adds a certificate from
    ``hsock_ca`` for mutual TLS. ``client.start_tls()`` (STARTTLS) trusts ``hsock_ca`` too.
    """
    from . import fixtures as _fixtures

    yield from _fixtures.hsock_client()


@pytest.fixture
def hsock_udp_server() -> Iterator[UdpMockServer]:
    """A scriptable UDP server on 127.0.0.1 and an OS-chosen port: ``expect(datagram)``
    rules answer each sender; closed and checked at teardown."""
    from . import fixtures as _fixtures

    yield from _fixtures.hsock_udp_server()


@pytest.fixture
def hsock_udp_client() -> Iterator[Callable[..., UdpTestClient]]:
    """Open connected UDP test clients: ``hsock_udp_client(server)`` or ``(host, port)``;
    each has ``expect()`` and ``request(data)``; closed at teardown."""
    from . import fixtures as _fixtures

    yield from _fixtures.hsock_udp_client()


@pytest.fixture(scope="session")
def hsock_tls_material() -> TlsMaterial:
    """The session's TLS material, made lazily: no CA exists unless a test uses TLS."""
    from . import fixtures as _fixtures

    return _fixtures.hsock_tls_material()


@pytest.fixture(scope="session")
def hsock_ca(hsock_tls_material: TlsMaterial) -> trustme.CA:
    """A session-wide certificate authority (trustme) that every TLS fixture trusts.

    Use it to trust the mock servers from a real client: ``hsock_ca.configure_trust(ctx)``,
    or ``hsock_ca.cert_pem.write_to_path(path)`` for a tool that wants a PEM file.
    """
    from . import fixtures as _fixtures

    return _fixtures.hsock_ca(hsock_tls_material)


@pytest.fixture
def hsock_server_factory(hsock_fragmentation: Optional[Fragmenter]) -> Iterator[ServerFactory]:
    """Start mock servers (TCP or Unix); each is closed and checked at teardown.

    A plain one (127.0.0.1, port 0, no TLS) is a new server on a pooled listener: its port
    may be one an earlier test's server had (see ``hsock_server``).
    """
    from . import servers as _servers

    yield from _servers.hsock_server_factory(hsock_fragmentation)


@pytest.fixture
def hsock_server(hsock_fragmentation: Optional[Fragmenter]) -> Iterator[MockServer]:
    """A started mock TCP server on 127.0.0.1 and an OS-chosen port (``.host``, ``.port``,
    ``.address``); closed at teardown, which fails on unmet rules or unexpected data.

    The port may be the one an earlier test's server had: the listener is pooled (a new
    server object, connections never carried over); ``--hsock-fresh-servers`` turns that off.
    """
    from . import servers as _servers

    yield from _servers.hsock_server(hsock_fragmentation)


@pytest.fixture
def hsock_unix_server(hsock_server_factory: ServerFactory) -> MockServer:
    """A mock server on a Unix socket in a private folder (``.path``)."""
    from . import servers as _servers

    return _servers.hsock_unix_server(hsock_server_factory)


@pytest.fixture
def hsock_tls_server(hsock_server_factory: ServerFactory) -> MockServer:
    """A mock server speaking TLS from the first byte, with a certificate from ``hsock_ca``
    for 127.0.0.1, localhost and ::1."""
    from . import servers as _servers

    return _servers.hsock_tls_server(hsock_server_factory)


@pytest.fixture
def hsock_proxy(hsock_timeout: float, request: pytest.FixtureRequest) -> Iterator[ProxyFactory]:
    """Start fault proxies: ``hsock_proxy(server)`` or ``hsock_proxy(upstream_host, port)``.

    Each returns a started :class:`~pytest_hsocket._helpers.proxy.FaultProxy` on 127.0.0.1 and an
    OS-chosen port that forwards every connection to the upstream; point the code under test at
    ``proxy.address`` and add toxics with ``proxy.upstream`` / ``proxy.downstream``. The proxy
    gives up reaching the upstream after ``hsock_timeout`` seconds. All are closed at teardown.
    """
    from . import proxy as _proxy

    yield from _proxy.hsock_proxy(hsock_timeout, request)


@pytest.fixture
def hsock_udp_proxy(hsock_timeout: float) -> Iterator[UdpProxyFactory]:
    """Start UDP chaos proxies: ``hsock_udp_proxy(server)`` or ``hsock_udp_proxy(host, port)``.

    Each returns a running :class:`~pytest_hsocket._helpers.udp_proxy.UdpProxy` on 127.0.0.1 and an
    OS-chosen port that forwards every datagram to the upstream (each client through its own
    socket); point the code under test at ``proxy.address`` and add chaos with
    ``proxy.upstream`` / ``proxy.downstream``. ``seed`` makes the random decisions repeatable;
    ``proxy.settle()`` waits up to ``hsock_timeout`` seconds. All are closed at teardown.
    """
    from . import udp_proxy as _udp_proxy

    yield from _udp_proxy.hsock_udp_proxy(hsock_timeout)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run a test marked ``hsock_fragment`` once per fragmentation pattern."""
    marker = metafunc.definition.get_closest_marker("hsock_fragment")
    if marker is None or "hsock_fragmentation" not in metafunc.fixturenames:
        return
    runs = marker.kwargs.get("runs", marker.args[0] if marker.args else 20)
    from pytest_hsocket._core.checks import check_int  # lazy: only a marked test pays for it

    try:
        check_int(
            runs,
            "@pytest.mark.hsock_fragment runs",
            1,
            bound="a positive int",
            noun="a positive int",
        )
    except (TypeError, ValueError) as exc:
        raise pytest.UsageError(str(exc)) from None
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
