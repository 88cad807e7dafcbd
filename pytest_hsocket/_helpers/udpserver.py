"""The scriptable UDP mock server and the blocking UDP test client."""

from __future__ import annotations

import random
import time
from collections import deque
from typing import Any, Optional, Union

import gevent
from gevent import GreenletExit

from pytest_hsocket._core.address import parse_address
from pytest_hsocket._core.checks import (
    SECONDS_MAX,
    check_int,
    check_probability,
    check_seconds,
    check_wait,
)
from pytest_hsocket._core.errors import (
    ConnectionClosed,
    HSocketError,
    InvalidThreadUseError,
    ReadTimeout,
)
from pytest_hsocket._core.script import Action, Conversation, MatchSpec, Rule, Script
from pytest_hsocket._core.transcript import Transcript
from pytest_hsocket._helpers.mockserver import raise_problems
from pytest_hsocket._hs.local_address import LocalAddress
from pytest_hsocket._hs.udp import UdpSocket
from pytest_hsocket._loop.originals import allocate_lock
from pytest_hsocket._loop.sync import Gate


class _Stop(GreenletExit):  # type: ignore[misc]
    """Ends a sender's player at close (a GreenletExit: gevent prints nothing)."""


class _Peer:
    # One sender: its conversation, and its own player for answers that wait (delay()), so
    # that one sender's delay never holds back another's answer.
    __slots__ = ("conversation", "done", "host", "pending", "player", "port", "transcript")

    def __init__(self, host: str, port: int, script: Script, name: str) -> None:
        self.host = host
        self.port = port
        self.conversation = Conversation(script)
        self.transcript = Transcript(name)
        self.pending: deque[Action] = deque()
        self.player: Any = None  # the greenlet playing ``pending``, while there is one
        self.done: Optional[Gate] = None  # opens when that player ends


