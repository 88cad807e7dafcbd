"""An in-process UDP chaos proxy: drop, duplicate, reorder, truncate and delay datagrams.

A :class:`UdpProxy` binds a UDP port on 127.0.0.1 and forwards every datagram it receives to
one upstream address, through the chaos of ``proxy.upstream`` and ``proxy.downstream``
(:class:`ChaosDirection`). What each datagram becomes is decided by a pure
:class:`~pytest_hsocket._core.lane.Lane` per direction (``_lane``, ``_chaos``); the sockets and the
greenlets that move the datagrams are the proxy's :class:`~pytest_hsocket._helpers.udp_relay.Relay`,
on the socket loop. This module is what the test holds: starting, settling, closing.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

from pytest_hsocket._core.checks import check_int, check_seconds, check_wait
from pytest_hsocket._core.errors import HSocketError, InvalidThreadUseError
from pytest_hsocket._core.faults import DIRECTIONS, DOWNSTREAM, UPSTREAM, check_ports
from pytest_hsocket._core.lane import Stats
from pytest_hsocket._helpers.chaos_handles import Chaos, ChaosDirection
from pytest_hsocket._helpers.proxy_common import Proxy
from pytest_hsocket._helpers.udp_relay import Relay
from pytest_hsocket._loop.hub import get_loop

__all__ = ["DOWNSTREAM", "UPSTREAM", "Chaos", "ChaosDirection", "ProxyStats", "Stats", "UdpProxy"]


class ProxyStats(NamedTuple):
    """A snapshot of both directions' counters (see :class:`~pytest_hsocket._core.lane.Stats`).

    Attributes:
        upstream: Client to server.
        downstream: Server to client.
    """

    upstream: Stats
    downstream: Stats


class UdpProxy(Proxy[ChaosDirection]):
    """A UDP proxy on the socket loop that forwards to one upstream, with chaos per direction.

    Build it with :meth:`start`; the code under test sends to ``proxy.address`` instead of the
    real server. Usable as a context manager that closes it.

    Attributes:
        upstream_address: Where datagrams are forwarded, ``(host, port)`` as given.
        seed: The seed of the random decisions.
        wait_timeout: Default seconds :meth:`settle` waits.
    """

    def __init__(
        self,
        upstream: tuple[str, int],
        *,
        host: str,
        port: int,
        name: str,
        seed: int,
        wait_timeout: float,
    ) -> None:
        self.seed = seed
        self.wait_timeout = wait_timeout
        self._relay = Relay(name, seed)
        super().__init__(
            upstream,
            {d: ChaosDirection(self, d, self._apply_chaos, self._lift_chaos) for d in DIRECTIONS},
        )
        get_loop().run_sync(lambda: self._relay.open(upstream, host, port))

    @classmethod
    def start(
        cls,
        upstream_host: str,
        upstream_port: int,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        seed: int = 0,
        name: Optional[str] = None,
        wait_timeout: float = 5.0,
    ) -> UdpProxy:
        """Bind ``host``:``port`` and forward every datagram to the upstream.

        Args:
            upstream_host: The real server's host name or address (resolved now).
            upstream_port: The real server's port.
            host: Where to listen; 127.0.0.1 by default (``::1`` for IPv6).
            port: Where to listen; 0 (the default) lets the OS choose.
            seed: Seeds every random decision, for repeatable runs.
            name: How the proxy is named in logs and messages.
            wait_timeout: Default seconds :meth:`settle` waits.
        Returns:
            The running proxy.
        Raises:
            TypeError, ValueError: If a port, the seed or ``wait_timeout`` has the wrong type
                or range.
            OSError: If the upstream host does not resolve, or binding fails.
        """
        check_ports("UdpProxy.start()", upstream_port, port)
        check_int(seed, "UdpProxy.start() seed", None)
        wait_timeout = check_seconds(wait_timeout, "UdpProxy.start() wait_timeout")
        return cls(
            (upstream_host, upstream_port),
            host=host,
            port=port,
            name=name or f"hsock_udp_proxy to {upstream_host}:{upstream_port}",
            seed=seed,
            wait_timeout=wait_timeout,
        )

    # -- where ------------------------------------------------------------------------------

    @property
    def name(self) -> str:
        """How the proxy is named in logs and messages (settable)."""
        return self._relay.name

    @name.setter
    def name(self, name: str) -> None:
        self._relay.name = name

    @property
    def host(self) -> str:
        """The address the proxy is bound to."""
        return self._relay.address[0]

    @property
    def port(self) -> int:
        """The port the proxy is bound to."""
        return self._relay.address[1]

    @property
    def address(self) -> tuple[str, int]:
        """``(host, port)``: where the code under test should send."""
        return self._relay.address

    @property
    def stats(self) -> ProxyStats:
        """A snapshot of both directions' counters: ``proxy.stats.upstream.dropped``, ..."""
        return get_loop().run_sync(
            lambda: ProxyStats(
                self._relay.lanes[UPSTREAM].stats.copy(),
                self._relay.lanes[DOWNSTREAM].stats.copy(),
            )
        )

    @property
    def clients(self) -> int:
        """How many client addresses the proxy has seen (each has its own upstream socket)."""
        return len(self._relay.clients)

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._relay.closed

    # -- waiting and closing ----------------------------------------------------------------

    def settle(self, timeout: Optional[float] = None) -> None:
        """Wait until the datagrams that reached the proxy are all forwarded or dropped.

        Datagrams waiting in the proxy's sockets are read first; then this waits for every
        delayed or held datagram to go out. A reply the upstream has not sent yet is not
        waited for.

        Args:
            timeout: Seconds to wait; the proxy's ``wait_timeout`` by default.
        Raises:
            HSocketError: If datagrams are still waiting after ``timeout``.
            InvalidThreadUseError: If called on the socket loop.
        """
        loop = get_loop()
        if loop.on_thread():
            raise InvalidThreadUseError("settle() waits for the loop; call it from the test")
        limit = self.wait_timeout if timeout is None else check_wait(timeout, "settle()")
        gate = loop.run_sync(self._relay.pull_and_watch)
        if not gate.wait(limit):
            waiting = loop.run_sync(self._relay.pending)
            if waiting:
                raise HSocketError(
                    f"{self.name}: {waiting} datagram(s) still delayed or held after {limit} s"
                )

    def close(self) -> None:
        """Stop forwarding and close every socket; idempotent. Waiting datagrams are lost."""
        self._relay.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"{self.clients} client(s)"
        return f"<UdpProxy {self.host}:{self.port} -> {self._upstream_text()} ({state})>"

    # -- called by the chains, on the loop --------------------------------------------------

    def _apply_chaos(self, chaos: Chaos) -> None:
        self._relay.add(chaos.direction, chaos, chaos.spec)

    def _lift_chaos(self, chaos: Chaos) -> None:
        self._relay.remove(chaos.direction, chaos)
