"""The hs.socket TCP / Unix socket: each public method checks its arguments, then hands the
work to the socket loop.

State that a caller may query at once (``connected``, ``connections``, ``info``) is read
without a round trip to the loop.
"""

from __future__ import annotations

import re
import socket
import ssl
from typing import Any, Optional, Union

from pytest_hsocket._core.checks import (
    as_bytes,
    check_callable,
    check_tag,
)
from pytest_hsocket._core.framing import Prefixed, ReadRequest, make_request
from pytest_hsocket._core.platform import has_unix_sockets, unix_family, unix_sockets_missing
from pytest_hsocket._hs.base import (
    CLIENT,
    CONNECTED,
    CONNECTING,
    IDLE,
    SERVER,
    ConnectCallback,
    ConnectHook,
    DisconnectHook,
    SocketCore,
    log,
)
from pytest_hsocket._hs.family import AllWritten
from pytest_hsocket._hs.read_delivery import ReadCallback, Tap
from pytest_hsocket._hs.tcp_args import (
    client_side,
    connect_target,
    listen_target,
    server_context,
    tls_arguments,
)
from pytest_hsocket._io.listener import Acceptor, bind_listener
from pytest_hsocket._io.stream import Stream, WriteCallback
from pytest_hsocket._loop.originals import get_ident

Message = Union[bytes, bytearray, memoryview, str]
ReadDelimiter = Union[int, bytes, str, "re.Pattern[bytes]", Prefixed]

_BUSY = "Attempting to connect while connected or accepting connections. Disconnect first."
_BUSY_LISTEN = "Attempting to accept while connected or accepting connections. Disconnect first."

__all__ = [
    "ConnectCallback",
    "ConnectHook",
    "DisconnectHook",
    "Message",
    "ReadCallback",
    "ReadDelimiter",
    "Socket",
    "Tap",
]


