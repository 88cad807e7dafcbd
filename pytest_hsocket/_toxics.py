"""The pure parts of the fault proxy: toxics, the schedule of a direction's sends, the record.

One direction of a proxied connection is a :class:`Pipe`: the bytes read from one side wait in
its buffer with the time they arrived, and the toxics on that direction, in the order they were
added, decide when the next piece goes out, how big it is, whether it is dropped, and when the
connection ends. The I/O side asks :meth:`Pipe.next_step` what to do now and reports back with
:meth:`Pipe.commit` (a piece was sent) or :meth:`Pipe.drop`.

Nothing is planned ahead: the schedule is recomputed at every step from what is buffered, so a
toxic added or removed while bytes wait applies to those bytes at once. Times are plain floats
(seconds on any monotonic clock); randomness (latency jitter) comes from a ``random.Random`` the
caller gives, so every schedule here can be checked without sockets or sleeps.

The record file is JSON lines, one object per forwarded piece (:func:`dump_recording`,
:func:`load_recording`).
"""

from __future__ import annotations

import math
import random
from collections import deque
from collections.abc import Hashable
from typing import NamedTuple, Optional, Union

UPSTREAM = "upstream"
"""Client to server: what the code under test sends."""
DOWNSTREAM = "downstream"
"""Server to client: what the code under test receives."""
DIRECTIONS = (UPSTREAM, DOWNSTREAM)

CLOSE = "close"
"""End a connection gracefully: both peers see the end of the stream (FIN)."""
RESET = "reset"
"""End a connection abruptly: both peers see a TCP reset (RST)."""


BANDWIDTH_TICKS = 100
"""A bandwidth cap sends in pieces of 1/100 s worth of bytes, so the rate is smooth."""


