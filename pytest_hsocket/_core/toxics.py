"""The toxics of the TCP fault proxy: what each does, and its state on a :class:`Pipe`.

A toxic is a spec (:class:`Latency`, :class:`Bandwidth`, :class:`Slicer`, :class:`Timeout`,
:class:`ResetPeer`, :class:`LimitData`) that checks its arguments once, and makes a fresh
:class:`ToxicStage` for every direction of every connection it meets; the pipe (``_pipe``) asks
the stages, in the order the toxics were added, when its next piece may go and how big it may be.
Everything here is pure: times are plain floats, randomness comes from the pipe's
``random.Random``.
"""

from __future__ import annotations

import math
import random
from typing import Optional

from pytest_hsocket._core.checks import check_int, check_real
from pytest_hsocket._core.faults import ANY, DelaySpec, FaultSpec
from pytest_hsocket._core.pipe import (
    CLOSE,
    RESET,
    Chunk,
    Drop,
    End,
    Finish,
    Pipe,
    Send,
    Step,
    ToxicStage,
    Wait,
)

__all__ = [
    "BANDWIDTH_TICKS",
    "CLOSE",
    "RESET",
    "Bandwidth",
    "Chunk",
    "Drop",
    "End",
    "Finish",
    "Latency",
    "LimitData",
    "Pipe",
    "ResetPeer",
    "Send",
    "Slicer",
    "ToxicStage",
    "Step",
    "Timeout",
    "ToxicSpec",
    "Wait",
]

BANDWIDTH_TICKS = 100
"""A bandwidth cap sends in pieces of 1/100 s worth of bytes, so the rate is smooth."""


class _LatencyStage(ToxicStage):
    def __init__(self, spec: Latency, rng: random.Random) -> None:
        self._delay = spec.ms / 1000.0
        self._jitter = spec.jitter / 1000.0
        self._rng = rng

    def shape(self, chunk: Chunk, ready: float, size: int) -> tuple[float, int]:
        if not self._jitter:
            return ready + self._delay, size
        # One draw per chunk and stage: the rest of a sliced chunk keeps the same delay.
        key = id(self)
        extra = chunk.draws.get(key)
        if extra is None:
            extra = chunk.draws[key] = self._rng.uniform(-self._jitter, self._jitter)
        return ready + max(0.0, self._delay + extra), size


