"""The hs.socket sockets a mock server has: its listener, and the connections it accepts.

A ``MockServer`` is not a socket. It *has* a :class:`MockListener` (an ``hsocket.server``
socket whose read callback, ``on_connect`` hook and per-client tap are its ``ScriptPlayer``'s)
and the player. These two classes are where the mock server meets the hs.socket layer: they
give the player, the server and the pool documented methods for what they do with a socket,
so that none of them touches a socket's private state.
"""

from __future__ import annotations

import os
import socket
from collections import deque
from typing import TYPE_CHECKING, Any, Callable, Optional

import gevent

from pytest_hsocket._core.fragment import Fragmenter
from pytest_hsocket._core.framing import ReadRequest
from pytest_hsocket._core.platform import is_unix_family
from pytest_hsocket._hs.base import SERVER
from pytest_hsocket._hs.family import AllWritten
from pytest_hsocket._hs.info import endpoint
from pytest_hsocket._hs.read_delivery import ReadCallback
from pytest_hsocket._hs.tcp import Socket
from pytest_hsocket._io.sockets import WriteCallback

if TYPE_CHECKING:
    from pytest_hsocket._helpers.mockserver_play import ScriptPlayer

__all__ = ["MockConnection", "MockListener", "unix_socket_dir"]

_ENDINGS = ("close", "reset", "half_close")


