"""How a mock server plays its script: one conversation per connection, on the loop.

The sans-IO part (matching bytes against rules, deciding what to do) is the core's
``Conversation``; :class:`ScriptPlayer` is the thin layer that feeds it what a connection
received and performs what it returns (send, delay, close, reset, STARTTLS, ...). It is no
socket: the server's listening socket (``MockListener``) hands it each accepted connection
and each read, and it drives a connection through the documented methods of
``MockConnection`` only.
"""

from __future__ import annotations

import ssl
from typing import Callable, Optional, Union, cast

import gevent

from pytest_hsocket._core.errors import HSocketError
from pytest_hsocket._core.fragment import Fragmenter
from pytest_hsocket._core.framing import AVAILABLE, ReadRequest
from pytest_hsocket._core.script import Action, Conversation, Script
from pytest_hsocket._core.script_report import error_lines, explain, leftover_line, shared_unmet
from pytest_hsocket._core.transcript import Entry, Transcript
from pytest_hsocket._helpers.mockserver_sockets import MockConnection
from pytest_hsocket._hs.read_delivery import Tap
from pytest_hsocket._hs.tcp import Socket
from pytest_hsocket._loop.sync import Gate

__all__ = ["Connection", "ContextSource", "ScriptPlayer"]

ContextSource = Union[ssl.SSLContext, Callable[[], ssl.SSLContext]]
"""An ``ssl.SSLContext``, or a function that makes one when first needed."""

TranscriptListener = Callable[[Transcript, Entry], object]
"""``fn(transcript, entry)``: sees every event of every connection as it happens."""

_WAITS = frozenset(("delay", "start_tls"))
"""Actions that may wait (a greenlet's, not the loop's): see ``Rule.plain``."""


class Connection:
    """One connection a mock server accepted: its number, socket, transcript and conversation.

    Attributes:
        index: Its number, 1-based, in the order the server accepted connections.
        client: The accepted socket.
        transcript: Everything that happened on it.
        conversation: The script it plays, once it began (``None`` when the server is driven
            by a ``set_callback`` function).
    """

    __slots__ = ("client", "conversation", "index", "transcript")

    def __init__(self, index: int, client: MockConnection, transcript: Transcript) -> None:
        self.index = index
        self.client = client
        self.transcript = transcript
        self.conversation: Optional[Conversation] = None


