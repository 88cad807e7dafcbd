"""The loop's side of the UDP chaos proxy: its sockets, the greenlets that move the datagrams,
and the queues of what the lanes emitted.

A :class:`Relay` binds a UDP port and forwards every datagram it receives to one upstream
address. Each client address gets its own socket towards the upstream, so the upstream sees one
sender per client and its replies go back to the client they answer. Each direction is a
:class:`~pytest_hsocket._core.lane.Lane` (pure: it decides what each datagram becomes and when it
goes out); this module only does the I/O, the way ``_datagram`` does: non-blocking OS sockets,
``hub.wait`` on their watchers, every gevent object made on the loop.

There is one receiver greenlet for the clients' side, one per client for the upstream's
replies, and one sender per direction that sends what the lane emitted, in the order of the
times it asked for.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import random
import socket
import time
from collections.abc import Hashable
from typing import Any, Optional

import gevent
import gevent.event

from pytest_hsocket._core.chaos import ChaosSpec
from pytest_hsocket._core.faults import DIRECTIONS, DOWNSTREAM, UPSTREAM
from pytest_hsocket._core.lane import Emit, Lane
from pytest_hsocket._helpers.proxy_common import io_watchers, stop_greenlets
from pytest_hsocket._io.sockets import Closed, os_socket
from pytest_hsocket._loop.hub import get_loop
from pytest_hsocket._loop.originals import getaddrinfo
from pytest_hsocket._loop.sync import Gate

# The name the proxy's messages always had (before the loop's side moved here).
log = logging.getLogger("pytest_hsocket._helpers.udp_proxy")

MAX_DATAGRAM = 65536
"""Bytes read per datagram: more than any UDP payload, so nothing is cut by the proxy itself."""
RECEIVE_BUFFER = 1 << 20
"""SO_RCVBUF asked for on the proxy's sockets (the kernel may cap it at net.core.rmem_max)."""
_YIELD_EVERY = 64


class _Client:
    """One client address and its socket towards the upstream."""

    __slots__ = ("address", "reader", "sock", "watch_in", "watch_out")

    def __init__(self, address: Any, sock: socket.socket, hub: Any) -> None:
        self.address = address
        self.sock = sock
        self.watch_in, self.watch_out = io_watchers(hub, sock.fileno())
        self.reader: Any = None


