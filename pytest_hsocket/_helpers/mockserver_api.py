"""The hs.socket server API of a mock server, handed to the listening socket it has.

``MockServer`` is no socket; this base gives it, method by method, what the docs say you can
drive it with as an ``hsocket.server``: callbacks and hooks, ``read``/``write`` to its clients,
``disconnect``, the queries. Client-only calls (``connect``) are not here: a mock server
listens. Each method forwards to the ``MockListener`` and returns the mock server, so calls
chain as on a socket.
"""

from __future__ import annotations

import ssl
from typing import Optional, TypeVar, Union

from pytest_hsocket._core.errors import CallbackError
from pytest_hsocket._helpers.mockserver_sockets import MockListener
from pytest_hsocket._hs.info import InfoValue
from pytest_hsocket._hs.tcp import (
    ConnectHook,
    DisconnectHook,
    Message,
    ReadCallback,
    ReadDelimiter,
    Socket,
)
from pytest_hsocket._io.sockets import WriteCallback

S = TypeVar("S", bound="ServerSocketApi")

__all__ = ["ServerSocketApi"]


class ServerSocketApi:
    """What a mock server does as an hs.socket server, through the listener it has."""

    def __init__(self, listener: MockListener) -> None:
        self._socket = listener

    # -- callbacks and hooks ----------------------------------------------------------------

    def set_callback(self: S, fn: Optional[ReadCallback] = None) -> S:
        """Drive the server hs.socket-style: ``fn(data, tag[, client])``; ``None`` = the script.

        Call it before clients connect: it switches the scripts off for every connection.

        Returns:
            This server.
        Raises:
            TypeError: If ``fn`` is not callable.
        """
        self._socket.set_callback(fn)
        return self

    setCallback = set_callback

    def set_timeout(self: S, timeout: float) -> S:
        """Set the timeout, in seconds, of the operations of connections accepted from now on.

        Returns:
            This server.
        Raises:
            TypeError: If ``timeout`` is not a number.
        """
        self._socket.set_timeout(timeout)
        return self

    setTimeout = set_timeout

    def on_connect(self: S, fn: ConnectHook) -> S:
        """Call ``fn(client)`` on the loop for each connection accepted from now on.

        The place to queue a client's first reads when the server is driven by a callback.

        Returns:
            This server.
        Raises:
            TypeError: If ``fn`` is not callable.
        """
        self._socket.on_connect(fn)
        return self

    def on_disconnect(self: S, fn: DisconnectHook) -> S:
        """Call ``fn(reason)`` on the loop each time the server stops listening.

        Returns:
            This server.
        Raises:
            TypeError: If ``fn`` is not callable.
        """
        self._socket.on_disconnect(fn)
        return self

    # -- listening --------------------------------------------------------------------------

    def listen(self: S, port: Union[int, str], *, host: str = "127.0.0.1") -> Optional[S]:
        """Listen on ``host``:``port`` (0 = the OS picks) or on a Unix socket path.

        Returns:
            This server, or ``None`` with ``Unable to bind ...`` logged at ERROR.
        Raises:
            TypeError, ValueError: For a bad port, path or host (as ``hsocket.server``).
        """
        return self if self._socket.listen(port, host=host) is not None else None

    def start_tls(
        self: S,
        verify: Union[bool, str] = True,
        peer_name: Optional[str] = None,
        *,
        context: Optional[ssl.SSLContext] = None,
    ) -> Optional[S]:
        """Speak TLS, with ``context``, from the first byte of every client accepted from now on.

        ``verify`` and ``peer_name`` are the hs.socket signature's; a server side needs only
        ``context``.

        Returns:
            This server, or ``None`` with an ERROR log if it is not listening.
        Raises:
            ValueError: If ``context`` is missing.
        """
        done = self._socket.start_tls(verify, peer_name, context=context)
        return self if done is not None else None

    startTLS = start_tls

    # -- reading and writing ----------------------------------------------------------------

    def read(self: S, delimiter: ReadDelimiter, tag: int = -1) -> Optional[S]:
        """Queue a read on each client connected now; ``set_callback``'s function gets them.

        Args:
            delimiter: A byte count, or bytes / str / compiled bytes regex to read up to and
                including.
            tag: Handed back to the callback; -1 by default.
        Returns:
            This server, or ``None`` with an ERROR log (``No callback defined!``: the script
            plays, set a callback first; or not listening).
        Raises:
            TypeError, ValueError: For a bad delimiter or tag.
        """
        return self if self._socket.read(delimiter, tag) is not None else None

    receive = read

    def write(
        self: S,
        message: Message,
        tag: Union[int, WriteCallback] = -1,
        fn: Optional[WriteCallback] = None,
    ) -> Optional[S]:
        """Send ``message`` to every client connected now (cut under ``hsock_fragment``).

        Args:
            message: bytes, or a str (sent as UTF-8).
            tag: An int handed to ``fn``; ``write(message, fn)`` also works.
            fn: Called as ``fn(tag)`` on the loop once every client took the bytes.
        Returns:
            This server, or ``None`` with an ERROR log if it is not listening.
        Raises:
            TypeError: For a bad message, tag or ``fn``.
        """
        return self if self._socket.write(message, tag, fn) is not None else None

    send = write

    def disconnect(self: S) -> S:
        """Stop listening and disconnect every client at once (``close()`` settles first).

        Returns:
            This server.
        """
        self._socket.disconnect()
        return self

    # -- queries ----------------------------------------------------------------------------

    def connected(self) -> bool:
        """Return whether a client is connected now."""
        return self._socket.connected()

    def connections(self) -> int:
        """Return how many clients are connected now."""
        return self._socket.connections()

    def clients(self) -> list[Socket]:
        """Return the connections the server holds now (a copy)."""
        return self._socket.clients()

    @property
    def is_server(self) -> bool:
        """Whether it is listening."""
        return self._socket.is_server

    def info(self) -> dict[str, InfoValue]:
        """Return the listening socket's 19 info keys (as ``hsocket.server(...).info()``)."""
        return self._socket.info()

    @property
    def callback_errors(self) -> list[CallbackError]:
        """What callbacks of the server and its connections raised, in order."""
        return self._socket.callback_errors

    @property
    def last_disconnect_reason(self) -> str:
        """Why the server last stopped listening, in the original's words, or ``""``."""
        return self._socket.last_disconnect_reason

    def __str__(self) -> str:
        return str(self._socket)
