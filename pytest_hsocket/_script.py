"""Sans-IO server scripts: ``expect(...).respond(...)`` rules matched against a byte stream.

A :class:`Script` is the template (rules and greetings); each connection runs its own
:class:`Conversation` of it: fed bytes, it returns the actions to perform, and it knows what
is unmet and what arrived unexpected. Nothing here does I/O.
"""

from __future__ import annotations

import random
import re
from typing import Any, Callable, NamedTuple, Optional, Union

Payload = Union[bytes, str, Callable[[bytes], Union[bytes, str, None]]]
MatchSpec = Union[bytes, str, int, "re.Pattern[bytes]", "Until"]
"""What ``expect`` accepts."""
Spec = Union[bytes, int, "re.Pattern[bytes]", "Until"]
"""What a rule keeps, once checked (a str became bytes)."""

_FAULTS = frozenset({"dribble", "trickle", "truncate", "reset_after", "garbage"})
_ENDINGS = frozenset({"close", "reset", "truncate", "reset_after", "stall"})

_NEED = -1  # wait for more bytes
_NO = -2  # can never match


class Until:
    """Match any bytes up to and including ``delimiter`` (``expect(until(b"\\r\\n"))``)."""

    __slots__ = ("delimiter",)

    def __init__(self, delimiter: Union[bytes, str]) -> None:
        data = delimiter.encode() if isinstance(delimiter, str) else delimiter
        if not isinstance(data, bytes) or not data:
            raise ValueError(f"until() delimiter must be non-empty bytes or str, not {delimiter!r}")
        self.delimiter = data

    def __repr__(self) -> str:
        return f"until({self.delimiter!r})"


