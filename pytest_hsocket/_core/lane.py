"""One direction of the UDP chaos proxy: what each datagram becomes, and when it goes out.

One direction of the proxy is a :class:`Lane`: a chain of stages, in the order they were added,
that every datagram read in that direction goes through (the stages of the chaos effects of
``_chaos``). A stage may drop the datagram, send it twice, cut it short, hold it back until
later datagrams have passed it, or delay it. The I/O side calls :meth:`Lane.feed` with each
datagram and the time it was read, and sends what comes back (:class:`Emit`: the bytes, when
to send them, and an opaque ``tag`` that says where to). Held datagrams come out later from
:meth:`Lane.feed` (once enough datagrams passed them) or from :meth:`Lane.due` (once they were
held for long enough); :meth:`Lane.next_due` says when to ask.

Every random decision is one draw from the ``random.Random`` the lane was given, in the order
the datagrams arrive, so the same seed, chain and datagrams give the same decisions. Nothing
here touches a socket or a clock: times are plain floats the caller passes in.
"""

from __future__ import annotations

import random
from collections.abc import Hashable
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, NamedTuple, Optional

if TYPE_CHECKING:
    from pytest_hsocket._core.chaos import ChaosSpec


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


class ChaosStage:
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


class Lane:
    """One direction of the proxy: the chain of chaos stages and its counters.

    Args:
        rng: Where every random decision comes from.

    Attributes:
        stats: The counters (``forwarded`` is the I/O side's to count).
    """

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._stages: list[tuple[Hashable, ChaosStage]] = []
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
