"""Sans-IO server scripts, the template half: ``expect(...)`` rules, their steps, and how a
rule matches the start of a byte buffer. A ``Conversation`` (in ``_script``) plays them.
"""

from __future__ import annotations

import re
from typing import Callable, NamedTuple, Optional, Union

from ._frames import FrameError, FrameSpec
from ._reads import zero_width
from ._transcript import brief

Payload = Union[bytes, str, Callable[[bytes], Union[bytes, str, None]]]
MatchSpec = Union[bytes, str, int, "re.Pattern[bytes]", "Until", FrameSpec]
"""What ``expect`` accepts."""
Spec = Union[bytes, int, "re.Pattern[bytes]", "Until", FrameSpec]
"""What a rule keeps, once checked (a str became bytes)."""
Check = Union[bytes, str, "re.Pattern[bytes]", Callable[[bytes], object]]
"""A rule's check of the framed bytes: exact bytes, a regex searched in them, or a predicate."""

_LABEL_LIMIT = 80  # a problem line shows this much of a pattern: one regex made a 70 KB line

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


def literal_prefix(pattern: re.Pattern[bytes]) -> bytes:
    """Return the bytes every match of ``pattern`` starts with (``b"GET /"`` for
    ``rb"GET /(\\w+)"``), or ``b""``: bytes that disagree with it can never match."""
    if pattern.flags & re.IGNORECASE:
        return b""
    try:
        from re import _parser  # type: ignore[attr-defined]

        parsed = _parser.parse(pattern.pattern, pattern.flags)
    except Exception:
        return b""
    out = bytearray()
    for op, value in parsed:
        if str(op) != "LITERAL":
            break
        out.append(value)
    return bytes(out)


def scan(spec: Spec, buf: bytearray, hint: int) -> tuple[int, int, int, int]:
    """Match ``spec`` at the start of ``buf``, from where the last scan of it stopped.

    Args:
        spec: The rule's spec.
        buf: The bytes not matched yet (they only grow between scans with the same hint).
        hint: What the last scan returned (0 for a first scan): how far ``buf`` was checked.
    Returns:
        ``(end, data_from, data_end, hint)``: ``end`` is where the match ends in ``buf``, or
        ``_NEED`` / ``_NO``; the framed data is ``buf[data_from:data_end]``; ``hint`` is for
        the next scan. Each byte is looked at a bounded number of times (linear) except by a
        regex or a ``Framer``, which see the whole buffer each time.
    """
    size = len(buf)
    if isinstance(spec, bytes):
        want = len(spec)
        if size >= want:
            end = want if buf[hint:want] == spec[hint:] else _NO
            return end, 0, want, hint
        if buf[hint:size] == spec[hint:size]:
            return _NEED, 0, 0, size
        return _NO, 0, 0, hint
    if isinstance(spec, int):
        return (spec if size >= spec else _NEED), 0, spec, 0
    if isinstance(spec, Until):
        delimiter = spec.delimiter
        found = buf.find(delimiter, max(0, hint - len(delimiter) + 1))
        if found < 0:
            return _NEED, 0, 0, size
        return found + len(delimiter), 0, found + len(delimiter), hint
    if isinstance(spec, FrameSpec):
        try:
            measured = spec._frame(buf, 0, size)
        except FrameError:
            return _NO, 0, 0, 0
        if measured is None:
            return _NEED, 0, 0, 0
        data_from, data_end, end = measured
        return end, data_from, data_end, 0
    match = spec.match(buf)
    if match is not None:
        end = match.end()
        return (end if end else _NO), 0, end, 0
    prefix = literal_prefix(spec)
    common = min(len(prefix), size)
    if buf[:common] != prefix[:common]:
        return _NO, 0, 0, 0  # the bytes disagree with the pattern's literal start: fail fast
    return _NEED, 0, 0, 0


def make_check(check: object) -> Optional[Check]:
    """Validate a rule's check of the framed bytes.

    Raises:
        TypeError: If it is not bytes, str, a bytes regex or callable.
    """
    if check is None or callable(check) or isinstance(check, bytes):
        return check
    if isinstance(check, str):
        return check.encode("utf-8")
    if isinstance(check, (bytearray, memoryview)):
        return bytes(check)
    if isinstance(check, re.Pattern) and isinstance(check.pattern, bytes):
        return check
    raise TypeError(
        f"expect() check must be bytes, str, a bytes re.Pattern or callable, not {check!r}"
    )


def passes(check: Optional[Check], data: bytes) -> bool:
    """Return whether ``data`` passes ``check`` (exact, ``re.search``, or a true predicate)."""
    if check is None:
        return True
    if isinstance(check, bytes):
        return data == check
    if isinstance(check, re.Pattern):
        return check.search(data) is not None
    assert callable(check)
    return bool(check(data))