class MockConnection(Socket):
    """A mock server's accepted connection.

    A callback of the server's that raises on it ends it at once (``on_error``: ``"close"``
    or ``"reset"``; ``"keep"`` leaves it open), so no client under test waits for its own
    timeout; the error fails the test at teardown. Under ``hsock_fragment`` every write it
    makes (a rule's response, a ``set_callback`` server's ``client.write``) goes out cut.

    The methods below ``end_on_error`` are the mock server's own handles on the connection
    (its script player and ``settle()`` use them, on the loop).
    """

    def __init__(
        self,
        fn: Optional[ReadCallback],
        parent: Socket,
        fragmenter: Optional[Fragmenter],
        on_error: str,
    ) -> None:
        super().__init__(fn, _parent=parent)
        self._fragmenter = fragmenter
        self._on_error = on_error
        self._cut_writes: deque[tuple[list[bytes], int, Optional[WriteCallback]]] = deque()
        self._sending = False  # a greenlet is sending _cut_writes, in order

    def _callback_failed(self, where: str, exc: BaseException) -> None:
        super()._callback_failed(where, exc)
        self.end_on_error(f"{where} raised {type(exc).__name__}")

    def end_on_error(self, why: str) -> None:
        """End the connection as ``on_error`` says, because ``why`` (a callback raised)."""
        stream = self._stream
        if stream is None or stream.closed or self._on_error == "keep":
            return
        tap = self._tap
        if tap is not None:
            tap("callback error", b"", -1, f"{why}; connection {self._on_error}")
        if self._on_error == "reset":
            stream.reset()
        else:
            stream.finish()

    @property
    def attached(self) -> bool:
        """Whether it still has its stream (False once the connection has closed)."""
        return self._stream is not None

    @property
    def busy(self) -> bool:
        """Whether callbacks of this connection are queued or running."""
        return self._callbacks.busy

    def queue_read(self, request: ReadRequest) -> None:
        """Queue ``request`` on the connection now, behind the reads queued before (on the loop).

        The script player reads with it (``AVAILABLE``: whatever arrived), as the server's
        ``read()`` would, without the argument checks and the hop to the loop.
        """
        self._push_read(request)

    def send_now(self, data: bytes, tag: int = -1, fn: Optional[WriteCallback] = None) -> None:
        """Queue ``data`` for sending now, cut under ``hsock_fragment`` (on the loop).

        Args:
            data: The bytes.
            tag: Handed to ``fn``.
            fn: Called as ``fn(tag)`` once the bytes are in the kernel.
        """
        self._push_write(data, tag, fn)

    def post(self, where: str, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` in the connection's callback greenlet, after what is queued there
        (on the loop); ``where`` names it if it raises."""
        self._post(where, fn, *args)

    def pull_now(self) -> int:
        """Read what the kernel holds for the connection now (on the loop).

        Returns:
            How many bytes were read (0 once it is closed).
        """
        stream = self._stream
        return stream.pull_now() if stream is not None else 0

    def end(self, how: str) -> None:
        """End the connection now (on the loop); nothing happens once it is closed.

        Args:
            how: ``"close"`` (a FIN once queued writes are out), ``"reset"`` (an RST) or
                ``"half_close"`` (stop sending once queued writes are out; keep reading).
        Raises:
            ValueError: For another ``how``.
        """
        if how not in _ENDINGS:
            raise ValueError(f"end() how must be one of {_ENDINGS}, not {how!r}")
        stream = self._stream
        if stream is None:
            return
        if how == "reset":
            stream.reset()
        elif how == "half_close":
            stream.half_close()
        else:
            stream.finish()

    def _push_write(self, data: bytes, tag: int, fn: Optional[WriteCallback]) -> None:
        if self._fragmenter is None:
            super()._push_write(data, tag, fn)
            return
        if len(data) < 2:
            if not self._sending:
                super()._push_write(data, tag, fn)
                return
            pieces = [data]
        else:
            pieces = self._fragmenter.cut(bytes(data))
        self._cut_writes.append((pieces, tag, fn))
        if self._sending:
            return  # whoever sends the earlier writes sends this one after them
        self._sending = True
        if gevent.getcurrent() is gevent.get_hub():
            gevent.spawn(self._send_cut)  # the loop itself must not wait
        else:
            self._send_cut()  # a callback's greenlet: in line, so a disconnect() waits for it

    def _send_cut(self) -> None:
        fragmenter = self._fragmenter
        assert fragmenter is not None
        try:
            while self._cut_writes:
                pieces, tag, fn = self._cut_writes[0]
                for index, piece in enumerate(pieces):
                    if index:
                        gevent.sleep(fragmenter.pause)  # a separate recv() for each piece
                    last = index == len(pieces) - 1
                    super()._push_write(piece, tag if last else -1, fn if last else None)
                self._cut_writes.popleft()
        finally:
            self._sending = False


class MockListener(Socket):
    """A mock server's listening socket: an hs.socket server that plays ``player``'s script.

    Its read callback is ``player.on_data`` until ``set_callback`` gives it the user's; each
    client it accepts is a :class:`MockConnection` whose transcript the player keeps.

    Args:
        player: The script player of the server that has this listener.
    """

    def __init__(self, player: ScriptPlayer) -> None:
        super().__init__(player.on_data)
        self.player = player
        self._client_tap = player.new_connection
        self.on_connect(player.begin)

    def set_callback(self, fn: Optional[ReadCallback] = None) -> MockListener:
        """Drive the server hs.socket-style: ``fn(data, tag[, client])``; ``None`` = the script.

        Returns:
            This socket.
        Raises:
            TypeError: If ``fn`` is not callable.
        """
        self.player.driven_by_user = fn is not None
        super().set_callback(fn if fn is not None else self.player.on_data)
        return self

    setCallback = set_callback

    def _new_client(self) -> Socket:
        player = self.player
        return MockConnection(self._callback, self, player.fragmenter, player.on_error)

    def _reads_inline(self, client: Any) -> bool:
        return self.player.reads_inline(client)

    def _push_write(self, data: bytes, tag: int, fn: Optional[WriteCallback]) -> None:
        # A broadcast (hsock_server.write) under hsock_fragment: each connection cuts its copy.
        if self.player.fragmenter is None or not self.is_server:
            super()._push_write(data, tag, fn)
            return
        clients = [c for c in self.clients() if isinstance(c, MockConnection) and c.connected()]
        done = AllWritten(len(clients), tag, fn, self._post) if fn is not None else None
        for client in clients:
            client.send_now(data, tag, done)
        if not clients and fn is not None:
            self._post("hs.socket:write callback", fn, tag)

    # -- where it listens -------------------------------------------------------------------

    def bound_ip(self) -> Optional[tuple[str, int]]:
        """``(host, port)`` read off the listening IP socket, or ``None`` (a Unix socket, or
        not listening): cheaper than the 19 keys of ``info()``."""
        listener = self._listener
        if listener is None or is_unix_family(listener.family):
            return None
        try:
            return endpoint(listener.getsockname())
        except OSError:
            return None

    @property
    def path(self) -> str:
        """The Unix socket path it listens on, or ``""``."""
        listener = self._listener
        if listener is not None and not is_unix_family(listener.family):
            return ""
        return str(self.info()["unixSocketPath"])

    # -- a listener lent by a pool ----------------------------------------------------------

    def adopt(self, sock: socket.socket, acceptor: Any) -> None:
        """Listen on ``sock``, which ``acceptor`` accepts on; call it before the loop knows this
        socket. ``acceptor.stop()`` is what ``disconnect()`` calls; ``acceptor`` hands each
        connection to :meth:`take`."""
        self._listener, self._acceptor, self._mode = sock, acceptor, SERVER

    def holds(self, sock: socket.socket) -> bool:
        """Whether it listens on ``sock`` now (a test may have closed it, or listened again)."""
        return self._listener is sock

    def accept_pending(self) -> None:
        """Accept every connection waiting in the listener's backlog now (on the loop), through
        its acceptor (its own, or the pool's that lent it)."""
        acceptor = self._acceptor
        if acceptor is not None:
            acceptor.accept_pending()

    def take(self, conn: socket.socket) -> None:
        """Take ``conn``, accepted on its listener, as a new connection (on the loop)."""
        self._accepted(conn)

    def give_back(self) -> None:
        """Forget an adopted listener, open, and disconnect every connection (on the loop)."""
        self._listener = self._acceptor = None
        self._close_server()

    def __repr__(self) -> str:
        return f"<{self.player.name} listener: {self}>"


def unix_socket_dir() -> str:
    """Return a new private folder (mode 0700) for a Unix socket file."""
    import tempfile

    path = tempfile.mkdtemp(prefix="hsock-")
    os.chmod(path, 0o700)
    return path
