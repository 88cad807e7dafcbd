"""One direction of a proxied TCP connection: the bytes it buffers and the schedule of its sends.

One direction of a proxied connection is a :class:`Pipe`: the bytes read from one side wait in
its buffer with the time they arrived, and the stages of the toxics on that direction
(``_toxics``), in the order they were added, decide when the next piece goes out, how big it
is, whether it is dropped, and when the connection ends. The I/O side asks
:meth:`Pipe.next_step` what to do now and reports back with :meth:`Pipe.commit` (a piece was
sent) or :meth:`Pipe.drop`.

Nothing is planned ahead: the schedule is recomputed at every step from what is buffered, so a
toxic added or removed while bytes wait applies to those bytes at once. Times are plain floats
(seconds on any monotonic clock); randomness (latency jitter) comes from a ``random.Random`` the
caller gives, so every schedule here can be checked without sockets or sleeps.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Hashable
from typing import TYPE_CHECKING, NamedTuple, Optional, Union

if TYPE_CHECKING:
    from pytest_hsocket._core.toxics import ToxicSpec

CLOSE = "close"
"""End a connection gracefully: both peers see the end of the stream (FIN)."""
RESET = "reset"
"""End a connection abruptly: both peers see a TCP reset (RST)."""


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


class ToxicStage:
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


# -- the steps a pipe asks for ---------------------------------------------------------------


class Send(NamedTuple):
    """Send ``data`` now, then report it with :meth:`Pipe.commit`."""

    data: bytes
    chunk: Chunk
    stages: tuple[ToxicStage, ...]
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
        self._stages: list[tuple[Hashable, ToxicStage]] = []
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
