"""The chaos effects of the UDP proxy: what each does, and its state on a :class:`Lane`.

An effect is a spec (:class:`Drop`, :class:`Duplicate`, :class:`Truncate`, :class:`Reorder`,
:class:`Delay`) that checks its arguments once and makes a fresh :class:`ChaosStage` for each
lane it is added to; the lane (``_lane``) puts every datagram through the stages, in the order the
effects were added. Every random decision is one draw from the lane's ``random.Random``;
nothing here touches a socket or a clock.
"""

from __future__ import annotations

import random
from typing import Optional

from pytest_hsocket._core.checks import check_int, check_probability, check_real
from pytest_hsocket._core.faults import MS_MAX, DelaySpec, FaultSpec
from pytest_hsocket._core.lane import ChaosStage, Emit, Lane, Stats

__all__ = [
    "ChaosSpec",
    "Delay",
    "Drop",
    "Duplicate",
    "Emit",
    "Lane",
    "Reorder",
    "ChaosStage",
    "Stats",
    "Truncate",
]


class ChaosSpec(FaultSpec):
    """What a chaos effect does, independent of any lane (the subclasses say what).

    Attributes:
        name: The effect's name, as the direction's method that adds it.
    """

    name = "chaos"

    def stage(self, rng: random.Random) -> ChaosStage:
        """Return this effect's state for a lane whose random draws come from ``rng``."""
        return ChaosStage()


class _DropStage(ChaosStage):
    def __init__(self, rate: float, rng: random.Random) -> None:
        self._rate = rate
        self._rng = rng

    def process(self, emits: list[Emit], now: float, stats: Stats) -> list[Emit]:
        kept = []
        for emit in emits:
            if self._rng.random() < self._rate:
                stats.dropped += 1
            else:
                kept.append(emit)
        return kept


class Drop(ChaosSpec):
    """Discard each datagram with probability ``rate``.

    Args:
        rate: From 0 (never) to 1 (always).
    Raises:
        TypeError: If ``rate`` is not a number.
        ValueError: If ``rate`` is not from 0 to 1.
    """

    name = "drop"

    def __init__(self, rate: float) -> None:
        self.rate = check_probability(rate, "drop() rate")

    def stage(self, rng: random.Random) -> ChaosStage:
        """Return this effect's state for a lane."""
        return _DropStage(self.rate, rng)

    def describe(self) -> str:
        """Return the call that adds this effect."""
        return f"drop({self.rate:g})"


class _DuplicateStage(ChaosStage):
    def __init__(self, rate: float, rng: random.Random) -> None:
        self._rate = rate
        self._rng = rng

    def process(self, emits: list[Emit], now: float, stats: Stats) -> list[Emit]:
        out = []
        for emit in emits:
            out.append(emit)
            if self._rng.random() < self._rate:
                stats.duplicated += 1
                out.append(emit)
        return out


class Duplicate(ChaosSpec):
    """Send each datagram twice, the copy right after it, with probability ``rate``.

    Args:
        rate: From 0 (never) to 1 (always).
    Raises:
        TypeError: If ``rate`` is not a number.
        ValueError: If ``rate`` is not from 0 to 1.
    """

    name = "duplicate"

    def __init__(self, rate: float) -> None:
        self.rate = check_probability(rate, "duplicate() rate")

    def stage(self, rng: random.Random) -> ChaosStage:
        """Return this effect's state for a lane."""
        return _DuplicateStage(self.rate, rng)

    def describe(self) -> str:
        """Return the call that adds this effect."""
        return f"duplicate({self.rate:g})"


class _TruncateStage(ChaosStage):
    def __init__(self, rate: float, size: int, rng: random.Random) -> None:
        self._rate = rate
        self._size = size
        self._rng = rng

    def process(self, emits: list[Emit], now: float, stats: Stats) -> list[Emit]:
        out = []
        for emit in emits:
            # One draw per datagram, short or not, so the decisions after it do not shift.
            if self._rng.random() < self._rate and len(emit.data) > self._size:
                stats.truncated += 1
                emit = emit._replace(data=emit.data[: self._size])
            out.append(emit)
        return out


class Truncate(ChaosSpec):
    """Cut each datagram longer than ``size`` bytes to its first ``size`` bytes, with
    probability ``rate``.

    Args:
        rate: From 0 (never) to 1 (always).
        size: The length a cut datagram keeps; 0 sends an empty datagram.
    Raises:
        TypeError: If ``rate`` is not a number or ``size`` not an int.
        ValueError: If ``rate`` is not from 0 to 1 or ``size`` is negative.
    """

    name = "truncate"

    def __init__(self, rate: float, size: int) -> None:
        self.rate = check_probability(rate, "truncate() rate")
        self.size = check_int(size, "truncate() size", 0)

    def stage(self, rng: random.Random) -> ChaosStage:
        """Return this effect's state for a lane."""
        return _TruncateStage(self.rate, self.size, rng)

    def describe(self) -> str:
        """Return the call that adds this effect."""
        return f"truncate({self.rate:g}, {self.size})"


