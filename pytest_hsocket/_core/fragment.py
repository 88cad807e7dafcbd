"""Fragmentation patterns: where to cut a response so a client sees it in many ``recv()``s.

The classic bug of a custom-protocol client is to assume that one ``recv()`` is one message.
A :class:`Fragmenter` decides the cuts (pure and seeded, so a failing run can be replayed
exactly); the mock server sends the pieces with a short pause between them.
"""

from __future__ import annotations

import random
from typing import NamedTuple

MODES = ("bytes", "delimiters", "random")
"""Every byte on its own; cuts inside and around CR/LF and NUL; random cuts."""

_DELIMITERS = frozenset(b"\r\n\x00")


class Cut(NamedTuple):
    """One response and the offsets it was cut at."""

    data: bytes
    cuts: tuple[int, ...]

    def pieces(self) -> list[bytes]:
        """The response cut into its pieces."""
        edges = [0, *self.cuts, len(self.data)]
        return [self.data[a:b] for a, b in zip(edges, edges[1:])]

    def show(self) -> str:
        """The pieces, separated by ``|``, for a failure report."""
        return " | ".join(repr(piece) for piece in self.pieces())


class Fragmenter:
    """Cuts responses the same way for the same ``seed`` and ``run``.

    Attributes:
        seed: The base seed (``--hsock-fragment-seed``).
        run: Which run of the test this is (0-based); it picks the mode and the seed.
        mode: ``"bytes"``, ``"delimiters"`` or ``"random"``.
        pause: Seconds between pieces, so the client really gets separate ``recv()``s.
        log: Every response cut so far, for the report.
    """

    def __init__(self, seed: int, run: int, pause: float = 0.002) -> None:
        self.seed = seed
        self.run = run
        self.mode = MODES[run] if run < len(MODES) else "random"
        self.pause = pause
        self._rng = random.Random(seed * 1_000_003 + run)
        self.log: list[Cut] = []

    def cut(self, data: bytes) -> list[bytes]:
        """Return ``data`` in pieces (at least two when it has two bytes or more)."""
        if len(data) < 2:
            cuts: tuple[int, ...] = ()
        elif self.mode == "bytes":
            cuts = tuple(range(1, len(data)))
        elif self.mode == "delimiters":
            points = {
                i
                for i in range(1, len(data))
                if data[i] in _DELIMITERS or data[i - 1] in _DELIMITERS
            }
            cuts = tuple(sorted(points)) or (len(data) // 2,)
        else:
            count = self._rng.randint(1, min(len(data) - 1, 8))
            cuts = tuple(sorted(self._rng.sample(range(1, len(data)), count)))
        entry = Cut(data, cuts)
        self.log.append(entry)
        return entry.pieces()

    def describe(self) -> str:
        """What this run did and how to replay it, for a failure report."""
        lines = [f"fragmentation run {self.run} ({self.mode} cuts), seed {self.seed}:"]
        lines += [f"  {cut.show()}" for cut in self.log] or ["  (nothing was sent)"]
        return "\n".join(lines)
