"""``hsocket.new`` and ``hsocket.server``: the module functions that make a TCP socket."""

from __future__ import annotations

from typing import Optional, Union

from pytest_hsocket._hs.tcp import ReadCallback, Socket


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
