"""The fixtures: thin layers over ``pytest_hsocket.testing``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Callable, Optional, Protocol, Union

import pytest
import trustme

from .._errors import CallbackError
from .._fragment import Fragmenter
from .._loop import get_loop
from .._mockserver import ExpectationError, MockServer
from .._sync import Gate
from .._testclient import TestClient, open_client
from .._udpserver import UdpMockServer, UdpTestClient
from .state import current_test
from .tls import TlsMaterial, client_tls_context


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


@pytest.fixture
def hsock_timeout() -> float:
    """Seconds a helper waits before failing: ``@pytest.mark.hsocket(timeout=)``,
    ``--hsock-timeout``, ini ``hsock_timeout``, else 5.

    (The server and client fixtures read the same setting themselves, without this fixture:
    overriding it changes what it returns, and what ``hsock_proxy`` uses.)
    """
    return current_test().timeout


FRAGMENTER = pytest.StashKey[Fragmenter]()


@pytest.fixture
def hsock_fragmentation() -> Optional[Fragmenter]:
    """This run's fragmentation pattern under ``@pytest.mark.hsock_fragment``, else ``None``."""
    node = current_test().node
    callspec = getattr(node, "callspec", None)  # pytest_generate_tests parametrized it
    run = callspec.params.get("hsock_fragmentation") if callspec is not None else None
    if run is None:
        return None
    marker = node.get_closest_marker("hsock_fragment")
    pause = float(marker.kwargs.get("pause", 0.002)) if marker is not None else 0.002
    fragmenter = Fragmenter(node.config.getoption("--hsock-fragment-seed"), run, pause)
    node.stash[FRAGMENTER] = fragmenter
    return fragmenter


@pytest.fixture
def hsock_client() -> Iterator[ClientFactory]:
    """Open connected test clients: ``hsock_client(server)`` or ``hsock_client(host, port)``.

    Each is an hs.socket client with ``expect`` and ``wait``; closed at teardown. With
    ``tls=True`` it speaks TLS from the first byte, trusting ``hsock_ca`` and checking the name
    (the server's host, or ``peer_name``); ``client_cert=True`` adds a certificate from
    ``hsock_ca`` for mutual TLS. ``client.start_tls()`` (STARTTLS) trusts ``hsock_ca`` too.
    """
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


@pytest.fixture
def hsock_udp_server() -> Iterator[UdpMockServer]:
    """A scriptable UDP server on 127.0.0.1 and an OS-chosen port: ``expect(datagram)``
    rules answer each sender; closed and checked at teardown."""
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


@pytest.fixture
def hsock_udp_client() -> Iterator[Callable[..., UdpTestClient]]:
    """Open connected UDP test clients: ``hsock_udp_client(server)`` or ``(host, port)``;
    each has ``expect()`` and ``request(data)``; closed at teardown."""
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


@pytest.fixture(scope="session")
def hsock_tls_material() -> TlsMaterial:
    """The session's TLS material, made lazily: no CA exists unless a test uses TLS."""
    return current_test().material


@pytest.fixture(scope="session")
def hsock_ca(hsock_tls_material: TlsMaterial) -> trustme.CA:
    """A session-wide certificate authority (trustme) that every TLS fixture trusts.

    Use it to trust the mock servers from a real client: ``hsock_ca.configure_trust(ctx)``,
    or ``hsock_ca.cert_pem.write_to_path(path)`` for a tool that wants a PEM file.
    """
    return hsock_tls_material.ca
