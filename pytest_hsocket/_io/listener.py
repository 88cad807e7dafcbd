"""Listening sockets: binding a TCP port or a Unix path, and the accept loop."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import stat
from typing import Any, Callable, Optional

import gevent

import pytest_hsocket._core.platform as _platform
import pytest_hsocket._loop.originals as _originals
from pytest_hsocket._io.stream import Closed, os_socket

log = logging.getLogger(__name__)

ACCEPT_RETRY = 0.05
"""Seconds the accept loop waits after a failed accept (e.g. no descriptor left)."""

LISTEN_BACKLOG = 4096
"""Large enough that thousands of clients connecting at once are not dropped and retried."""

# Binding a local address resolves at most /etc/hosts: the plain call is fast, and a patched
# one would try to switch greenlets inside the hub.
_getaddrinfo: Callable[..., Any] = _originals.getaddrinfo


def bind_listener(host: str, port: int, path: str) -> socket.socket:
    """Bind and listen on ``host``:``port`` or, when ``path`` is set, on that Unix path.

    Returns:
        A non-blocking listening socket.
    Raises:
        OSError: If binding fails (its ``strerror`` is the reason to log).
    """
    sock = _bind_unix(path) if path else _bind_tcp(host, port)
    try:
        sock.listen(LISTEN_BACKLOG)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def _bind_tcp(host: str, port: int) -> socket.socket:
    infos = _getaddrinfo(host, port, 0, socket.SOCK_STREAM, 0, socket.AI_PASSIVE)
    family, _, _, _, addr = infos[0]
    sock = os_socket(family, socket.SOCK_STREAM)
    try:
        for level, option, value in _platform.tcp_listener_options():
            sock.setsockopt(level, option, value)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(addr)
    except BaseException:
        sock.close()
        raise
    return sock


def _bind_unix(path: str) -> socket.socket:
    family = _platform.unix_family()  # OSError with the reason where there is none
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        mode = None
    if mode is not None:
        if not stat.S_ISSOCK(mode):
            raise OSError(0, f"a file that is not a socket exists at {path!r}")
        probe = os_socket(family, socket.SOCK_STREAM)
        try:
            probe.connect(path)
        except OSError:
            os.unlink(path)  # stale: nobody accepts on it
        else:
            raise OSError(0, "Address already in use")
        finally:
            probe.close()
    sock = os_socket(family, socket.SOCK_STREAM)
    try:
        sock.bind(path)
        # Nobody can connect before listen(), so there is no window at a wider mode.
        os.chmod(path, 0o600)
    except BaseException:
        sock.close()
        raise
    return sock


def accept_one(listener: socket.socket) -> socket.socket:
    """Accept one waiting connection: non-blocking, with ``TCP_NODELAY`` on TCP.

    Raises:
        BlockingIOError: If none is waiting.
        OSError: As ``accept`` (e.g. out of descriptors).
    """
    # Built from the class captured at import, not socket.socket: pytest-socket's
    # --disable-socket swaps that global, and accept() would go through it.
    fd, _ = listener._accept()  # type: ignore[attr-defined]
    conn = os_socket(listener.family, listener.type, listener.proto, fileno=fd)
    conn.setblocking(False)
    if not _platform.is_unix_family(listener.family):
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return conn


class Acceptor:
    """The accept loop of one listener: a greenlet on the socket loop that accepts connections
    (see :func:`accept_one`) and hands each to ``on_accept`` while ``still_listening()``.

    With ``lock``, each accept and its ``on_accept`` happen under it (a pooled listener lends
    itself to one server after another under that lock). Create it on the loop; :meth:`stop`
    ends it.
    """

    def __init__(
        self,
        listener: socket.socket,
        still_listening: Callable[[], bool],
        on_accept: Callable[[socket.socket], None],
        *,
        lock: Optional[Any] = None,
    ) -> None:
        self.listener = listener
        self._lock = lock if lock is not None else contextlib.nullcontext()
        self._still_listening = still_listening
        self._on_accept = on_accept
        self._watcher = gevent.get_hub().loop.io(listener.fileno(), 1)
        self._greenlet = gevent.spawn(self._run)

    def accept_pending(self) -> None:
        """Accept every connection waiting in the backlog now, and hand each to ``on_accept``
        (on the loop): what a client connected before this call is taken, though the accept
        loop has not had its turn yet."""
        while self._still_listening():
            with self._lock:
                try:
                    conn = accept_one(self.listener)
                except OSError:  # nothing waiting (BlockingIOError), or out of descriptors
                    return
                self._on_accept(conn)

    def stop(self, close_listener: bool = True) -> None:
        """End the loop and (by default) close the listener; idempotent. Call on the loop.

        The loop's watcher on the descriptor stops first: libev aborts the whole process
        (``epoll_modify`` assertion) when it later meets a watcher whose descriptor was
        closed under it, and killing the greenlet only stops the watcher a loop turn later.
        """
        self._watcher.stop()
        if self._greenlet is not gevent.getcurrent():
            self._greenlet.kill(Closed, block=False)
        if close_listener:
            self.listener.close()

    def _run(self) -> None:
        still_listening, on_accept = self._still_listening, self._on_accept
        hub = gevent.get_hub()
        listener = self.listener
        watcher = self._watcher
        try:
            while still_listening():
                accepted, error = False, None
                with self._lock:
                    try:
                        conn = accept_one(listener)
                    except (BlockingIOError, InterruptedError):
                        pass
                    except OSError as exc:
                        error = exc
                    else:
                        on_accept(conn)
                        accepted = True
                if accepted:
                    continue
                if error is None:
                    hub.wait(watcher)
                    continue
                if not still_listening():
                    return
                # Out of descriptors (EMFILE/ENFILE/ENOBUFS): the listener stays, so keep going
                # once some are free again instead of leaving clients in the backlog for ever.
                log.error("Unable to accept a connection: %s", error)
                gevent.sleep(ACCEPT_RETRY)
        except Closed:
            pass
        finally:
            watcher.close()
