"""An in-process UDP chaos proxy: drop, duplicate, reorder, truncate and delay datagrams.

A :class:`UdpProxy` binds a UDP port on 127.0.0.1 and forwards every datagram it receives to
one upstream address. Each client address gets its own socket towards the upstream, so the
upstream sees one sender per client and its replies go back to the client they answer. Each
direction is a :class:`~pytest_hsocket._chaos.Lane` (pure: it decides what each datagram
becomes and when it goes out); this module only does the I/O, the way ``_datagram`` does:
non-blocking OS sockets, ``hub.wait`` on their watchers, every gevent object made on the loop.

Per proxy there is one receiver greenlet for the clients' side, one per client for the
upstream's replies, and one sender per direction that sends what the lane emitted, in the order
of the times it asked for.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import random
import socket
import time
from types import TracebackType
from typing import Any, Callable, NamedTuple, Optional

import gevent
import gevent.event

from ._chaos import (
    DIRECTIONS,
    DOWNSTREAM,
    UPSTREAM,
    ChaosSpec,
    Delay,
    Drop,
    Duplicate,
    Emit,
    Lane,
    Reorder,
    Stats,
    Truncate,
)
from ._errors import HSocketError, InvalidThreadUseError, LoopError
from ._listener import _getaddrinfo
from ._loop import RUN_SYNC_TIMEOUT, get_loop
from ._stream import Closed, os_socket
from ._sync import Gate

log = logging.getLogger(__name__)

MAX_DATAGRAM = 65536
"""Bytes read per datagram: more than any UDP payload, so nothing is cut by the proxy itself."""
RECEIVE_BUFFER = 1 << 20
"""SO_RCVBUF asked for on the proxy's sockets (the kernel may cap it at net.core.rmem_max)."""
_YIELD_EVERY = 64

__all__ = ["DOWNSTREAM", "UPSTREAM", "Chaos", "ChaosDirection", "ProxyStats", "Stats", "UdpProxy"]


class ProxyStats(NamedTuple):
    """A snapshot of both directions' counters (see :class:`~pytest_hsocket._chaos.Stats`).

    Attributes:
        upstream: Client to server.
        downstream: Server to client.
    """

    upstream: Stats
    downstream: Stats


# -- chaos, as the user holds it ------------------------------------------------------------


class Chaos:
    """A chaos effect on one direction of a proxy, as returned by :class:`ChaosDirection`.

    Usable as a context manager that removes it on exit.

    Attributes:
        spec: What it does (``spec.describe()`` gives the call that added it).
        direction: ``"upstream"`` or ``"downstream"``.
    """

    def __init__(self, chain: ChaosDirection, spec: ChaosSpec) -> None:
        self._chain = chain
        self.spec = spec
        self.direction = chain.direction

    @property
    def active(self) -> bool:
        """Whether the effect is still on (not removed)."""
        return self in self._chain.effects

    def remove(self) -> None:
        """Take the effect off at once; idempotent.

        Datagrams it was holding back (``reorder``) go on at once, through the effects that
        remain; datagrams already delayed keep their time.
        """
        self._chain._remove(self)

    def __enter__(self) -> Chaos:
        return self

    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.remove()

    def __repr__(self) -> str:
        state = "" if self.active else " (removed)"
        return f"<Chaos {self.direction}.{self.spec.describe()}{state}>"