def label(value: object) -> str:
    """Return how a problem line shows a spec or check: regexes as ``re.compile(...)``, a
    long pattern or byte string shortened."""
    if isinstance(value, re.Pattern):
        text = repr(value.pattern)
        if len(text) > _LABEL_LIMIT:
            text = text[: _LABEL_LIMIT - 5] + "...'"
        return f"re.compile({text})"
    if isinstance(value, (bytes, bytearray)):
        return brief(bytes(value), _LABEL_LIMIT) if len(value) > _LABEL_LIMIT else repr(value)
    if callable(value) and not isinstance(value, FrameSpec):
        return getattr(value, "__name__", repr(value))
    return repr(value)


def make_spec(match: object) -> Spec:
    """Validate what ``expect`` was given.

    Raises:
        TypeError: If it is not bytes, str, int, a bytes regex, ``until(...)`` or a frame
            spec (``Prefixed``, ``Announced``, ``Framer``).
        ValueError: If it is empty, a length is not positive, or a pattern matches no bytes.
    """
    if isinstance(match, bool):
        raise TypeError(
            "expect() match must be bytes, str, int, re.Pattern, until() or a frame spec, "
            f"not {match!r}"
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
    if isinstance(match, (Until, FrameSpec)):
        return match
    if isinstance(match, re.Pattern):
        if not isinstance(match.pattern, bytes):
            raise TypeError(f"expect() pattern must be a bytes pattern, not {match.pattern!r}")
        if zero_width(match):
            raise ValueError(f"expect() pattern must not match the empty string: {label(match)}")
        return match
    raise TypeError(
        "expect() match must be bytes, str, int, re.Pattern, until() or a frame spec, "
        f"not {match!r}"
    )


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
_shared = [0]  # how many matches of shared rules, ever: a cache key for the candidates


def unplain_count() -> int:
    """Return how many rules stopped being plain so far (it only grows)."""
    return _unplain[0]


def bump_shared() -> None:
    """Note that a shared rule matched (other connections' candidates change)."""
    _shared[0] += 1


def shared_epoch() -> int:
    """Return how many times a shared rule matched so far, on any server (it only grows)."""
    return _shared[0]


class Rule:
    """One expectation and what to do when it is met; every step returns the rule.

    Attributes:
        plain: Whether every step so far neither waits (``delay``, ``dribble``, ``trickle``,
            ``start_tls``) nor calls the user's code (a payload function): such a rule can be
            played in the loop's turn that read the data, with no greenlet of its own.
    """

    def __init__(
        self,
        spec: Spec,
        times: Optional[int],
        ordered: bool,
        check: Optional[Check] = None,
        name: Optional[str] = None,
        shared: bool = False,
    ) -> None:
        self.spec = spec
        self.times = times
        self.ordered = ordered and not shared
        self.check = check
        self.name = name
        self.shared = shared
        self.total = 0  # matches on every connection (what a shared rule counts)
        self.steps: list[tuple[str, object]] = []
        self.plain = check is None or not callable(check)
        if not self.plain:
            _unplain[0] += 1
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
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
            raise TypeError(f"delay() seconds must be a number, not {seconds!r}")
        if seconds < 0:
            raise ValueError(f"delay() seconds must not be negative, not {seconds!r}")
        self._add("delay", float(seconds))
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
        text = self._label
        if text is None:  # made once: a match notes it in the transcript each time
            extra = "" if self.check is None else f", {label(self.check)}"
            extra += "" if self.times == 1 else f", times={self.times}"
            extra += ", shared=True" if self.shared else ""
            extra += "" if self.ordered or self.shared else ", ordered=False"
            text = f"expect({label(self.spec)}{extra})"
            if self.name is not None:
                text = f"{self.name!r} {text}"
            text = self._label = text
        return text


class Script:
    """Rules (ordered by default) and greetings that a connection plays through."""

    def __init__(self) -> None:
        self.rules: list[Rule] = []
        self.greetings: list[bytes] = []

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
        """Add a rule: wait for ``match`` from the client.

        Args:
            match: Exact bytes (or UTF-8 str), a length, a bytes regex matched at the start,
                ``until(delimiter)``, or a frame spec (``Prefixed``, ``Announced``,
                ``Framer``).
            check: What the framed bytes must be, else the rule does not match them: exact
                bytes (or str), a bytes regex searched in them, or ``fn(data) -> bool``. The
                framed bytes are what a read of ``match`` delivers (a frame's payload).
            times: How often it must match; ``None`` = any number (a repeating rule).
            ordered: False lets the rule match at any point instead of in its turn.
            name: How problem lines and transcripts name the rule.
            shared: Count matches on every connection of the server together (``times=1``:
                once, on whichever connection); such a rule matches at any point.
        Returns:
            The rule, to add steps to.
        Raises:
            TypeError, ValueError: For a bad match, check, times or name.
        """
        spec = make_spec(match)
        checked = make_check(check)
        if name is not None and not isinstance(name, str):
            raise TypeError(f"expect() name must be a str, not {name!r}")
        if not isinstance(shared, bool):
            raise TypeError(f"expect() shared must be a bool, not {shared!r}")
        if times is not None and (
            isinstance(times, bool) or not isinstance(times, int) or times < 1
        ):
            raise ValueError(f"expect() times must be a positive int or None, not {times!r}")
        rule = Rule(spec, times, ordered, checked, name, shared)
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
