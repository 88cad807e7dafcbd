"""One connection through the TCP fault proxy: its two sockets and the four greenlets that pump
its two directions.

Each direction of the connection is pumped by two greenlets on the socket loop: a reader that
always has a ``recv`` outstanding and feeds the direction's
:class:`~pytest_hsocket._core.pipe.Pipe`, and a writer that asks the pipe what to do next
(send a piece, wait, drop, end) and does it. The pipe and the toxics are pure
(``_core.pipe``, ``_core.toxics``); this module only does the I/O, the
way ``_stream`` does: non-blocking OS sockets and ``hub.wait`` on their watchers, every gevent
object made on the loop.
"""

from __future__ import annotations

import contextlib
import logging
import random
import socket
import struct
import time
from typing import TYPE_CHECKING, Any, Callable, Optional, Union

import gevent
import gevent.event

from pytest_hsocket._core.faults import DIRECTIONS, DOWNSTREAM, UPSTREAM
from pytest_hsocket._core.pipe import CLOSE, RESET, Drop, End, Finish, Pipe, Send, Wait
from pytest_hsocket._core.platform import unsent_bytes
from pytest_hsocket._helpers.proxy_common import io_watchers, stop_greenlets
from pytest_hsocket._io.sockets import Closed, connect_first

if TYPE_CHECKING:
    from pytest_hsocket._helpers.proxy import FaultProxy
    from pytest_hsocket._helpers.toxic_handles import Toxic


# The name the proxy's messages always had (before the connections moved here).
log = logging.getLogger("pytest_hsocket._helpers.proxy")

RECV_SIZE = 64 * 1024
HIGH_WATER = 256 * 1024
"""Buffered bytes per direction at which the proxy stops reading from the sender (backpressure)."""
DRAIN_TIMEOUT = 1.0
"""Seconds a reset waits for the bytes before it to reach the peer."""
CLOSE_TIMEOUT = 2.0
"""Seconds a closing proxy waits for a connection to forward what its peers already sent."""


# Bytes the kernel has not yet delivered (sent and unacknowledged, or not sent): 0 if unknown.
_unsent = unsent_bytes