class UdpMockServer(UdpSocket, LocalAddress):
    """A UDP server that answers datagrams from a script, each sender on its own.

    ``expect(match)`` rules match one whole datagram each (exact bytes, a length, a regex or
    ``until(...)``); ``respond(...)`` and ``delay(...)`` steps answer the sender. Or drive it
    hs.socket-style with ``set_callback``.

    Attributes:
        name: How messages name it.
        script: The rules every sender plays through.
    """

    __test__ = False

    def __init__(self, *, name: str = "hsock_udp_server", wait_timeout: float = 5.0) -> None:
        super().__init__(self._on_datagram)
        self.name = name
        self.wait_timeout = wait_timeout
        self.script = Script()
        self._peers: dict[bytes, _Peer] = {}
        self._driven_by_user = False
        self._address_text = ""
        self._chaos: Optional[tuple[float, float, Optional[int], float, random.Random]] = None
        self.chaos_stats = {"answers": 0, "dropped": 0, "duplicated": 0, "truncated": 0}

    @classmethod
    def start(
        cls,
        port: int = 0,
        *,
        host: str = "127.0.0.1",
        name: str = "hsock_udp_server",
        wait_timeout: float = 5.0,
    ) -> UdpMockServer:
        """Bind a UDP mock server to ``host``:``port`` and start receiving.

        Raises:
            HSocketError: If it cannot bind.
            TypeError, ValueError: If ``wait_timeout`` is not a number of seconds.
        """
        wait_timeout = check_seconds(wait_timeout, "UdpMockServer.start() wait_timeout")
        server = cls(name=name, wait_timeout=wait_timeout)
        if server.listen(port, host=host) is None or server.receive() is None:
            raise HSocketError(f"{name} could not bind {host}:{port}")
        server.remember_address()
        return server

    def remember_address(self) -> None:
        """Remember ``host:port`` now: messages name it so after it is closed."""
        self._address_text = f"{self.host}:{self.port}"

    def expect(self, match: MatchSpec, *, times: Optional[int] = 1, ordered: bool = True) -> Rule:
        """Add a rule: a datagram matching ``match`` (see ``Script.expect``).

        Returns:
            The rule, to chain ``respond(...)`` or ``delay(...)`` onto.
        """
        return self.script.expect(match, times=times, ordered=ordered)

    def set_callback(self, fn: Any = None) -> UdpMockServer:
        """Drive it hs.socket-style: ``fn(data, sockaddr)``; ``None`` = the script.

        Returns:
            This server.
        """
        self._driven_by_user = fn is not None
        super().set_callback(fn if fn is not None else self._on_datagram)
        return self

    setCallback = set_callback

    @property
    def transcripts(self) -> list[Transcript]:
        """The transcript of each sender, in order of first datagram."""
        return [peer.transcript for peer in self._peers.values()]

    def _on_datagram(self, data: bytes, sockaddr: bytes) -> None:
        peer = self._peers.get(sockaddr)
        if peer is None:
            sender = parse_address(sockaddr)
            host, port = (sender["host"], sender["port"]) if sender else ("", 0)
            peer = _Peer(host, port, self.script, f"{self.name} peer {host}:{port}")
            self._peers[sockaddr] = peer
        peer.transcript.record("in", data)
        actions = peer.conversation.feed_datagram(data)
        if peer.player is None and not any(a.kind == "delay" for a in actions):
            for action in actions:  # nothing waits: answer in this turn, as fast as before
                self._play(peer, action)
            return
        # A step waits: the sender's own greenlet plays it, and every later answer to this
        # sender queues behind it (its order kept); other senders are not held back.
        peer.pending.extend(actions)
        if peer.player is None:
            peer.done = Gate()
            peer.player = gevent.spawn(self._play_pending, peer)

    def _play_pending(self, peer: _Peer) -> None:
        try:
            while peer.pending:
                action = peer.pending.popleft()
                if action.kind == "delay":
                    gevent.sleep(action.seconds)
                else:
                    self._play(peer, action)
        except Exception as exc:  # kept for check(): never swallowed
            peer.conversation.errors.append(exc)
        finally:
            peer.player = None
            if peer.done is not None:
                peer.done.open()

    def _play(self, peer: _Peer, action: Action) -> None:
        if action.kind == "send":
            for datagram in self._chaotic(action.data):
                peer.transcript.record("out", datagram)
                self.send(datagram, peer.host, peer.port)
        elif action.kind == "matched":
            peer.transcript.record("matched", note=action.note)
        else:
            peer.conversation.errors.append(
                HSocketError(f"a {action.kind}() step does not apply to UDP")
            )

    def chaos(
        self,
        *,
        drop: float = 0.0,
        duplicate: float = 0.0,
        truncate: Optional[int] = None,
        truncate_rate: float = 1.0,
        seed: int = 0,
    ) -> UdpMockServer:
        """Make the server's answers unreliable, as a real network would (seeded, so a
        failing run replays exactly). For chaos on a real server, see ``hsock_udp_proxy``.

        Args:
            drop: The share of answers never sent (0 to 1).
            duplicate: The share of answers sent twice.
            truncate: Cut answers to this many bytes (``truncate_rate`` of them).
            truncate_rate: The share of answers cut when ``truncate`` is set.
            seed: Seeds the decisions.
        Returns:
            This server. ``chaos_stats`` counts what was done.
        Raises:
            TypeError: If a rate is not a number, or ``truncate`` or ``seed`` not an int (a bool
                is neither).
            ValueError: If a rate is NaN or outside 0-1, or ``truncate`` is negative.
        """
        drop = check_probability(drop, "chaos() drop")
        duplicate = check_probability(duplicate, "chaos() duplicate")
        truncate_rate = check_probability(truncate_rate, "chaos() truncate_rate")
        if truncate is not None:
            truncate = check_int(truncate, "chaos() truncate")
        check_int(seed, "chaos() seed", None)
        self._chaos = (drop, duplicate, truncate, truncate_rate, random.Random(seed))
        return self

    def _chaotic(self, data: bytes) -> list[bytes]:
        if self._chaos is None:
            return [data]
        drop, duplicate, truncate, truncate_rate, rng = self._chaos
        stats = self.chaos_stats
        stats["answers"] += 1
        if rng.random() < drop:
            stats["dropped"] += 1
            return []
        if truncate is not None and rng.random() < truncate_rate:
            stats["truncated"] += 1
            data = data[:truncate]
        if rng.random() < duplicate:
            stats["duplicated"] += 1
            return [data, data]
        return [data]

    def settle(self, timeout: Optional[float] = None) -> None:
        """Process the datagrams that already arrived (up to ``timeout`` seconds)."""
        if self._loop.on_thread():
            raise InvalidThreadUseError("settle() waits for the loop; call it from the test")
        wait = self.wait_timeout if timeout is None else check_wait(timeout, "settle()")
        limit = SECONDS_MAX if wait is None else wait  # inf: no limit (a deadline far away)
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:

            def pull_and_mark() -> tuple[int, Gate]:
                pulled = self._io.pull_now() if self._io is not None else 0
                gate = Gate()
                self._callbacks.post("settle", gate.open)
                return pulled, gate

            pulled, gate = self._loop.run_sync(pull_and_mark)
            if not gate.wait(max(deadline - time.monotonic(), 0.0)):
                return
            # Answers still waiting on a delay() are part of what arrived: wait for them too.
            playing = self._loop.run_sync(
                lambda: [p.done for p in self._peers.values() if p.player is not None and p.done]
            )
            for done in playing:
                if not done.wait(max(deadline - time.monotonic(), 0.0)):
                    return
            if not pulled and not playing:
                return

    def close(self) -> UdpMockServer:
        """Process what arrived (see ``settle``), then close.

        Returns:
            This server.
        """
        if not self.closed():
            self.settle()
        self._loop.run_sync(self._stop_players)
        super().close()
        return self

    def _stop_players(self) -> None:
        # Past settle()'s wait: a delay still running is cut short, before the socket goes.
        for peer in self._peers.values():
            if peer.player is not None:
                peer.player.kill(_Stop, block=False)

    def problems(self) -> list[str]:
        """Return one line per problem: unmet rules, unexpected datagrams, errors."""
        lines: list[str] = []
        for peer in self._peers.values():
            where = f"peer {peer.host}:{peer.port}"
            lines += [f"{where}: unmet {line}" for line in peer.conversation.unmet()]
            lines += [f"{where}: unexpected datagram {u}" for u in peer.conversation.unexpected]
            lines += [
                f"{where}: respond() raised {type(e).__name__}: {e}"
                for e in peer.conversation.errors
            ]
        if not self._peers and not self._driven_by_user:
            lines += [f"no datagram arrived: unmet {r!r}" for r in self.script.rules if r.times]
        lines += [f"callback error: {error}" for error in self.callback_errors]
        return lines

    def check(self, transcripts: bool = True) -> None:
        """Fail if the script was not followed.

        Raises:
            ExpectationError: Listing every problem (then the transcripts).
        """
        shown = self.transcripts if transcripts else None
        raise_problems(f"{self.name} ({self._address_text})", self.problems(), shown)