def _positive(value: object, what: str, zero: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int, not {value!r}")
    if value < 0 or (value == 0 and not zero):
        raise ValueError(f"{what} must be {'0 or more' if zero else 'positive'}, not {value!r}")


def _seconds(value: object, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{what} must be a number of seconds, not {value!r}")
    if value < 0:
        raise ValueError(f"{what} must not be negative, not {value!r}")


def until(delimiter: Union[bytes, str]) -> Until:
    """Build a delimiter match for ``expect``: any content up to and including ``delimiter``.

    Raises:
        ValueError: If the delimiter is empty or not bytes/str.
    """
    return Until(delimiter)


def _check(spec: Spec, buf: bytes) -> int:
    """Return the end of a match at the start of ``buf``, ``_NEED`` or ``_NO``."""
    if isinstance(spec, bytes):
        if buf.startswith(spec):
            return len(spec)
        return _NEED if spec.startswith(buf) else _NO
    if isinstance(spec, int):
        return spec if len(buf) >= spec else _NEED
    if isinstance(spec, Until):
        found = buf.find(spec.delimiter)
        return _NEED if found < 0 else found + len(spec.delimiter)
    match = spec.match(buf)
    if match is not None and match.end() > 0:
        return match.end()
    return _NEED


def make_spec(match: object) -> Spec:
    """Validate what ``expect`` was given.

    Raises:
        TypeError: If it is not bytes, str, int, a bytes regex or ``until(...)``.
        ValueError: If it is empty or a length is not positive.
    """
    if isinstance(match, bool):
        raise TypeError(
            f"expect() match must be bytes, str, int, re.Pattern or until(), not {match!r}"
        )
    if isinstance(match, str):
        match = match.encode("utf-8")
    if isinstance(match, (bytes, bytearray, memoryview)):
        data = bytes(match)
        if not data:
            raise ValueError("expect() match must not be empty, not b''")
        return data
    if isinstance(match, int):
        if match <= 0:
            raise ValueError(f"expect() length must be positive, not {match!r}")
        return match
    if isinstance(match, Until):
        return match
    if isinstance(match, re.Pattern):
        if not isinstance(match.pattern, bytes):
            raise TypeError(f"expect() pattern must be a bytes pattern, not {match.pattern!r}")
        return match
    raise TypeError(f"expect() match must be bytes, str, int, re.Pattern or until(), not {match!r}")


class Action(NamedTuple):
    """Something a conversation asks the I/O layer to do.

    ``kind`` is ``"send"`` (``data``), ``"delay"`` (``seconds``), ``"close"``, ``"reset"``,
    ``"start_tls"``, ``"stall"``, ``"half_close"`` or ``"matched"`` (``note`` names the rule,
    ``data`` the bytes it matched).
    """

    kind: str
    data: bytes = b""
    seconds: float = 0.0
    note: str = ""


class Rule:
    """One expectation and what to do when it is met; every step returns the rule."""

    def __init__(self, spec: Spec, times: Optional[int], ordered: bool) -> None:
        self.spec = spec
        self.times = times
        self.ordered = ordered
        self.steps: list[tuple[str, object]] = []

    def respond(self, payload: Payload) -> Rule:
        """Send ``payload`` (bytes, UTF-8 str, or ``fn(matched) -> bytes | str | None``).

        Raises:
            TypeError: If ``payload`` is none of those.
        """
        self._check_payload(payload, "respond()")
        self.steps.append(("send", payload))
        return self

    def delay(self, seconds: float) -> Rule:
        """Wait ``seconds`` before the next step.

        Raises:
            TypeError, ValueError: If ``seconds`` is not a non-negative number.
        """
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
            raise TypeError(f"delay() seconds must be a number, not {seconds!r}")
        if seconds < 0:
            raise ValueError(f"delay() seconds must not be negative, not {seconds!r}")
        self.steps.append(("delay", float(seconds)))
        return self

    def close(self) -> Rule:
        """Close the connection (after what was sent before it); ends the conversation."""
        self.steps.append(("close", None))
        return self

    def reset(self) -> Rule:
        """Abort the connection with a TCP RST; ends the conversation."""
        self.steps.append(("reset", None))
        return self

    def start_tls(self) -> Rule:
        """Upgrade the connection to TLS as the server, after what was sent before it."""
        self.steps.append(("start_tls", None))
        return self

    # -- faults: how a bad network or a broken server behaves ----------------------------------

    def dribble(self, payload: Payload, size: int = 1, delay: float = 0.01) -> Rule:
        """Send ``payload`` in slices of ``size`` bytes, ``delay`` seconds apart."""
        self._check_payload(payload, "dribble()")
        _positive(size, "dribble() size")
        _seconds(delay, "dribble() delay")
        self.steps.append(("dribble", (payload, size, float(delay))))
        return self

    def trickle(self, payload: Payload, rate: int) -> Rule:
        """Send ``payload`` at ``rate`` bytes per second at most (in 20 ms slices)."""
        self._check_payload(payload, "trickle()")
        _positive(rate, "trickle() rate")
        self.steps.append(("trickle", (payload, rate)))
        return self

    def truncate(self, payload: Payload, after: int) -> Rule:
        """Send the first ``after`` bytes of ``payload``, then close: a response cut short."""
        self._check_payload(payload, "truncate()")
        _positive(after, "truncate() after", zero=True)
        self.steps.append(("truncate", (payload, after)))
        return self

    def reset_after(self, payload: Payload, after: int) -> Rule:
        """Send the first ``after`` bytes of ``payload``, then reset the connection (RST)."""
        self._check_payload(payload, "reset_after()")
        _positive(after, "reset_after() after", zero=True)
        self.steps.append(("reset_after", (payload, after)))
        return self

    def garbage(self, size: int, seed: Optional[int] = None) -> Rule:
        """Send ``size`` random bytes (reproducible with ``seed``)."""
        _positive(size, "garbage() size")
        self.steps.append(("garbage", (size, seed)))
        return self

    def stall(self) -> Rule:
        """Say nothing more, ever, and read nothing more: the connection stays open."""
        self.steps.append(("stall", None))
        return self

    def half_close(self) -> Rule:
        """Shut down the sending side (the client reads EOF) but keep reading."""
        self.steps.append(("half_close", None))
        return self

    @staticmethod
    def _check_payload(payload: Payload, what: str) -> None:
        if not isinstance(payload, (bytes, str)) and not callable(payload):
            raise TypeError(f"{what} payload must be bytes, str or callable, not {payload!r}")

    def __repr__(self) -> str:
        spec = self.spec if isinstance(self.spec, (bytes, int, Until)) else self.spec.pattern
        extra = "" if self.times == 1 else f", times={self.times}"
        extra += "" if self.ordered else ", ordered=False"
        return f"expect({spec!r}{extra})"


class Script:
    """Rules (ordered by default) and greetings that a connection plays through."""

    def __init__(self) -> None:
        self.rules: list[Rule] = []
        self.greetings: list[bytes] = []

    def expect(self, match: MatchSpec, *, times: Optional[int] = 1, ordered: bool = True) -> Rule:
        """Add a rule: wait for ``match`` from the client.

        Args:
            match: Exact bytes (or UTF-8 str), a length, a bytes regex matched at the start,
                or ``until(delimiter)``.
            times: How often it must match; ``None`` = any number (a repeating rule).
            ordered: False lets the rule match at any point instead of in its turn.
        Returns:
            The rule, to add steps to.
        Raises:
            TypeError, ValueError: For a bad match or times.
        """
        spec = make_spec(match)
        if times is not None and (
            isinstance(times, bool) or not isinstance(times, int) or times < 1
        ):
            raise ValueError(f"expect() times must be a positive int or None, not {times!r}")
        rule = Rule(spec, times, ordered)
        self.rules.append(rule)
        return rule

    def greet(self, data: Union[bytes, str]) -> Script:
        """Send ``data`` to each client as soon as it connects."""
        if isinstance(data, str):
            data = data.encode("utf-8")
        if not isinstance(data, bytes):
            raise TypeError(f"greet() data must be bytes or str, not {data!r}")
        self.greetings.append(data)
        return self


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
        self.errors: list[BaseException] = []
        self.ended = False
        self._ordered = [i for i, r in enumerate(script.rules) if r.ordered]
        self._unordered = [i for i, r in enumerate(script.rules) if not r.ordered]
        self._pos = 0  # index into _ordered of the first rule that is not yet done
        self._buf = b""
        self._derailed = False
        self._datagram = False

    def start(self) -> list[Action]:
        """Return the actions for a new connection (its greetings)."""
        return [Action("send", data) for data in self.script.greetings]

    def feed(self, data: bytes) -> list[Action]:
        """Take bytes from the client; return what to do, in order."""
        if self.ended:
            return []
        if self._derailed:
            self.unexpected.append(f"{data!r} after the conversation went off script")
            return []
        self._buf += data
        actions: list[Action] = []
        while self._buf and not self.ended:
            found = self._match()
            if found is None:
                break
            index, end = found
            if self._datagram and isinstance(self.script.rules[index].spec, re.Pattern):
                end = len(self._buf)  # the datagram is the message
            matched, self._buf = self._buf[:end], self._buf[end:]
            self.counts[index] += 1
            actions += self._steps(index, matched)
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
            expected = ", ".join(repr(self.script.rules[i]) for i in self._candidates())
            self.unexpected.append(f"{self._buf!r} (expected {expected or 'nothing more'})")
            self._buf = b""
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
        self._sync()
        out = []
        for index in self._ordered[self._pos :]:
            rule = self.script.rules[index]
            if rule.times is not None and self.counts[index] >= rule.times:
                continue
            out.append(index)
            if rule.times is not None and self.counts[index] < rule.times:
                break  # a rule still owed blocks the ones after it
        out += [
            i
            for i in self._unordered
            if self.script.rules[i].times is None
            or self.counts[i] < (self.script.rules[i].times or 0)
        ]
        return out

    def _match(self) -> Optional[tuple[int, int]]:
        candidates = self._candidates()
        waiting = False
        for index in candidates:
            end = _check(self.script.rules[index].spec, self._buf)
            if end >= 0:
                if self.script.rules[index].ordered:
                    self._pos = self._ordered.index(index)
                return index, end
            waiting = waiting or end == _NEED
        if waiting:
            return None
        expected = ", ".join(repr(self.script.rules[i]) for i in candidates) or "nothing more"
        self.unexpected.append(f"{self._buf!r} (expected {expected})")
        self._buf = b""
        self._derailed = True
        return None

    def _steps(self, index: int, matched: bytes) -> list[Action]:
        rule = self.script.rules[index]
        actions = [Action("matched", matched, note=repr(rule))]
        for kind, value in rule.steps:
            if kind == "delay":
                assert isinstance(value, float)
                actions.append(Action("delay", seconds=value))
            elif kind in _FAULTS or kind == "send":
                actions += self._payload_actions(kind, value, matched)
            else:
                actions.append(Action(kind))
            if kind in _ENDINGS:
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
            return [Action("send", payload)]
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
            except Exception as exc:
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
            if rule.times is not None and self.counts[index] < rule.times:
                lines.append(f"{rule!r} matched {self.counts[index]} of {rule.times} times")
        return lines

    def leftover(self) -> bytes:
        """Return bytes received that neither matched nor were ruled out yet."""
        return self._buf

    @property
    def derailed(self) -> bool:
        """Whether data arrived that no rule can match (the conversation is off script)."""
        return self._derailed

    @property
    def started(self) -> bool:
        """Whether the client sent anything."""
        return any(self.counts) or bool(self._buf) or bool(self.unexpected)
