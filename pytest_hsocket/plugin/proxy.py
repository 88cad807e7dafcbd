"""The ``hsock_proxy`` fixture: in-process TCP fault proxies, closed at teardown."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Optional, Protocol, Union

if TYPE_CHECKING:
    import pytest

    from pytest_hsocket._helpers.proxy import FaultProxy


class HasAddress(Protocol):
    """Anything with an ``.address`` of ``(host, port)``: a mock server, another proxy."""

    @property
    def address(self) -> tuple[str, int]: ...


class ProxyFactory(Protocol):
    """``hsock_proxy(server)`` or ``hsock_proxy(upstream_host, upstream_port)``."""

    def __call__(
        self,
        target: Union[str, HasAddress],
        port: Optional[int] = None,
        *,
        host: str = "127.0.0.1",
        seed: Optional[int] = None,
        record: bool = True,
    ) -> FaultProxy: ...


def hsock_proxy(hsock_timeout: float, request: pytest.FixtureRequest) -> Iterator[ProxyFactory]:
    """The body of the ``hsock_proxy`` fixture (the plugin module declares it)."""
    from pytest_hsocket._helpers.proxy import (
        FaultProxy,  # the library loads when a test first uses the fixture
    )

    proxies: list[FaultProxy] = []

    def make(
        target: Union[str, HasAddress],
        port: Optional[int] = None,
        *,
        host: str = "127.0.0.1",
        seed: Optional[int] = None,
        record: bool = True,
    ) -> FaultProxy:
        if isinstance(target, str):
            if port is None:
                raise TypeError("hsock_proxy() needs a port after the upstream host")
            upstream = (target, port)
        else:
            address = getattr(target, "address", None)
            if not isinstance(address, tuple) or len(address) < 2 or port is not None:
                raise TypeError(
                    f"hsock_proxy() takes a server with .address or (host, port), not {target!r}"
                )
            upstream = (address[0], address[1])
        index = f" #{len(proxies) + 1}" if proxies else ""
        proxy = FaultProxy.start(
            *upstream,
            host=host,
            connect_timeout=hsock_timeout,
            name=f"hsock_proxy{index} to {upstream[0]}:{upstream[1]}",
            seed=seed,
            record=record,
        )
        proxies.append(proxy)
        # Closed (forwarding what clients sent) before any fixture's teardown, whatever the
        # order the fixtures were requested in: servers judge after it, clients close after it.
        request.node.addfinalizer(proxy.close)
        return proxy

    yield make
    for proxy in proxies:
        proxy.close()