class UdpTestClient(UdpSocket):
    """A connected UDP socket with blocking helpers: ``expect()`` the next datagram,
    ``request(data)`` to send and wait for the answer.

    Attributes:
        wait_timeout: Default seconds the helpers wait.
        transcript: What it sent and received.
    """

    __test__ = False

    def __init__(self, *, wait_timeout: float = 5.0, name: str = "hsock_udp_client") -> None:
        super().__init__(self._on_reply)
        self.wait_timeout = wait_timeout
        self.transcript = Transcript(name)
        self._inbox: deque[bytes] = deque()
        self._lock: Any = allocate_lock()
        self._changed = Gate()

    @classmethod
    def open(cls, host: str, port: int, *, wait_timeout: float = 5.0) -> UdpTestClient:
        """Connect to ``host``:``port`` and start receiving.

        Raises:
            ConnectionError: If it cannot connect.
            TypeError, ValueError: If ``wait_timeout`` is not a number of seconds.
        """
        wait_timeout = check_seconds(wait_timeout, "UdpTestClient.open() wait_timeout")
        client = cls(wait_timeout=wait_timeout, name=f"hsock_udp_client to {host}:{port}")
        connected = Gate()
        # A name resolves on the loop: wait for the connect callback (a literal is at once).
        if client.connect(host, port, connected.open) is None or not connected.wait(wait_timeout):
            client.close()
            raise ConnectionError(f"could not connect a UDP socket to {host}:{port}")
        client.receive()
        return client

    def _on_reply(self, data: bytes, sockaddr: bytes) -> None:
        self.transcript.record("in", data)
        with self._lock:
            self._inbox.append(data)
            changed, self._changed = self._changed, Gate()
        changed.open()

    def send(
        self, message: Any, host: Any = None, port: Any = None, tag: int = -1, fn: Any = None
    ) -> UdpTestClient:
        """As ``UdpSocket.send``, and recorded in the transcript."""
        if isinstance(message, (bytes, str)):
            self.transcript.record("out", message.encode() if isinstance(message, str) else message)
        super().send(message, host, port, tag, fn)
        return self

    write = send

    def expect(self, timeout: Optional[float] = None) -> bytes:
        """Wait for the next datagram and return it.

        Raises:
            ReadTimeout: If none arrives in time.
            ConnectionClosed: If the socket closed (e.g. an ICMP refusal).
            InvalidThreadUseError: If called on the socket loop.
        """
        if self._loop.on_thread():
            raise InvalidThreadUseError("expect() blocks; call it from the test, not a callback")
        wait = self.wait_timeout if timeout is None else check_wait(timeout, "expect()")
        limit = SECONDS_MAX if wait is None else wait  # inf: no limit (a deadline far away)
        deadline = time.monotonic() + limit
        while True:
            self.check()
            with self._lock:
                if self._inbox:
                    return self._inbox.popleft()
                gate = self._changed
            if self.closed():
                raise ConnectionClosed("the UDP socket closed (see the log for why)")
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not gate.wait(remaining):
                raise ReadTimeout(f"no datagram within {limit} s\n{self.transcript.render()}")

    def request(self, message: Union[bytes, str], timeout: Optional[float] = None) -> bytes:
        """Send ``message`` to the peer and return the next datagram."""
        self.send(message)
        return self.expect(timeout)