def _number(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise TypeError(f"{what} must be a number, not {value!r}")
    if value < 0 or math.isinf(value):
        raise ValueError(f"{what} must be a finite number, 0 or more, not {value!r}")
    return float(value)


def _count(value: object, what: str, positive: bool = False) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int, not {value!r}")
    if value < 0 or (positive and value == 0):
        raise ValueError(f"{what} must be {'positive' if positive else '0 or more'}, not {value!r}")
    return value


class Chunk:
    """Bytes read in one ``recv``, waiting to be forwarded.

    Attributes:
        arrived: When they were read.
        data: The bytes.
        offset: How many of them were already sent (or dropped).
        draws: Random draws made for this chunk, per stage, so a schedule is stable.
    """

    __slots__ = ("arrived", "data", "draws", "offset")

    def __init__(self, data: bytes, arrived: float) -> None:
        self.arrived = arrived
        self.data = data
        self.offset = 0
        self.draws: dict[int, float] = {}

    @property
    def remaining(self) -> int:
        """Bytes not yet sent."""
        return len(self.data) - self.offset


class Stage:
    """A toxic's state on one direction of one connection (the base does nothing).

    Attributes:
        drops: True if every byte that reaches this stage is dropped.
        deadline: For a dropping stage, when it ends the connection (``None`` = never).
    """

    drops = False
    deadline: Optional[float] = None

    def shape(self, chunk: Chunk, ready: float, size: int) -> tuple[float, int]:
        """Return when the next piece of ``chunk`` may go and how many bytes it may have.

        Args:
            chunk: The chunk at the head of the buffer.
            ready: When the stages before this one let the piece go.
            size: How many bytes they let through.
        Returns:
            ``(ready, size)`` after this stage; ``size`` is at least 1.
        """
        return ready, size

    def commit(self, size: int, ready: float, sent_at: float) -> None:
        """Learn that a piece of ``size`` bytes was sent at ``sent_at``.

        Args:
            size: The piece's length.
            ready: What the stages before this one said (this stage's ``ready`` input).
            sent_at: When it was sent.
        """

    def end(self, now: float) -> Optional[str]:
        """Return :data:`CLOSE` or :data:`RESET` if the connection must end now, else ``None``."""
        return None


class _LatencyStage(Stage):
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


class _BandwidthStage(Stage):
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


class _SlicerStage(Stage):
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


class _TimeoutStage(Stage):
    drops = True

    def __init__(self, spec: Timeout, now: float) -> None:
        self.deadline = now + spec.seconds if spec.seconds > 0 else None

    def end(self, now: float) -> Optional[str]:
        if self.deadline is not None and now >= self.deadline:
            return CLOSE
        return None


class _CountStage(Stage):
    def __init__(self, after_bytes: int, ending: str) -> None:
        self._left = after_bytes
        self._ending = ending

    def shape(self, chunk: Chunk, ready: float, size: int) -> tuple[float, int]:
        return ready, min(size, self._left)

    def commit(self, size: int, ready: float, sent_at: float) -> None:
        self._left -= size

    def end(self, now: float) -> Optional[str]:
        return self._ending if self._left <= 0 else None


class ToxicSpec:
    """What a toxic does, independent of any connection (the subclasses say what).

    Attributes:
        name: The toxic's name, as the direction's method that adds it.
    """

    name = "toxic"

    def stage(self, now: float, rng: random.Random) -> Stage:
        """Return this toxic's state for a direction it meets at ``now``."""
        return Stage()

    def describe(self) -> str:
        """Return the call that adds this toxic, e.g. ``latency(200, jitter=20)``."""
        return f"{self.name}()"

    def __repr__(self) -> str:
        return self.describe()


class Latency(ToxicSpec):
    """Delay every chunk by ``ms`` milliseconds (plus or minus up to ``jitter``).

    Args:
        ms: The delay, in milliseconds, counted from when the proxy read the chunk.
        jitter: Up to this many milliseconds more or less, drawn once per chunk.
    Raises:
        TypeError: If a value is not a number.
        ValueError: If a value is negative.
    """

    name = "latency"

    def __init__(self, ms: float, jitter: float = 0) -> None:
        self.ms = _number(ms, "latency() ms")
        self.jitter = _number(jitter, "latency() jitter")

    def stage(self, now: float, rng: random.Random) -> Stage:
        """Return this toxic's state for a direction it meets at ``now``."""
        return _LatencyStage(self, rng)

    def describe(self) -> str:
        """Return the call that adds this toxic."""
        jitter = f", jitter={self.jitter:g}" if self.jitter else ""
        return f"latency({self.ms:g}{jitter})"


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
        self.bytes_per_second = _number(bytes_per_second, "bandwidth() bytes_per_second")
        if not self.bytes_per_second:
            raise ValueError("bandwidth() bytes_per_second must be positive, not 0")

    def stage(self, now: float, rng: random.Random) -> Stage:
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
        self.size = _count(size, "slicer() size", positive=True)
        self.delay = _number(delay, "slicer() delay")

    def stage(self, now: float, rng: random.Random) -> Stage:
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
        self.seconds = _number(seconds, "timeout() seconds")

    def stage(self, now: float, rng: random.Random) -> Stage:
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
        self.after_bytes = _count(after_bytes, "reset_peer() after_bytes")

    def stage(self, now: float, rng: random.Random) -> Stage:
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
        self.after_bytes = _count(after_bytes, "limit_data() after_bytes")

    def stage(self, now: float, rng: random.Random) -> Stage:
        """Return this toxic's state for a direction it meets at ``now``."""
        return _CountStage(self.after_bytes, CLOSE)

    def describe(self) -> str:
        """Return the call that adds this toxic."""
        return f"limit_data({self.after_bytes})"


# -- the steps a pipe asks for ---------------------------------------------------------------


class Send(NamedTuple):
    """Send ``data`` now, then report it with :meth:`Pipe.commit`."""

    data: bytes
    chunk: Chunk
    stages: tuple[Stage, ...]
    readies: tuple[float, ...]


class Wait(NamedTuple):
    """Nothing to do before ``until`` (``None``: until bytes arrive or the toxics change)."""

    until: Optional[float]


class Drop(NamedTuple):
    """Discard ``size`` buffered bytes (a timeout toxic swallows them); report with ``drop``."""

    size: int


class Finish(NamedTuple):
    """The input ended and every byte is out: pass the end of the stream on (half-close)."""


class End(NamedTuple):
    """End the whole connection, :data:`CLOSE` or :data:`RESET`."""

    how: str


Step = Union[Send, Wait, Drop, Finish, End]


class Pipe:
    """One direction of one connection: the buffered bytes and the toxics' states.

    Args:
        rng: Where latency jitter comes from.

    Attributes:
        buffered: Bytes waiting to be forwarded.
        input_closed: True once the sending peer ended its stream.
    """

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._chunks: deque[Chunk] = deque()
        self._stages: list[tuple[Hashable, Stage]] = []
        self.buffered = 0
        self.input_closed = False

    # -- toxics -----------------------------------------------------------------------------

    def add(self, key: Hashable, spec: ToxicSpec, now: float) -> None:
        """Put a toxic at the end of the chain; ``key`` names it for :meth:`remove`."""
        self._stages.append((key, spec.stage(now, self._rng)))

    def remove(self, key: Hashable) -> None:
        """Take the toxic added with ``key`` off the chain (a missing one is ignored)."""
        self._stages = [(k, stage) for k, stage in self._stages if k != key]

    # -- input ------------------------------------------------------------------------------

    def feed(self, data: bytes, now: float) -> None:
        """Buffer bytes the sending peer sent, read at ``now``."""
        if data:
            self._chunks.append(Chunk(bytes(data), now))
            self.buffered += len(data)

    def close_input(self) -> None:
        """Note that the sending peer ended its stream (what is buffered still goes)."""
        self.input_closed = True

    # -- output -----------------------------------------------------------------------------

    def next_step(self, now: float) -> Step:
        """Return what to do at ``now``: send, wait, drop, pass the end on, or end it all."""
        for _, stage in self._stages:
            how = stage.end(now)
            if how is not None:
                return End(how)
            if stage.drops:
                # Nothing goes past a dropping stage, neither bytes nor the end of the stream.
                return Drop(self.buffered) if self.buffered else Wait(stage.deadline)
        if not self._chunks:
            return Finish() if self.input_closed else Wait(None)
        chunk = self._chunks[0]
        ready, size = chunk.arrived, chunk.remaining
        stages = tuple(stage for _, stage in self._stages)
        readies = []
        for stage in stages:
            readies.append(ready)
            ready, size = stage.shape(chunk, ready, size)
        if ready > now:
            return Wait(ready)
        return Send(chunk.data[chunk.offset : chunk.offset + size], chunk, stages, tuple(readies))

    def commit(self, step: Send, sent_at: float) -> None:
        """Report that ``step.data`` was sent at ``sent_at``.

        Raises:
            ValueError: If ``step`` is not the piece at the head of the buffer.
        """
        if not self._chunks or self._chunks[0] is not step.chunk:
            raise ValueError("commit() step is not the head of this pipe; ask next_step() again")
        size = len(step.data)
        current = {id(stage) for _, stage in self._stages}
        for stage, ready in zip(step.stages, step.readies):
            if id(stage) in current:  # a toxic removed during the send learns nothing
                stage.commit(size, ready, sent_at)
        self._consume(size)

    def drop(self, step: Drop) -> None:
        """Discard the bytes a :class:`Drop` step named."""
        self._consume(min(step.size, self.buffered))

    def _consume(self, size: int) -> None:
        self.buffered -= size
        while size:
            chunk = self._chunks[0]
            taken = min(size, chunk.remaining)
            chunk.offset += taken
            size -= taken
            if not chunk.remaining:
                self._chunks.popleft()
