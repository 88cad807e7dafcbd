"""An in-process TCP fault proxy: Toxiproxy's toxics on the socket loop, and its record file.

A :class:`FaultProxy` listens on 127.0.0.1 and forwards every connection it accepts to one
upstream address, both ways, each through a
:class:`~pytest_hsocket._helpers.proxy_connection.Connection` whose directions are pumped
on the socket loop through the toxics of ``proxy.upstream`` and ``proxy.downstream``
(:class:`Toxics`). The toxics and the pipe are pure (``_core.toxics``,
``_core.pipe``); this module holds the listener, the live connections and the record.

Every forwarded piece is recorded (direction, connection, time, bytes); :meth:`FaultProxy.save`
writes the record as JSON lines that :func:`load_recording` reads back.
"""

from __future__ import annotations

import logging
import random
import socket
import time
from typing import Any, Optional

from pytest_hsocket._core.checks import check_seconds
from pytest_hsocket._core.errors import HSocketError
from pytest_hsocket._core.faults import DIRECTIONS, DOWNSTREAM, UPSTREAM, check_ports
from pytest_hsocket._core.pipe import CLOSE, RESET
from pytest_hsocket._core.record import PathLike, RecordEntry, dump_recording, load_recording
from pytest_hsocket._helpers.proxy_common import Proxy
from pytest_hsocket._helpers.proxy_connection import Connection
from pytest_hsocket._helpers.toxic_handles import Toxic, Toxics
from pytest_hsocket._io.listener import Acceptor, accept_one, bind_listener
from pytest_hsocket._loop.hub import get_loop
from pytest_hsocket._loop.originals import allocate_lock

log = logging.getLogger(__name__)

__all__ = [
    "DOWNSTREAM",
    "UPSTREAM",
    "FaultProxy",
    "RecordEntry",
    "Toxic",
    "Toxics",
    "dump_recording",
    "load_recording",
]


