"""Sans-IO server scripts: ``expect(...).respond(...)`` rules matched against a byte stream.

A :class:`Script` is the template (rules and greetings); each connection runs its own
:class:`Conversation` of it: fed bytes, it returns the actions to perform, and it knows what
is unmet and what arrived unexpected. Nothing here does I/O.
"""

from __future__ import annotations

import random
import re
from typing import Any, Optional

from pytest_hsocket._core.rules import (
    ENDINGS,
    FAULTS,
    NEED_MORE,
    Action,
    Check,
    MatchSpec,
    Payload,
    Rule,
    Script,
    Spec,
    Until,
    bump_shared,
    make_spec,
    passes,
    scan,
    shared_matches,
    unplain_count,
    until,
)
from pytest_hsocket._core.transcript import brief

_new = tuple.__new__
_SHOWN_RULES = 5  # an "expected ..." note names this many candidate rules at most

__all__ = [
    "Action",
    "Check",
    "Conversation",
    "MatchSpec",
    "Payload",
    "Rule",
    "Script",
    "Spec",
    "Until",
    "make_spec",
    "until",
]


class Conversation:
    """One connection's run through a script.

    Attributes:
        counts: How often each rule matched, by rule index.
        unexpected: Notes on bytes that matched no rule.
        errors: Exceptions raised by ``respond()`` functions.
        ended: True after a close or reset step.
    """

    def __init__(self, script: Script) -> None:
        self.script = script
        self.counts = [0] * len(script.rules)
        self.unexpected: list[str] = []
        # What each unexpected note is about: the bytes, and the rules that were candidates.
        self.unexpected_data: list[tuple[bytes, list[int]]] = []
        self.errors: list[BaseException] = []
        self.ended = False
        self._ordered = [i for i, r in enumerate(script.rules) if r.ordered]
        self._unordered = [i for i, r in enumerate(script.rules) if not r.ordered]
        self._pos = 0  # index into _ordered of the first rule that is not yet done
        # The bytes not matched yet; each rule's scan of them resumes where it stopped
        # (_hints, by rule index, reset when a match consumes bytes): linear, not quadratic.
        self._buf = bytearray()
        self._hints: dict[int, int] = {}
        self._derailed = False
        self._datagram = False
        self._plain: tuple[int, int, bool] = (-1, -1, False)  # (rules, unplain_count(), plain)
        # The candidates change only when rules are added, the position moves or a rule with a
        # count matches: (rules, _pos, _counted) is their cache key.
        self._counted = 0
        self._candidates_key: tuple[int, int, int, int] = (-1, -1, -1, -1)
        self._candidates_cache: list[int] = []

    @property
    def plain(self) -> bool:
        """Whether every rule of the script is plain (see ``Rule.plain``): then playing it never
        waits nor runs the user's code."""
        rules = self.script.rules
        count, epoch, plain = self._plain
        # Rules are only ever added, and only ever stop being plain: both counts say when the
        # answer may have changed.
        if count != len(rules) or epoch != unplain_count():
            plain = all(rule.plain for rule in rules)
            self._plain = (len(rules), unplain_count(), plain)
        return plain

    def start(self) -> list[Action]:
        """Return the actions for a new connection (its greetings)."""
        return [Action("send", data) for data in self.script.greetings]

    def feed(self, data: bytes) -> list[Action]:
        """Take bytes from the client; return what to do, in order."""
        if self.ended:
            return []
        if self._derailed:
            self.unexpected.append(f"{brief(data)} after the conversation went off script")
            self.unexpected_data.append((bytes(data), []))
            return []
        self._buf += data
        actions: list[Action] = []
        while self._buf and not self.ended:
            found = self._match()
            if found is None:
                break
            index, end, framed = found
            rule = self.script.rules[index]
            if self._datagram and isinstance(rule.spec, re.Pattern):
                end = len(self._buf)  # the datagram is the message
                framed = bytes(self._buf)
            # The matched bytes are the framed ones when the frame is the whole match.
            matched = framed if len(framed) == end else bytes(self._buf[:end])
            del self._buf[:end]
            if self._hints:
                self._hints.clear()
            self.counts[index] += 1
            rule.total += 1
            if rule.shared:
                bump_shared()
            if rule.times is not None:
                self._counted += 1
            actions += self._steps(index, matched, framed)
        return actions

    def feed_datagram(self, data: bytes) -> list[Action]:
        """Take one whole datagram: it must match a rule by itself (no bytes carry over).

        Exact bytes must be the whole datagram; a regex need only match its start.
        """
        if self.ended:
            return []
        self._derailed = False
        self._datagram = True
        try:
            actions = self.feed(data)
        finally:
            self._datagram = False
        if self._buf:
            candidates = self._candidates()
            expected = self._expected(candidates)
            self.unexpected_data.append((bytes(self._buf), list(candidates)))
            self.unexpected.append(
                f"{brief(bytes(self._buf))} (expected {expected or 'nothing more'})"
            )
            self._buf = bytearray()
            self._hints.clear()
        self._derailed = False
        return actions

    def _sync(self) -> None:
        # Rules added after the connection began (a client connected before the test scripted
        # the server) join its conversation.
        rules = self.script.rules
        if len(self.counts) != len(rules):
            self.counts += [0] * (len(rules) - len(self.counts))
            self._ordered = [i for i, r in enumerate(rules) if r.ordered]
            self._unordered = [i for i, r in enumerate(rules) if not r.ordered]

    def _candidates(self) -> list[int]:
        key = (len(self.script.rules), self._pos, self._counted, shared_matches[0])
        if key == self._candidates_key:
            return self._candidates_cache
        self._sync()
        out = []
        for index in self._ordered[self._pos :]:
            rule = self.script.rules[index]
            if rule.times is not None and self.counts[index] >= rule.times:
                continue
            out.append(index)
            if rule.times is not None and self.counts[index] < rule.times:
                break  # a rule still owed blocks the ones after it
        for i in self._unordered:
            rule = self.script.rules[i]
            count = rule.total if rule.shared else self.counts[i]
            if rule.times is None or count < rule.times:
                out.append(i)
        self._candidates_key, self._candidates_cache = key, out
        return out

    def _match(self) -> Optional[tuple[int, int, bytes]]:
        candidates = self._candidates()
        waiting = False
        buf = self._buf
        hints = self._hints
        rules = self.script.rules
        for index in candidates:
            rule = rules[index]
            spec = rule.spec
            if type(spec) is bytes and buf.startswith(spec):
                # The common case (a whole request in one piece): the framed bytes are the
                # rule's own, no scan and no copy.
                framed = spec
                end = len(spec)
            else:
                end, data_from, data_end, hints[index] = scan(spec, buf, hints.get(index, 0))
                if end < 0:
                    waiting = waiting or end == NEED_MORE
                    continue
                framed = bytes(buf[data_from:data_end])
            if rule.check is not None and not self._passes(rule.check, framed):
                continue
            if rule.ordered:
                self._pos = self._ordered.index(index)
            return index, end, framed
        if waiting:
            return None
        self.unexpected_data.append((bytes(buf), list(candidates)))
        expected = self._expected(candidates) or "nothing more"
        self.unexpected.append(f"{brief(bytes(buf))} (expected {expected})")
        self._buf = bytearray()
        hints.clear()
        self._derailed = True
        return None

    def _expected(self, candidates: list[int]) -> str:
        # Bounded: a script of many unordered rules made one problem line of all of them.
        shown = ", ".join(repr(self.script.rules[i]) for i in candidates[:_SHOWN_RULES])
        more = len(candidates) - _SHOWN_RULES
        return shown + (f" and {more} more rules" if more > 0 else "")

    def _passes(self, check: Check, data: bytes) -> bool:
        try:
            return passes(check, data)
        except BaseException as exc:  # pytest.fail() too: never swallowed (DESIGN 2)
            _reraise_greenlet_exit(exc)
            self.errors.append(exc)
            return False

    def _steps(self, index: int, matched: bytes, framed: bytes) -> list[Action]:
        rule = self.script.rules[index]
        # tuple.__new__: NamedTuple's own __new__ is a Python call (two a message).
        actions = [_new(Action, ("matched", matched, 0.0, repr(rule)))]
        for kind, value in rule.steps:
            if kind == "delay":
                assert isinstance(value, float)
                actions.append(Action("delay", seconds=value))
            elif kind in FAULTS or kind == "send":
                actions += self._payload_actions(kind, value, framed)
            else:
                actions.append(Action(kind))
            if kind in ENDINGS:
                self.ended = True
                break
        return actions

    def _payload_actions(self, kind: str, value: Any, matched: bytes) -> list[Action]:
        if kind == "garbage":
            size, seed = value
            return [Action("send", random.Random(seed).randbytes(size))]
        args = value if isinstance(value, tuple) else (value,)
        payload = self._resolve(args[0], matched)
        if payload is None:
            return [Action("close")] if kind == "truncate" else []
        if kind == "send":
            return [_new(Action, ("send", payload, 0.0, ""))]
        if kind == "truncate":
            return [Action("send", payload[: args[1]]), Action("close")]
        if kind == "reset_after":
            return [Action("send", payload[: args[1]]), Action("reset")]
        if kind == "dribble":
            size, delay = args[1], args[2]
        else:  # trickle: 20 ms slices at the rate
            rate = args[1]
            size = max(1, rate // 50)
            delay = size / rate
        out: list[Action] = []
        for start in range(0, len(payload), size):
            if start:
                out.append(Action("delay", seconds=delay))
            out.append(Action("send", payload[start : start + size]))
        return out

    def _resolve(self, payload: Any, matched: bytes) -> Optional[bytes]:
        if callable(payload):
            try:
                payload = payload(matched)
            except BaseException as exc:  # pytest.fail() too: never swallowed (DESIGN 2)
                _reraise_greenlet_exit(exc)
                self.errors.append(exc)
                return None
        if payload is None:
            return None
        if isinstance(payload, str):
            payload = payload.encode("utf-8")
        if not isinstance(payload, bytes):
            self.errors.append(
                TypeError(f"respond() function must return bytes, str or None, not {payload!r}")
            )
            return None
        return payload

    def unmet(self) -> list[str]:
        """Return a line for each rule that matched fewer times than it must."""
        self._sync()
        lines = []
        for index, rule in enumerate(self.script.rules):
            if rule.shared:
                continue  # counted on the server: see MockServer.problems
            if rule.times is not None and self.counts[index] < rule.times:
                lines.append(f"{rule!r} matched {self.counts[index]} of {rule.times} times")
        return lines

    def leftover(self) -> bytes:
        """Return bytes received that neither matched nor were ruled out yet."""
        return bytes(self._buf)

    def waiting_for(self) -> list[Rule]:
        """Return the rules the leftover bytes could still become."""
        return [self.script.rules[i] for i in self._candidates()]

    @property
    def derailed(self) -> bool:
        """Whether data arrived that no rule can match (the conversation is off script)."""
        return self._derailed

    @property
    def started(self) -> bool:
        """Whether the client sent anything."""
        return any(self.counts) or bool(self._buf) or bool(self.unexpected)


def _reraise_greenlet_exit(exc: BaseException) -> None:
    # A user function that waited on the loop can be killed with the connection: let that kill
    # through. Named, not imported: the core imports no gevent.
    if isinstance(exc, GeneratorExit) or type(exc).__name__ == "GreenletExit":
        raise exc
