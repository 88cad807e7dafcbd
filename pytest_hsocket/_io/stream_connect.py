"""Connecting a stream: a greenlet that resolves the host and tries each address in turn, then
hands the connected socket on. Runs on the loop thread."""

from __future__ import annotations

import socket
from typing import Any, Callable, Optional

import gevent

from pytest_hsocket._core.address import ip_family
from pytest_hsocket._core.errors import reason_of
from pytest_hsocket._core.platform import is_unix_family
from pytest_hsocket._io.sockets import CONNECT_TIMEOUT, Closed, connect_first


class Connector:
    """One connection attempt, in its own greenlet on the loop.

    Args:
        hub: The loop's hub (its resolver resolves host names).
        connected: Called with the connected non-blocking socket, which it then owns.
        failed: Called with the reason the attempt failed (the original's words:
            ``CONNECT_TIMEOUT``, or the OS or resolver error).
    """

    def __init__(
        self,
        hub: Any,
        connected: Callable[[socket.socket], None],
        failed: Callable[[str], None],
    ) -> None:
        self._hub = hub
        self._connected = connected
        self._failed = failed
        self._greenlet: Optional[gevent.Greenlet] = None

    def start(self, family: int, addresses: list[Any], timeout: float) -> None:
        """Connect to the first of ``addresses`` that accepts, within ``timeout`` seconds
        (negative: no limit).

        ``addresses`` are socket addresses for ``family``, or ``[(host, port)]`` to resolve.
        """
        self._greenlet = gevent.spawn(self._connect, family, addresses, timeout)

    def cancel(self) -> None:
        """Stop the attempt (nothing is reported); a no-op once it ended, or from its own
        greenlet (a ``connected`` callback that closes the stream)."""
        greenlet, self._greenlet = self._greenlet, None
        if greenlet is not None and greenlet is not gevent.getcurrent():
            greenlet.kill(Closed, block=False)

    def _connect(self, family: int, addresses: list[Any], timeout: float) -> None:
        timer = gevent.Timeout(timeout) if timeout >= 0 else None
        if timer is not None:
            timer.start()
        try:
            sock = connect_first(self._hub, self._candidates(family, addresses))
            self._greenlet = None
            self._connected(sock)
        except gevent.Timeout as exc:
            if exc is not timer:
                raise
            self._fail(CONNECT_TIMEOUT)
        except (socket.gaierror, ValueError, UnicodeError, OSError) as exc:
            self._fail(reason_of(exc))
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

    def _fail(self, reason: str) -> None:
        self._greenlet = None
        self._failed(reason)
