"""Sans-IO server scripts, the template half: ``expect(...)`` rules, their steps, and how a
rule matches the start of a byte buffer. A ``Conversation`` (in ``_script``) plays them.
"""

from __future__ import annotations

import re
from typing import Callable, NamedTuple, Optional, Union

from ._checks import check_seconds

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
    check_seconds(value, what)


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
        try:
            match = match.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError(f"expect() match is not valid text: {match!r}") from None
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


_PLAIN_STEPS = frozenset(
    ("send", "close", "reset", "truncate", "reset_after", "garbage", "stall", "half_close")
)
"""Steps that neither wait nor run the user's code (with a bytes or str payload)."""

_unplain = [0]  # how many rules stopped being plain, ever: a cache key for Conversation.plain


def unplain_count() -> int:
    """Return how many rules stopped being plain so far (it only grows)."""
    return _unplain[0]


class Rule:
    """One expectation and what to do when it is met; every step returns the rule.

    Attributes:
        plain: Whether every step so far neither waits (``delay``, ``dribble``, ``trickle``,
            ``start_tls``) nor calls the user's code (a payload function): such a rule can be
            played in the loop's turn that read the data, with no greenlet of its own.
    """

    def __init__(self, spec: Spec, times: Optional[int], ordered: bool) -> None:
        self.spec = spec
        self.times = times
        self.ordered = ordered
        self.steps: list[tuple[str, object]] = []
        self.plain = True
        self._label: Optional[str] = None

    def _add(self, kind: str, value: object, payload: object = None) -> None:
        self.steps.append((kind, value))
        if self.plain and (kind not in _PLAIN_STEPS or callable(payload)):
            self.plain = False
            _unplain[0] += 1

    def respond(self, payload: Payload) -> Rule:
        """Send ``payload`` (bytes, UTF-8 str, or ``fn(matched) -> bytes | str | None``).

        Raises:
            TypeError: If ``payload`` is none of those.
        """
        self._check_payload(payload, "respond()")
        self._add("send", payload, payload)
        return self

    def delay(self, seconds: float) -> Rule:
        """Wait ``seconds`` before the next step.

        Raises:
            TypeError, ValueError: If ``seconds`` is not a non-negative number.
        """
        self._add("delay", check_seconds(seconds, "delay() seconds"))
        return self

    def close(self) -> Rule:
        """Close the connection (after what was sent before it); ends the conversation."""
        self._add("close", None)
        return self

    def reset(self) -> Rule:
        """Abort the connection with a TCP RST; ends the conversation."""
        self._add("reset", None)
        return self

    def start_tls(self) -> Rule:
        """Upgrade the connection to TLS as the server, after what was sent before it."""
        self._add("start_tls", None)
        return self

    # -- faults: how a bad network or a broken server behaves ----------------------------------

    def dribble(self, payload: Payload, size: int = 1, delay: float = 0.01) -> Rule:
        """Send ``payload`` in slices of ``size`` bytes, ``delay`` seconds apart."""
        self._check_payload(payload, "dribble()")
        _positive(size, "dribble() size")
        _seconds(delay, "dribble() delay")
        self._add("dribble", (payload, size, float(delay)))
        return self

    def trickle(self, payload: Payload, rate: int) -> Rule:
        """Send ``payload`` at ``rate`` bytes per second at most (in 20 ms slices)."""
        self._check_payload(payload, "trickle()")
        _positive(rate, "trickle() rate")
        self._add("trickle", (payload, rate))
        return self

    def truncate(self, payload: Payload, after: int) -> Rule:
        """Send the first ``after`` bytes of ``payload``, then close: a response cut short."""
        self._check_payload(payload, "truncate()")
        _positive(after, "truncate() after", zero=True)
        self._add("truncate", (payload, after), payload)
        return self

    def reset_after(self, payload: Payload, after: int) -> Rule:
        """Send the first ``after`` bytes of ``payload``, then reset the connection (RST)."""
        self._check_payload(payload, "reset_after()")
        _positive(after, "reset_after() after", zero=True)
        self._add("reset_after", (payload, after), payload)
        return self

    def garbage(self, size: int, seed: Optional[int] = None) -> Rule:
        """Send ``size`` random bytes (reproducible with ``seed``)."""
        _positive(size, "garbage() size")
        self._add("garbage", (size, seed))
        return self

    def stall(self) -> Rule:
        """Say nothing more, ever, and read nothing more: the connection stays open."""
        self._add("stall", None)
        return self

    def half_close(self) -> Rule:
        """Shut down the sending side (the client reads EOF) but keep reading."""
        self._add("half_close", None)
        return self

    @staticmethod
    def _check_payload(payload: Payload, what: str) -> None:
        if not isinstance(payload, (bytes, str)) and not callable(payload):
            raise TypeError(f"{what} payload must be bytes, str or callable, not {payload!r}")
        if isinstance(payload, str):
            try:
                payload.encode("utf-8")
            except UnicodeEncodeError:
                raise ValueError(f"{what} payload is not valid text: {payload!r}") from None

    def __repr__(self) -> str:
        label = self._label
        if label is None:  # made once: a match notes it in the transcript each time
            spec = self.spec if isinstance(self.spec, (bytes, int, Until)) else self.spec.pattern
            extra = "" if self.times == 1 else f", times={self.times}"
            extra += "" if self.ordered else ", ordered=False"
            label = self._label = f"expect({spec!r}{extra})"
        return label


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
