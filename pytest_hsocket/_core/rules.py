"""Sans-IO server scripts, the template half: ``expect(...)`` rules and their steps. What a
rule matches, and how, is ``_rule_specs``'s; a ``Conversation`` (in ``_script``) plays them.
"""

from __future__ import annotations

from typing import Callable, NamedTuple, Optional, Union

from pytest_hsocket._core.checks import (
    check_bool,
    check_int,
    check_name,
    check_payload,
    check_seconds,
)
from pytest_hsocket._core.rule_specs import (
    NEED_MORE,
    NO_MATCH,
    Check,
    MatchSpec,
    Spec,
    Until,
    label,
    literal_prefix,
    make_check,
    make_spec,
    passes,
    scan,
    until,
)

__all__ = [
    "ENDINGS",
    "FAULTS",
    "NEED_MORE",
    "NO_MATCH",
    "Action",
    "Check",
    "MatchSpec",
    "Payload",
    "Rule",
    "Script",
    "Spec",
    "Until",
    "label",
    "literal_prefix",
    "make_check",
    "make_spec",
    "passes",
    "scan",
    "until",
]

Payload = Union[bytes, str, Callable[[bytes], Union[bytes, str, None]]]

FAULTS = frozenset({"dribble", "trickle", "truncate", "reset_after", "garbage"})
"""The action kinds that send a reply in a faulty way (the script player carries them out)."""
ENDINGS = frozenset({"close", "reset", "truncate", "reset_after", "stall"})
"""The action kinds after which a connection says nothing more."""


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
shared_matches = [0]
"""How many times a shared rule matched, ever, on any server: a conversation reads it as part
of its candidates' cache key (another connection's match changes them); a list, read inline
on the matcher's hot path."""


def unplain_count() -> int:
    """Return how many rules stopped being plain so far (it only grows)."""
    return _unplain[0]


def bump_shared() -> None:
    """Note that a shared rule matched (other connections' candidates change)."""
    shared_matches[0] += 1


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
        check_payload(payload, "respond()")
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
        check_payload(payload, "dribble()")
        check_int(size, "dribble() size", 1)
        check_seconds(delay, "dribble() delay")
        self._add("dribble", (payload, size, float(delay)))
        return self

    def trickle(self, payload: Payload, rate: int) -> Rule:
        """Send ``payload`` at ``rate`` bytes per second at most (in 20 ms slices)."""
        check_payload(payload, "trickle()")
        check_int(rate, "trickle() rate", 1)
        self._add("trickle", (payload, rate))
        return self

    def truncate(self, payload: Payload, after: int) -> Rule:
        """Send the first ``after`` bytes of ``payload``, then close: a response cut short."""
        check_payload(payload, "truncate()")
        check_int(after, "truncate() after")
        self._add("truncate", (payload, after), payload)
        return self

    def reset_after(self, payload: Payload, after: int) -> Rule:
        """Send the first ``after`` bytes of ``payload``, then reset the connection (RST)."""
        check_payload(payload, "reset_after()")
        check_int(after, "reset_after() after")
        self._add("reset_after", (payload, after), payload)
        return self

    def garbage(self, size: int, seed: Optional[int] = None) -> Rule:
        """Send ``size`` random bytes (reproducible with ``seed``)."""
        check_int(size, "garbage() size", 1)
        if seed is not None:  # checked here: random.Random() would refuse it only at play
            check_int(seed, "garbage() seed", None, noun="an int or None")
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
        check_name(name, "expect() name")
        check_bool(shared, "expect() shared")
        if times is not None:
            check_int(
                times, "expect() times", 1, bound="a positive int or None", noun="an int or None"
            )
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