class Socket(SocketCore):
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

    def _settled_busy(self) -> bool:
        """Whether the socket is connecting, connected or listening, as a new connect/listen
        must see it: a connection the loop is closing (``connected()`` already False) is
        waited for, so that what ``connected()`` said holds for the next call."""
        if self._mode == IDLE:
            return False
        stream = self._stream
        if self._mode in (CONNECTING, CONNECTED) and (stream is None or stream.closed):
            self._loop.run_sync(lambda: None)  # the close in progress completes first
        return self._mode != IDLE

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
        target = connect_target(host, port, fn)
        host, fn, path, what = target.host, target.fn, target.path, target.what
        unix = target.port is None
        if self._settled_busy():
            log.error(what, _BUSY)
            return None
        if not host:
            log.error(
                what,
                'Invalid host parameter (nil or ""). Should be a domain name or IP address string.',
            )
            return None
        if unix and not has_unix_sockets():
            log.error(what, unix_sockets_missing())
            return None
        self._mode = CONNECTING
        self._connect_fn = fn
        self._secure = False
        if unix:
            self._unix_path = path
            self._loop.call(self._start_connect, unix_family(), [path])
        else:
            self._unix_path = ""
            self._host = host
            self._loop.call(self._start_connect, socket.AF_INET, [(host, target.port)])
        return self

    def _start_connect(self, family: int, addresses: list[Any]) -> None:
        if self._mode != CONNECTING:
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
        path, what = listen_target(port, host)
        if self._settled_busy():
            log.error(what, _BUSY_LISTEN)
            return None
        try:
            self._loop.run_sync(lambda: self._bind(host, port, path))
        except OSError as exc:
            log.error(what, exc.strerror or str(exc))
            return None
        return self

    def _bind(self, host: str, port: Any, path: str) -> None:
        if self._mode != IDLE:
            raise OSError(0, _BUSY_LISTEN)
        listener = bind_listener(host, port, path)
        self._listener = listener
        self._unix_path = path
        self._mode = SERVER
        self._acceptor = Acceptor(listener, lambda: self._listener is listener, self._accepted)

    def _new_client(self) -> Socket:
        # An accepted connection; a mock server gives its own kind (one that cuts writes).
        return Socket(self._callback, _parent=self)

    def _accepted(self, conn: socket.socket) -> None:
        client = self._new_client()
        self._clients.append(client)
        log.debug("TCP client connected")
        tap = self._tap if self._client_tap is None else self._client_tap(client)
        client._take_accepted(conn, tap, self._accept_tls)
        for hook in self._on_connect:
            self._post("hs.socket:on_connect hook", hook, client)

    def _take_accepted(
        self, conn: socket.socket, tap: Optional[Tap], tls: Optional[ssl.SSLContext]
    ) -> None:
        """Take over ``conn``, which this connection's server accepted (the server's contract):
        its transcript tap, and TLS from the first byte if the server speaks it."""
        self._tap = tap
        stream = Stream(self)
        self._stream = stream
        if tls is not None:
            stream.start_tls(tls, True, None)
        stream.attach(conn)

    # -- TLS ---------------------------------------------------------------------------------

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
            ValueError: If a server side has no ``context``, or a name cannot be checked (empty,
                with a NUL byte, or not a valid host name).
        """
        verify, peer_name, context = tls_arguments(verify, peer_name, context)
        if self._mode in (SERVER, CLIENT):
            context = server_context(context)
            if self._mode == SERVER:
                self._accept_tls = context
            else:
                self._loop.call(self._push_tls, context, True, None)
            return self
        if self._mode == IDLE:
            log.error("Unable to start TLS: the socket is not connected; call connect() first")
            return None
        context, name = client_side(verify, peer_name, context, self._host)
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
        delivery = self._delivery
        if (
            delivery.fast_reads == get_ident()
            and delivery.fast_data is None
            and delimiter is self._fast_delim
            and (tag is delivery.fast_tag or type(tag) is int)
        ):
            # A read callback queueing its next delimiter read (see ReadDelivery): complete it
            # at once from the buffer, as a push would, and hand it back to the fast path.
            queue = delivery.fast_queue
            assert queue is not None  # set while the fast-read path is open
            index = queue.lines_next
            if index < queue.lines_last and delimiter is queue.lines_delim:
                # ReadQueue.take inline (the hot path), short of a split's last line.
                queue.lines_next = index + 1
                delivery.fast_data = queue.lines[index]
                delivery.fast_tag = tag
                return self
            data = queue.take(delimiter)
            if data is not None:
                delivery.fast_data = data
                delivery.fast_tag = tag
                stream = self._stream
                if stream is not None and stream.eof:
                    stream.check_eof()  # as a push would: closed once the buffer is drained
                return self
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
            self._fast_delim = delimiter
        else:
            request = make_request(delimiter, tag, self._timeout)
        owner = self.parent or self
        if owner._callback is None:
            log.error("No callback defined!")
            return None
        if self._mode == IDLE:
            log.error("Unable to read: the socket is not connected; call connect() first")
            return None
        if get_ident() == self._loop.thread_id:
            stream = self._stream
            if self._plain_push and stream is not None and not stream.closed:
                stream.push_read(request)  # a callback queueing its next read: the hot path
            else:
                self._push_read(request)
        else:
            self._loop.call(self._push_read, request)
        return self

    receive = read

    def _push_read(self, request: ReadRequest) -> None:
        if self._mode == SERVER:
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
        if self._mode == IDLE:
            log.error("Unable to write: the socket is not connected; call connect() first")
            return None
        self._loop.call(self._push_write, data, tag_, fn)
        return self

    send = write

    def _push_write(self, data: bytes, tag: int, fn: Optional[WriteCallback]) -> None:
        if self._tap is not None:
            self._tap("out", data, tag, "")
        if self._mode == SERVER:
            streams = [s for s in (c._open_stream() for c in self._clients) if s is not None]
            if fn is not None:
                fn = AllWritten(len(streams), tag, fn, self._post)
            for open_stream in streams:
                open_stream.push_write(memoryview(data), tag, fn, self._timeout)
            if not streams and fn is not None:
                self._post("hs.socket:write callback", fn, tag)
            return
        stream = self._stream
        if stream is None or stream.closed:
            return
        stream.push_write(memoryview(data), tag, fn, self._timeout)