class _BandwidthStage(ToxicStage):
    def __init__(self, spec: Bandwidth) -> None:
        self._rate = spec.bytes_per_second
        self._quantum = max(1, int(self._rate // BANDWIDTH_TICKS))
        self._free_at = -math.inf

    def shape(self, chunk: Chunk, ready: float, size: int) -> tuple[float, int]:
        size = min(size, self._quantum)
        # A piece leaves once the link would have carried its last byte.
        return max(ready, self._free_at) + size / self._rate, size

    def commit(self, size: int, ready: float, sent_at: float) -> None:
        # From the planned time, not the actual one: wake-up delays do not lower the rate.
        self._free_at = max(ready, self._free_at) + size / self._rate


class _SlicerStage(ToxicStage):
    def __init__(self, spec: Slicer) -> None:
        self._size = spec.size
        self._delay = spec.delay
        self._last: Optional[float] = None

    def shape(self, chunk: Chunk, ready: float, size: int) -> tuple[float, int]:
        if self._last is not None:
            ready = max(ready, self._last + self._delay)
        return ready, min(size, self._size)

    def commit(self, size: int, ready: float, sent_at: float) -> None:
        self._last = sent_at


class _TimeoutStage(ToxicStage):
    drops = True

    def __init__(self, spec: Timeout, now: float) -> None:
        self.deadline = now + spec.seconds if spec.seconds > 0 else None

    def end(self, now: float) -> Optional[str]:
        if self.deadline is not None and now >= self.deadline:
            return CLOSE
        return None


class _CountStage(ToxicStage):
    def __init__(self, after_bytes: int, ending: str) -> None:
        self._left = after_bytes
        self._ending = ending

    def shape(self, chunk: Chunk, ready: float, size: int) -> tuple[float, int]:
        return ready, min(size, self._left)

    def commit(self, size: int, ready: float, sent_at: float) -> None:
        self._left -= size

    def end(self, now: float) -> Optional[str]:
        return self._ending if self._left <= 0 else None


class ToxicSpec(FaultSpec):
    """What a toxic does, independent of any connection (the subclasses say what).

    Attributes:
        name: The toxic's name, as the direction's method that adds it.
    """

    name = "toxic"

    def stage(self, now: float, rng: random.Random) -> ToxicStage:
        """Return this toxic's state for a direction it meets at ``now``."""
        return ToxicStage()


class Latency(ToxicSpec, DelaySpec):
    """Delay every chunk by ``ms`` milliseconds (plus or minus up to ``jitter``).

    Args:
        ms: The delay, in milliseconds, counted from when the proxy read the chunk.
        jitter: Up to this many milliseconds more or less, drawn once per chunk.
    Raises:
        TypeError: If a value is not a number.
        ValueError: If a value is negative.
    """

    name = "latency"

    def stage(self, now: float, rng: random.Random) -> ToxicStage:
        """Return this toxic's state for a direction it meets at ``now``."""
        return _LatencyStage(self, rng)


class Bandwidth(ToxicSpec):
    """Cap the rate at ``bytes_per_second``.

    Args:
        bytes_per_second: The rate; bytes go out in pieces of 1/100 s worth.
    Raises:
        TypeError: If the rate is not a number.
        ValueError: If the rate is not positive.
    """

    name = "bandwidth"

    def __init__(self, bytes_per_second: float) -> None:
        self.bytes_per_second = check_real(
            bytes_per_second, "bandwidth() bytes_per_second", high=ANY
        )
        if not self.bytes_per_second:
            raise ValueError("bandwidth() bytes_per_second must be positive, not 0")

    def stage(self, now: float, rng: random.Random) -> ToxicStage:
        """Return this toxic's state for a direction it meets at ``now``."""
        return _BandwidthStage(self)

    def describe(self) -> str:
        """Return the call that adds this toxic."""
        return f"bandwidth({self.bytes_per_second:g})"


class Slicer(ToxicSpec):
    """Send in slices of ``size`` bytes, ``delay`` seconds apart.

    Args:
        size: Bytes per slice (the last slice of a read may be shorter).
        delay: Seconds between two slices.
    Raises:
        TypeError: If ``size`` is not an int or ``delay`` not a number.
        ValueError: If ``size`` is not positive or ``delay`` is negative.
    """

    name = "slicer"

    def __init__(self, size: int, delay: float = 0) -> None:
        self.size = check_int(size, "slicer() size", 1)
        self.delay = check_real(delay, "slicer() delay")

    def stage(self, now: float, rng: random.Random) -> ToxicStage:
        """Return this toxic's state for a direction it meets at ``now``."""
        return _SlicerStage(self)

    def describe(self) -> str:
        """Return the call that adds this toxic."""
        return f"slicer({self.size}, delay={self.delay:g})"


class Timeout(ToxicSpec):
    """Forward nothing (the bytes are dropped); close ``seconds`` later (0 = never close).

    Args:
        seconds: From when the toxic meets a connection to when it closes it; 0 = never.
    Raises:
        TypeError: If ``seconds`` is not a number.
        ValueError: If ``seconds`` is negative.
    """

    name = "timeout"

    def __init__(self, seconds: float) -> None:
        self.seconds = check_real(seconds, "timeout() seconds")

    def stage(self, now: float, rng: random.Random) -> ToxicStage:
        """Return this toxic's state for a direction it meets at ``now``."""
        return _TimeoutStage(self, now)

    def describe(self) -> str:
        """Return the call that adds this toxic."""
        return f"timeout({self.seconds:g})"


class ResetPeer(ToxicSpec):
    """Forward ``after_bytes`` bytes, then reset the connection (RST to both peers).

    Args:
        after_bytes: Bytes let through first; 0 resets at once.
    Raises:
        TypeError: If ``after_bytes`` is not an int.
        ValueError: If it is negative.
    """

    name = "reset_peer"

    def __init__(self, after_bytes: int) -> None:
        self.after_bytes = check_int(after_bytes, "reset_peer() after_bytes")

    def stage(self, now: float, rng: random.Random) -> ToxicStage:
        """Return this toxic's state for a direction it meets at ``now``."""
        return _CountStage(self.after_bytes, RESET)

    def describe(self) -> str:
        """Return the call that adds this toxic."""
        return f"reset_peer({self.after_bytes})"


class LimitData(ToxicSpec):
    """Forward ``after_bytes`` bytes, then close the connection (FIN to both peers).

    Args:
        after_bytes: Bytes let through first; 0 closes at once.
    Raises:
        TypeError: If ``after_bytes`` is not an int.
        ValueError: If it is negative.
    """

    name = "limit_data"

    def __init__(self, after_bytes: int) -> None:
        self.after_bytes = check_int(after_bytes, "limit_data() after_bytes")

    def stage(self, now: float, rng: random.Random) -> ToxicStage:
        """Return this toxic's state for a direction it meets at ``now``."""
        return _CountStage(self.after_bytes, CLOSE)

    def describe(self) -> str:
        """Return the call that adds this toxic."""
        return f"limit_data({self.after_bytes})"
