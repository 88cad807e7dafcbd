"""The scriptable mock server: a listening ``hsocket.server`` socket and a script player.

``MockServer`` is no socket. It has a ``MockListener`` (the hs.socket server socket: it
accepts ``MockConnection`` clients and hands their reads to the player) and a
``ScriptPlayer`` (one conversation per connection); the hs.socket server API it offers is
``ServerSocketApi``'s, forwarded to the listener.
"""

from __future__ import annotations

import os
import socket
import ssl
import time
from typing import Any, Callable, Optional, Union

from pytest_hsocket._core.checks import check_int, check_seconds
from pytest_hsocket._core.errors import HSocketError, InvalidThreadUseError
from pytest_hsocket._core.fragment import Fragmenter
from pytest_hsocket._core.record import (
    PathLike,
    RecordEntry,
    dump_recording,
    load_recording,
    recording_from_transcripts,
    scripts_from_recording,
)
from pytest_hsocket._core.script import Check, MatchSpec, Rule, Script
from pytest_hsocket._core.transcript import Entry, TaggedBytes, Transcript, diff
from pytest_hsocket._helpers.expectations import ExpectationError, raise_problems
from pytest_hsocket._helpers.mockserver_api import ServerSocketApi
from pytest_hsocket._helpers.mockserver_play import ContextSource, ScriptPlayer
from pytest_hsocket._helpers.mockserver_sockets import MockListener, unix_socket_dir
from pytest_hsocket._hs.local_address import LocalAddress
from pytest_hsocket._loop.hub import get_loop
from pytest_hsocket._loop.sync import Gate

__all__ = ["ExpectationError", "MockServer", "raise_problems", "unix_socket_dir"]


