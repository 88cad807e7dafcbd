"""How a mock server plays its script: one conversation per connection, on the loop.

The sans-IO part (matching bytes against rules, deciding what to do) is ``_script``'s
``Conversation``; this is the thin layer that feeds it what a connection received and
performs what it returns (send, delay, close, reset, STARTTLS, ...).
"""

from __future__ import annotations

import ssl
from collections import deque
from typing import Callable, Optional, Union, cast

import gevent

from pytest_hsocket._core.errors import HSocketError
from pytest_hsocket._core.fragment import Fragmenter
from pytest_hsocket._core.framing import AVAILABLE, ReadRequest
from pytest_hsocket._core.script import Action, Conversation, Script
from pytest_hsocket._core.script_report import error_lines, explain, leftover_line, shared_unmet
from pytest_hsocket._core.transcript import Entry, Transcript
from pytest_hsocket._hs.family import AllWritten
from pytest_hsocket._hs.read_delivery import ReadDelivery
from pytest_hsocket._hs.tcp import ReadCallback, Socket, Tap
from pytest_hsocket._io.sockets import WriteCallback

ContextSource = Union[ssl.SSLContext, Callable[[], ssl.SSLContext]]
"""An ``ssl.SSLContext``, or a function that makes one when first needed."""


_WAITS = frozenset(("delay", "start_tls"))
"""Actions that may wait (a greenlet's, not the loop's): see ``Rule.plain``."""


class _Connection:
    __slots__ = ("client", "conversation", "index", "transcript")

    def __init__(self, index: int, client: Socket, transcript: Transcript) -> None:
        self.index = index
        self.client = client
        self.transcript = transcript
        self.conversation: Optional[Conversation] = None


