"""The pure part of the UDP chaos proxy: what each datagram becomes, and when it goes out.

One direction of the proxy is a :class:`Lane`: a chain of stages, in the order they were added,
that every datagram read in that direction goes through. A stage may drop the datagram, send it
twice, cut it short, hold it back until later datagrams have passed it, or delay it. The I/O
side calls :meth:`Lane.feed` with each datagram and the time it was read, and sends what comes
back (:class:`Emit`: the bytes, when to send them, and an opaque ``tag`` that says where to).
Held datagrams come out later from :meth:`Lane.feed` (once enough datagrams passed them) or
from :meth:`Lane.due` (once they were held for long enough); :meth:`Lane.next_due` says when
to ask.

Every random decision is one draw from the ``random.Random`` the lane was given, in the order
the datagrams arrive, so the same seed, chain and datagrams give the same decisions. Nothing
here touches a socket or a clock: times are plain floats the caller passes in.
"""

from __future__ import annotations

import math
import random
from collections.abc import Hashable
from dataclasses import dataclass, fields
from typing import NamedTuple, Optional

UPSTREAM = "upstream"
"""Client to server: what the code under test sends."""
DOWNSTREAM = "downstream"
"""Server to client: what the code under test receives."""
DIRECTIONS = (UPSTREAM, DOWNSTREAM)