class Connection:
    """One proxied connection: the client's socket, the upstream's, and four pumps.

    Args:
        proxy: The proxy that accepted it (its ``name`` and ``connect_timeout`` are read).
        number: The connection's number in the proxy (1 for the first).
        client: The accepted socket.
        addresses: Where to reach the upstream: ``(family, address)`` pairs, tried in order.
        rng: The proxy's random generator (the toxics' jitter).
        toxics: The toxics on each direction now, in chain order.
        record: Records a piece about to be sent: ``record(direction, number, data, at)``.
        forget: Called with the connection once it is closed.
    """

    def __init__(
        self,
        proxy: FaultProxy,
        number: int,
        client: socket.socket,
        *,
        addresses: list[tuple[int, Any]],
        rng: random.Random,
        toxics: dict[str, list[Toxic]],
        record: Callable[[str, int, bytes, float], None],
        forget: Callable[[Connection], None],
    ) -> None:
        self.proxy = proxy
        self._addresses = addresses
        self._record = record
        self._forget = forget
        self.number = number
        self.client = client
        self.server: Optional[socket.socket] = None
        self.closed = False
        self.finished = gevent.event.Event()
        self.up = gevent.event.Event()  # set once the upstream is reached and pumps run
        self._hub: Any = gevent.get_hub()
        self._greenlets: list[Any] = []
        self._readers: list[Any] = []
        self._watchers: list[Any] = []
        self._ended: set[str] = set()
        now = time.monotonic()
        self.pipes = {d: Pipe(rng) for d in DIRECTIONS}
        self.wakes = {d: gevent.event.Event() for d in DIRECTIONS}
        self._room = {d: gevent.event.Event() for d in DIRECTIONS}
        for direction in DIRECTIONS:
            for toxic in toxics[direction]:
                self.pipes[direction].add(toxic, toxic.spec, now)

    def start(self) -> None:
        """Reach the upstream, then pump both directions (in greenlets; on the loop)."""
        self._greenlets.append(gevent.spawn(self._run))

    def _run(self) -> None:
        try:
            server = self._connect_upstream()
        except Closed:
            return
        if server is None:
            self.abort(CLOSE)
            return
        self.server = server
        client_in, client_out = io_watchers(self._hub, self.client.fileno())
        server_in, server_out = io_watchers(self._hub, server.fileno())
        self._watchers += [client_in, client_out, server_in, server_out]
        self._readers = [
            gevent.spawn(self._read, UPSTREAM, self.client, client_in),
            gevent.spawn(self._read, DOWNSTREAM, server, server_in),
        ]
        self._greenlets += self._readers
        self._greenlets += [
            gevent.spawn(self._write, UPSTREAM, server, server_out),
            gevent.spawn(self._write, DOWNSTREAM, self.client, client_out),
        ]
        self.up.set()

    def _connect_upstream(self) -> Optional[socket.socket]:
        proxy = self.proxy
        last: Union[OSError, str] = "no address"
        try:
            with gevent.Timeout(proxy.connect_timeout):
                if self._addresses:
                    return connect_first(self._hub, self._addresses, nodelay=True)
        except OSError as exc:
            last = exc
        except gevent.Timeout:
            last = f"no answer within {proxy.connect_timeout} s"
        log.warning(
            "%s: connection %d cannot reach the upstream: %s", proxy.name, self.number, last
        )
        return None

    def _read(self, direction: str, src: socket.socket, watcher: Any) -> None:
        pipe, wake, room = self.pipes[direction], self.wakes[direction], self._room[direction]
        try:
            while not self.closed:
                if pipe.buffered >= HIGH_WATER:
                    room.clear()
                    room.wait()
                    continue
                try:
                    data = src.recv(RECV_SIZE)
                except (BlockingIOError, InterruptedError):
                    self._hub.wait(watcher)
                    continue
                if not data:
                    pipe.close_input()
                    wake.set()
                    return
                pipe.feed(data, time.monotonic())
                wake.set()
        except Closed:
            pass
        except OSError as exc:
            log.debug("%s: connection %d %s read: %s", self.proxy.name, self.number, direction, exc)
            self.abort(RESET)

    def _write(self, direction: str, dst: socket.socket, watcher: Any) -> None:
        pipe, wake, room = self.pipes[direction], self.wakes[direction], self._room[direction]
        try:
            while not self.closed:
                wake.clear()
                now = time.monotonic()
                step = pipe.next_step(now)
                if isinstance(step, Send):
                    # Recorded first: whatever a peer has seen is in the record.
                    self._record(direction, self.number, step.data, now)
                    self._send_all(dst, watcher, step.data)
                    pipe.commit(step, time.monotonic())
                    room.set()
                elif isinstance(step, Wait):
                    wake.wait(None if step.until is None else max(0.0, step.until - now))
                elif isinstance(step, Drop):
                    pipe.drop(step)
                    room.set()
                elif isinstance(step, Finish):
                    with contextlib.suppress(OSError):
                        dst.shutdown(socket.SHUT_WR)
                    self._ended.add(direction)
                    if len(self._ended) == len(DIRECTIONS):
                        self.abort(CLOSE)
                    return
                elif isinstance(step, End):
                    if step.how == RESET:
                        self._drain(dst)
                    log.debug("%s: connection %d: %s", self.proxy.name, self.number, step.how)
                    self.abort(step.how)
                    return
        except Closed:
            pass
        except OSError as exc:
            log.debug(
                "%s: connection %d %s write: %s", self.proxy.name, self.number, direction, exc
            )
            self.abort(RESET)

    def _send_all(self, sock: socket.socket, watcher: Any, data: bytes) -> None:
        view = memoryview(data)
        while view.nbytes:
            try:
                sent = sock.send(view)
            except (BlockingIOError, InterruptedError):
                self._hub.wait(watcher)
                continue
            view = view[sent:]

    def _drain(self, sock: socket.socket) -> None:
        # A reset throws away what the kernel still holds: let the bytes before it arrive.
        deadline = time.monotonic() + DRAIN_TIMEOUT
        while _unsent(sock) and time.monotonic() < deadline:
            gevent.sleep(0.001)

    def take_available(self, direction: str) -> None:
        """Feed the pipe what its sender already sent (the kernel's buffer), at once.

        Runs in the caller's greenlet, between the reader's turns: the reader, waiting on
        its watcher, then finds nothing and waits again; no byte is read twice.
        """
        src = self.client if direction == UPSTREAM else self.server
        pipe = self.pipes[direction]
        if src is None or self.closed or pipe.input_closed:
            return
        while True:
            try:
                data = src.recv(RECV_SIZE)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                pipe.close_input()
                break
            if not data:
                pipe.close_input()
                break
            pipe.feed(data, time.monotonic())
        self.wakes[direction].set()

    def stuck(self, direction: str) -> bool:
        """Whether the direction cannot deliver what it holds (a dropping toxic)."""
        step = self.pipes[direction].next_step(time.monotonic())
        return isinstance(step, Drop) or (isinstance(step, Wait) and step.until is None)

    def drain_and_close(self, timeout: float = CLOSE_TIMEOUT) -> None:
        """Close as a peer would: forward what each side already sent, pass each end of
        stream on (half-close), then close; abruptly after ``timeout`` seconds. In a
        greenlet on the loop."""
        if self.closed:
            return
        if not self.up.wait(timeout) or self.closed:
            self.abort(CLOSE)  # never reached the upstream: nothing to forward
            self.finished.wait()
            return
        # The readers stop first, so that nothing is read after the end passed on.
        for reader in self._readers:
            reader.kill(Closed, block=True)
        for direction in DIRECTIONS:
            self.take_available(direction)
            self.pipes[direction].close_input()
            self.wakes[direction].set()
        if any(self.stuck(d) for d in DIRECTIONS):
            self.abort(CLOSE)  # a toxic swallows what is left: there is nothing to wait for
        if not self.finished.wait(timeout):
            self.abort(CLOSE)
            self.finished.wait()

    def abort(self, how: str) -> None:
        """End the connection (``CLOSE`` or ``RESET``) from any greenlet on the loop."""
        if self.closed:
            return
        self.closed = True
        self.up.set()  # wakes a drain waiting for the upstream: it finds the connection closed
        gevent.spawn(self._teardown, how)

    def _teardown(self, how: str) -> None:
        stop_greenlets(self._greenlets, self._watchers)
        for sock in (self.client, self.server):
            if sock is None:
                continue
            if how == RESET:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            else:
                _close_gently(sock)
            sock.close()
        self._forget(self)
        log.debug("%s: connection %d closed (%s)", self.proxy.name, self.number, how)
        self.finished.set()


def _close_gently(sock: socket.socket) -> None:
    # FIN after the bytes already sent; unread input would turn close() into a reset.
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_WR)
    with contextlib.suppress(OSError):
        while sock.recv(RECV_SIZE):
            pass
