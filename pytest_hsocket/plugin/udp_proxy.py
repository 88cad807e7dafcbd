"""The ``hsock_udp_proxy`` fixture: in-process UDP chaos proxies, closed at teardown."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Optional, Protocol, Union

if TYPE_CHECKING:
    from pytest_hsocket._helpers.udp_proxy import UdpProxy
from pytest_hsocket.plugin.proxy import HasAddress


class UdpProxyFactory(Protocol):
    """``hsock_udp_proxy(server)`` or ``hsock_udp_proxy(upstream_host, upstream_port)``."""

    def __call__(
        self,
        server_or_host: Union[str, HasAddress],
        port: Optional[int] = None,
        *,
        seed: int = 0,
    ) -> UdpProxy: ...


def hsock_udp_proxy(hsock_timeout: float) -> Iterator[UdpProxyFactory]:
    """The body of the ``hsock_udp_proxy`` fixture (the plugin module declares it)."""
    from pytest_hsocket._helpers.udp_proxy import (
        UdpProxy,  # the library loads when a test first uses the fixture
    )

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
