"""``hsocket.udp``: Hammerspoon's ``hs.socket.udp``, asynchronous UDP sockets.

::

    from pytest_hsocket import udp

    def on_datagram(data: bytes, sockaddr: bytes) -> None:
        sender = udp.parse_address(sockaddr)
        server.send(data.upper(), sender["host"], sender["port"])

    server = udp.server(0, on_datagram).receive()

The callback receives ``(data, sockaddr)``: the datagram as bytes and the sender as BSD
``sockaddr`` bytes (``parse_address`` reads them). Snake_case names, with the original's
camelCase aliases.
"""

from __future__ import annotations

import sys
from typing import Optional

from pytest_hsocket._core.address import parse_address
from pytest_hsocket._hs.defaults import UDP_TIMEOUT, show_on_module
from pytest_hsocket._hs.udp import UdpSocket
from pytest_hsocket._hs.udp_base import DatagramCallback

timeout: float = -1
"""Default send timeout, in seconds, copied by each new UDP socket; negative = none."""
# Kept in the socket layer, which reads it there; this module shows it as its attribute.
show_on_module(sys.modules[__name__], timeout=UDP_TIMEOUT)


def new(fn: Optional[DatagramCallback] = None) -> UdpSocket:
    """Create a UDP socket (its OS socket is made on first need).

    Args:
        fn: The callback ``fn(data, sockaddr)``.
    Returns:
        The socket; it copies this module's ``timeout`` now.
    Raises:
        TypeError: If ``fn`` is not callable.
    """
    return UdpSocket(fn)


def server(
    port: int, fn: Optional[DatagramCallback] = None, *, host: Optional[str] = None
) -> UdpSocket:
    """Create a UDP socket bound to ``host``:``port`` (0 = the OS picks); call ``receive()``.

    ``host`` is ``127.0.0.1`` by default (see ``UdpSocket.listen``).

    Returns:
        The socket; if binding failed (logged at ERROR), as in the original, it is returned
        unbound (``closed()`` is True).
    Raises:
        TypeError, ValueError: For a bad port, host or ``fn``.
    """
    sock = UdpSocket(fn)
    sock.listen(port, host=host)
    return sock


parseAddress = parse_address

__all__ = [
    "DatagramCallback",
    "UdpSocket",
    "new",
    "parseAddress",
    "parse_address",
    "server",
    "timeout",
]
