"""An in-process TCP fault proxy: Toxiproxy's toxics on the socket loop, and its record file.

A :class:`FaultProxy` listens on 127.0.0.1 and forwards every connection it accepts to one
upstream address, both ways. Each direction of each connection is pumped by two greenlets on
the socket loop: a reader that always has a ``recv`` outstanding and feeds a
:class:`~pytest_hsocket._toxics.Pipe`, and a writer that asks the pipe what to do next (send a
piece, wait, drop, end) and does it. The pipe and the toxics are pure (``_toxics``); this module
only does the I/O, in the way ``_stream`` does: non-blocking OS sockets and ``hub.wait`` on
their watchers, every gevent object made on the loop.

Every forwarded piece is recorded (direction, connection, time, bytes); :meth:`FaultProxy.save`
writes the record as JSON lines that :func:`load_recording` reads back.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import random
import socket
import struct
import time
from types import TracebackType
from typing import Any, Callable, Optional, Union

import gevent
import gevent.event

from ._errors import HSocketError, LoopError
from ._listener import accept_forever, bind_listener
from ._loop import RUN_SYNC_TIMEOUT, _allocate_lock, get_loop
from ._record import PathLike, RecordEntry, dump_recording, load_recording
from ._stream import Closed, os_socket
from ._sync import Gate
from ._toxics import (
    CLOSE,
    DIRECTIONS,
    DOWNSTREAM,
    RESET,
    UPSTREAM,
    Bandwidth,
    Drop,
    End,
    Finish,
    Latency,
    LimitData,
    Pipe,
    ResetPeer,
    Send,
    Slicer,
    Timeout,
    ToxicSpec,
    Wait,
)

try:  # how much a socket has not yet delivered: Linux (TIOCOUTQ), else unknown
    import fcntl
    import termios

    _OUTQ: Optional[int] = getattr(termios, "TIOCOUTQ", None)
except ImportError:  # pragma: no cover - Windows
    _OUTQ = None

log = logging.getLogger(__name__)

RECV_SIZE = 64 * 1024
HIGH_WATER = 256 * 1024
"""Buffered bytes per direction at which the proxy stops reading from the sender (backpressure)."""
DRAIN_TIMEOUT = 1.0
"""Seconds a reset waits for the bytes before it to reach the peer."""

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


# -- toxics, as the user holds them --------------------------------------------------------------


class Toxic:
    """A toxic on one direction of a proxy, as returned by the methods of :class:`Toxics`.

    Usable as a context manager that removes it on exit.

    Attributes:
        spec: What it does (``spec.describe()`` gives the call that added it).
        direction: ``"upstream"`` or ``"downstream"``.
    """

    def __init__(self, toxics: Toxics, spec: ToxicSpec) -> None:
        self._toxics = toxics
        self.spec = spec
        self.direction = toxics.direction

    @property
    def active(self) -> bool:
        """Whether the toxic is still on (not removed)."""
        return self in self._toxics.toxics

    def remove(self) -> None:
        """Take the toxic off every connection at once; idempotent.

        Bytes it was holding back go on at once, through the toxics that remain.
        """
        self._toxics._remove(self)

    def __enter__(self) -> Toxic:
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
        return f"<Toxic {self.direction}.{self.spec.describe()}{state}>"


class Toxics:
    """The toxics of one direction of a :class:`FaultProxy` (``proxy.upstream``, ``.downstream``).

    Each method adds one toxic at the end of the direction's chain, on live connections too,
    and returns its :class:`Toxic` handle. Bytes pass the toxics in the order they were added.

    Attributes:
        direction: ``"upstream"`` (client to server) or ``"downstream"`` (server to client).
    """

    def __init__(self, proxy: FaultProxy, direction: str) -> None:
        self._proxy = proxy
        self.direction = direction
        self._toxics: list[Toxic] = []

    @property
    def toxics(self) -> list[Toxic]:
        """The toxics on this direction, in chain order."""
        return list(self._toxics)

    def add(self, spec: ToxicSpec) -> Toxic:
        """Add a toxic at the end of this direction's chain, on live connections too.

        Args:
            spec: What it does: a spec of ``pytest_hsocket._toxics`` (``Latency(100)``, ...).
        Returns:
            Its handle.
        """
        toxic = Toxic(self, spec)
        get_loop().run_sync(lambda: self._proxy._add_toxic(toxic))
        return toxic

    def latency(self, ms: float, jitter: float = 0) -> Toxic:
        """Delay every chunk by ``ms`` milliseconds, plus or minus up to ``jitter`` ms.

        Order is kept; chunks in flight do not add up (each waits ``ms`` from its arrival).

        Args:
            ms: The delay in milliseconds.
            jitter: Up to this many milliseconds more or less, drawn per chunk.
        Returns:
            The toxic's handle.
        Raises:
            TypeError, ValueError: If a value is not a number of 0 or more.
        """
        return self.add(Latency(ms, jitter))

    def bandwidth(self, bytes_per_second: float) -> Toxic:
        """Cap the rate at ``bytes_per_second`` (sent in pieces of 1/100 s worth).

        Args:
            bytes_per_second: The rate.
        Returns:
            The toxic's handle.
        Raises:
            TypeError, ValueError: If the rate is not a positive number.
        """
        return self.add(Bandwidth(bytes_per_second))

    def slicer(self, size: int, delay: float = 0) -> Toxic:
        """Cut what is read into slices of ``size`` bytes, sent ``delay`` seconds apart.

        Args:
            size: Bytes per slice (the last slice of a read may be shorter).
            delay: Seconds between two slices.
        Returns:
            The toxic's handle.
        Raises:
            TypeError, ValueError: If ``size`` is not a positive int or ``delay`` is negative.
        """
        return self.add(Slicer(size, delay))

    def timeout(self, seconds: float) -> Toxic:
        """Stop forwarding (bytes are dropped); close the connection ``seconds`` after the toxic
        met it (0 = never close: the connection hangs until the toxic is removed).

        Args:
            seconds: Until the connection is closed; 0 = never.
        Returns:
            The toxic's handle.
        Raises:
            TypeError, ValueError: If ``seconds`` is not a number of 0 or more.
        """
        return self.add(Timeout(seconds))

    def reset_peer(self, after_bytes: int) -> Toxic:
        """Forward ``after_bytes`` more bytes, then reset the connection: both peers get a TCP
        RST (``ConnectionResetError``). 0 resets every connection at once.

        Args:
            after_bytes: Bytes let through first.
        Returns:
            The toxic's handle.
        Raises:
            TypeError, ValueError: If ``after_bytes`` is not an int of 0 or more.
        """
        return self.add(ResetPeer(after_bytes))

    def limit_data(self, after_bytes: int) -> Toxic:
        """Forward ``after_bytes`` more bytes, then close the connection (both peers see the
        end of the stream). 0 closes every connection at once.

        Args:
            after_bytes: Bytes let through first.
        Returns:
            The toxic's handle.
        Raises:
            TypeError, ValueError: If ``after_bytes`` is not an int of 0 or more.
        """
        return self.add(LimitData(after_bytes))

    def clear(self) -> None:
        """Remove every toxic of this direction."""
        for toxic in self.toxics:
            toxic.remove()

    def _remove(self, toxic: Toxic) -> None:
        get_loop().run_sync(lambda: self._proxy._remove_toxic(toxic))

    def __repr__(self) -> str:
        chain = ", ".join(t.spec.describe() for t in self.toxics) or "no toxics"
        return f"<Toxics {self.direction}: {chain}>"


# -- the proxy --------------------------------------------------------------------------------


def _run_in_greenlet(fn: Callable[[], None], timeout: float = RUN_SYNC_TIMEOUT) -> None:
    # Run fn in a fresh greenlet on the loop (it may wait) and wait for it; on the loop itself
    # waiting would deadlock, so the work is only started.
    loop = get_loop()
    if loop.on_thread():
        gevent.spawn(fn)
        return
    done = Gate()
    errors: list[BaseException] = []

    def job() -> None:
        try:
            fn()
        except BaseException as exc:
            errors.append(exc)
        finally:
            done.open()

    loop.call(gevent.spawn, job)
    if not done.wait(timeout):
        raise LoopError(f"the socket loop did not finish {fn!r} within {timeout} s")
    if errors:
        raise errors[0]


class FaultProxy:
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
    ) -> None:
        self.upstream_address = upstream
        self.recording = record
        self.name = name
        self.connect_timeout = connect_timeout
        self._addresses = addresses
        self._host = host
        self._port = 0
        self._rng = rng
        self._listener: Optional[socket.socket] = None
        self._acceptor: Any = None
        self._live: list[_Connection] = []
        self._count = 0
        self._closed = False
        self._started = time.monotonic()
        self._records: list[RecordEntry] = []
        self._records_lock: Any = _allocate_lock()
        self._toxics = {d: Toxics(self, d) for d in DIRECTIONS}

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
            TypeError, ValueError: If a port is not an int in range.
            OSError: If the upstream host does not resolve, or binding fails.
        """
        for value, what, low in ((upstream_port, "upstream_port", 1), (port, "port", 0)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"FaultProxy.start() {what} must be an int, not {value!r}")
            if not low <= value <= 65535:
                raise ValueError(f"FaultProxy.start() {what} must be {low}-65535, not {value!r}")
        infos = socket.getaddrinfo(upstream_host, upstream_port, 0, socket.SOCK_STREAM)
        addresses: list[tuple[int, Any]] = [(fam, addr) for fam, _, _, _, addr in infos]
        proxy = cls(
            (upstream_host, upstream_port),
            addresses,
            host=host,
            connect_timeout=connect_timeout,
            name=name or f"hsock_proxy to {upstream_host}:{upstream_port}",
            rng=random.Random(seed),
            record=record,
        )
        proxy._port = port
        get_loop().run_sync(proxy._listen)
        return proxy

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
    def upstream(self) -> Toxics:
        """The toxics on what clients send to the server."""
        return self._toxics[UPSTREAM]

    @property
    def downstream(self) -> Toxics:
        """The toxics on what the server sends to clients."""
        return self._toxics[DOWNSTREAM]

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

        _run_in_greenlet(run)

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
        """Stop listening and close every connection; idempotent."""
        if self._closed:
            return
        self._closed = True

        def run() -> None:
            self._stop_listening()
            self._cut_all(CLOSE)

        _run_in_greenlet(run)

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "enabled" if self.enabled else "disabled"
        up = f"{self.upstream_address[0]}:{self.upstream_address[1]}"
        return f"<FaultProxy {self._host}:{self._port} -> {up} ({state})>"

    # -- on the loop ------------------------------------------------------------------------

    def _listen(self) -> None:
        if self._listener is not None or self._closed:
            return
        listener = bind_listener(self._host, self._port, "")
        self._listener = listener
        self._port = listener.getsockname()[1]
        self._acceptor = gevent.spawn(
            accept_forever, listener, lambda: self._listener is listener, self._accept
        )

    def _stop_listening(self) -> None:  # in a greenlet
        listener, self._listener = self._listener, None
        acceptor, self._acceptor = self._acceptor, None
        if acceptor is not None:
            acceptor.kill(Closed, block=True)
        if listener is not None:
            listener.close()

    def _cut_all(self, how: str) -> None:  # in a greenlet
        live = list(self._live)
        for conn in live:
            conn.abort(how)
        for conn in live:
            conn.finished.wait()

    def _accept(self, sock: socket.socket) -> None:
        self._count += 1
        conn = _Connection(self, self._count, sock)
        self._live.append(conn)
        log.debug("%s: connection %d accepted", self.name, conn.number)
        conn.start()

    def _forget(self, conn: _Connection) -> None:
        if conn in self._live:
            self._live.remove(conn)

    # The chains change on the loop only, so a connection accepted meanwhile sees all or none.

    def _add_toxic(self, toxic: Toxic) -> None:
        self._toxics[toxic.direction]._toxics.append(toxic)
        now = time.monotonic()
        for conn in self._live:
            conn.pipes[toxic.direction].add(toxic, toxic.spec, now)
            conn.wakes[toxic.direction].set()

    def _remove_toxic(self, toxic: Toxic) -> None:
        chain = self._toxics[toxic.direction]._toxics
        if toxic not in chain:
            return
        chain.remove(toxic)
        for conn in self._live:
            conn.pipes[toxic.direction].remove(toxic)
            conn.wakes[toxic.direction].set()


