"""The TCP mock server fixtures: ``hsock_server``, its factory, the Unix and TLS variants."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from typing import Optional, Protocol

import pytest

from .._fragment import Fragmenter
from .._mockserver import ExpectationError, MockServer, unix_socket_dir
from .._pool import ServerPool
from .state import current_test
from .tls import server_tls_context


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


class _Servers:
    # One fixture's mock servers: started on demand, closed (or given back) and checked at
    # teardown. hsock_server and hsock_server_factory each have one; names count across both.

    def __init__(self, fragmenter: Optional[Fragmenter]) -> None:
        test = self.test = current_test()
        self.timeout = test.timeout
        self.material = test.material
        self.fragmenter = fragmenter
        self.pool = test.pool
        self.servers: list[MockServer] = []
        self.folders: list[str] = []

    def start(
        self,
        port: int = 0,
        *,
        host: str = "127.0.0.1",
        unix: bool = False,
        name: Optional[str] = None,
        tls: bool = False,
        mutual: bool = False,
    ) -> MockServer:
        test = self.test
        test.servers += 1
        label = name or ("hsock_server" if test.servers == 1 else f"hsock_server #{test.servers}")
        path = None
        if unix:
            from .._platform import has_unix_sockets, unix_sockets_missing

            if not has_unix_sockets():
                pytest.skip(unix_sockets_missing())
            self.folders.append(unix_socket_dir())
            path = os.path.join(self.folders[-1], "server.sock")
        context = None
        if mutual:
            material = self.material
            context = server_tls_context(material.ca, material.server_cert, mutual=True)
        elif tls:
            context = self.material.server_context()
        pool = self.pool
        if pool is not None and not (port or path or context) and host == ServerPool.HOST:
            server = pool.start(name=label, wait_timeout=self.timeout)
        else:
            server = MockServer.start(
                port, host=host, path=path, name=label, wait_timeout=self.timeout, tls=context
            )
        if context is None:
            # STARTTLS steps need a certificate: made when a script first asks for it.
            server.tls_context = self.material.server_context
        server.fragmenter = self.fragmenter
        self.servers.append(server)
        test.sources.append(server)
        return server

    def finish(self) -> None:
        pool = self.pool
        for server in self.servers:
            if pool is not None and pool.owns(server):
                pool.release(server)
            else:
                server.close()
        for folder in self.folders:
            shutil.rmtree(folder, ignore_errors=True)
        # Transcripts go to the report's own section (when shown at all), not into the message.
        failures = []
        for server in self.servers:
            try:
                server.check(False)
            except ExpectationError as exc:
                failures.append(str(exc))
            for error in server.callback_errors:
                error.reported = True
        if failures:
            pytest.fail("\n\n".join(failures), pytrace=False)


@pytest.fixture
def hsock_server_factory(hsock_fragmentation: Optional[Fragmenter]) -> Iterator[ServerFactory]:
    """Start mock servers (TCP or Unix); each is closed and checked at teardown.

    A plain one (127.0.0.1, port 0, no TLS) is a new server on a pooled listener: its port
    may be one an earlier test's server had (see ``hsock_server``).
    """
    servers = _Servers(hsock_fragmentation)
    yield servers.start
    servers.finish()


@pytest.fixture
def hsock_server(hsock_fragmentation: Optional[Fragmenter]) -> Iterator[MockServer]:
    """A started mock TCP server on 127.0.0.1 and an OS-chosen port (``.host``, ``.port``,
    ``.address``); closed at teardown, which fails on unmet rules or unexpected data.

    The port may be the one an earlier test's server had: the listener is pooled (a new
    server object, connections never carried over); ``--hsock-fresh-servers`` turns that off.
    """
    servers = _Servers(hsock_fragmentation)
    yield servers.start()
    servers.finish()


@pytest.fixture
def hsock_unix_server(hsock_server_factory: ServerFactory) -> MockServer:
    """A mock server on a Unix socket in a private folder (``.path``)."""
    return hsock_server_factory(unix=True, name="hsock_unix_server")


@pytest.fixture
def hsock_tls_server(hsock_server_factory: ServerFactory) -> MockServer:
    """A mock server speaking TLS from the first byte, with a certificate from ``hsock_ca``
    for 127.0.0.1, localhost and ::1."""
    return hsock_server_factory(tls=True, name="hsock_tls_server")