class Relay:
    """What a :class:`~pytest_hsocket._helpers.udp_proxy.UdpProxy` does on the socket loop.

    Everything but :meth:`close` runs on the loop.

    Args:
        name: How the proxy is named in logs.
        seed: Seeds the random decisions of both lanes.

    Attributes:
        name: How the proxy is named in logs.
        lanes: The chaos of each direction.
        clients: Each client address seen, with its socket towards the upstream.
        address: Where the proxy is bound, ``(host, port)``.
        closed: Set (from any thread) before the teardown: every greenlet stops.
    """

    def __init__(self, name: str, seed: int) -> None:
        self.name = name
        # One generator per direction: a direction's decisions do not depend on the other's
        # traffic, so a run is repeatable whenever each direction sees the same datagrams.
        self.lanes = {d: Lane(random.Random(f"{seed}:{d}")) for d in DIRECTIONS}
        self.clients: dict[Any, _Client] = {}
        self.address: tuple[str, int] = ("", 0)
        self.closed = False
        self._hub: Any = None
        self._upstream_sockaddr: Any = None
        self._upstream_family = socket.AF_INET
        self._sock: Optional[socket.socket] = None
        self._watch_in: Any = None
        self._watch_out: Any = None
        self._greenlets: list[Any] = []
        self._queues: dict[str, list[tuple[float, int, Emit]]] = {d: [] for d in DIRECTIONS}
        self._wakes: dict[str, Any] = {}
        self._order = itertools.count()
        self._idle_gates: list[Gate] = []

    def open(self, upstream: tuple[str, int], host: str, port: int) -> None:
        """Resolve the upstream, bind ``host``:``port`` and start the greenlets."""
        upstream_host, upstream_port = upstream
        infos = getaddrinfo(upstream_host, upstream_port, 0, socket.SOCK_DGRAM)
        self._upstream_family, _, _, _, self._upstream_sockaddr = infos[0]
        family, _, _, _, local = getaddrinfo(
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
        self.address = (str(bound[0]), int(bound[1]))
        self._watch_in, self._watch_out = io_watchers(self._hub, sock.fileno())
        self._wakes = {d: gevent.event.Event() for d in DIRECTIONS}
        self._greenlets = [
            gevent.spawn(self._receive, sock, self._watch_in, None),
            *(gevent.spawn(self._send_loop, d) for d in DIRECTIONS),
        ]
        log.debug("%s: listening on %s:%d", self.name, host, self.address[1])

    def add(self, direction: str, key: Hashable, spec: ChaosSpec) -> None:
        """Put an effect at the end of a direction's lane."""
        self.lanes[direction].add(key, spec)
        self._wake(direction)

    def remove(self, direction: str, key: Hashable) -> None:
        """Take an effect off a direction's lane; what it held goes out."""
        released = self.lanes[direction].remove(key, time.monotonic())
        self._schedule(direction, released)

    def pending(self) -> int:
        """How many datagrams are delayed or held now."""
        return sum(len(self._queues[d]) + self.lanes[d].held for d in DIRECTIONS)

    def pull_and_watch(self) -> Gate:
        """Read what waits in the sockets; return a gate that opens once nothing is pending."""
        gate = Gate()
        if not self.closed:
            now = time.monotonic()
            if self._sock is not None:
                self._read_all(self._sock, UPSTREAM, None, now)
            for client in list(self.clients.values()):
                self._read_all(client.sock, DOWNSTREAM, client, now)
        if self.closed or not self.pending():
            gate.open()
        else:
            self._idle_gates.append(gate)
        return gate

    def _schedule(self, direction: str, emits: list[Emit]) -> None:
        if self.closed:
            return
        queue = self._queues[direction]
        for emit in emits:
            heapq.heappush(queue, (emit.at, next(self._order), emit))
        self._wake(direction)

    def _wake(self, direction: str) -> None:
        wake = self._wakes.get(direction)
        if wake is not None:
            wake.set()

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
            self._received(data, sender, client, now)

    def _received(self, data: bytes, sender: Any, client: Optional[_Client], now: float) -> None:
        # From a client to the proxy's socket (client None), or from the upstream to a client's.
        if client is not None:
            self._schedule(DOWNSTREAM, self.lanes[DOWNSTREAM].feed(data, now, client.address))
        elif sender in self.clients or self._new_client(sender):
            self._schedule(UPSTREAM, self.lanes[UPSTREAM].feed(data, now, sender))

    def _new_client(self, address: Any) -> bool:
        sock = _udp_socket(self._upstream_family)
        try:
            sock.connect(self._upstream_sockaddr)  # only the upstream's replies come in
        except Exception as exc:  # OSError, or a guard's refusal (pytest-socket: RuntimeError)
            sock.close()
            log.warning("%s: cannot reach the upstream for %s: %s", self.name, address, exc)
            return False
        client = _Client(address, sock, self._hub)
        self.clients[address] = client
        client.reader = gevent.spawn(self._receive, sock, client.watch_in, client)
        self._greenlets.append(client.reader)
        log.debug("%s: new client %s", self.name, address)
        return True

    def _receive(self, sock: socket.socket, watcher: Any, client: Optional[_Client]) -> None:
        # The receiver of the proxy's socket (client None), or of a client's upstream socket.
        count = 0
        try:
            while not self.closed:
                try:
                    data, sender = sock.recvfrom(MAX_DATAGRAM)
                except (BlockingIOError, InterruptedError):
                    self._hub.wait(watcher)
                    continue
                except ConnectionRefusedError:
                    # An ICMP error: for an earlier reply, or nobody listens upstream (yet).
                    if client is not None:
                        log.debug("%s: the upstream refused a datagram", self.name)
                    continue
                except OSError as exc:
                    side = "clients" if client is None else "the upstream"
                    log.warning("%s: stopped receiving from %s: %s", self.name, side, exc)
                    return
                self._received(data, sender, client, time.monotonic())
                count += 1
                if count % _YIELD_EVERY == 0:
                    gevent.sleep(0)
        except Closed:
            pass

    def _send_loop(self, direction: str) -> None:
        lane, queue, wake = self.lanes[direction], self._queues[direction], self._wakes[direction]
        sent = 0
        try:
            while not self.closed:
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
                if self._idle_gates and not self.pending():
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
            client = self.clients.get(emit.tag)
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

    def close(self) -> None:
        """Stop forwarding and close every socket; idempotent (from any thread)."""
        if self.closed:
            return
        self.closed = True
        get_loop().run_in_greenlet(self._teardown)

    def _teardown(self) -> None:  # in a greenlet
        greenlets, self._greenlets = self._greenlets, []
        watchers = [self._watch_in, self._watch_out]
        sockets = [self._sock]
        for client in self.clients.values():
            watchers += [client.watch_in, client.watch_out]
            sockets.append(client.sock)
        stop_greenlets(greenlets, watchers)
        for queue in self._queues.values():
            queue.clear()
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
