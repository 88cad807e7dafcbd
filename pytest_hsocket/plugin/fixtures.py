"""The fixtures: thin layers over ``pytest_hsocket.testing``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Callable, Optional, Protocol, Union

import pytest

from pytest_hsocket._core.errors import CallbackError
from pytest_hsocket._loop.hub import get_loop
from pytest_hsocket.plugin.state import FRAGMENTER, current_test
from pytest_hsocket.plugin.tls import TlsMaterial, client_tls_context

# The library (gevent, ssl, trustme) loads when a test first uses a fixture, not with the plugin.
if TYPE_CHECKING:
    import trustme

    from pytest_hsocket._core.fragment import Fragmenter
    from pytest_hsocket._helpers.mockserver import MockServer
    from pytest_hsocket._helpers.testclient import TestClient
    from pytest_hsocket._helpers.udpserver import UdpMockServer, UdpTestClient


class ClientFactory(Protocol):
    """``hsock_client(server)``, ``hsock_client(host, port)`` or ``hsock_client(path)``."""

    def __call__(
        self,
        target: Union[str, MockServer, Any],
        port: Optional[int] = None,
        *,
        tls: bool = False,
        client_cert: bool = False,
        peer_name: Optional[str] = None,
    ) -> TestClient: ...


def hsock_timeout() -> float:
    """The body of the ``hsock_timeout`` fixture (the plugin module declares it)."""
    return current_test().timeout


def hsock_fragmentation() -> Optional[Fragmenter]:
    """The body of the ``hsock_fragmentation`` fixture (the plugin module declares it)."""
    node = current_test().node
    callspec = getattr(node, "callspec", None)  # pytest_generate_tests parametrized it
    run = callspec.params.get("hsock_fragmentation") if callspec is not None else None
    if run is None:
        return None
    from pytest_hsocket._core.fragment import Fragmenter

    marker = node.get_closest_marker("hsock_fragment")
    pause = float(marker.kwargs.get("pause", 0.002)) if marker is not None else 0.002
    fragmenter = Fragmenter(node.config.getoption("--hsock-fragment-seed"), run, pause)
    node.stash[FRAGMENTER] = fragmenter
    return fragmenter


def hsock_client() -> Iterator[ClientFactory]:
    """The body of the ``hsock_client`` fixture (the plugin module declares it)."""
    from pytest_hsocket._helpers.testclient import open_client
    from pytest_hsocket._loop.sync import Gate

    test = current_test()
    timeout, material = test.timeout, test.material
    clients: list[TestClient] = []

    def make(
        target: Union[str, MockServer, Any],
        port: Optional[int] = None,
        *,
        tls: bool = False,
        client_cert: bool = False,
        peer_name: Optional[str] = None,
    ) -> TestClient:
        context = None
        if client_cert:
            context = client_tls_context(material.ca, client_cert=True)
        elif tls:
            context = material.client_context()
        client = open_client(target, port, wait_timeout=timeout, tls=context, peer_name=peer_name)
        if context is None:
            client.default_tls_context = material.client_context
        clients.append(client)
        test.sources.append(client)
        return client

    yield make
    errors: list[CallbackError] = []
    for client in clients:
        # No wait here: a server's teardown (or the last fixture's) waits for the loop anyway.
        client.close(wait=False)
        errors += client.callback_errors
    for client in clients:
        client.wait_closed()  # a test's last writes reach the server before it judges them
    if clients:
        closed = test.clients_closed = Gate()
        get_loop().call(closed.open)
    for error in errors:
        error.reported = True
    if errors:
        pytest.fail("\n".join(f"hsock_client callback raised: {e}" for e in errors), pytrace=False)


def hsock_udp_server() -> Iterator[UdpMockServer]:
    """The body of the ``hsock_udp_server`` fixture (the plugin module declares it)."""
    from pytest_hsocket._helpers.mockserver import ExpectationError
    from pytest_hsocket._helpers.udpserver import UdpMockServer

    test = current_test()
    server = UdpMockServer.start(wait_timeout=test.timeout)
    test.sources.append(server)
    yield server
    server.close()
    for error in server.callback_errors:
        error.reported = True
    failure = None
    try:
        server.check(False)
    except ExpectationError as exc:
        failure = str(exc)
    if failure is not None:
        pytest.fail(failure, pytrace=False)


def hsock_udp_client() -> Iterator[Callable[..., UdpTestClient]]:
    """The body of the ``hsock_udp_client`` fixture (the plugin module declares it)."""
    from pytest_hsocket._helpers.udpserver import UdpTestClient

    test = current_test()
    sources, timeout = test.sources, test.timeout
    clients: list[UdpTestClient] = []

    def make(target: Union[str, Any], port: Optional[int] = None) -> UdpTestClient:
        if isinstance(target, str):
            host, number = target, port
        else:
            host, number = target.address
        if number is None:
            raise TypeError("hsock_udp_client() needs a server, or a host and a port")
        client = UdpTestClient.open(host, number, wait_timeout=timeout)
        clients.append(client)
        sources.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def hsock_tls_material() -> TlsMaterial:
    """The body of the ``hsock_tls_material`` fixture (the plugin module declares it)."""
    return current_test().material


def hsock_ca(hsock_tls_material: TlsMaterial) -> trustme.CA:
    """The body of the ``hsock_ca`` fixture (the plugin module declares it)."""
    return hsock_tls_material.ca