def _rate(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise TypeError(f"{what} must be a number from 0 to 1, not {value!r}")
    if not 0 <= value <= 1:
        raise ValueError(f"{what} must be from 0 to 1, not {value!r}")
    return float(value)


def _number(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise TypeError(f"{what} must be a number, not {value!r}")
    if value < 0 or math.isinf(value):
        raise ValueError(f"{what} must be a finite number, 0 or more, not {value!r}")
    return float(value)


def _count(value: object, what: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int, not {value!r}")
    if value < low:
        raise ValueError(f"{what} must be {low} or more, not {value!r}")
    return value


class Emit(NamedTuple):
    """A datagram to send.

    Attributes:
        data: The bytes.
        at: When to send them (the same clock as the ``now`` the lane was given).
        tag: What the datagram was fed with: tells the I/O side where it goes.
    """

    data: bytes
    at: float
    tag: Hashable


@dataclass
class Stats:
    """What happened to the datagrams of one direction.

    Attributes:
        received: Datagrams read from the sender.
        forwarded: Datagrams sent on (a duplicate counts twice); the I/O side counts these.
        dropped: Datagrams a ``drop`` stage discarded.
        duplicated: Extra copies a ``duplicate`` stage made.
        reordered: Datagrams a ``reorder`` stage let later datagrams overtake.
        truncated: Datagrams a ``truncate`` stage cut short.
    """

    received: int = 0
    forwarded: int = 0
    dropped: int = 0
    duplicated: int = 0
    reordered: int = 0
    truncated: int = 0

    def copy(self) -> Stats:
        """Return a snapshot."""
        return Stats(**{f.name: getattr(self, f.name) for f in fields(self)})


class Stage:
    """A chaos effect's state on one lane (the base lets everything through untouched)."""

    def process(self, emits: list[Emit], now: float, stats: Stats) -> list[Emit]:
        """Return what ``emits`` become after this stage (including datagrams it releases).

        Args:
            emits: What the stages before this one let through, in order.
            now: The current time.
            stats: The lane's counters, to update.
        Returns:
            What goes on to the next stage, in order.
        """
        return emits

    def due(self, now: float, stats: Stats) -> list[Emit]:
        """Return the held datagrams whose time has come (none by default)."""
        return []

    def next_due(self) -> Optional[float]:
        """Return when :meth:`due` next has something, or ``None``."""
        return None

    def release(self, now: float) -> list[Emit]:
        """Return every held datagram, at ``now`` (the stage is being removed)."""
        return []

    @property
    def held(self) -> int:
        """How many datagrams this stage holds back."""
        return 0


class ChaosSpec:
    """What a chaos effect does, independent of any lane (the subclasses say what).

    Attributes:
        name: The effect's name, as the direction's method that adds it.
    """

    name = "chaos"

    def stage(self, rng: random.Random) -> Stage:
        """Return this effect's state for a lane whose random draws come from ``rng``."""
        return Stage()

    def describe(self) -> str:
        """Return the call that adds this effect, e.g. ``drop(0.2)``."""
        return f"{self.name}()"

    def __repr__(self) -> str:
        return self.describe()


class _DropStage(Stage):
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
        self.rate = _rate(rate, "drop() rate")

    def stage(self, rng: random.Random) -> Stage:
        """Return this effect's state for a lane."""
        return _DropStage(self.rate, rng)

    def describe(self) -> str:
        """Return the call that adds this effect."""
        return f"drop({self.rate:g})"


class _DuplicateStage(Stage):
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
        self.rate = _rate(rate, "duplicate() rate")

    def stage(self, rng: random.Random) -> Stage:
        """Return this effect's state for a lane."""
        return _DuplicateStage(self.rate, rng)

    def describe(self) -> str:
        """Return the call that adds this effect."""
        return f"duplicate({self.rate:g})"


class _TruncateStage(Stage):
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
        self.rate = _rate(rate, "truncate() rate")
        self.size = _count(size, "truncate() size", 0)

    def stage(self, rng: random.Random) -> Stage:
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


class _ReorderStage(Stage):
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
        self.rate = _rate(rate, "reorder() rate")
        self.window = _count(window, "reorder() window", 1)
        self.max_hold_ms = _number(max_hold_ms, "reorder() max_hold_ms")

    def stage(self, rng: random.Random) -> Stage:
        """Return this effect's state for a lane."""
        return _ReorderStage(self.rate, self.window, self.max_hold_ms / 1000.0, rng)

    def describe(self) -> str:
        """Return the call that adds this effect."""
        return f"reorder({self.rate:g}, window={self.window}, max_hold_ms={self.max_hold_ms:g})"


class _DelayStage(Stage):
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


class Delay(ChaosSpec):
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

    def __init__(self, ms: float, jitter: float = 0) -> None:
        self.ms = _number(ms, "delay() ms")
        self.jitter = _number(jitter, "delay() jitter")

    def stage(self, rng: random.Random) -> Stage:
        """Return this effect's state for a lane."""
        return _DelayStage(self.ms / 1000.0, self.jitter / 1000.0, rng)

    def describe(self) -> str:
        """Return the call that adds this effect."""
        jitter = f", jitter={self.jitter:g}" if self.jitter else ""
        return f"delay({self.ms:g}{jitter})"


class Lane:
    """One direction of the proxy: the chain of chaos stages and its counters.

    Args:
        rng: Where every random decision comes from.

    Attributes:
        stats: The counters (``forwarded`` is the I/O side's to count).
    """

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._stages: list[tuple[Hashable, Stage]] = []
        self.stats = Stats()

    # -- the chain --------------------------------------------------------------------------

    def add(self, key: Hashable, spec: ChaosSpec) -> None:
        """Put an effect at the end of the chain; ``key`` names it for :meth:`remove`."""
        self._stages.append((key, spec.stage(self._rng)))

    def remove(self, key: Hashable, now: float) -> list[Emit]:
        """Take the effect added with ``key`` off the chain (a missing one is ignored).

        Returns:
            The datagrams it held back, passed through the stages after it: send them.
        """
        for index, (k, stage) in enumerate(self._stages):
            if k == key:
                del self._stages[index]
                return self._through(stage.release(now), index, now)
        return []

    @property
    def held(self) -> int:
        """How many datagrams the chain holds back now."""
        return sum(stage.held for _, stage in self._stages)

    # -- datagrams --------------------------------------------------------------------------

    def feed(self, data: bytes, now: float, tag: Hashable = None) -> list[Emit]:
        """Put a datagram read at ``now`` through the chain.

        Args:
            data: The datagram.
            now: When it was read.
            tag: Handed back in each :class:`Emit` (where the datagram goes).
        Returns:
            What to send, in order, each with its time: this datagram's copies (none if it was
            dropped or held) and any held datagram it released.
        """
        self.stats.received += 1
        return self._through([Emit(bytes(data), now, tag)], 0, now)

    def due(self, now: float) -> list[Emit]:
        """Return the held datagrams whose hold time is over at ``now``, through the rest of
        the chain."""
        out: list[Emit] = []
        for index, (_, stage) in enumerate(self._stages):
            released = stage.due(now, self.stats)
            if released:
                out += self._through(released, index + 1, now)
        return out

    def next_due(self) -> Optional[float]:
        """Return when :meth:`due` next has something to release, or ``None``."""
        times = [t for _, stage in self._stages if (t := stage.next_due()) is not None]
        return min(times, default=None)

    def _through(self, emits: list[Emit], start: int, now: float) -> list[Emit]:
        for _, stage in self._stages[start:]:
            if not emits:
                break
            emits = stage.process(emits, now, self.stats)
        return emits