class MockServer(ServerSocketApi, LocalAddress):
    """A listening hs.socket server that answers clients from a script.

    Script it with ``expect(...)`` rules (``respond``, ``delay``, ``close``, ``reset``,
    ``start_tls``) and ``greet(...)``; each connection plays the script from its start, on
    its own. ``connection(n)`` gives the n-th connection (1-based) a script of its own, e.g.
    to fail the first attempt of a client that retries. Or drive it as an hs.socket server:
    ``set_callback`` switches the script off (see ``ServerSocketApi`` for the server API).

    Attributes:
        wait_timeout: The longest ``settle()`` and ``close()`` wait for what clients sent.
    """

    __test__ = False

    def __init__(self, *, name: str = "hsock_server", wait_timeout: float = 5.0) -> None:
        self._player = ScriptPlayer(name)
        super().__init__(MockListener(self._player))
        self.wait_timeout = wait_timeout
        self._address_text = ""
        self._loop = get_loop()

    @classmethod
    def start(
        cls,
        port: int = 0,
        *,
        host: str = "127.0.0.1",
        path: Optional[str] = None,
        name: str = "hsock_server",
        wait_timeout: float = 5.0,
        tls: Optional[ssl.SSLContext] = None,
    ) -> MockServer:
        """Create a mock server listening on ``host``:``port`` or the Unix socket ``path``.

        Args:
            port: The port; 0 lets the OS pick.
            host: The address to bind.
            path: A Unix socket path instead of a port.
            name: How messages and transcripts name it.
            wait_timeout: The longest ``close()`` waits for data already sent to be processed.
            tls: A server context: every connection speaks TLS from its first byte.
        Raises:
            HSocketError: If it cannot listen (the reason is in the message).
            TypeError, ValueError: If ``wait_timeout`` is not a number of seconds.
        """
        wait_timeout = check_seconds(wait_timeout, "MockServer.start() wait_timeout")
        server = cls(name=name, wait_timeout=wait_timeout)
        if server.listen(path if path is not None else port, host=host) is None:
            raise HSocketError(f"{name} could not listen on {path or f'{host}:{port}'}")
        server.remember_address()
        if tls is not None:
            server.tls_context = tls
            server.start_tls(context=tls)
        return server

    # -- settings, kept by the script player ------------------------------------------------

    @property
    def name(self) -> str:
        """How messages and transcripts name it (``hsock_server``)."""
        return self._player.name

    @name.setter
    def name(self, value: str) -> None:
        self._player.name = value

    @property
    def script(self) -> Script:
        """The script every connection plays unless ``connection(n)`` says otherwise."""
        return self._player.script

    @script.setter
    def script(self, value: Script) -> None:
        self._player.script = value

    @property
    def tls_context(self) -> Optional[ContextSource]:
        """The server context ``start_tls()`` steps use, or a function making it (the
        fixtures give one whose certificate ``hsock_ca`` issued)."""
        return self._player.tls_context

    @tls_context.setter
    def tls_context(self, value: Optional[ContextSource]) -> None:
        self._player.tls_context = value

    @property
    def off_script(self) -> str:
        """What a connection does when data arrives that no rule can match: ``"close"`` (the
        default: the client sees the end at once instead of waiting for its timeout),
        ``"reset"`` (RST) or ``"keep"`` (stay open, silent). The data is reported at
        ``check()`` either way."""
        return self._player.off_script

    @off_script.setter
    def off_script(self, value: str) -> None:
        self._player.off_script = value

    @property
    def on_error(self) -> str:
        """What a connection does when a callback of the server (``set_callback``'s function,
        a ``respond()`` function or a check) raises on it: ``"close"`` (the default),
        ``"reset"`` (RST) or ``"keep"``. The error fails the test at teardown either way."""
        return self._player.on_error

    @on_error.setter
    def on_error(self, value: str) -> None:
        self._player.on_error = value

    @property
    def fragmenter(self) -> Optional[Fragmenter]:
        """When set, every write of a connection is cut into pieces sent with a short pause
        between them (see ``@pytest.mark.hsock_fragment``)."""
        return self._player.fragmenter

    @fragmenter.setter
    def fragmenter(self, value: Optional[Fragmenter]) -> None:
        self._player.fragmenter = value

    @property
    def transcript_listener(self) -> Optional[Callable[[Transcript, Entry], object]]:
        """Called as ``fn(transcript, entry)`` for every event of every connection as it
        happens (the command line prints them live)."""
        return self._player.transcript_listener

    @transcript_listener.setter
    def transcript_listener(self, value: Optional[Callable[[Transcript, Entry], object]]) -> None:
        self._player.transcript_listener = value

    # -- its address -------------------------------------------------------------------------

    def remember_address(self, address: str = "") -> None:
        """Remember ``address`` (by default its ``url`` now): ``url`` and messages name it so
        after it stops listening."""
        self._address_text = address or self.url

    def adopt_listener(self, sock: socket.socket, acceptor: Any, address: str) -> None:
        """Listen on ``sock``, a listener ``acceptor`` accepts on (a ``ServerPool`` lease).

        Call it before the loop knows this server. ``acceptor.stop()`` is what ``close()``
        calls; ``acceptor`` hands each connection to :meth:`accept_connection`.
        """
        self._socket.adopt(sock, acceptor)
        self._address_text = address

    def holds_listener(self, sock: socket.socket) -> bool:
        """Whether it listens on ``sock`` now (a test may have closed it or moved it)."""
        return self._socket.holds(sock)

    def accept_connection(self, conn: socket.socket) -> None:
        """Take ``conn``, accepted on its listener, as a new connection (on the loop)."""
        self._socket.take(conn)

    def release_listener(self) -> None:
        """Give back an adopted listener, open, and disconnect every connection (on the loop)."""
        self._socket.give_back()

    @property
    def path(self) -> str:
        """The Unix socket path, or ``""``."""
        return self._socket.path

    def _bound_ip(self) -> Optional[tuple[str, int]]:
        return self._socket.bound_ip()

    @property
    def url(self) -> str:
        """``host:port`` with an IPv6 host in brackets, or the Unix path."""
        if not self.is_server and self._address_text:
            return self._address_text
        if self.path:
            return self.path
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    # -- scripting --------------------------------------------------------------------------

    def expect(
        self,
        match: MatchSpec,
        check: Optional[Check] = None,
        *,
        times: Optional[int] = 1,
        ordered: bool = True,
        name: Optional[str] = None,
        shared: bool = False,
    ) -> Rule:
        """Add a rule to the script every connection plays; see ``Script.expect``.

        ``expect(Prefixed("!I"), b"PING")`` frames the request and checks its payload;
        ``shared=True`` counts matches on every connection together.

        Returns:
            The rule, to chain ``respond(...)``, ``delay(...)``, ``close()``... onto.
        Raises:
            TypeError, ValueError: For a bad match, check, times or name.
        """
        return self.script.expect(
            match, check, times=times, ordered=ordered, name=name, shared=shared
        )

    def greet(self, data: Union[bytes, str]) -> MockServer:
        """Send ``data`` to each client as soon as it connects (server-speaks-first protocols).

        Returns:
            This server.
        """
        self.script.greet(data)
        return self

    def connection(self, number: int) -> Script:
        """Return the script of the ``number``-th connection (1-based), created empty.

        Raises:
            TypeError: If ``number`` is not an int.
            ValueError: If ``number`` is not positive.
        """
        check_int(number, "connection() number", 1)
        return self._player.scripts.setdefault(number, Script())

    def replay(self, recording: Union[PathLike, list[RecordEntry]]) -> MockServer:
        """Play back the server's side of a recorded conversation and expect the client's.

        What the client sent becomes exact ``expect`` rules, what the server answered becomes
        their ``respond``; a recording of one connection is played to every connection, one of
        several gives each recorded connection its own script (``connection(n)``).

        Args:
            recording: A file saved by ``hsock_proxy``/``save`` (JSON lines), or its entries.
        Returns:
            This server.
        Raises:
            ValueError: If the file is not a recording.
        """
        if isinstance(recording, (str, os.PathLike)):
            recording = load_recording(recording)
        scripts = scripts_from_recording(list(recording))
        if len(scripts) == 1:
            [script] = scripts.values()
            self.script.rules += script.rules
            self.script.greetings += script.greetings
        else:
            for number, script in scripts.items():
                own = self.connection(number)
                own.rules += script.rules
                own.greetings += script.greetings
        return self

    def save(self, path: PathLike) -> None:
        """Write every connection's conversation so far as a recording (see ``replay``)."""
        dump_recording(recording_from_transcripts(self.transcripts, server_side=True), path)

    @property
    def transcripts(self) -> list[Transcript]:
        """The transcript of every connection so far, in order."""
        return [conn.transcript for conn in self._player.connections]

    def received(self, connection: Optional[int] = None) -> TaggedBytes:
        """Return the bytes clients sent (all connections joined, or the n-th, 1-based).

        The result compares as bytes; a failed ``==`` in pytest shows a byte diff (a hexdump
        diff for binary data) like a tagged read, with the connection's transcript.

        Raises:
            ValueError: If there is no such connection.
        """
        self.settle()
        transcripts = self.transcripts
        if connection is None:
            data = b"".join(t.received() for t in transcripts)
            return TaggedBytes(data, -1, transcripts[0] if transcripts else None)
        if not 1 <= connection <= len(transcripts):
            raise ValueError(
                f"received() connection must be 1-{len(transcripts)}, not {connection!r}"
            )
        transcript = transcripts[connection - 1]
        return TaggedBytes(transcript.received(), -1, transcript)

    def assert_received(
        self, expected: Union[bytes, str], connection: Optional[int] = None
    ) -> None:
        """Fail unless clients sent exactly ``expected``, with a byte diff in the message.

        Raises:
            AssertionError: With the diff (hexdump for binary data).
        """
        __tracebackhide__ = True
        if isinstance(expected, str):
            expected = expected.encode("utf-8")
        actual = self.received(connection)
        if bytes(actual) != expected:
            lines = [f"{self.name} received other bytes than expected", *diff(expected, actual)]
            raise AssertionError("\n".join(lines))

    # -- closing and checking ---------------------------------------------------------------

    def settle(self, timeout: Optional[float] = None) -> None:
        """Process what clients sent before now: bytes in the kernel, callbacks queued.

        Returns once every connection's queued work is done, or after ``timeout`` seconds
        (``wait_timeout`` by default), e.g. when a ``delay`` step is still sleeping.
        """
        if self._loop.on_thread():
            raise InvalidThreadUseError(
                "settle() and close() wait for the loop; call them from the test, not a callback"
            )
        limit = self.wait_timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            pulled, gates = self._loop.run_sync(self.pull_and_mark)
            for gate in gates:
                if not gate.wait(max(deadline - time.monotonic(), 0.0)):
                    return
            if not pulled and not gates:
                return

    def pull_and_mark(self) -> tuple[int, list[Gate]]:
        """Accept the connections waiting in the backlog, read what clients sent now and queue a
        marker behind it (on the loop).

        Returns:
            How many bytes were read, and one gate per connection with something to process
            (only those get a marker), opened once that is processed.
        """
        self._socket.accept_pending()
        return self._player.pull_and_mark()

    def close(self) -> None:
        """Process what clients already sent (see ``settle``), then disconnect everyone."""
        if self.is_server:
            self.settle()
        self.disconnect()

    def problems(self) -> list[str]:
        """Return one line per problem: unmet rules, unexpected data, callback errors."""
        lines = self._player.problems()
        return lines + [f"callback error: {error}" for error in self.callback_errors]

    def check(self, transcripts: bool = True) -> None:
        """Fail if the script was not followed.

        Args:
            transcripts: Whether the message ends with each connection's transcript.
        Raises:
            ExpectationError: Listing every problem (then the transcripts).
        """
        __tracebackhide__ = True
        shown = self.transcripts if transcripts else None
        raise_problems(f"{self.name} ({self.url})", self.problems(), shown)

    def __enter__(self) -> MockServer:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self.close()
        if exc_type is None:
            self.check()

    def __repr__(self) -> str:
        return f"<MockServer {self.name} {self.url}{'' if self.is_server else ' (closed)'}>"