class _Held:
    __slots__ = ("emit", "passed", "until")

    def __init__(self, emit: Emit, until: float) -> None:
        self.emit = emit
        self.passed = 0
        self.until = until


class _ReorderStage(ChaosStage):
    def __init__(self, rate: float, window: int, max_hold: float, rng: random.Random) -> None:
        self._rate = rate
        self._window = window
        self._max_hold = max_hold
        self._rng = rng
        self._held: list[_Held] = []

    @property
    def held(self) -> int:
        return len(self._held)

    def process(self, emits: list[Emit], now: float, stats: Stats) -> list[Emit]:
        out = []
        for emit in emits:
            if self._rng.random() < self._rate:
                self._held.append(_Held(emit, now + self._max_hold))
                continue
            out.append(emit)
            if not self._held:
                continue
            for held in self._held:
                held.passed += 1
            ready = [h for h in self._held if h.passed >= self._window]
            if ready:
                self._held = [h for h in self._held if h.passed < self._window]
                # Never earlier than what overtook it, so a send queue ordered by time keeps it
                # behind.
                out += [self._out(h, max(now, emit.at), stats) for h in ready]
        return out

    @staticmethod
    def _out(held: _Held, at: float, stats: Stats) -> Emit:
        if held.passed:
            stats.reordered += 1
        return held.emit._replace(at=max(held.emit.at, at))

    def due(self, now: float, stats: Stats) -> list[Emit]:
        ready = [h for h in self._held if h.until <= now]
        if not ready:
            return []
        self._held = [h for h in self._held if h.until > now]
        return [self._out(h, now, stats) for h in ready]

    def next_due(self) -> Optional[float]:
        return min((h.until for h in self._held), default=None)

    def release(self, now: float) -> list[Emit]:
        held, self._held = self._held, []
        # Removing the stage is not reordering: the counter counts what the stage decided.
        return [h.emit._replace(at=max(h.emit.at, now)) for h in held]


class Reorder(ChaosSpec):
    """Hold each datagram back, with probability ``rate``, until ``window`` later datagrams
    have overtaken it (or ``max_hold_ms`` passed, so none is held forever).

    Every datagram still arrives, but up to ``window`` places late.

    Args:
        rate: From 0 (never) to 1 (always).
        window: How many later datagrams overtake a held one; 1 or more.
        max_hold_ms: The longest a datagram is held, in milliseconds, when too few follow it.
    Raises:
        TypeError: If a value has the wrong type.
        ValueError: If ``rate`` is not from 0 to 1, ``window`` is less than 1 or
            ``max_hold_ms`` is negative.
    """

    name = "reorder"

    def __init__(self, rate: float, window: int = 3, max_hold_ms: float = 50) -> None:
        self.rate = check_probability(rate, "reorder() rate")
        self.window = check_int(window, "reorder() window", 1)
        self.max_hold_ms = check_real(max_hold_ms, "reorder() max_hold_ms", high=MS_MAX)

    def stage(self, rng: random.Random) -> ChaosStage:
        """Return this effect's state for a lane."""
        return _ReorderStage(self.rate, self.window, self.max_hold_ms / 1000.0, rng)

    def describe(self) -> str:
        """Return the call that adds this effect."""
        return f"reorder({self.rate:g}, window={self.window}, max_hold_ms={self.max_hold_ms:g})"


class _DelayStage(ChaosStage):
    def __init__(self, delay: float, jitter: float, rng: random.Random) -> None:
        self._delay = delay
        self._jitter = jitter
        self._rng = rng

    def process(self, emits: list[Emit], now: float, stats: Stats) -> list[Emit]:
        out = []
        for emit in emits:
            extra = self._rng.uniform(-self._jitter, self._jitter) if self._jitter else 0.0
            out.append(emit._replace(at=emit.at + max(0.0, self._delay + extra)))
        return out


class Delay(ChaosSpec, DelaySpec):
    """Send each datagram ``ms`` milliseconds after it arrived, plus or minus up to ``jitter``.

    Without jitter the order is kept; with jitter, datagrams closer together than the jitter
    may swap (as on a real network), which the ``reordered`` counter does not count.

    Args:
        ms: The delay in milliseconds.
        jitter: Up to this many milliseconds more or less, drawn per datagram.
    Raises:
        TypeError: If a value is not a number.
        ValueError: If a value is negative.
    """

    name = "delay"

    def stage(self, rng: random.Random) -> ChaosStage:
        """Return this effect's state for a lane."""
        return _DelayStage(self.ms / 1000.0, self.jitter / 1000.0, rng)