class ChaosDirection:
    """The chaos of one direction of a :class:`UdpProxy` (``proxy.upstream``, ``.downstream``).

    Each method adds one effect at the end of the direction's chain, at once (traffic may be
    flowing), and returns its :class:`Chaos` handle. Datagrams pass the effects in the order
    they were added. Rates are probabilities from 0 to 1, drawn from the proxy's seeded
    random generator for this direction.

    Attributes:
        direction: ``"upstream"`` (client to server) or ``"downstream"`` (server to client).
    """

    def __init__(self, proxy: UdpProxy, direction: str) -> None:
        self._proxy = proxy
        self.direction = direction
        self._effects: list[Chaos] = []

    @property
    def effects(self) -> list[Chaos]:
        """The effects on this direction, in chain order."""
        return list(self._effects)

    @property
    def stats(self) -> Stats:
        """A snapshot of this direction's counters."""
        stats: Stats = getattr(self._proxy.stats, self.direction)
        return stats

    def add(self, spec: ChaosSpec) -> Chaos:
        """Add an effect at the end of this direction's chain.

        Args:
            spec: What it does: a spec of ``pytest_hsocket._chaos`` (``Drop(0.2)``, ...).
        Returns:
            Its handle.
        """
        chaos = Chaos(self, spec)
        get_loop().run_sync(lambda: self._proxy._add(chaos))
        return chaos

    def drop(self, rate: float) -> Chaos:
        """Discard each datagram with probability ``rate``.

        Returns:
            The effect's handle.
        Raises:
            TypeError, ValueError: If ``rate`` is not a number from 0 to 1.
        """
        return self.add(Drop(rate))

    def duplicate(self, rate: float) -> Chaos:
        """Send each datagram twice (the copy right after it) with probability ``rate``.

        Returns:
            The effect's handle.
        Raises:
            TypeError, ValueError: If ``rate`` is not a number from 0 to 1.
        """
        return self.add(Duplicate(rate))

    def reorder(self, rate: float, window: int = 3, *, max_hold_ms: float = 50) -> Chaos:
        """Hold each datagram back with probability ``rate`` until ``window`` later datagrams
        have overtaken it, or ``max_hold_ms`` passed; none is lost.

        Args:
            rate: The probability that a datagram is held back.
            window: How many later datagrams overtake a held one.
            max_hold_ms: The longest a datagram is held when too few datagrams follow it.
        Returns:
            The effect's handle.
        Raises:
            TypeError, ValueError: If ``rate`` is not from 0 to 1, ``window`` not an int of 1
                or more, or ``max_hold_ms`` negative.
        """
        return self.add(Reorder(rate, window, max_hold_ms))

    def truncate(self, rate: float, size: int) -> Chaos:
        """Cut each datagram longer than ``size`` bytes to ``size`` with probability ``rate``.

        Returns:
            The effect's handle.
        Raises:
            TypeError, ValueError: If ``rate`` is not from 0 to 1 or ``size`` not an int of 0
                or more.
        """
        return self.add(Truncate(rate, size))

    def delay(self, ms: float, jitter: float = 0) -> Chaos:
        """Send each datagram ``ms`` milliseconds after it arrived, plus or minus up to
        ``jitter`` (drawn per datagram; with jitter, close datagrams may swap).

        Returns:
            The effect's handle.
        Raises:
            TypeError, ValueError: If a value is not a number of 0 or more.
        """
        return self.add(Delay(ms, jitter))

    def clear(self) -> None:
        """Remove every effect of this direction."""
        for chaos in self.effects:
            chaos.remove()

    def _remove(self, chaos: Chaos) -> None:
        get_loop().run_sync(lambda: self._proxy._remove(chaos))

    def __repr__(self) -> str:
        chain = ", ".join(c.spec.describe() for c in self.effects) or "no chaos"
        return f"<ChaosDirection {self.direction}: {chain}>"


# -- the proxy --------------------------------------------------------------------------------


def _run_in_greenlet(fn: Callable[[], None], timeout: float = RUN_SYNC_TIMEOUT) -> None:
    # fn may wait (it kills greenlets): it runs in its own greenlet, and the caller waits for
    # it, except on the loop's thread, where waiting would deadlock.
    loop = get_loop()
    if loop.on_thread():
        gevent.spawn(fn)
        return
    done = Gate()

    def job() -> None:
        try:
            fn()
        finally:
            done.open()

    loop.call(gevent.spawn, job)
    if not done.wait(timeout):
        raise LoopError(f"the socket loop did not finish {fn!r} within {timeout} s")


class _Client:
    """One client address and its socket towards the upstream."""

    __slots__ = ("address", "reader", "sock", "watch_in", "watch_out")

    def __init__(self, address: Any, sock: socket.socket, hub: Any) -> None:
        self.address = address
        self.sock = sock
        self.watch_in: Any = hub.loop.io(sock.fileno(), 1)
        self.watch_out: Any = hub.loop.io(sock.fileno(), 2)
        self.reader: Any = None


