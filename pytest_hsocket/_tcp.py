"""The hs.socket TCP / Unix socket: each public method checks its arguments, then hands the
work to the socket loop.

State that a caller may query at once (``connected``, ``connections``, ``info``) is read
without a round trip to the loop.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import os
import re
import socket
import ssl
import sys
import warnings
from typing import Any, Callable, Optional, Union

import gevent

from . import _info, _tls
from ._checks import (
    as_bytes,
    check_callable,
    check_port,
    check_tag,
    check_timeout,
    check_unix_path,
)
from ._errors import CallbackError
from ._framing import Completed, ReadRequest, make_request
from ._listener import accept_forever, bind_listener
from ._loop import CallbackQueue, SocketLoop, _get_ident, get_loop
from ._stream import LOCAL_CLOSE, PEER_CLOSED, Closed, Stream, WriteCallback

log = logging.getLogger(__name__)

ReadCallback = Callable[..., None]
"""``fn(data: bytes, tag: int)``, or on a server ``fn(data, tag, client)``."""
ConnectCallback = Callable[[], None]
DisconnectHook = Callable[[str], None]
ConnectHook = Callable[["Socket"], None]
Tap = Callable[[str, bytes, int, str], None]
"""``tap(kind, data, tag, note)``: sees every event of a connection (for transcripts)."""
Message = Union[bytes, bytearray, memoryview, str]
ReadDelimiter = Union[int, bytes, str, "re.Pattern[bytes]"]

_IDLE, _CONNECTING, _CONNECTED = "idle", "connecting", "connected"
_SERVER, _CLIENT = "server", "client"
_BUSY = "Attempting to connect while connected or accepting connections. Disconnect first."
_BUSY_LISTEN = "Attempting to accept while connected or accepting connections. Disconnect first."


def _default_timeout() -> float:
    module = sys.modules.get("pytest_hsocket")
    value = getattr(module, "timeout", -1)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else -1.0


def _takes_client(fn: Callable[..., Any]) -> bool:
    try:
        inspect.signature(fn).bind(b"", -1, None)
    except (TypeError, ValueError):
        return False
    return True


class Socket:
    """An asynchronous TCP or Unix-domain socket with hs.socket's API.

    Reads are queued with a delimiter or a byte count and a tag; each completed read calls the
    socket's callback as ``fn(data, tag)`` on the socket loop. See ``hsocket.new`` and
    ``hsocket.server``.

    Attributes:
        last_disconnect_reason: Why the socket last disconnected, in the original's words
            (``"Socket closed by remote peer"``, ``"Read operation timed out"``, ``"(null)"``
            for a local ``disconnect()``), or ``""``.
        unread: Bytes received but never delivered when the socket last disconnected.
        lost_reads: The reads still queued when it last disconnected (never delivered).
        parent: For a connection accepted by a server, that server; else ``None``.
    """

    def __init__(self, fn: Optional[ReadCallback] = None, *, _parent: Optional[Socket] = None):
        check_callable(fn, "callback")
        self._loop: SocketLoop = get_loop()
        self._callback: Optional[ReadCallback] = fn
        self._callback_takes_client = fn is not None and _takes_client(fn)
        self._timeout: float = _default_timeout() if _parent is None else _parent._timeout
        self._mode = _IDLE if _parent is None else _CLIENT
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
        self._read_batch: Optional[list[Completed]] = None
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

    def set_callback(self, fn: Optional[ReadCallback] = None) -> Socket:
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
        self._callback_takes_client = fn is not None and _takes_client(fn)
        return self

    setCallback = set_callback

    def set_timeout(self, timeout: float) -> Socket:
        """Set the timeout, in seconds, of operations started from now on; negative = none.

        Returns:
            This socket.
        Raises:
            TypeError: If ``timeout`` is not a number.
        """
        self._timeout = check_timeout(timeout, "set_timeout()")
        return self

    setTimeout = set_timeout

    def on_disconnect(self, fn: DisconnectHook) -> Socket:
        """Call ``fn(reason)`` on the loop each time this socket disconnects.

        Returns:
            This socket.
        """
        check_callable(fn, "on_disconnect() hook")
        self._on_disconnect.append(fn)
        return self

    def on_connect(self, fn: ConnectHook) -> Socket:
        """On a server, call ``fn(client)`` for each connection it accepts.

        This is the place to queue a client's first reads. On a client socket ``fn(self)``
        runs once connected.

        Returns:
            This socket.
        """
        check_callable(fn, "on_connect() hook")
        self._on_connect.append(fn)
        return self

    # -- queries -----------------------------------------------------------------------------

    def connected(self) -> bool:
        """Return whether the socket is connected (a server: whether it has a client)."""
        if self._mode == _SERVER:
            return bool(self._clients)
        stream = self._stream
        return stream is not None and stream.connected

    def connections(self) -> int:
        """Return the number of connections: a server's clients, else 0 or 1."""
        if self._mode == _SERVER:
            return len(self._clients)
        return 1 if self.connected() else 0

    @property
    def is_server(self) -> bool:
        """Whether this socket is listening."""
        return self._mode == _SERVER

    def clients(self) -> list[Socket]:
        """Return the connections a server holds now (a copy)."""
        return list(self._clients)

    def info(self) -> dict[str, _info.InfoValue]:
        """Return the original's 19 info keys, never ``None`` (``""``/``0``/``False``)."""
        listening = self._mode == _SERVER
        sock = self._listener if listening else (self._stream.sock if self._stream else None)
        user_data = {_SERVER: "SERVER", _CLIENT: "CLIENT"}.get(self._mode, "")
        if self._mode == _CONNECTED and self.connected():
            user_data = "DEFAULT"
        return _info.tcp_info(
            sock=sock,
            listening=listening,
            connected=(not listening) and self.connected(),
            started=self._mode != _IDLE,
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

    # -- connecting --------------------------------------------------------------------------

    def connect(
        self,
        host: str,
        port: Union[int, ConnectCallback, None] = None,
        fn: Optional[ConnectCallback] = None,
    ) -> Optional[Socket]:
        """Connect to ``host``:``port``, or to the Unix socket at path ``host``.

        Returns at once; ``fn()`` runs on the loop once connected. A connection that fails
        later (refused, timed out, unresolvable) logs ``TCP socket disconnected: <reason>``
        and leaves ``connected()`` False.

        Args:
            host: A host name, IPv4 or IPv6 literal; or a Unix socket path when no port is given.
            port: The port, 1-65535 (omit it for a path; ``connect(path, fn)`` also works).
            fn: Called with no arguments once connected.
        Returns:
            This socket, or ``None`` (with a logged reason) if it is already connected or
            listening, or ``host`` is empty.
        Raises:
            TypeError: If ``host`` is not a str, the port not an int, or ``fn`` not callable.
            ValueError: If the port is out of range or the path too long.
        """
        if callable(port) and fn is None:
            port, fn = None, port
        if not isinstance(host, (str, os.PathLike)):
            raise TypeError(f"connect() host must be a str, not {host!r}")
        host = os.fspath(host)
        check_callable(fn, "connect() callback")
        unix = port is None
        if unix:
            what = "Unable to connect to Unix domain socket: %s"
            path = check_unix_path(host, "connect()") if host else ""
        else:
            what = "Unable to connect to host/port: %s"
            check_port(port, "connect()", low=1)
        if self._mode != _IDLE:
            log.error(what, _BUSY)
            return None
        if not host:
            log.error(
                what,
                'Invalid host parameter (nil or ""). Should be a domain name or IP address string.',
            )
            return None
        self._mode = _CONNECTING
        self._connect_fn = fn
        self._secure = False
        if unix:
            self._unix_path = path
            self._loop.call(self._start_connect, socket.AF_UNIX, [path])
        else:
            self._unix_path = ""
            self._host = host
            self._loop.call(self._start_connect, socket.AF_INET, [(host, port)])
        return self

    def _start_connect(self, family: int, addresses: list[Any]) -> None:
        if self._mode != _CONNECTING:
            return
        self._stream = Stream(self)
        self._stream.connect(family, addresses, self._timeout)

    # -- listening ---------------------------------------------------------------------------

    def listen(self, port: Union[int, str], *, host: str = "127.0.0.1") -> Optional[Socket]:
        """Listen on ``host``:``port`` (0 = the OS picks) or on a Unix socket path.

        Args:
            port: A port 0-65535, or a path (``str``/``os.PathLike``) for a Unix socket.
            host: The address to bind: ``"127.0.0.1"`` by default, ``"::1"``, ``"0.0.0.0"``...
        Returns:
            This socket, or ``None`` with ``Unable to bind ...`` logged at ERROR (port in use,
            folder missing, a non-socket file at the path, already connected or listening).
        Raises:
            TypeError: If ``port`` is neither an int nor a path.
            ValueError: If the port is out of range or the path too long or empty.
        """
        if isinstance(port, (str, os.PathLike)):
            path = check_unix_path(os.fspath(port), "listen()")
            what = "Unable to bind Unix domain path: %s"
        else:
            check_port(port, "listen()")
            path = ""
            what = "Unable to bind port: %s"
        if self._mode != _IDLE:
            log.error(what, _BUSY_LISTEN)
            return None
        try:
            self._loop.run_sync(lambda: self._bind(host, port, path))
        except OSError as exc:
            log.error(what, exc.strerror or str(exc))
            return None
        return self

    def _bind(self, host: str, port: Any, path: str) -> None:
        if self._mode != _IDLE:
            raise OSError(0, _BUSY_LISTEN)
        listener = bind_listener(host, port, path)
        self._listener = listener
        self._unix_path = path
        self._mode = _SERVER
        self._acceptor = gevent.spawn(
            accept_forever, listener, lambda: self._listener is listener, self._accepted
        )

    def _accepted(self, conn: socket.socket) -> None:
        client = Socket(self._callback, _parent=self)
        client._tap = self._tap if self._client_tap is None else self._client_tap(client)
        client._stream = Stream(client)
        self._clients.append(client)
        log.debug("TCP client connected")
        if self._accept_tls is not None:
            client._stream.start_tls(self._accept_tls, True, None)
        client._stream.attach(conn)
        for hook in self._on_connect:
            self._post("hs.socket:on_connect hook", hook, client)

    # -- reading and writing -----------------------------------------------------------------

    def read(self, delimiter: ReadDelimiter, tag: int = -1) -> Optional[Socket]:
        """Queue a read; the callback receives ``(data, tag)`` when it completes.

        Reads complete in the order they were queued; bytes that arrived earlier are served
        from the buffer. On a server the read is queued on each client connected now.

        Args:
            delimiter: A byte count (int > 0), or bytes / UTF-8 str / compiled bytes regex to
                read up to and including.
            tag: Handed back to the callback; -1 by default.
        Returns:
            This socket, or ``None`` with an ERROR log if no callback is set
            (``No callback defined!``) or the socket was never connected.
        Raises:
            TypeError: If the delimiter or tag has the wrong type.
            ValueError: If a length is not positive or a delimiter is empty.
        """
        last = self._last_request
        if (
            last is not None
            and last.matcher is delimiter
            and last.tag == tag
            and last.timeout == self._timeout
        ):
            request = last  # a state machine re-queueing the same read: reuse it
        elif type(delimiter) is bytes and type(tag) is int and delimiter:
            request = self._last_request = ReadRequest(delimiter, tag, self._timeout)
        else:
            request = make_request(delimiter, tag, self._timeout)
        owner = self.parent or self
        if owner._callback is None:
            log.error("No callback defined!")
            return None
        if self._mode == _IDLE:
            log.error("Unable to read: the socket is not connected; call connect() first")
            return None
        if _get_ident() == self._loop.thread_id:
            self._push_read(request)
        else:
            self._loop.call(self._push_read, request)
        return self

    receive = read

    def _push_read(self, request: ReadRequest) -> None:
        if self._mode == _SERVER:
            for client in self._clients:
                client._push_read(request)
        elif self._stream is not None and not self._stream.closed:
            self._stream.push_read(request)

    def write(
        self,
        message: Message,
        tag: Union[int, WriteCallback] = -1,
        fn: Optional[WriteCallback] = None,
    ) -> Optional[Socket]:
        """Send ``message``; ``fn(tag)`` runs once it is handed to the kernel.

        On a server the message goes to every client connected now, and ``fn`` runs once
        all of them took it. ``write(b"")`` completes at once.

        Args:
            message: bytes, or a str (sent as UTF-8).
            tag: An int handed to ``fn``; -1 by default. ``write(msg, fn)`` also works.
            fn: Called as ``fn(tag)`` on the loop once written.
        Returns:
            This socket, or ``None`` with an ERROR log if the socket was never connected.
        Raises:
            TypeError: If the message is not bytes/str, the tag not an int or ``fn`` not
                callable.
        """
        if callable(tag) and fn is None:
            fn, tag = tag, -1  # write(message, fn), as in the original
        data = as_bytes(message, "write()")
        tag_ = check_tag(tag, "write()")
        check_callable(fn, "write() callback")
        if self._mode == _IDLE:
            log.error("Unable to write: the socket is not connected; call connect() first")
            return None
        self._loop.call(self._push_write, data, tag_, fn)
        return self

    send = write

    def _push_write(self, data: bytes, tag: int, fn: Optional[WriteCallback]) -> None:
        if self._tap is not None:
            self._tap("out", data, tag, "")
        if self._mode == _SERVER:
            clients = [c for c in self._clients if c._stream is not None]
            if fn is not None:
                fn = _AllWritten(len(clients), tag, fn, self)
            for client in clients:
                assert client._stream is not None
                client._stream.push_write(memoryview(data), tag, fn, self._timeout)
            if not clients and fn is not None:
                self._post("hs.socket:write callback", fn, tag)
            return
        stream = self._stream
        if stream is None or stream.closed:
            return
        stream.push_write(memoryview(data), tag, fn, self._timeout)

    # -- TLS -------------------------------------------------------------------------------

    def start_tls(
        self,
        verify: Union[bool, str] = True,
        peer_name: Optional[str] = None,
        *,
        context: Optional[ssl.SSLContext] = None,
    ) -> Optional[Socket]:
        """Upgrade the connection to TLS once the reads and writes queued before it are done.

        On a connection you opened this is the client side: by default the peer's chain must be
        trusted (the system store, or ``context``'s) *and* its certificate must name
        ``peer_name`` or the host given to ``connect``. On a connection a server accepted it
        is the server side (STARTTLS), and on a listening socket every client it accepts from
        now on speaks TLS from its first byte; both need ``context`` with a certificate.
        If negotiation fails the socket disconnects, with the reason logged.

        Args:
            verify: False accepts any certificate and name (self-signed peers). A str is taken
                as ``peer_name``, as in the original's ``startTLS(peerName)``.
            peer_name: The name the certificate must carry.
            context: The ``ssl.SSLContext`` to use; a fresh default one otherwise.
        Returns:
            This socket, or ``None`` with an ERROR log if it was never connected.
        Raises:
            TypeError: If ``verify``, ``peer_name`` or ``context`` has the wrong type.
            ValueError: If a server side has no ``context``, or a name cannot be checked.
        """
        if isinstance(verify, str):
            peer_name = verify
            verify = True
        if not isinstance(verify, bool):
            raise TypeError(f"start_tls() verify must be a bool or a peer name, not {verify!r}")
        if peer_name is not None and not isinstance(peer_name, str):
            raise TypeError(f"start_tls() peer_name must be a str, not {peer_name!r}")
        if context is not None and not isinstance(context, ssl.SSLContext):
            raise TypeError(f"start_tls() context must be an ssl.SSLContext, not {context!r}")
        if self._mode in (_SERVER, _CLIENT):
            if context is None:
                raise ValueError(
                    "start_tls() on a server side needs context= with a certificate, "
                    "e.g. trustme.CA().issue_cert('localhost').configure_cert(ctx)"
                )
            if self._mode == _SERVER:
                self._accept_tls = context
                return self
            self._loop.call(self._push_tls, context, True, None)
            return self
        if self._mode == _IDLE:
            log.error("Unable to start TLS: the socket is not connected; call connect() first")
            return None
        if context is None:
            context = _tls.client_context(verify)
        name = peer_name or self._host or None
        if context.check_hostname and not name:
            raise ValueError(
                "start_tls() cannot check the certificate's name on a Unix socket: "
                "pass peer_name=, or verify=False"
            )
        self._loop.call(self._push_tls, context, False, name)
        return self

    startTLS = start_tls

    def _push_tls(self, context: ssl.SSLContext, server_side: bool, name: Optional[str]) -> None:
        stream = self._stream
        if (
            stream is not None
            and not stream.closed
            and not stream.start_tls(context, server_side, name)
        ):
            log.debug("TLS is already on or queued: start_tls() ignored")

    # -- disconnecting -----------------------------------------------------------------------

    def disconnect(self) -> Socket:
        """Close the connection (on a server: stop listening and disconnect every client).

        Queued reads and writes are dropped. The socket can then connect or listen again.

        Returns:
            This socket.
        """
        if self._mode != _IDLE or self._stream is not None:
            self._loop.run_sync(self._disconnect)
        return self

    def _disconnect(self) -> None:
        if self._mode == _SERVER:
            self._close_server()
        elif self._stream is not None:
            self._stream.close(LOCAL_CLOSE)
        elif self._mode == _CONNECTING:
            self._mode = _IDLE

    def _close_server(self) -> None:
        listener, self._listener = self._listener, None
        acceptor, self._acceptor = self._acceptor, None
        if acceptor is not None and acceptor is not gevent.getcurrent():
            acceptor.kill(Closed, block=False)
        if listener is not None:
            listener.close()
        for client in list(self._clients):
            if client._stream is not None:
                client._stream.close(LOCAL_CLOSE)
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
        self._mode = _IDLE
        self.last_disconnect_reason = LOCAL_CLOSE
        self._run_disconnect_hooks(LOCAL_CLOSE)

    def close(self) -> None:
        """Disconnect; the same as ``disconnect()`` with no return value."""
        self.disconnect()

    def check(self) -> None:
        """Raise the first error a user callback of this socket raised, if any.

        Raises:
            CallbackError: With the callback's exception as ``__cause__``.
        """
        if self.callback_errors:
            for error in self.callback_errors:
                error.reported = True
            raise self.callback_errors[0]

    def __enter__(self) -> Socket:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self.disconnect()
        if exc_type is None:
            self.check()

    def __del__(self) -> None:
        if getattr(self, "_mode", _IDLE) in (_IDLE, _CLIENT) or sys.is_finalizing():
            return
        warnings.warn(f"unclosed {self!r}", ResourceWarning, stacklevel=2)
        with contextlib.suppress(Exception):
            self._loop.call(self._disconnect)

    # -- reports from the stream (on the loop) -----------------------------------------------

    def _stream_connected(self, stream: Stream) -> None:
        if self._mode == _CONNECTING:
            self._mode = _CONNECTED
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
        self._read_batch = None
        self._callbacks.post(where, fn, *args)

    def _stream_read(self, stream: Stream, done: list[Completed]) -> None:
        if self._tap is not None:
            for data, tag in done:
                self._tap("in", data, tag, "")
        if log.isEnabledFor(logging.DEBUG):
            for _ in done:
                log.debug("Data read from TCP socket")
        batch = self._read_batch
        if batch is not None:
            batch += done  # the batch still being dispatched takes them, in order
            return
        batch = self._read_batch = list(done)
        self._callbacks.post("hs.socket:read callback", self._dispatch_reads, batch)

    def _dispatch_reads(self, batch: list[Completed]) -> None:
        owner = self.parent or self
        index = 0
        try:
            while index < len(batch):  # the batch may grow while its callbacks run
                data, tag = batch[index]
                index += 1
                if not index & 1023:
                    gevent.sleep(0)  # a long batch must not starve the loop's other sockets
                fn = owner._callback
                if fn is None:
                    log.warning(
                        "read (tag %d) completed with no callback set: %r dropped", tag, data
                    )
                    continue
                try:
                    if owner._callback_takes_client:
                        fn(data, tag, self)
                    else:
                        fn(data, tag)
                except Exception as exc:
                    self._callback_failed("hs.socket:read callback", exc)
        finally:
            if self._read_batch is batch:
                self._read_batch = None

    def _stream_written(self, stream: Stream, tag: int, fn: Optional[WriteCallback]) -> None:
        if log.isEnabledFor(logging.DEBUG):
            log.debug("Data written to TCP socket")
        if fn is not None:
            if isinstance(fn, _AllWritten):
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
        was_connecting = self._mode == _CONNECTING
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
        kind = "TCP client disconnected" if self._mode == _CLIENT else "TCP socket disconnected"
        log.log(level, "%s: %s%s", kind, reason, detail)
        if self._tap is not None:
            self._tap("closed", unread, lost[0].tag if lost else -1, reason)
        if self._mode == _CLIENT:
            parent = self.parent
            if parent is not None and self in parent._clients:
                parent._clients.remove(self)
        else:
            self._mode = _IDLE
        if was_connecting:
            self._connect_fn = None
        self._run_disconnect_hooks(reason)

    def _run_disconnect_hooks(self, reason: str) -> None:
        for hook in self._on_disconnect:
            self._post("hs.socket:on_disconnect hook", hook, reason)

    def _callback_failed(self, where: str, exc: BaseException) -> None:
        log.error("%s: %s", where, exc, exc_info=exc)
        error = CallbackError(where, exc)
        self.callback_errors.append(error)
        if self.parent is not None:
            self.parent.callback_errors.append(error)
        self._loop.report_callback_error(error)


class _AllWritten:
    """A server broadcast's write callback: runs once every client has taken the bytes."""

    def __init__(self, count: int, tag: int, fn: WriteCallback, server: Socket) -> None:
        self.left = count
        self.tag = tag
        self.fn = fn
        self.server = server

    def __call__(self, tag: int) -> None:  # pragma: no cover - only called via one_done
        self.fn(tag)

    def one_done(self) -> None:
        self.left -= 1
        if self.left == 0:
            self.server._post("hs.socket:write callback", self.fn, self.tag)


def new(fn: Optional[ReadCallback] = None) -> Socket:
    """Create an unconnected TCP socket.

    Args:
        fn: The read callback, ``fn(data, tag)``; settable later with ``set_callback``.
    Returns:
        The socket; it copies the module's ``timeout`` now.
    Raises:
        TypeError: If ``fn`` is not callable.
    """
    return Socket(fn)


def server(
    port_or_path: Union[int, str], fn: Optional[ReadCallback] = None, *, host: str = "127.0.0.1"
) -> Socket:
    """Create a socket and listen on a port (0 = the OS picks) or a Unix socket path.

    Args:
        port_or_path: A port 0-65535, or a path for a Unix socket.
        fn: The read callback; it may take a third argument, the client connection.
        host: Where to bind; ``"127.0.0.1"`` by default.
    Returns:
        The socket, listening, or (as the original) not listening if binding failed, with
        ``Unable to bind ...`` logged at ERROR.
    Raises:
        TypeError, ValueError: As ``Socket.listen``.
    """
    sock = Socket(fn)
    sock.listen(port_or_path, host=host)
    return sock
