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
  connection 1 of the new server is one made after ``start()``. One accept loop per listener
  takes each connection from the backlog and the server it belongs to under one lock, which
  ``start()`` holds while it drains and lends: nothing waits for the loop.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
from typing import Any, Optional

from pytest_hsocket._core.errors import InvalidThreadUseError
from pytest_hsocket._helpers.mockserver import MockServer
from pytest_hsocket._io.listener import Acceptor, bind_listener
from pytest_hsocket._loop.hub import get_loop
from pytest_hsocket._loop.originals import allocate_lock
from pytest_hsocket._loop.sync import Gate

log = logging.getLogger(__name__)

__all__ = ["ServerPool"]


class _Lease:
    """One pooled listener, its accept loop, and the server it is lent to (or ``None``)."""

    __slots__ = ("acceptor", "closed", "lock", "port", "server", "sock")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.port: int = sock.getsockname()[1]
        self.server: Optional[MockServer] = None
        self.acceptor: Optional[Acceptor] = None
        self.closed = False
        # Held while a connection is taken from the backlog and handed to the server it goes
        # to, and while start() drains the backlog and lends the listener: so a connection
        # that was in the backlog before start() can never reach the new server.
        self.lock: Any = allocate_lock()

    def start_accepting(self) -> None:
        """Accept for whichever server is lent the listener, for its lifetime (on the loop)."""
        if not self.closed:
            self.acceptor = Acceptor(
                self.sock, lambda: not self.closed, self._hand_over, lock=self.lock
            )

    def _hand_over(self, conn: socket.socket) -> None:
        # Under the lock: to the server lent the listener now, or closed if there is none.
        server = self.server
        if server is None or not server.holds_listener(self.sock):
            conn.close()
        else:
            server.accept_connection(conn)

    def accept_pending(self) -> None:
        """Hand the server lent the listener every connection waiting in the backlog now (on the
        loop): a client the test connected just before its end is the test's, though the accept
        loop has not had its turn yet. The lent server calls it as it would its own acceptor's."""
        acceptor = self.acceptor
        if acceptor is not None:
            acceptor.accept_pending()  # under the lock, through _hand_over, as the accept loop

    def stop(self) -> None:
        """Stop accepting and close the listener (on the loop); idempotent.

        It is also what a lent server's ``_acceptor.stop()`` does when the test closes the
        server.
        """
        self.closed = True
        self.server = None
        acceptor, self.acceptor = self.acceptor, None
        if acceptor is not None:
            acceptor.stop(close_listener=False)  # the watcher stops before the close below
        with contextlib.suppress(OSError):
            self.sock.close()


def _drain(sock: socket.socket) -> None:
    # Close every connection waiting in the backlog (the listener is non-blocking).
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
        else:
            lease = _Lease(bind_listener(self.HOST, 0, ""))  # a plain OS socket: no loop needed
            self._loop.call(lease.start_accepting)
        server = MockServer(name=name, wait_timeout=wait_timeout)
        # The loop does not know this object yet: set it up here; it is lent (under the
        # lease's lock, after the backlog is emptied) only once it is ready to accept.
        # A test's server.close() stops the lease (Lease.stop).
        server.adopt_listener(lease.sock, lease, f"{self.HOST}:{lease.port}")
        with lease.lock:
            _drain(lease.sock)
            lease.server = server
        self._lent[id(server)] = lease
        return server

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
        if not server.holds_listener(lease.sock):
            # The test closed it (the listener too): this listener is done with.
            server.close()
            self._loop.run_sync(lease.stop)
            return
        deadline = time.monotonic() + server.wait_timeout
        while True:
            # One round trip when nothing is in flight: settle and detach in the same call.
            gates = self._loop.run_sync(
                lambda: self._settle_or_detach(lease, server, False), late=True
            )
            if not gates:
                break
            if not all(gate.wait(max(deadline - time.monotonic(), 0.0)) for gate in gates):
                self._loop.run_sync(lambda: self._settle_or_detach(lease, server, True))
                break
        if len(self._idle) < self.keep:
            self._idle.append(lease)
        else:
            self._loop.run_sync(lease.stop)

    def _settle_or_detach(self, lease: _Lease, server: MockServer, force: bool) -> list[Gate]:
        if server.holds_listener(lease.sock) and not force:
            _, gates = server.pull_and_mark()  # the backlog first (accept_pending), then reads
            if gates:
                return gates
        # Stop accepting for it, close its connections (as _close_server does, without closing
        # the listener), and close whatever waits in the backlog.
        with lease.lock:
            lease.server = None
            _drain(lease.sock)
        if server.holds_listener(lease.sock):
            server.release_listener()
        return []

    def close(self) -> None:
        """Close every listener; a server still lent is closed as by ``server.close()``."""
        leases = self._idle + list(self._lent.values())
        for lease in self._lent.values():
            if lease.server is not None:
                lease.server.close()
        self._idle, self._lent = [], {}
        if leases:

            def stop_all() -> None:
                for lease in leases:
                    lease.stop()

            self._loop.run_sync(stop_all)

    def __repr__(self) -> str:
        return f"<ServerPool {len(self._idle)} idle, {len(self._lent)} lent>"