class MockConnection(Socket):
    """A mock server's accepted connection.

    A callback of the server's that raises on it ends it at once (``on_error``: ``"close"``
    or ``"reset"``; ``"keep"`` leaves it open), so no client under test waits for its own
    timeout; the error fails the test at teardown. Under ``hsock_fragment`` every write it
    makes (a rule's response, a ``set_callback`` server's ``client.write``) goes out cut.
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


class ScriptPlayer(Socket):
    """The script-playing half of ``MockServer`` (which sets these attributes up)."""

    name: str
    script: Script
    tls_context: Optional[ContextSource]
    off_script: str
    on_error: str
    fragmenter: Optional[Fragmenter]
    transcript_listener: Optional[Callable[[Transcript, Entry], object]]
    _scripts: dict[int, Script]
    _connections: list[_Connection]
    _by_client: dict[Socket, _Connection]
    _driven_by_user: bool

    def _new_client(self) -> Socket:
        return MockConnection(self._callback, self, self.fragmenter, self.on_error)

    def _push_write(self, data: bytes, tag: int, fn: Optional[WriteCallback]) -> None:
        # A broadcast (hsock_server.write) under hsock_fragment: each connection cuts its copy.
        if self.fragmenter is None or not self.is_server:
            super()._push_write(data, tag, fn)
            return
        clients = [c for c in self.clients() if isinstance(c, MockConnection) and c.connected()]
        done = AllWritten(len(clients), tag, fn, self._post) if fn is not None else None
        for client in clients:
            client._push_write(data, tag, done)
        if not clients and fn is not None:
            self._post("hs.socket:write callback", fn, tag)

    def _new_connection(self, client: Socket) -> Tap:
        conn = _Connection(
            len(self._connections) + 1,
            client,
            Transcript(f"{self.name} connection {len(self._connections) + 1}"),
        )
        conn.transcript.listener = self.transcript_listener
        conn.transcript.record("connected")
        self._connections.append(conn)
        self._by_client[client] = conn
        return conn.transcript

    def _begin(self, client: Socket) -> None:
        conn = self._by_client.get(client)
        if conn is None or self._driven_by_user:
            return
        conn.conversation = Conversation(self._scripts.get(conn.index, self.script))
        self._perform(conn, conn.conversation.start())
        client._push_read(ReadRequest(AVAILABLE))

    def _reads_inline(self, client: ReadDelivery) -> bool:
        # A plain script (see Rule.plain) is played in the loop's turn that read the data: it
        # never waits and runs no code of the user's (nor does a transcript listener).
        if self._driven_by_user or self.fragmenter is not None:
            return False
        if self.transcript_listener is not None:
            return False
        conn = self._by_client.get(cast(Socket, client))
        return conn is not None and conn.conversation is not None and conn.conversation.plain

    def _on_data(self, data: bytes, tag: int, client: Socket) -> None:
        conn = self._by_client.get(client)
        if conn is None or conn.conversation is None:
            return
        errors = len(conn.conversation.errors)
        self._perform(conn, conn.conversation.feed(data))
        if len(conn.conversation.errors) > errors and isinstance(client, MockConnection):
            client.end_on_error("a respond() function or check")
            return
        if conn.conversation.derailed and self.off_script != "keep" and client._stream is not None:
            # Fail fast: a client waiting for an answer that will never come sees the end now.
            conn.transcript.record("off script", note=f"connection {self.off_script}")
            if self.off_script == "reset":
                client._stream.reset()
            else:
                client._stream.finish()
            return
        if not conn.conversation.ended:
            client._push_read(ReadRequest(AVAILABLE))  # a stalled one reads nothing more

    def _perform(self, conn: _Connection, actions: list[Action]) -> None:
        client = conn.client
        for index, action in enumerate(actions):
            stream = client._stream
            if action.kind in _WAITS and gevent.getcurrent() is gevent.get_hub():
                # Played in the loop's turn (see _reads_inline), and a rule gained a step that
                # waits since that was decided: the rest goes to the connection's callback
                # greenlet, in order, instead of blocking the loop.
                client._post("mock server script", self._perform, conn, actions[index:])
                return
            if action.kind == "matched":
                conn.transcript.record("matched", note=action.note)
            elif action.kind == "send":
                client._push_write(action.data, -1, None)  # on the loop; cut if a CuttingSocket
            elif action.kind == "delay":
                gevent.sleep(action.seconds)
            elif stream is None:
                return
            elif action.kind == "close":
                stream.finish()
            elif action.kind == "reset":
                stream.reset()
            elif action.kind == "start_tls":
                self._server_tls(client)
            elif action.kind == "half_close":
                stream.half_close()
            elif action.kind == "stall":
                conn.transcript.record("stalled")

    def _server_tls(self, client: Socket) -> None:
        if self.tls_context is None:
            conn = self._by_client.get(client)
            if conn is not None and conn.conversation is not None:
                conn.conversation.errors.append(
                    HSocketError("a start_tls() step needs the server's tls_context set")
                )
            return
        context = self.tls_context
        client.start_tls(context=context if isinstance(context, ssl.SSLContext) else context())

    def problems(self) -> list[str]:
        """Return one line per problem: unmet rules, unexpected data, callback errors."""
        lines: list[str] = []
        played = [c for c in self._connections if c.conversation is not None]
        default_started = any(
            c.conversation.started
            for c in played
            if c.index not in self._scripts and c.conversation
        )
        for conn in played:
            conv = conn.conversation
            assert conv is not None
            own = conn.index in self._scripts
            where = f"connection {conn.index}"
            if own or conv.started:
                lines += [f"{where}: unmet {line}" for line in conv.unmet()]
            for note, (data, candidates) in zip(conv.unexpected, conv.unexpected_data):
                rules = [conv.script.rules[i] for i in candidates]
                shown = "".join("\n      " + line for line in explain(data, rules))
                lines.append(f"{where}: unexpected data {note}{shown}")
            if conv.leftover():
                lines.append(leftover_line(where, conv.leftover(), conv.waiting_for()))
            lines += error_lines(where, conv.errors)
        scripts = [self.script, *self._scripts.values()]
        lines += shared_unmet(rule for script in scripts for rule in script.rules)
        if not default_started and not self._driven_by_user:
            required = [r for r in self.script.rules if r.times is not None and not r.shared]
            if required:
                reason = "no client connected" if not played else "no client sent anything"
                lines += [f"{reason}: unmet {r!r}" for r in required]
        seen = {c.index for c in self._connections}
        for number in sorted(self._scripts):
            if number not in seen and any(r.times is not None for r in self._scripts[number].rules):
                lines.append(f"connection {number} never happened: its script is unmet")
        lines += [f"callback error: {error}" for error in self.callback_errors]
        return lines
