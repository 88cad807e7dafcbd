"""What every hs.socket TCP socket shares: its state, configuration, queries, disconnecting,
and the reports its stream sends to it on the loop (delivering reads, write completions,
disconnects).

The public methods that start work (connect, listen, start_tls, read, write) are in ``tcp``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import ssl
import sys
import warnings
from typing import TYPE_CHECKING, Any, Callable, Optional, TypeVar, cast

import pytest_hsocket._hs.info as _info
from pytest_hsocket._core.checks import check_callable, check_timeout, default_timeout
from pytest_hsocket._core.errors import CallbackError, raise_first
from pytest_hsocket._core.framing import Completed, ReadRequest
from pytest_hsocket._hs.defaults import TCP_TIMEOUT
from pytest_hsocket._hs.family import AllWritten
from pytest_hsocket._hs.read_delivery import ReadCallback, ReadDelivery, Tap, takes_client
from pytest_hsocket._io.stream import LOCAL_CLOSE, PEER_CLOSED, Stream, WriteCallback
from pytest_hsocket._loop.callbacks import CallbackQueue
from pytest_hsocket._loop.hub import SocketLoop, get_loop

if TYPE_CHECKING:
    from pytest_hsocket._hs.tcp import Socket

log = logging.getLogger("pytest_hsocket._hs.tcp")

ConnectCallback = Callable[[], object]
DisconnectHook = Callable[[str], object]
ConnectHook = Callable[["Socket"], object]
S = TypeVar("S", bound="SocketCore")

IDLE, CONNECTING, CONNECTED = "idle", "connecting", "connected"
SERVER, CLIENT = "server", "client"


class SocketCore:
    """State, configuration and stream reports of a TCP socket (see ``Socket``).

    A listening socket and the connections it accepted are Sockets of one family, and use
    each other only through :class:`ServerFamily`.
    """

    _plain_push = True
    """False in a subclass that routes reads through its own ``_push_read`` (the test client)."""

    def __init__(self, fn: Optional[ReadCallback] = None, *, _parent: Optional[Socket] = None):
        check_callable(fn, "callback")
        self._loop: SocketLoop = get_loop()
        self._callback: Optional[ReadCallback] = fn
        # A server's callback was inspected already: its connections share the answer.
        self._callback_takes_client: bool = (
            _parent._callback_takes_client
            if _parent is not None and fn is _parent._callback
            else fn is not None and takes_client(fn)
        )
        self._timeout: float = (
            default_timeout(TCP_TIMEOUT.value, "hsocket") if _parent is None else _parent._timeout
        )
        self._mode = IDLE if _parent is None else CLIENT
        self.parent = _parent
        self._stream: Optional[Stream] = None
        self._listener: Optional[socket.socket] = None
        self._acceptor: Any = None
        self._clients: list[Socket] = []
        self._unix_path = ""
        self._connect_fn: Optional[ConnectCallback] = None
        self._on_disconnect: list[DisconnectHook] = []
        self._on_connect: list[ConnectHook] = []
        self._callbacks = CallbackQueue(self._callback_failed)
        self._delivery = ReadDelivery(
            self, self._loop, self._callbacks, plain_push=self._plain_push
        )
        # The delimiter object validated last: read() takes the fast-read path only for it
        # (checked by identity, see ReadDelivery).
        self._fast_delim: Optional[bytes] = None
        self._last_request: Optional[ReadRequest] = None
        self.callback_errors: list[CallbackError] = []
        self.last_disconnect_reason = ""
        self.unread = b""
        self.lost_reads: list[ReadRequest] = []
        self._tap: Optional[Tap] = None
        self._client_tap: Optional[Callable[[Socket], Optional[Tap]]] = None
        self._secure = False
        self._accept_tls: Optional[ssl.SSLContext] = None
        self._host = ""

    # -- configuration -----------------------------------------------------------------------

    def set_callback(self: S, fn: Optional[ReadCallback] = None) -> S:
        """Set the read callback, ``fn(data, tag)`` (or ``fn(data, tag, client)``).

        Args:
            fn: The callback; ``None`` clears it (reads that complete then are discarded,
                with a warning in the log).
        Returns:
            This socket.
        Raises:
            TypeError: If ``fn`` is not callable.
        """
        check_callable(fn, "callback")
        self._callback = fn
        self._callback_takes_client = fn is not None and takes_client(fn)
        # A fast-read path open now (set_callback inside a read callback) closes: the next
        # read goes the ordinary way, which refuses it if there is no callback any more.
        self._end_fast_reads()
        for client in self._clients:
            client._end_fast_reads()
        return self

    setCallback = set_callback

    def set_timeout(self: S, timeout: float) -> S:
        """Set the timeout, in seconds, of operations started from now on; negative = none.

        Returns:
            This socket.
        Raises:
            TypeError: If ``timeout`` is not a number.
        """
        self._timeout = check_timeout(timeout, "set_timeout()")
        return self

    setTimeout = set_timeout

    def on_disconnect(self: S, fn: DisconnectHook) -> S:
        """Call ``fn(reason)`` on the loop each time this socket disconnects.

        Returns:
            This socket.
        """
        check_callable(fn, "on_disconnect() hook", optional=False)
        self._on_disconnect.append(fn)
        return self

    def on_connect(self: S, fn: ConnectHook) -> S:
        """On a server, call ``fn(client)`` for each connection it accepts.

        This is the place to queue a client's first reads. On a client socket ``fn(self)``
        runs once connected.

        Returns:
            This socket.
        """
        check_callable(fn, "on_connect() hook", optional=False)
        self._on_connect.append(fn)
        return self

    # -- queries -----------------------------------------------------------------------------

    def connected(self) -> bool:
        """Return whether the socket is connected (a server: whether it has a client)."""
        if self._mode == SERVER:
            return bool(self._clients)
        stream = self._stream
        return stream is not None and stream.connected

    def connections(self) -> int:
        """Return the number of connections: a server's clients, else 0 or 1."""
        if self._mode == SERVER:
            return len(self._clients)
        return 1 if self.connected() else 0

    @property
    def is_server(self) -> bool:
        """Whether this socket is listening."""
        return self._mode == SERVER

    def clients(self) -> list[Socket]:
        """Return the connections a server holds now (a copy)."""
        return list(self._clients)

    def _connection_sock(self) -> Optional[socket.socket]:
        # The OS socket of this connection, for info(): the stream's.
        stream = self._stream
        return stream.sock if stream is not None else None

    def info(self) -> dict[str, _info.InfoValue]:
        """Return the original's 19 info keys, never ``None`` (``""``/``0``/``False``)."""
        listening = self._mode == SERVER
        sock = self._listener if listening else self._connection_sock()
        user_data = {SERVER: "SERVER", CLIENT: "CLIENT"}.get(self._mode, "")
        closed_client = self._mode == CLIENT and self._stream is None
        if closed_client:
            user_data = ""  # an accepted connection that has closed, as the original reports
        if self._mode in (CONNECTING, CONNECTED) and self.connected():
            user_data = "DEFAULT"
        return _info.tcp_info(
            sock=sock,
            listening=listening,
            connected=(not listening) and self.connected(),
            started=self._mode != IDLE and not closed_client,
            connections=self.connections(),
            secure=self._secure,
            timeout=self._timeout,
            unix_path=self._unix_path,
            user_data=user_data,
        )

    def __repr__(self) -> str:
        return f"<{self}>"

    def __str__(self) -> str:
        return _info.describe(self.info())

    def check(self) -> None:
        """Raise the first error a user callback of this socket raised, if any.

        Raises:
            CallbackError: With the callback's exception as ``__cause__``.
        """
        raise_first(self.callback_errors)

    # -- disconnecting -----------------------------------------------------------------------

    def disconnect(self: S) -> S:
        """Close the connection (on a server: stop listening and disconnect every client).

        Queued reads and writes are dropped. The socket can then connect or listen again.

        Returns:
            This socket.
        """
        if self._mode != IDLE or self._stream is not None:
            self._loop.run_sync(self._disconnect)
        return self

    def _disconnect(self) -> None:
        if self._mode == SERVER:
            self._close_server()
        elif self._stream is not None:
            self._stream.close(LOCAL_CLOSE)
        elif self._mode == CONNECTING:
            self._mode = IDLE

    def _close_server(self) -> None:
        listener, self._listener = self._listener, None
        acceptor, self._acceptor = self._acceptor, None
        if acceptor is not None:
            acceptor.stop()  # closes the listener after stopping the loop's watcher on it
        elif listener is not None:
            listener.close()
        for client in list(self._clients):
            stream = client._open_stream()
            if stream is not None:
                stream.close(LOCAL_CLOSE)
        self._clients.clear()
        log.debug("TCP server disconnected: %s", LOCAL_CLOSE)
        if self._unix_path:
            try:
                os.unlink(self._unix_path)
            except FileNotFoundError:
                pass
            except OSError as exc:
                log.error("Could not remove created Unix domain socket: %s", exc)
        self._unix_path = ""
        self._mode = IDLE
        self.last_disconnect_reason = LOCAL_CLOSE
        self._run_disconnect_hooks(LOCAL_CLOSE)

    def close(self) -> None:
        """Disconnect; the same as ``disconnect()`` with no return value."""
        self.disconnect()

    def __enter__(self: S) -> S:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self.disconnect()
        if exc_type is None:
            self.check()

    def __del__(self) -> None:
        if getattr(self, "_mode", IDLE) in (IDLE, CLIENT) or sys.is_finalizing():
            return
        warnings.warn(f"unclosed {self!r}", ResourceWarning, stacklevel=2)
        with contextlib.suppress(Exception):
            self._loop.call(self._disconnect)

    # -- reports from the stream (on the loop) -----------------------------------------------

    def _stream_connected(self, stream: Stream) -> None:
        if self._mode == CONNECTING:
            self._mode = CONNECTED
            if self._unix_path:
                log.debug("TCP Unix domain socket connected")
            else:
                log.debug("TCP socket connected")
                assert stream.sock is not None
                stream.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self._tap is not None:
                self._tap("connected", b"", -1, "")
            fn, self._connect_fn = self._connect_fn, None
            if fn is not None:
                self._post("hs.socket:connect callback", fn)
            for hook in self._on_connect:
                self._post("hs.socket:on_connect hook", hook, self)

    def _post(self, where: str, fn: Callable[..., Any], *args: Any) -> None:
        # Anything posted after a batch of reads closes it: later reads start a new batch, so
        # callbacks of every kind keep their FIFO order.
        self._delivery.end_batch()
        self._callbacks.post(where, fn, *args)

    def _stream_read(self, stream: Stream, done: list[Completed]) -> None:
        if self._tap is not None:
            for data, tag in done:
                self._tap("in", data, tag, "")
        self._delivery.deliver(done)

    # -- the server / connection contract (see the class docstring) ---------------------------

    def _reads_inline(self, client: Any) -> bool:
        """Whether ``client``'s reads may be handed to this server's callback in the loop's
        turn that read them: only for a callback of ours that never waits nor runs user code
        (a mock server playing a plain script)."""
        return False

    def _end_fast_reads(self) -> None:
        """Close this socket's fast-read path, if open (the callback changed)."""
        self._delivery.close_fast_reads()

    def _forget(self, client: Socket) -> None:
        """Take ``client``, a connection of this server that closed, off its list."""
        if client in self._clients:
            self._clients.remove(client)

    def _open_stream(self) -> Optional[Stream]:
        """This connection's stream, while it has one (a server writes to it directly)."""
        return self._stream

    def _stream_written(self, stream: Stream, tag: int, fn: Optional[WriteCallback]) -> None:
        if log.isEnabledFor(logging.DEBUG):
            log.debug("Data written to TCP socket")
        if fn is not None:
            if isinstance(fn, AllWritten):
                fn.one_done()
            else:
                self._post("hs.socket:write callback", fn, tag)

    def _stream_secured(self, stream: Stream) -> None:
        self._secure = True
        log.debug("TCP socket secured")
        if self._tap is not None:
            version = stream.tls.version if stream.tls is not None else None
            self._tap("secured", b"", -1, version or "")

    def _stream_closed(
        self, stream: Stream, reason: str, unread: bytes, lost: list[ReadRequest], error: bool
    ) -> None:
        if stream is not self._stream:
            return
        self._stream = None
        was_connecting = self._mode == CONNECTING
        self.last_disconnect_reason = reason
        self.unread = unread
        self.lost_reads = lost
        self._secure = False
        detail = ""
        if unread or (lost and reason == PEER_CLOSED):
            first = lost[0] if lost else None
            detail = f" ({len(unread)} bytes unread: {unread[:64]!r}"
            if first is not None:
                detail += f", reading to {first.describe()}, tag {first.tag}"
            detail += ")"
        level = logging.WARNING if (error or unread) else logging.DEBUG
        kind = "TCP client disconnected" if self._mode == CLIENT else "TCP socket disconnected"
        log.log(level, "%s: %s%s", kind, reason, detail)
        if self._tap is not None:
            self._tap("closed", unread, lost[0].tag if lost else -1, reason)
        if self._mode == CLIENT:
            if self.parent is not None:
                self.parent._forget(cast("Socket", self))  # a connection is always a Socket
        else:
            self._mode = IDLE
        if was_connecting:
            self._connect_fn = None
        self._run_disconnect_hooks(reason)

    def _run_disconnect_hooks(self, reason: str) -> None:
        for hook in self._on_disconnect:
            self._post("hs.socket:on_disconnect hook", hook, reason)

    def _callback_failed(self, where: str, exc: BaseException) -> None:
        keep = [self.callback_errors]
        if self.parent is not None:
            keep.append(self.parent.callback_errors)
        self._loop.callback_failed(log, where, exc, *keep)
