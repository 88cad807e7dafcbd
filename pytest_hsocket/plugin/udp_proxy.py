"""The ``hsock_udp_proxy`` fixture: in-process UDP chaos proxies, closed at teardown."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Optional, Protocol, Union

import pytest

if TYPE_CHECKING:
    from .._udp_proxy import UdpProxy
from .proxy import HasAddress


class UdpProxyFactory(Protocol):
    """``hsock_udp_proxy(server)`` or ``hsock_udp_proxy(upstream_host, upstream_port)``."""

    def __call__(
        self,
        server_or_host: Union[str, HasAddress],
        port: Optional[int] = None,
        *,
        seed: int = 0,
    ) -> UdpProxy: ...


@pytest.fixture
def hsock_udp_proxy(hsock_timeout: float) -> Iterator[UdpProxyFactory]:
    """Start UDP chaos proxies: ``hsock_udp_proxy(server)`` or ``hsock_udp_proxy(host, port)``.

    Each returns a running :class:`~pytest_hsocket._udp_proxy.UdpProxy` on 127.0.0.1 and an
    OS-chosen port that forwards every datagram to the upstream (each client through its own
    socket); point the code under test at ``proxy.address`` and add chaos with
    ``proxy.upstream`` / ``proxy.downstream``. ``seed`` makes the random decisions repeatable;
    ``proxy.settle()`` waits up to ``hsock_timeout`` seconds. All are closed at teardown.
    """
    from .._udp_proxy import UdpProxy  # the library loads when a test first uses the fixture

    proxies: list[UdpProxy] = []

    def make(
        server_or_host: Union[str, HasAddress],
        port: Optional[int] = None,
        *,
        seed: int = 0,
    ) -> UdpProxy:
        if isinstance(server_or_host, str):
            if port is None:
                raise TypeError("hsock_udp_proxy() needs a port after the upstream host")
            upstream = (server_or_host, port)
        else:
            address = getattr(server_or_host, "address", None)
            if not isinstance(address, tuple) or len(address) < 2 or port is not None:
                raise TypeError(
                    "hsock_udp_proxy() takes a server with .address or (host, port), "
                    f"not {server_or_host!r}"
                )
            upstream = (address[0], address[1])
        index = f" #{len(proxies) + 1}" if proxies else ""
        proxy = UdpProxy.start(
            *upstream,
            seed=seed,
            name=f"hsock_udp_proxy{index} to {upstream[0]}:{upstream[1]}",
            wait_timeout=hsock_timeout,
        )
        proxies.append(proxy)
        return proxy

    yield make
    for proxy in proxies:
        proxy.close()
