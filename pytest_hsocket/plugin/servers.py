"""The TCP mock server fixtures: ``hsock_server``, its factory, the Unix and TLS variants."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from typing import TYPE_CHECKING, Optional, Protocol

import pytest

from pytest_hsocket.plugin.state import current_test
from pytest_hsocket.plugin.tls import server_tls_context

if TYPE_CHECKING:
    from pytest_hsocket._core.fragment import Fragmenter
    from pytest_hsocket._helpers.mockserver import MockServer


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
        from pytest_hsocket._helpers.mockserver import MockServer, unix_socket_dir
        from pytest_hsocket._helpers.pool import ServerPool

        test = self.test
        test.servers += 1
        label = name or ("hsock_server" if test.servers == 1 else f"hsock_server #{test.servers}")
        path = None
        if unix:
            from pytest_hsocket._core.platform import has_unix_sockets, unix_sockets_missing

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
        from pytest_hsocket._helpers.mockserver import ExpectationError

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


def hsock_server_factory(hsock_fragmentation: Optional[Fragmenter]) -> Iterator[ServerFactory]:
    """The body of the ``hsock_server_factory`` fixture (the plugin module declares it)."""
    servers = _Servers(hsock_fragmentation)
    yield servers.start
    servers.finish()


def hsock_server(hsock_fragmentation: Optional[Fragmenter]) -> Iterator[MockServer]:
    """The body of the ``hsock_server`` fixture (the plugin module declares it)."""
    servers = _Servers(hsock_fragmentation)
    yield servers.start()
    servers.finish()


def hsock_unix_server(hsock_server_factory: ServerFactory) -> MockServer:
    """The body of the ``hsock_unix_server`` fixture (the plugin module declares it)."""
    return hsock_server_factory(unix=True, name="hsock_unix_server")


def hsock_tls_server(hsock_server_factory: ServerFactory) -> MockServer:
    """The body of the ``hsock_tls_server`` fixture (the plugin module declares it)."""
    return hsock_server_factory(tls=True, name="hsock_tls_server")
