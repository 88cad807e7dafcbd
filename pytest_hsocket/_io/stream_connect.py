"""Connecting a ``Stream``: a greenlet that resolves the host and tries each address in turn,
then hands the connected socket to ``Stream.attach``. Runs on the loop thread."""

from __future__ import annotations

import socket
from typing import Any

import gevent

from pytest_hsocket._core.address import ip_family
from pytest_hsocket._core.errors import reason_of
from pytest_hsocket._core.platform import is_unix_family
from pytest_hsocket._io.sockets import CONNECT_TIMEOUT, Closed, connect_first


class StreamConnect:
    """``connect`` for ``Stream`` (a mixin: the attributes and methods below are the stream's)."""

    _connector: Any
    _hub: Any

    def attach(self, sock: socket.socket) -> None:
        raise NotImplementedError  # pragma: no cover - the stream's

    def close(self, reason: str = ..., error: bool = False) -> None:
        raise NotImplementedError  # pragma: no cover - the stream's

    # -- connecting -------------------------------------------------------------------------

    def connect(self, family: int, addresses: list[Any], timeout: float) -> None:
        """Connect in a greenlet to the first of ``addresses`` that accepts.

        ``addresses`` are socket addresses for ``family``, or ``(host, port)`` to resolve.
        """
        self._connector = gevent.spawn(self._connect, family, addresses, timeout)

    def _connect(self, family: int, addresses: list[Any], timeout: float) -> None:
        timer = gevent.Timeout(timeout) if timeout >= 0 else None
        if timer is not None:
            timer.start()
        try:
            sock = connect_first(self._hub, self._candidates(family, addresses))
            self._connector = None
            self.attach(sock)
        except gevent.Timeout as exc:
            if exc is not timer:
                raise
            self._fail_connect(CONNECT_TIMEOUT)
        except (socket.gaierror, ValueError, UnicodeError, OSError) as exc:
            self._fail_connect(reason_of(exc))
        except Closed:
            pass
        finally:
            if timer is not None:
                timer.close()

    def _candidates(self, family: int, addresses: list[Any]) -> list[tuple[int, Any]]:
        if is_unix_family(family):
            return [(family, a) for a in addresses]
        host, port = addresses[0]
        literal = ip_family(host)
        if literal is not None:
            return [(literal, (host, port))]
        infos = self._hub.resolver.getaddrinfo(host, port, 0, socket.SOCK_STREAM)
        return [(fam, sa) for fam, _, _, _, sa in infos if fam in (socket.AF_INET, socket.AF_INET6)]

    def _fail_connect(self, reason: str) -> None:
        self._connector = None
        self.close(reason, error=True)