class FaultProxy(Proxy[Toxics]):
    """A TCP proxy on the socket loop that forwards to one upstream, with toxics per direction.

    Build it with :meth:`start`. The code under test connects to ``proxy.address`` instead of
    the real server. Usable as a context manager that closes it.

    Attributes:
        name: How the proxy is named in logs.
        upstream_address: Where each connection is forwarded, ``(host, port)``.
        connect_timeout: Seconds the proxy tries to reach the upstream for each connection.
        recording: Whether forwarded pieces are added to :attr:`records` (settable at any time;
            off for long transfers whose bytes need not be kept).
    """

    def __init__(
        self,
        upstream: tuple[str, int],
        addresses: list[tuple[int, Any]],
        *,
        host: str,
        connect_timeout: float,
        name: str,
        rng: random.Random,
        record: bool,
        port: int = 0,
    ) -> None:
        self.recording = record
        self.name = name
        self.connect_timeout = connect_timeout
        self._addresses = addresses
        self._host = host
        self._port = port  # 0 until it listens, unless a port was asked for
        self._rng = rng
        self._listener: Optional[socket.socket] = None
        self._acceptor: Any = None
        self._live: list[Connection] = []
        self._count = 0
        self._closed = False
        self._started = time.monotonic()
        self._records: list[RecordEntry] = []
        self._records_lock: Any = allocate_lock()
        super().__init__(
            upstream, {d: Toxics(d, self._apply_toxic, self._lift_toxic) for d in DIRECTIONS}
        )
        get_loop().run_sync(self._listen)

    @classmethod
    def start(
        cls,
        upstream_host: str,
        upstream_port: int,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        connect_timeout: float = 5.0,
        name: Optional[str] = None,
        seed: Optional[int] = None,
        record: bool = True,
    ) -> FaultProxy:
        """Listen on ``host``:``port`` and forward each connection to the upstream.

        Args:
            upstream_host: The real server's host name or address (resolved now).
            upstream_port: The real server's port.
            host: Where to listen; 127.0.0.1 by default.
            port: Where to listen; 0 (the default) lets the OS choose.
            connect_timeout: Seconds to reach the upstream for each connection; a connection
                that cannot reach it is closed.
            name: How the proxy is named in logs.
            seed: Seeds the latency jitter, for repeatable runs.
            record: Keep every forwarded piece in :attr:`records` (see :attr:`recording`).
        Returns:
            The listening proxy.
        Raises:
            TypeError, ValueError: If a port is not an int in range, or ``connect_timeout``
                not a number of seconds.
            OSError: If the upstream host does not resolve, or binding fails.
        """
        check_ports("FaultProxy.start()", upstream_port, port)
        connect_timeout = check_seconds(connect_timeout, "FaultProxy.start() connect_timeout")
        infos = socket.getaddrinfo(upstream_host, upstream_port, 0, socket.SOCK_STREAM)
        addresses: list[tuple[int, Any]] = [(fam, addr) for fam, _, _, _, addr in infos]
        return cls(
            (upstream_host, upstream_port),
            addresses,
            host=host,
            connect_timeout=connect_timeout,
            name=name or f"hsock_proxy to {upstream_host}:{upstream_port}",
            rng=random.Random(seed),
            record=record,
            port=port,
        )

    # -- where ------------------------------------------------------------------------------

    @property
    def host(self) -> str:
        """The address the proxy listens on."""
        return self._host

    @property
    def port(self) -> int:
        """The port the proxy listens on (kept across :meth:`disable` / :meth:`enable`)."""
        return self._port

    @property
    def address(self) -> tuple[str, int]:
        """``(host, port)``: where the code under test should connect."""
        return (self._host, self._port)

    @property
    def enabled(self) -> bool:
        """Whether the proxy accepts connections."""
        return self._listener is not None

    @property
    def connections(self) -> int:
        """How many proxied connections are open now."""
        return len(self._live)

    @property
    def accepted(self) -> int:
        """How many connections the proxy accepted so far."""
        return self._count

    # -- the record -------------------------------------------------------------------------

    @property
    def records(self) -> list[RecordEntry]:
        """Every forwarded piece so far, in the order it was sent."""
        with self._records_lock:
            return list(self._records)

    def save(self, path: PathLike) -> None:
        """Write the record to ``path`` as JSON lines (see :func:`dump_recording`).

        Args:
            path: The file to write (replaced if it exists).
        """
        dump_recording(self.records, path)

    def _record(self, direction: str, conn: int, data: bytes, at: float) -> None:
        if not self.recording:
            return
        with self._records_lock:
            self._records.append(RecordEntry(at - self._started, direction, conn, data))

    # -- switching on and off ---------------------------------------------------------------

    def disable(self, *, reset: bool = False) -> None:
        """Refuse new connections (the port is closed) and cut every live one.

        Args:
            reset: Cut live connections with a TCP reset instead of closing them.
        """
        how = RESET if reset else CLOSE

        def run() -> None:
            self._stop_listening()
            self._cut_all(how)

        get_loop().run_in_greenlet(run)

    def enable(self) -> None:
        """Accept connections again, on the same port; does nothing if enabled.

        Raises:
            HSocketError: If the proxy is closed, or its port was taken meanwhile.
        """
        if self._closed:
            raise HSocketError(f"{self.name} is closed; start a new proxy")
        try:
            get_loop().run_sync(self._listen)
        except OSError as exc:
            raise HSocketError(
                f"{self.name} cannot listen on port {self._port} again: {exc}"
            ) from exc

    def close(self) -> None:
        """Stop listening and close every connection as a peer would; idempotent.

        What each side already sent is forwarded first (a client's last bytes reach the
        server), then each end of stream is passed on (half-close), then the sockets close;
        a connection that cannot finish within a few seconds (a peer that never reads) is
        cut. ``disable()`` cuts at once.
        """
        if self._closed:
            return
        self._closed = True

        def run() -> None:
            import gevent  # loaded already with the connections' module; named here

            self._accept_waiting()  # a client in the backlog may have written already
            self._stop_listening()
            live = list(self._live)
            for waiter in [gevent.spawn(conn.drain_and_close) for conn in live]:
                waiter.join()

        get_loop().run_in_greenlet(run)

    def __repr__(self) -> str:
        state = "closed" if self._closed else "enabled" if self.enabled else "disabled"
        return f"<FaultProxy {self._host}:{self._port} -> {self._upstream_text()} ({state})>"

    # -- on the loop ------------------------------------------------------------------------

    def _listen(self) -> None:
        if self._listener is not None or self._closed:
            return
        listener = bind_listener(self._host, self._port, "")
        self._listener = listener
        self._port = listener.getsockname()[1]
        self._acceptor = Acceptor(listener, lambda: self._listener is listener, self._accept)

    def _stop_listening(self) -> None:  # in a greenlet
        listener, self._listener = self._listener, None
        acceptor, self._acceptor = self._acceptor, None
        if acceptor is not None:
            acceptor.stop()
        elif listener is not None:
            listener.close()

    def _accept_waiting(self) -> None:
        listener = self._listener
        if listener is None:
            return
        while True:
            try:
                conn = accept_one(listener)
            except OSError:  # BlockingIOError: the backlog is empty
                return
            self._accept(conn)

    def _cut_all(self, how: str) -> None:  # in a greenlet
        live = list(self._live)
        for conn in live:
            conn.abort(how)
        for conn in live:
            conn.finished.wait()

    def _accept(self, sock: socket.socket) -> None:
        self._count += 1
        conn = Connection(
            self,
            self._count,
            sock,
            addresses=self._addresses,
            rng=self._rng,
            toxics={d: self._chains[d].toxics for d in DIRECTIONS},
            record=self._record,
            forget=self._forget,
        )
        self._live.append(conn)
        log.debug("%s: connection %d accepted", self.name, conn.number)
        conn.start()

    def _forget(self, conn: Connection) -> None:
        if conn in self._live:
            self._live.remove(conn)

    # Called by the chains, on the loop: a connection accepted meanwhile sees all or none.

    def _apply_toxic(self, toxic: Toxic) -> None:
        now = time.monotonic()
        for conn in self._live:
            conn.pipes[toxic.direction].add(toxic, toxic.spec, now)
            conn.wakes[toxic.direction].set()

    def _lift_toxic(self, toxic: Toxic) -> None:
        for conn in self._live:
            conn.pipes[toxic.direction].remove(toxic)
            conn.wakes[toxic.direction].set()
