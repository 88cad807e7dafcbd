"""Listening sockets kept for one mock server after another: the fixtures' per-session pool.

Opening a listener and closing it again costs two round trips to the socket loop per test.
A :class:`ServerPool` keeps plain TCP listeners on 127.0.0.1 open and lends each to one fresh
:class:`~pytest_hsocket.testing.MockServer` at a time. The server object is new every time
(its script, transcripts, hooks, callback and settings start empty); only the OS socket, and so
the port, is reused.

No connection crosses from one borrower to the next:

- ``release()`` processes what clients sent (as ``MockServer.close()``), then closes every
  connection the server accepted and every one still waiting in the kernel's backlog;
- ``start()`` drains the backlog again before the new server accepts anything, so a client
  that connected between two tests (a late retry of the previous test's code) is closed, and
  connection 1 of the new server is one made after ``start()``.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from typing import Optional

import gevent

from ._base import SERVER
from ._errors import InvalidThreadUseError
from ._listener import accept_forever, bind_listener
from ._loop import get_loop
from ._mockserver import MockServer
from ._sync import Gate

__all__ = ["ServerPool"]


class _Lease:
    """One pooled listener, and the server it is lent to (``None`` between tests)."""

    __slots__ = ("port", "server", "sock")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.port: int = sock.getsockname()[1]
        self.server: Optional[MockServer] = None


def _drain(sock: socket.socket) -> None:
    # Close every connection waiting in the backlog. The listener is non-blocking, and nobody
    # else accepts on it now: the previous server's acceptor stopped at release().
    while True:
        try:
            fd, _ = sock._accept()  # type: ignore[attr-defined]
        except OSError:
            return
        os.close(fd)


class ServerPool:
    """Lends pooled 127.0.0.1 listeners to fresh mock servers (see the module docstring).

    Args:
        keep: How many idle listeners to keep; more are closed when released.
    """

    HOST = "127.0.0.1"

    def __init__(self, *, keep: int = 4) -> None:
        self.keep = keep
        self._loop = get_loop()
        self._idle: list[_Lease] = []
        self._lent: dict[int, _Lease] = {}

    def start(self, *, name: str = "hsock_server", wait_timeout: float = 5.0) -> MockServer:
        """Return a new mock server listening on a pooled port of 127.0.0.1.

        It is what ``MockServer.start(name=name, wait_timeout=wait_timeout)`` returns, except
        that its port may be one an earlier server of this pool had. Give it back with
        :meth:`release` (or close it as any server: its listener is then not reused).

        Raises:
            OSError: If a new listener cannot be bound.
        """
        if self._idle:
            lease = self._idle.pop()
            _drain(lease.sock)
        else:
            lease = _Lease(bind_listener(self.HOST, 0, ""))  # a plain OS socket: no loop needed
        server = MockServer(name=name, wait_timeout=wait_timeout)
        # The loop does not know this object yet: set it up here, then start accepting there.
        server._listener = lease.sock
        server._mode = SERVER
        server._where = f"{self.HOST}:{lease.port}"
        lease.server = server
        self._lent[id(server)] = lease
        self._loop.call(self._accept, lease, server)
        return server

    def _accept(self, lease: _Lease, server: MockServer) -> None:
        sock = lease.sock
        if lease.server is not server or server._listener is not sock:
            return  # released, or closed by the test, before the loop got here
        server._acceptor = gevent.spawn(
            accept_forever,
            sock,
            lambda: lease.server is server and server._listener is sock,
            server._accepted,
        )

    def owns(self, server: MockServer) -> bool:
        """Whether ``server`` was started by this pool and not yet released."""
        return id(server) in self._lent

    def release(self, server: MockServer) -> None:
        """Settle ``server`` and close its connections; keep its listener for the next one.

        As ``server.close()``: what clients sent before now is processed first (up to the
        server's ``wait_timeout``), so that ``check()`` sees it. A server the test closed (or
        made listen elsewhere) is closed as usual and its listener is not reused.

        Raises:
            InvalidThreadUseError: If called on the socket loop.
        """
        if self._loop.on_thread():
            raise InvalidThreadUseError("release() waits for the loop; call it from the test")
        lease = self._lent.pop(id(server), None)
        if lease is None:
            server.close()
            return
        if server._listener is not lease.sock:
            lease.server = None
            server.close()
            self._loop.call(lease.sock.close)  # already closed by disconnect(): harmless
            return
        deadline = time.monotonic() + server.wait_timeout
        while True:
            # One round trip when nothing is in flight: settle and detach in the same call.
            gates = self._loop.run_sync(lambda: self._settle_or_detach(lease, server, False))
            if not gates:
                break
            if not all(gate.wait(max(deadline - time.monotonic(), 0.0)) for gate in gates):
                self._loop.run_sync(lambda: self._settle_or_detach(lease, server, True))
                break
        if len(self._idle) < self.keep:
            self._idle.append(lease)
        else:
            self._loop.call(lease.sock.close)

    def _settle_or_detach(self, lease: _Lease, server: MockServer, force: bool) -> list[Gate]:
        if server._listener is lease.sock and not force:
            _, gates = server._pull_and_mark()
            if gates:
                return gates
        # Stop accepting, close the server's connections, keep the listener (as _close_server
        # does, without closing it), and close whatever waits in the backlog.
        lease.server = None
        if server._listener is lease.sock:
            server._listener = None
            server._close_server()
        _drain(lease.sock)
        return []

    def close(self) -> None:
        """Close every idle listener, and every server still lent (as ``server.close()``)."""
        lent = list(self._lent.values())
        self._lent.clear()
        for lease in lent:
            if lease.server is not None:
                lease.server.close()
        idle, self._idle = self._idle + lent, []
        if idle:

            def close_all() -> None:
                for lease in idle:
                    with contextlib.suppress(OSError):
                        lease.sock.close()

            self._loop.run_sync(close_all)

    def __repr__(self) -> str:
        return f"<ServerPool {len(self._idle)} idle, {len(self._lent)} lent>"