class ScriptPlayer:
    """Plays a mock server's script on each connection it accepts, on the loop.

    The listening socket calls :meth:`new_connection` as it accepts a client (the client's
    transcript is its tap), :meth:`begin` as its ``on_connect`` hook, :meth:`on_data` as its
    read callback, and :meth:`reads_inline` to know whether a read may be played in the loop's
    turn that read it.

    Attributes:
        name: How transcripts and messages name the server.
        script: The script every connection plays unless ``scripts`` has one for it.
        scripts: The scripts of single connections, by number (1-based).
        connections: Every connection accepted so far, in order.
        tls_context: The server context ``start_tls()`` steps use, or a function making it.
        off_script: ``"close"``, ``"reset"`` or ``"keep"``: see ``MockServer``.
        on_error: ``"close"``, ``"reset"`` or ``"keep"``: see ``MockServer``.
        fragmenter: Cuts every write of a connection, when set (``hsock_fragment``).
        transcript_listener: Given to each new connection's transcript.
        driven_by_user: Whether a ``set_callback`` function drives the server (no script).
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.script = Script()
        self.scripts: dict[int, Script] = {}
        self.connections: list[Connection] = []
        self.tls_context: Optional[ContextSource] = None
        self.off_script = "close"
        self.on_error = "close"
        self.fragmenter: Optional[Fragmenter] = None
        self.transcript_listener: Optional[TranscriptListener] = None
        self.driven_by_user = False
        self._by_client: dict[Socket, Connection] = {}

    def new_connection(self, client: Socket) -> Tap:
        """Number ``client``, just accepted, and return its transcript (its tap; on the loop)."""
        index = len(self.connections) + 1
        conn = Connection(
            index, cast(MockConnection, client), Transcript(f"{self.name} connection {index}")
        )
        conn.transcript.listener = self.transcript_listener
        conn.transcript.record("connected")
        self.connections.append(conn)
        self._by_client[client] = conn
        return conn.transcript

    def begin(self, client: Socket) -> None:
        """Start ``client``'s script: greet, then read (the ``on_connect`` hook; on the loop)."""
        conn = self._by_client.get(client)
        if conn is None or self.driven_by_user:
            return
        conn.conversation = Conversation(self.scripts.get(conn.index, self.script))
        self.perform(conn, conn.conversation.start())
        conn.client.queue_read(ReadRequest(AVAILABLE))

    def reads_inline(self, client: object) -> bool:
        """Whether ``client``'s reads may be played in the loop's turn that read them.

        Only a plain script (see ``Rule.plain``) is: it never waits and runs no code of the
        user's (nor does a transcript listener, nor a fragmenter's pauses).
        """
        if self.driven_by_user or self.fragmenter is not None:
            return False
        if self.transcript_listener is not None:
            return False
        conn = self._by_client.get(cast(Socket, client))
        return conn is not None and conn.conversation is not None and conn.conversation.plain

    def on_data(self, data: bytes, tag: int, client: MockConnection) -> None:
        """Feed what ``client`` sent to its conversation and perform the answer (on the loop)."""
        conn = self._by_client.get(client)
        if conn is None or conn.conversation is None:
            return
        errors = len(conn.conversation.errors)
        self.perform(conn, conn.conversation.feed(data))
        if len(conn.conversation.errors) > errors:
            client.end_on_error("a respond() function or check")
            return
        if conn.conversation.derailed and self.off_script != "keep" and client.attached:
            # Fail fast: a client waiting for an answer that will never come sees the end now.
            conn.transcript.record("off script", note=f"connection {self.off_script}")
            client.end("reset" if self.off_script == "reset" else "close")
            return
        if not conn.conversation.ended:
            client.queue_read(ReadRequest(AVAILABLE))  # a stalled one reads nothing more

    def perform(self, conn: Connection, actions: list[Action]) -> None:
        """Do what the conversation of ``conn`` decided, in order (on the loop)."""
        client = conn.client
        for index, action in enumerate(actions):
            kind = action.kind
            if kind in _WAITS and gevent.getcurrent() is gevent.get_hub():
                # Played in the loop's turn (see reads_inline), and a rule gained a step that
                # waits since that was decided: the rest goes to the connection's callback
                # greenlet, in order, instead of blocking the loop.
                client.post("mock server script", self.perform, conn, actions[index:])
                return
            if kind == "matched":
                conn.transcript.record("matched", note=action.note)
            elif kind == "send":
                client.send_now(action.data)  # cut under hsock_fragment
            elif kind == "delay":
                gevent.sleep(action.seconds)
            elif not client.attached:
                return
            elif kind in ("close", "reset", "half_close"):
                client.end(kind)
            elif kind == "start_tls":
                self._server_tls(conn)
            elif kind == "stall":
                conn.transcript.record("stalled")

    def _server_tls(self, conn: Connection) -> None:
        context = self.tls_context
        if context is None:
            if conn.conversation is not None:
                conn.conversation.errors.append(
                    HSocketError("a start_tls() step needs the server's tls_context set")
                )
            return
        conn.client.start_tls(context=context if isinstance(context, ssl.SSLContext) else context())

    def pull_and_mark(self) -> tuple[int, list[Gate]]:
        """Read what clients sent now and queue a marker behind it (on the loop).

        Returns:
            How many bytes were read, and one gate per connection with something to process
            (only those get a marker), opened once that is processed.
        """
        pulled = 0
        gates = []
        for conn in self.connections:
            client = conn.client
            got = client.pull_now()
            pulled += got
            if got or client.busy:
                gate = Gate()
                client.post("settle", gate.open)
                gates.append(gate)
        return pulled, gates

    def problems(self) -> list[str]:
        """Return one line per problem of the scripts: unmet rules, unexpected data, errors."""
        lines: list[str] = []
        played = [c for c in self.connections if c.conversation is not None]
        default_started = any(
            c.conversation.started for c in played if c.index not in self.scripts and c.conversation
        )
        for conn in played:
            conv = conn.conversation
            assert conv is not None
            where = f"connection {conn.index}"
            if conn.index in self.scripts or conv.started:
                lines += [f"{where}: unmet {line}" for line in conv.unmet()]
            for note, (data, candidates) in zip(conv.unexpected, conv.unexpected_data):
                rules = [conv.script.rules[i] for i in candidates]
                shown = "".join("\n      " + line for line in explain(data, rules))
                lines.append(f"{where}: unexpected data {note}{shown}")
            if conv.leftover():
                lines.append(leftover_line(where, conv.leftover(), conv.waiting_for()))
            lines += error_lines(where, conv.errors)
        scripts = [self.script, *self.scripts.values()]
        lines += shared_unmet(rule for script in scripts for rule in script.rules)
        if not default_started and not self.driven_by_user:
            required = [r for r in self.script.rules if r.times is not None and not r.shared]
            if required:
                reason = "no client connected" if not played else "no client sent anything"
                lines += [f"{reason}: unmet {r!r}" for r in required]
        seen = {c.index for c in self.connections}
        for number in sorted(self.scripts):
            if number not in seen and any(r.times is not None for r in self.scripts[number].rules):
                lines.append(f"connection {number} never happened: its script is unmet")
        return lines