class UdpProxy:
    """A UDP proxy on the socket loop that forwards to one upstream, with chaos per direction.

    Build it with :meth:`start`; the code under test sends to ``proxy.address`` instead of the
    real server. Usable as a context manager that closes it.

    Attributes:
        name: How the proxy is named in logs and messages.
        upstream_address: Where datagrams are forwarded, ``(host, port)`` as given.
        seed: The seed of the random decisions.
        wait_timeout: Default seconds :meth:`settle` waits.
    """

    def __init__(
        self, upstream: tuple[str, int], *, name: str, seed: int, wait_timeout: float
    ) -> None:
        self.upstream_address = upstream
        self.name = name
        self.seed = seed
        self.wait_timeout = wait_timeout
        # One generator per direction: a direction's decisions do not depend on the other's
        # traffic, so a run is repeatable whenever each direction sees the same datagrams.
        self._lanes = {d: Lane(random.Random(f"{seed}:{d}")) for d in DIRECTIONS}
        self._chaos = {d: ChaosDirection(self, d) for d in DIRECTIONS}
        self._hub: Any = None
        self._upstream_sockaddr: Any = None
        self._upstream_family = socket.AF_INET
        self._sock: Optional[socket.socket] = None
        self._watch_in: Any = None
        self._watch_out: Any = None
        self._clients: dict[Any, _Client] = {}
        self._greenlets: list[Any] = []
        self._queues: dict[str, list[tuple[float, int, Emit]]] = {d: [] for d in DIRECTIONS}
        self._wakes: dict[str, Any] = {}
        self._order = itertools.count()
        self._idle_gates: list[Gate] = []
        self._address: tuple[str, int] = ("", 0)
        self._closed = False

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
            TypeError, ValueError: If a port or the seed has the wrong type or range.
            OSError: If the upstream host does not resolve, or binding fails.
        """
        for value, what, low in ((upstream_port, "upstream_port", 1), (port, "port", 0)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"UdpProxy.start() {what} must be an int, not {value!r}")
            if not low <= value <= 65535:
                raise ValueError(f"UdpProxy.start() {what} must be {low}-65535, not {value!r}")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TypeError(f"UdpProxy.start() seed must be an int, not {seed!r}")
        proxy = cls(
            (upstream_host, upstream_port),
            name=name or f"hsock_udp_proxy to {upstream_host}:{upstream_port}",
            seed=seed,
            wait_timeout=wait_timeout,
        )
        get_loop().run_sync(lambda: proxy._open(host, port))
        return proxy

    # -- where ------------------------------------------------------------------------------

    @property
    def host(self) -> str:
        """The address the proxy is bound to."""
        return self._address[0]

    @property
    def port(self) -> int:
        """The port the proxy is bound to."""
        return self._address[1]

    @property
    def address(self) -> tuple[str, int]:
        """``(host, port)``: where the code under test should send."""
        return self._address

    @property
    def upstream(self) -> ChaosDirection:
        """The chaos on what clients send to the server."""
        return self._chaos[UPSTREAM]

    @property
    def downstream(self) -> ChaosDirection:
        """The chaos on what the server sends back to clients."""
        return self._chaos[DOWNSTREAM]

    @property
    def stats(self) -> ProxyStats:
        """A snapshot of both directions' counters: ``proxy.stats.upstream.dropped``, ..."""
        return get_loop().run_sync(
            lambda: ProxyStats(
                self._lanes[UPSTREAM].stats.copy(), self._lanes[DOWNSTREAM].stats.copy()
            )
        )

    @property
    def clients(self) -> int:
        """How many client addresses the proxy has seen (each has its own upstream socket)."""
        return len(self._clients)

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

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
        limit = self.wait_timeout if timeout is None else timeout
        gate = loop.run_sync(self._pull_and_watch)
        if not gate.wait(limit):
            waiting = loop.run_sync(self._pending)
            if waiting:
                raise HSocketError(
                    f"{self.name}: {waiting} datagram(s) still delayed or held after {limit} s"
                )

    def close(self) -> None:
        """Stop forwarding and close every socket; idempotent. Waiting datagrams are lost."""
        if self._closed:
            return
        self._closed = True
        _run_in_greenlet(self._teardown)

    def __enter__(self) -> UdpProxy:
        return self

    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{len(self._clients)} client(s)"
        up = f"{self.upstream_address[0]}:{self.upstream_address[1]}"
        return f"<UdpProxy {self.host}:{self.port} -> {up} ({state})>"

    # -- on the loop ------------------------------------------------------------------------

    def _open(self, host: str, port: int) -> None:
        upstream_host, upstream_port = self.upstream_address
        infos = _getaddrinfo(upstream_host, upstream_port, 0, socket.SOCK_DGRAM)
        self._upstream_family, _, _, _, self._upstream_sockaddr = infos[0]
        family, _, _, _, local = _getaddrinfo(
            host, port, 0, socket.SOCK_DGRAM, 0, socket.AI_PASSIVE
        )[0]
        sock = _udp_socket(family)
        try:
            sock.bind(local)
        except BaseException:
            sock.close()
            raise
        self._hub = gevent.get_hub()
        self._sock = sock
        bound = sock.getsockname()
        self._address = (str(bound[0]), int(bound[1]))
        self._watch_in = self._hub.loop.io(sock.fileno(), 1)
        self._watch_out = self._hub.loop.io(sock.fileno(), 2)
        self._wakes = {d: gevent.event.Event() for d in DIRECTIONS}
        self._greenlets = [
            gevent.spawn(self._receive_clients),
            *(gevent.spawn(self._send_loop, d) for d in DIRECTIONS),
        ]
        log.debug("%s: listening on %s:%d", self.name, host, self.port)

    def _add(self, chaos: Chaos) -> None:
        self._chaos[chaos.direction]._effects.append(chaos)
        self._lanes[chaos.direction].add(chaos, chaos.spec)
        self._wake(chaos.direction)

    def _remove(self, chaos: Chaos) -> None:
        effects = self._chaos[chaos.direction]._effects
        if chaos not in effects:
            return
        effects.remove(chaos)
        released = self._lanes[chaos.direction].remove(chaos, time.monotonic())
        self._schedule(chaos.direction, released)

    def _schedule(self, direction: str, emits: list[Emit]) -> None:
        if self._closed:
            return
        queue = self._queues[direction]
        for emit in emits:
            heapq.heappush(queue, (emit.at, next(self._order), emit))
        self._wake(direction)

    def _wake(self, direction: str) -> None:
        wake = self._wakes.get(direction)
        if wake is not None:
            wake.set()

    def _pending(self) -> int:
        return sum(len(self._queues[d]) + self._lanes[d].held for d in DIRECTIONS)

    def _pull_and_watch(self) -> Gate:
        gate = Gate()
        if not self._closed:
            now = time.monotonic()
            if self._sock is not None:
                self._read_all(self._sock, UPSTREAM, None, now)
            for client in list(self._clients.values()):
                self._read_all(client.sock, DOWNSTREAM, client, now)
        if self._closed or not self._pending():
            gate.open()
        else:
            self._idle_gates.append(gate)
        return gate

    def _read_all(
        self, sock: socket.socket, direction: str, client: Optional[_Client], now: float
    ) -> None:
        # What is already in the kernel, without waiting (for settle()).
        while True:
            try:
                data, sender = sock.recvfrom(MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.debug("%s: %s receive: %s", self.name, direction, exc)
                return
            if client is None:
                self._from_client(data, sender, now)
            else:
                self._from_upstream(data, client, now)

    def _from_client(self, data: bytes, sender: Any, now: float) -> None:
        if sender not in self._clients and not self._new_client(sender):
            return
        self._schedule(UPSTREAM, self._lanes[UPSTREAM].feed(data, now, sender))

    def _from_upstream(self, data: bytes, client: _Client, now: float) -> None:
        self._schedule(DOWNSTREAM, self._lanes[DOWNSTREAM].feed(data, now, client.address))

    def _new_client(self, address: Any) -> bool:
        sock = _udp_socket(self._upstream_family)
        try:
            sock.connect(self._upstream_sockaddr)  # only the upstream's replies come in
        except Exception as exc:  # OSError, or a guard's refusal (pytest-socket: RuntimeError)
            sock.close()
            log.warning("%s: cannot reach the upstream for %s: %s", self.name, address, exc)
            return False
        client = _Client(address, sock, self._hub)
        self._clients[address] = client
        client.reader = gevent.spawn(self._receive_upstream, client)
        self._greenlets.append(client.reader)
        log.debug("%s: new client %s", self.name, address)
        return True

    def _receive_clients(self) -> None:
        sock = self._sock
        assert sock is not None
        count = 0
        try:
            while not self._closed:
                try:
                    data, sender = sock.recvfrom(MAX_DATAGRAM)
                except (BlockingIOError, InterruptedError):
                    self._hub.wait(self._watch_in)
                    continue
                except ConnectionRefusedError:  # an ICMP error for an earlier reply
                    continue
                except OSError as exc:
                    log.warning("%s: stopped receiving from clients: %s", self.name, exc)
                    return
                self._from_client(data, sender, time.monotonic())
                count += 1
                if count % _YIELD_EVERY == 0:
                    gevent.sleep(0)
        except Closed:
            pass

    def _receive_upstream(self, client: _Client) -> None:
        sock = client.sock
        count = 0
        try:
            while not self._closed:
                try:
                    data = sock.recv(MAX_DATAGRAM)
                except (BlockingIOError, InterruptedError):
                    self._hub.wait(client.watch_in)
                    continue
                except ConnectionRefusedError:  # nobody listens upstream (yet)
                    log.debug("%s: the upstream refused a datagram", self.name)
                    continue
                except OSError as exc:
                    log.warning("%s: stopped receiving from the upstream: %s", self.name, exc)
                    return
                self._from_upstream(data, client, time.monotonic())
                count += 1
                if count % _YIELD_EVERY == 0:
                    gevent.sleep(0)
        except Closed:
            pass

    def _send_loop(self, direction: str) -> None:
        lane, queue, wake = self._lanes[direction], self._queues[direction], self._wakes[direction]
        sent = 0
        try:
            while not self._closed:
                wake.clear()
                now = time.monotonic()
                released = lane.due(now)
                if released:
                    self._schedule(direction, released)
                    wake.clear()
                while queue and queue[0][0] <= now:
                    emit = heapq.heappop(queue)[2]
                    if self._send(direction, emit):
                        lane.stats.forwarded += 1
                    sent += 1
                    if sent % _YIELD_EVERY == 0:
                        gevent.sleep(0)
                if self._idle_gates and not self._pending():
                    gates, self._idle_gates = self._idle_gates, []
                    for gate in gates:
                        gate.open()
                times = [
                    t for t in (queue[0][0] if queue else None, lane.next_due()) if t is not None
                ]
                wake.wait(max(0.0, min(times) - time.monotonic()) if times else None)
        except Closed:
            pass

    def _send(self, direction: str, emit: Emit) -> bool:
        # Whether the datagram went out; one that cannot is lost, as on a real network.
        if direction == UPSTREAM:
            client = self._clients.get(emit.tag)
            if client is None:
                return False
            return self._send_on(client.sock, client.watch_out, emit.data, None)
        sock = self._sock
        if sock is None:
            return False
        return self._send_on(sock, self._watch_out, emit.data, emit.tag)

    def _send_on(self, sock: socket.socket, watcher: Any, data: bytes, to: Any) -> bool:
        while True:
            try:
                if to is None:
                    sock.send(data)
                else:
                    sock.sendto(data, to)
                return True
            except (BlockingIOError, InterruptedError):
                self._hub.wait(watcher)
            except OSError as exc:
                log.debug("%s: datagram not sent: %s", self.name, exc)
                return False

    def _teardown(self) -> None:  # in a greenlet
        # The greenlets die before their watchers and sockets close (nobody waits on a closed fd).
        greenlets, self._greenlets = self._greenlets, []
        for greenlet in greenlets:
            greenlet.kill(Closed, block=True)
        for queue in self._queues.values():
            queue.clear()
        watchers = [self._watch_in, self._watch_out]
        sockets = [self._sock]
        for client in self._clients.values():
            watchers += [client.watch_in, client.watch_out]
            sockets.append(client.sock)
        for watcher in watchers:
            if watcher is not None:
                watcher.close()
        for sock in sockets:
            if sock is not None:
                sock.close()
        self._sock = None
        gates, self._idle_gates = self._idle_gates, []
        for gate in gates:
            gate.open()
        log.debug("%s: closed", self.name)


def _udp_socket(family: int) -> socket.socket:
    sock = os_socket(family, socket.SOCK_DGRAM)
    try:
        sock.setblocking(False)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
    except BaseException:
        sock.close()
        raise
    return sock
