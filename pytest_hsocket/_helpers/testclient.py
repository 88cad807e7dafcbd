"""The blocking-friendly test client: an hs.socket client with ``expect`` and ``wait``."""

from __future__ import annotations

import errno
import os
import socket
import ssl
from typing import Any, Callable, Optional, Union

from gevent import monkey

from pytest_hsocket._core.address import ip_family
from pytest_hsocket._core.checks import check_seconds
from pytest_hsocket._core.errors import HSocketError, InvalidThreadUseError
from pytest_hsocket._helpers.client_reads import ClientReads
from pytest_hsocket._helpers.mockserver_play import ContextSource
from pytest_hsocket._hs.base import CONNECTING, IDLE, log
from pytest_hsocket._hs.tcp import ReadCallback
from pytest_hsocket._io.stream import CONNECT_TIMEOUT, Stream, os_socket
from pytest_hsocket._loop.hub import get_loop
from pytest_hsocket._loop.sync import Gate

# The calling thread's select, not a cooperative one: in a gevent-patched process the caller
# may be a plain thread that is not running a hub.
_select: Callable[..., Any] = monkey.get_original("select", "select")


LINGER = 1.0
"""Seconds ``close()`` waits, after sending its FIN, for the peer to end its side too."""


class TestClient(ClientReads):
    """A connected hs.socket client with blocking helpers for tests.

    Build it with :meth:`open`. Reads queued with ``expect`` are waited for at once; reads
    queued with ``read`` land in an inbox that ``wait`` takes from (unless a callback is set,
    which then receives them as in hs.socket).

    Attributes:
        wait_timeout: Default seconds ``expect``/``wait`` wait.
        transcript: Everything this connection sent and received.
    """

    __test__ = False  # not a pytest test class

    def __init__(self, *, wait_timeout: float = 5.0, name: str = "hsock_client") -> None:
        """An unconnected client (see :meth:`open`)."""
        super().__init__(wait_timeout=wait_timeout, name=name)
        self._secured = Gate()
        # Opened on the loop the moment a connection is up (or fails): open() waits on it.
        self._up = Gate()
        self._adopting = False
        # The socket connected from the caller's thread, until the loop has adopted it: what
        # info() and str() report meanwhile (whole state on return, DESIGN 1b.18).
        self._adopted_sock: Optional[socket.socket] = None
        self._closing: Optional[Gate] = None  # opens once a close() has sent all and closed
        self.default_tls_context: Optional[ContextSource] = None

    def _closed(self) -> bool:
        # Not while the loop is still adopting a socket connected from the caller's thread.
        return super()._closed() and not self._adopting

    @classmethod
    def open(
        cls,
        host: str,
        port: Optional[int] = None,
        *,
        wait_timeout: float = 5.0,
        name: Optional[str] = None,
        tls: Optional[ssl.SSLContext] = None,
        peer_name: Optional[str] = None,
    ) -> TestClient:
        """Connect to ``host``:``port`` (or the Unix path ``host``) and wait until connected.

        Args:
            host: Host name or address, or a Unix socket path when ``port`` is None.
            port: The port.
            wait_timeout: Seconds to wait for the connection (and the helpers' default).
            name: The transcript's title.
            tls: A client context: speak TLS from the first byte, and wait for the handshake.
            peer_name: The name the server certificate must carry (``host`` by default).
        Raises:
            ConnectionError: If the connection (or the TLS handshake) fails or times out.
            TypeError: If ``host`` is not a str (or a path), ``port`` not an int, or
                ``wait_timeout`` not a number.
            ValueError: If ``port`` or ``wait_timeout`` is out of range.
        """
        if get_loop().on_thread():
            raise InvalidThreadUseError("open() waits for the connection; call it from the test")
        wait_timeout = check_seconds(wait_timeout, "TestClient.open() wait_timeout")
        if isinstance(host, os.PathLike):
            host = os.fspath(host)
        where = host if port is None else f"{host}:{port}"
        client = cls(wait_timeout=wait_timeout, name=name or f"hsock_client to {where}")
        return client.connect_and_wait(
            host, port, wait_timeout=wait_timeout, tls=tls, peer_name=peer_name
        )

    def connect_and_wait(
        self,
        host: str,
        port: Optional[int] = None,
        *,
        wait_timeout: Optional[float] = None,
        tls: Optional[ssl.SSLContext] = None,
        peer_name: Optional[str] = None,
    ) -> TestClient:
        """Connect this client to ``host``:``port`` (or the Unix path ``host``) and wait.

        What :meth:`open` does once it has built the client; for a client that was never
        connected (a closed one stays closed: open a new one).

        Args:
            host: Host name or address, or a Unix socket path when ``port`` is None.
            port: The port.
            wait_timeout: Seconds to wait for the connection; :attr:`wait_timeout` if None.
            tls: A client context: speak TLS from the first byte, and wait for the handshake.
            peer_name: The name the server certificate must carry (``host`` by default).
        Returns:
            This client, connected.
        Raises:
            ConnectionError: If the connection (or the TLS handshake) fails or times out.
            HSocketError: If this client was connected before.
            TypeError: If ``host`` is not a str (or a path), ``port`` not an int, or
                ``wait_timeout`` not a number.
            ValueError: If ``port`` or ``wait_timeout`` is out of range.
        """
        if get_loop().on_thread():
            raise InvalidThreadUseError("open() waits for the connection; call it from the test")
        if self._up.is_open or self._mode != IDLE:
            raise HSocketError(
                "connect_and_wait() connects a client that was never connected; "
                "use TestClient.open() for a new one"
            )
        timeout = (
            self.wait_timeout
            if wait_timeout is None
            else check_seconds(wait_timeout, "TestClient.connect_and_wait() wait_timeout")
        )
        if isinstance(host, os.PathLike):
            host = os.fspath(host)
        if not isinstance(host, str):
            # As connect() says it, before anything is built: not an AttributeError from deep in.
            raise TypeError(f"connect() host must be a str, not {host!r}")
        where = host if port is None else f"{host}:{port}"
        literal = isinstance(port, int) and not isinstance(port, bool) and 0 < port <= 65535
        family = ip_family(host) if literal else None
        if family is not None and port is not None:
            self._connect_here(family, host, port, timeout)
            if tls is None:
                # Connected already: the loop adopts the socket before it runs anything asked
                # of the client after this (calls are FIFO), so there is nothing to wait for.
                return self
        elif (self.connect(host) if port is None else self.connect(host, port)) is None:
            raise ConnectionError(f"could not connect to {where}")
        if not self._up.wait(timeout):  # no callback round: the loop opens it
            self.disconnect()
            raise ConnectionError(f"could not connect to {where} within {timeout} s")
        if not self.connected():
            raise ConnectionError(f"could not connect to {where}: {self.last_disconnect_reason}")
        if tls is not None:
            self.default_tls_context = tls
            # One gate for both outcomes: secured, or disconnected by a failed negotiation.
            self.on_disconnect(lambda reason: self._secured.open())
            self.start_tls(peer_name=peer_name)
            if not self._secured.wait(timeout):
                self.disconnect()
                raise ConnectionError(f"TLS handshake with {where} timed out")
            if not self.info()["isSecure"]:
                raise ConnectionError(f"TLS with {where} failed: {self.last_disconnect_reason}")
        return self

    def _connect_here(self, family: int, host: str, port: int, timeout: float) -> None:
        # An IP literal: connect from this thread (on loopback the kernel completes it at
        # once), then hand the socket to the loop; the loop's own connect takes a greenlet and
        # two more turns of the loop.
        sock = os_socket(family, socket.SOCK_STREAM)
        late = False
        try:
            sock.setblocking(False)
            error = sock.connect_ex((host, port))
            if error in (errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EAGAIN):
                _, ready, _ = _select([], [sock], [], timeout)
                # Not writable in time: still in progress, where SO_ERROR would read 0.
                late = not ready
                error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) if ready else error
        except BaseException:
            sock.close()
            raise
        if late or error not in (0, errno.EISCONN):
            sock.close()
            reason = CONNECT_TIMEOUT if late else os.strerror(error)
            log.warning("TCP socket disconnected: %s", reason)
            self.last_disconnect_reason = reason
            where = f"{host}:{port}"
            if late:
                raise ConnectionError(f"could not connect to {where} within {timeout} s")
            raise ConnectionError(f"could not connect to {where}: {reason}")
        self._mode = CONNECTING
        self._unix_path = ""
        self._host = host
        self._adopted_sock = sock
        self._adopting = True
        self._loop.call(self._adopt, sock)

    def _adopt(self, sock: socket.socket) -> None:
        try:
            if self._mode != CONNECTING:
                sock.close()  # disconnected before the loop got here
                return
            self._stream = Stream(self)
            self._stream.attach(sock)
        finally:
            self._adopting = False
            self._adopted_sock = None

    def connected(self) -> bool:
        """Return whether the connection is up (also while the loop takes it over)."""
        return self._adopting or super().connected()

    def _connection_sock(self) -> Optional[socket.socket]:
        # Read first: the loop clears it only once the stream holds the socket.
        adopted = self._adopted_sock
        sock = super()._connection_sock()
        return adopted if sock is None else sock

    def start_tls(
        self,
        verify: Union[bool, str] = True,
        peer_name: Optional[str] = None,
        *,
        context: Optional[ssl.SSLContext] = None,
    ) -> Optional[TestClient]:
        """As ``Socket.start_tls``; a verifying call uses ``default_tls_context`` if set
        (the fixtures set one that trusts ``hsock_ca``).

        Returns:
            This client, or ``None`` if it is not connected.
        """
        source = self.default_tls_context
        if context is None and verify is not False and source is not None:
            context = source if isinstance(source, ssl.SSLContext) else source()
        return self if super().start_tls(verify, peer_name, context=context) else None

    startTLS = start_tls

    def _stream_connected(self, stream: Stream) -> None:
        super()._stream_connected(stream)
        self._up.open()

    def _stream_closed(
        self, stream: Stream, reason: str, unread: bytes, lost: Any, error: bool
    ) -> None:
        super()._stream_closed(stream, reason, unread, lost, error)
        self._up.open()
        if self._closing is not None and self._stream is None:
            self._closing.open()

    def _stream_secured(self, stream: Stream) -> None:
        super()._stream_secured(stream)
        self._secured.open()

    def set_callback(self, fn: Optional[ReadCallback] = None) -> TestClient:
        """Send reads queued with ``read`` to ``fn(data, tag)`` instead of the inbox.

        Returns:
            This client.
        """
        super().set_callback(self._on_read)
        self._user_callback = fn
        return self

    setCallback = set_callback

    def save(self, path: str) -> None:
        """Write this connection's conversation as a recording (see ``MockServer.replay``)."""
        from pytest_hsocket._core.record import dump_recording, recording_from_transcripts

        dump_recording(recording_from_transcripts([self.transcript], server_side=False), path)

    def close(self, *, wait: bool = True) -> None:
        """Close once what was written is sent: the peer gets every byte, then the end (FIN).

        ``disconnect()`` is hs.socket's: it drops writes still queued. ``close()`` is the
        test's "I am done": a last large ``write`` reaches the server before it judges. After
        the FIN it keeps reading until the peer ends its side too (at most ``LINGER`` s): a
        socket closed with bytes unread resets the connection, which can destroy data the
        peer has not read yet.

        Args:
            wait: True waits for the writes to go out (at most ``wait_timeout``, then the
                rest is dropped). False queues the close on the socket loop and returns at
                once; ``wait_closed()`` waits for it. The fixtures close their clients so.
        """
        if self._mode == IDLE and self._stream is None:
            return
        self._closing = Gate()
        self._loop.call(self._finish)
        if wait:
            self.wait_closed()

    def wait_closed(self, timeout: Optional[float] = None) -> bool:
        """Wait until ``close(wait=False)`` has sent what was written and closed.

        Args:
            timeout: Seconds to wait (``wait_timeout`` by default); past it the connection
                is closed at once, dropping what is left (a peer that never reads).
        Returns:
            True if every byte went out (or there was no close to wait for).
        """
        gate = self._closing
        if gate is None:
            return True
        limit = self._limit(timeout, "wait_closed()")
        if gate.wait(limit):
            return True
        log.warning("%s: writes not sent within %s s; closing anyway", self.transcript.name, limit)
        self.disconnect()
        return False

    def _finish(self) -> None:
        stream = self._stream
        if stream is not None and not stream.closed and stream.sock is not None:
            # Closes, and reports it, once the writes are in the kernel and the server has
            # ended its side too, or LINGER seconds after the FIN if it keeps its side open.
            stream.finish(linger=min(self.wait_timeout, LINGER))
        else:
            self._disconnect()
        gate = self._closing
        if gate is not None and self._stream is None:
            gate.open()


def open_client(
    target: Union[str, Any],
    port: Optional[int] = None,
    *,
    wait_timeout: float = 5.0,
    tls: Optional[ssl.SSLContext] = None,
    peer_name: Optional[str] = None,
) -> TestClient:
    """Open a :class:`TestClient` to ``(host, port)``, a Unix path, or a server with ``.address``.

    Raises:
        ConnectionError: If the connection fails.
        TypeError: If ``target`` is none of those.
    """
    options: dict[str, Any] = {"wait_timeout": wait_timeout, "tls": tls, "peer_name": peer_name}
    if isinstance(target, (str, os.PathLike)):
        return TestClient.open(os.fspath(target), port, **options)
    path = getattr(target, "path", None)
    if path:
        if tls is not None and peer_name is None:
            options["peer_name"] = "localhost"
        return TestClient.open(path, **options)
    address = getattr(target, "address", None)
    if isinstance(address, tuple) and len(address) >= 2:
        return TestClient.open(address[0], address[1], **options)
    raise TypeError(f"connect to (host, port), a Unix path or a server, not {target!r}")
