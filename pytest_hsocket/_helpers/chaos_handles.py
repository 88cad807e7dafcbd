"""The chaos of a :class:`~pytest_hsocket._helpers.udp_proxy.UdpProxy` as a test holds it.

``proxy.upstream`` and ``proxy.downstream`` are :class:`ChaosDirection`: each method adds one
effect (a spec of ``_chaos``) at the end of the direction's chain and returns its
:class:`Chaos` handle. The plumbing (listing, removal, the loop) is ``_proxy_common``'s, shared
with the TCP proxy's toxics.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from pytest_hsocket._core.chaos import ChaosSpec, Delay, Drop, Duplicate, Reorder, Truncate
from pytest_hsocket._core.lane import Stats
from pytest_hsocket._helpers.proxy_common import Chain, Handle

if TYPE_CHECKING:
    from pytest_hsocket._helpers.udp_proxy import UdpProxy


class Chaos(Handle[ChaosSpec]):
    """A chaos effect on one direction of a proxy, as returned by :class:`ChaosDirection`.

    Usable as a context manager that removes it on exit. Removing it takes it off at once:
    datagrams it was holding back (``reorder``) go on at once, through the effects that
    remain; datagrams already delayed keep their time.

    Attributes:
        spec: What it does (``spec.describe()`` gives the call that added it).
        direction: ``"upstream"`` or ``"downstream"``.
    """

    _kind = "Chaos"


class ChaosDirection(Chain[Chaos]):
    """The chaos of one direction of a :class:`UdpProxy` (``proxy.upstream``, ``.downstream``).

    Each method adds one effect at the end of the direction's chain, at once (traffic may be
    flowing), and returns its :class:`Chaos` handle. Datagrams pass the effects in the order
    they were added. Rates are probabilities from 0 to 1, drawn from the proxy's seeded
    random generator for this direction.

    Args:
        proxy: The proxy (its ``stats`` are this direction's).
        direction: ``"upstream"`` or ``"downstream"``.
        attach: Applies an effect just added to the traffic (called on the loop).
        detach: Takes an effect just removed off the traffic (called on the loop).

    Attributes:
        direction: ``"upstream"`` (client to server) or ``"downstream"`` (server to client).
    """

    _kind = "ChaosDirection"
    _empty = "no chaos"

    def __init__(
        self,
        proxy: UdpProxy,
        direction: str,
        attach: Callable[[Chaos], None],
        detach: Callable[[Chaos], None],
    ) -> None:
        super().__init__(direction, attach, detach)
        self._proxy = proxy

    @property
    def effects(self) -> list[Chaos]:
        """The effects on this direction, in chain order."""
        return self.handles()

    @property
    def stats(self) -> Stats:
        """A snapshot of this direction's counters."""
        stats: Stats = getattr(self._proxy.stats, self.direction)
        return stats

    def add(self, spec: ChaosSpec) -> Chaos:
        """Add an effect at the end of this direction's chain.

        Args:
            spec: What it does: a spec of ``pytest_hsocket._core.chaos`` (``Drop(0.2)``, ...).
        Returns:
            Its handle.
        """
        return self._add(Chaos(self, spec))

    def drop(self, rate: float) -> Chaos:
        """Discard each datagram with probability ``rate``.

        Returns:
            The effect's handle.
        Raises:
            TypeError, ValueError: If ``rate`` is not a number from 0 to 1.
        """
        return self.add(Drop(rate))

    def duplicate(self, rate: float) -> Chaos:
        """Send each datagram twice (the copy right after it) with probability ``rate``.

        Returns:
            The effect's handle.
        Raises:
            TypeError, ValueError: If ``rate`` is not a number from 0 to 1.
        """
        return self.add(Duplicate(rate))

    def reorder(self, rate: float, window: int = 3, *, max_hold_ms: float = 50) -> Chaos:
        """Hold each datagram back with probability ``rate`` until ``window`` later datagrams
        have overtaken it, or ``max_hold_ms`` passed; none is lost.

        Args:
            rate: The probability that a datagram is held back.
            window: How many later datagrams overtake a held one.
            max_hold_ms: The longest a datagram is held when too few datagrams follow it.
        Returns:
            The effect's handle.
        Raises:
            TypeError, ValueError: If ``rate`` is not from 0 to 1, ``window`` not an int of 1
                or more, or ``max_hold_ms`` negative.
        """
        return self.add(Reorder(rate, window, max_hold_ms))

    def truncate(self, rate: float, size: int) -> Chaos:
        """Cut each datagram longer than ``size`` bytes to ``size`` with probability ``rate``.

        Returns:
            The effect's handle.
        Raises:
            TypeError, ValueError: If ``rate`` is not from 0 to 1 or ``size`` not an int of 0
                or more.
        """
        return self.add(Truncate(rate, size))

    def delay(self, ms: float, jitter: float = 0) -> Chaos:
        """Send each datagram ``ms`` milliseconds after it arrived, plus or minus up to
        ``jitter`` (drawn per datagram; with jitter, close datagrams may swap).

        Returns:
            The effect's handle.
        Raises:
            TypeError, ValueError: If a value is not a number of 0 or more.
        """
        return self.add(Delay(ms, jitter))
