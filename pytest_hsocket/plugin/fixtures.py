"""The fixtures: thin layers over ``pytest_hsocket.testing``."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from typing import Any, Callable, Optional, Protocol, Union

import pytest

from .._errors import CallbackError
from .._fragment import Fragmenter
from .._loop import RUN_SYNC_TIMEOUT, get_loop
from .._mockserver import ExpectationError, MockServer, unix_socket_dir
from .._pool import ServerPool
from .._sync import Gate
from .._testclient import TestClient, open_client
from .._udpserver import UdpMockServer, UdpTestClient
from .options import reuse_ports, wait_timeout
from .tls import TlsMaterial, client_tls_context, server_tls_context

TRANSCRIPT_SOURCES = pytest.StashKey[list[Any]]()
"""Per test: the servers and clients whose transcripts a failure report shows."""

CLIENTS_CLOSED = pytest.StashKey[Gate]()
"""Per test: opens once the loop has closed the clients ``hsock_client`` let go of."""


class ServerFactory(Protocol):
    """``hsock_server_factory(...)``: start another mock server for this test."""

    def __call__(
        self,
        port: int = 0,
        *,
        host: str = "127.0.0.1",
        unix: bool = False,
        name: Optional[str] = None,
        tls: bool = False,
        mutual: bool = False,
    ) -> MockServer: ...


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


def _sources(request: pytest.FixtureRequest) -> list[Any]:
    sources: list[Any] = request.node.stash.setdefault(TRANSCRIPT_SOURCES, [])
    return sources


@pytest.fixture
def hsock_timeout(request: pytest.FixtureRequest) -> float:
    """Seconds a helper waits before failing: ``@pytest.mark.hsocket(timeout=)``,
    ``--hsock-timeout``, ini ``hsock_timeout``, else 5."""
    return wait_timeout(request.node)


FRAGMENTER = pytest.StashKey[Fragmenter]()


@pytest.fixture
def hsock_fragmentation(request: pytest.FixtureRequest) -> Optional[Fragmenter]:
    """This run's fragmentation pattern under ``@pytest.mark.hsock_fragment``, else ``None``."""
    run = getattr(request, "param", None)
    if run is None:
        return None
    marker = request.node.get_closest_marker("hsock_fragment")
    pause = float(marker.kwargs.get("pause", 0.002)) if marker is not None else 0.002
    fragmenter = Fragmenter(request.config.getoption("--hsock-fragment-seed"), run, pause)
    request.node.stash[FRAGMENTER] = fragmenter
    return fragmenter


@pytest.fixture(scope="session")
def _hsock_server_pool(request: pytest.FixtureRequest) -> Iterator[Optional[ServerPool]]:
    """The session's listeners lent to plain mock servers (``None`` when disabled)."""
    if not reuse_ports(request.config):
        yield None
        return
    pool = ServerPool()
    yield pool
    pool.close()


@pytest.fixture
def hsock_server_factory(
    request: pytest.FixtureRequest,
    hsock_timeout: float,
    hsock_tls_material: TlsMaterial,
    hsock_fragmentation: Optional[Fragmenter],
    _hsock_server_pool: Optional[ServerPool],
) -> Iterator[ServerFactory]:
    """Start mock servers (TCP or Unix); each is closed and checked at teardown.

    A plain one (127.0.0.1, port 0, no TLS) is a new server on a pooled listener: its port
    may be one an earlier test's server had (see ``ServerPool``).
    """
    pool = _hsock_server_pool
    servers: list[MockServer] = []
    folders: list[str] = []

    def make(
        port: int = 0,
        *,
        host: str = "127.0.0.1",
        unix: bool = False,
        name: Optional[str] = None,
        tls: bool = False,
        mutual: bool = False,
    ) -> MockServer:
        label = name or ("hsock_server" if not servers else f"hsock_server #{len(servers) + 1}")
        path = None
        if unix:
            folders.append(unix_socket_dir())
            path = os.path.join(folders[-1], "server.sock")
        context = None
        if mutual:
            material = hsock_tls_material
            context = server_tls_context(material.ca, material.server_cert, mutual=True)
        elif tls:
            context = hsock_tls_material.server_context()
        if pool is not None and not (port or path or context) and host == ServerPool.HOST:
            server = pool.start(name=label, wait_timeout=hsock_timeout)
        else:
            server = MockServer.start(
                port, host=host, path=path, name=label, wait_timeout=hsock_timeout, tls=context
            )
        if context is None:
            # STARTTLS steps need a certificate: made when a script first asks for it.
            server.tls_context = hsock_tls_material.server_context
        server.fragmenter = hsock_fragmentation
        servers.append(server)
        _sources(request).append(server)
        return server

    yield make
    for server in servers:
        if pool is not None and pool.owns(server):
            pool.release(server)
        else:
            server.close()
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)
    # Transcripts go to the report's own section (when shown at all), not into the message.
    failures = [str(exc) for exc in _check_all(servers, False)]
    if failures:
        pytest.fail("\n\n".join(failures), pytrace=False)


