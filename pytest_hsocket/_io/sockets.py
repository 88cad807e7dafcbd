"""What every socket-loop connection shares: the OS socket class, the reasons a connection
ends (the original's words), and the exception thrown into its greenlets when it closes."""

from __future__ import annotations

import errno
import os
import socket
from collections.abc import Iterable
from typing import Any, Callable

from gevent import GreenletExit

from pytest_hsocket._loop.originals import os_socket as os_socket

# After gevent.monkey.patch_all() the socket module makes cooperative sockets that belong to
# the caller's hub; the loop drives plain non-blocking OS sockets itself (taken at package
# load, before a test's setup could replace socket.socket: see _originals).

RECV_SIZE = 256 * 1024
HIGH_WATER = 1024 * 1024
"""Buffered bytes with no read pending at which the reader stops pulling from the kernel."""
LOW_WATER = 512 * 1024
"""Buffered bytes under which a stopped reader starts again while reads keep completing, so
the kernel's buffer is never left to fill while the application drains ours (bulk transfers
would stall on every refill). A bytearray over a few MiB would also be copied whole by each
append, so the two marks stay small."""

PEER_CLOSED = "Socket closed by remote peer"
READ_TIMEOUT = "Read operation timed out"
WRITE_TIMEOUT = "Write operation timed out"
CONNECT_TIMEOUT = "Attempt to connect to host timed out"
LOCAL_CLOSE = "(null)"
"""The original's reason for a local ``disconnect()`` (an Objective-C nil error)."""

WriteCallback = Callable[[int], object]


class Closed(GreenletExit):  # type: ignore[misc]
    """Thrown into a connection's greenlets when it closes."""


def await_connect(hub: Any, sock: socket.socket, addr: Any) -> None:
    """Connect a non-blocking socket, waiting on the hub (in a greenlet on the loop).

    Raises:
        OSError: With the errno the connection failed with.
    """
    err = sock.connect_ex(addr)
    if err in (errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EAGAIN, errno.EALREADY):
        watcher = hub.loop.io(sock.fileno(), 2)
        try:
            hub.wait(watcher)
        finally:
            watcher.close()
        err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    if err not in (0, errno.EISCONN):
        raise OSError(err, os.strerror(err))


def connect_first(
    hub: Any, candidates: Iterable[tuple[int, Any]], *, nodelay: bool = False
) -> socket.socket:
    """Connect a non-blocking TCP (or Unix) socket to the first ``(family, address)`` of
    ``candidates`` that accepts, waiting on the hub (in a greenlet on the loop).

    Args:
        nodelay: Also set ``TCP_NODELAY`` (a failure there counts as that candidate's).
    Returns:
        The connected socket.
    Raises:
        OSError: The last candidate's error (``ECONNREFUSED`` if there was none).
    """
    last = OSError(errno.ECONNREFUSED, os.strerror(errno.ECONNREFUSED))
    for family, address in candidates:
        sock = os_socket(family, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            await_connect(hub, sock, address)
            if nodelay:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError as exc:
            sock.close()
            last = exc
            continue
        except BaseException:
            sock.close()
            raise
        return sock
    raise last