def _unsent(sock: socket.socket) -> int:
    # Bytes the kernel has not yet delivered (sent and unacknowledged, or not sent): 0 if unknown.
    if _OUTQ is None:
        return 0
    try:
        raw = fcntl.ioctl(sock.fileno(), _OUTQ, b"\0\0\0\0")
    except OSError:
        return 0
    value: int = struct.unpack("i", raw)[0]
    return value


class _Connection:
    """One proxied connection: the client's socket, the upstream's, and four pumps."""

    def __init__(self, proxy: FaultProxy, number: int, client: socket.socket) -> None:
        self.proxy = proxy
        self.number = number
        self.client = client
        self.server: Optional[socket.socket] = None
        self.closed = False
        self.finished = gevent.event.Event()
        self._hub: Any = gevent.get_hub()
        self._greenlets: list[Any] = []
        self._watchers: list[Any] = []
        self._ended: set[str] = set()
        now = time.monotonic()
        self.pipes = {d: Pipe(proxy._rng) for d in DIRECTIONS}
        self.wakes = {d: gevent.event.Event() for d in DIRECTIONS}
        self._room = {d: gevent.event.Event() for d in DIRECTIONS}
        for direction in DIRECTIONS:
            for toxic in proxy._toxics[direction].toxics:
                self.pipes[direction].add(toxic, toxic.spec, now)

    def start(self) -> None:
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
        loop = self._hub.loop
        client_in, client_out = loop.io(self.client.fileno(), 1), loop.io(self.client.fileno(), 2)
        server_in, server_out = loop.io(server.fileno(), 1), loop.io(server.fileno(), 2)
        self._watchers += [client_in, client_out, server_in, server_out]
        self._greenlets += [
            gevent.spawn(self._read, UPSTREAM, self.client, client_in),
            gevent.spawn(self._write, UPSTREAM, server, server_out),
            gevent.spawn(self._read, DOWNSTREAM, server, server_in),
            gevent.spawn(self._write, DOWNSTREAM, self.client, client_out),
        ]

    def _connect_upstream(self) -> Optional[socket.socket]:
        proxy = self.proxy
        last: Union[OSError, str] = "no address"
        try:
            with gevent.Timeout(proxy.connect_timeout):
                for family, sockaddr in proxy._addresses:
                    sock = os_socket(family, socket.SOCK_STREAM)
                    try:
                        sock.setblocking(False)
                        err = sock.connect_ex(sockaddr)
                        if err in (errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EALREADY):
                            watcher = self._hub.loop.io(sock.fileno(), 2)
                            try:
                                self._hub.wait(watcher)
                            finally:
                                watcher.close()
                            err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                        if err not in (0, errno.EISCONN):
                            raise OSError(err, os.strerror(err))
                        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    except OSError as exc:
                        sock.close()
                        last = exc
                        continue
                    except BaseException:
                        sock.close()
                        raise
                    return sock
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
                    self.proxy._record(direction, self.number, step.data, now)
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

    def abort(self, how: str) -> None:
        """End the connection (``CLOSE`` or ``RESET``) from any greenlet on the loop."""
        if self.closed:
            return
        self.closed = True
        gevent.spawn(self._teardown, how)

    def _teardown(self, how: str) -> None:
        # The pumps die before their watchers and sockets close (nobody waits on a closed fd).
        for greenlet in self._greenlets:
            greenlet.kill(Closed, block=True)
        for watcher in self._watchers:
            watcher.close()
        for sock in (self.client, self.server):
            if sock is None:
                continue
            if how == RESET:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            else:
                _close_gently(sock)
            sock.close()
        self.proxy._forget(self)
        log.debug("%s: connection %d closed (%s)", self.proxy.name, self.number, how)
        self.finished.set()


def _close_gently(sock: socket.socket) -> None:
    # FIN after the bytes already sent; unread input would turn close() into a reset.
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_WR)
    with contextlib.suppress(OSError):
        while sock.recv(RECV_SIZE):
            pass