def _check_all(servers: list[MockServer], transcripts: bool) -> list[ExpectationError]:
    found = []
    for server in servers:
        try:
            server.check(transcripts)
        except ExpectationError as exc:
            found.append(exc)
        for error in server.callback_errors:
            error.reported = True
    return found


@pytest.fixture
def hsock_server(hsock_server_factory: ServerFactory) -> MockServer:
    """A started mock TCP server on 127.0.0.1 and an OS-chosen port (``.host``, ``.port``,
    ``.address``); closed at teardown, which fails on unmet rules or unexpected data."""
    return hsock_server_factory()


@pytest.fixture
def hsock_unix_server(hsock_server_factory: ServerFactory) -> MockServer:
    """A mock server on a Unix socket in a private folder (``.path``)."""
    return hsock_server_factory(unix=True, name="hsock_unix_server")


@pytest.fixture
def hsock_tls_server(hsock_server_factory: ServerFactory) -> MockServer:
    """A mock server speaking TLS from the first byte, with a certificate from ``hsock_ca``
    for 127.0.0.1, localhost and ::1."""
    return hsock_server_factory(tls=True, name="hsock_tls_server")


@pytest.fixture
def hsock_client(
    request: pytest.FixtureRequest, hsock_timeout: float, hsock_tls_material: TlsMaterial
) -> Iterator[ClientFactory]:
    """Open connected test clients: ``hsock_client(server)`` or ``hsock_client(host, port)``.

    Each is an hs.socket client with ``expect`` and ``wait``; closed at teardown. With
    ``tls=True`` it speaks TLS from the first byte, trusting ``hsock_ca`` and checking the name
    (the server's host, or ``peer_name``); ``client_cert=True`` adds a certificate from
    ``hsock_ca`` for mutual TLS. ``client.start_tls()`` (STARTTLS) trusts ``hsock_ca`` too.
    """
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
            context = client_tls_context(hsock_tls_material.ca, client_cert=True)
        elif tls:
            context = hsock_tls_material.client_context()
        client = open_client(
            target, port, wait_timeout=hsock_timeout, tls=context, peer_name=peer_name
        )
        if context is None:
            client.default_tls_context = hsock_tls_material.client_context
        clients.append(client)
        _sources(request).append(client)
        return client

    yield make
    errors: list[CallbackError] = []
    for client in clients:
        # No wait here: a server's teardown (or the last fixture's) waits for the loop anyway.
        client.close(wait=False)
        errors += client.callback_errors
    if clients:
        closed = request.node.stash[CLIENTS_CLOSED] = Gate()
        get_loop().call(closed.open)
    for error in errors:
        error.reported = True
    if errors:
        pytest.fail("\n".join(f"hsock_client callback raised: {e}" for e in errors), pytrace=False)


@pytest.fixture(autouse=True)
def _hsock_callback_errors(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail the test if a callback of any hs.socket it made raised (and no fixture said so).

    Torn down last: it also waits until the clients ``hsock_client`` closed are closed.
    """
    caught: list[CallbackError] = []
    loop = get_loop()
    loop.add_error_sink(caught.append)
    try:
        yield
        closed = request.node.stash.get(CLIENTS_CLOSED, None)
        if closed is not None and not closed.wait(RUN_SYNC_TIMEOUT):
            pytest.fail("the socket loop did not close hsock_client's clients", pytrace=False)
    finally:
        loop.remove_error_sink(caught.append)
    unreported = [e for e in caught if not e.reported]
    if unreported:
        details = []
        for error in unreported:
            cause = error.__cause__
            details.append(f"{error}")
            if cause is not None and cause.__traceback__ is not None:
                import traceback

                details += traceback.format_tb(cause.__traceback__)
        pytest.fail("a socket callback raised:\n" + "\n".join(details), pytrace=False)


@pytest.fixture
def hsock_udp_server(
    request: pytest.FixtureRequest, hsock_timeout: float
) -> Iterator[UdpMockServer]:
    """A scriptable UDP server on 127.0.0.1 and an OS-chosen port: ``expect(datagram)``
    rules answer each sender; closed and checked at teardown."""
    server = UdpMockServer.start(wait_timeout=hsock_timeout)
    _sources(request).append(server)
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
def hsock_udp_client(
    request: pytest.FixtureRequest, hsock_timeout: float
) -> Iterator[Callable[..., UdpTestClient]]:
    """Open connected UDP test clients: ``hsock_udp_client(server)`` or ``(host, port)``;
    each has ``expect()`` and ``request(data)``; closed at teardown."""
    clients: list[UdpTestClient] = []

    def make(target: Union[str, Any], port: Optional[int] = None) -> UdpTestClient:
        if isinstance(target, str):
            host, number = target, port
        else:
            host, number = target.address
        if number is None:
            raise TypeError("hsock_udp_client() needs a server, or a host and a port")
        client = UdpTestClient.open(host, number, wait_timeout=hsock_timeout)
        clients.append(client)
        _sources(request).append(client)
        return client

    yield make
    for client in clients:
        client.close()
