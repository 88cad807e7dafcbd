"""The toxics of a :class:`~pytest_hsocket._helpers.proxy.FaultProxy` as a test holds them.

``proxy.upstream`` and ``proxy.downstream`` are :class:`Toxics`: each method adds one toxic
(a spec of ``_toxics``) at the end of the direction's chain, on live connections too, and
returns its :class:`Toxic` handle. The plumbing (listing, removal, the loop) is
``_proxy_common``'s, shared with the UDP proxy's chaos.
"""

from __future__ import annotations

from pytest_hsocket._core.toxics import (
    Bandwidth,
    Latency,
    LimitData,
    ResetPeer,
    Slicer,
    Timeout,
    ToxicSpec,
)
from pytest_hsocket._helpers.proxy_common import Chain, Handle


class Toxic(Handle[ToxicSpec]):
    """A toxic on one direction of a proxy, as returned by the methods of :class:`Toxics`.

    Usable as a context manager that removes it on exit. Removing it takes it off every
    connection at once: bytes it was holding back go on at once, through the toxics that
    remain.

    Attributes:
        spec: What it does (``spec.describe()`` gives the call that added it).
        direction: ``"upstream"`` or ``"downstream"``.
    """

    _kind = "Toxic"


class Toxics(Chain[Toxic]):
    """The toxics of one direction of a :class:`FaultProxy` (``proxy.upstream``, ``.downstream``).

    Each method adds one toxic at the end of the direction's chain, on live connections too,
    and returns its :class:`Toxic` handle. Bytes pass the toxics in the order they were added.

    Attributes:
        direction: ``"upstream"`` (client to server) or ``"downstream"`` (server to client).
    """

    _kind = "Toxics"
    _empty = "no toxics"

    @property
    def toxics(self) -> list[Toxic]:
        """The toxics on this direction, in chain order."""
        return self.handles()

    def add(self, spec: ToxicSpec) -> Toxic:
        """Add a toxic at the end of this direction's chain, on live connections too.

        Args:
            spec: What it does: a spec of ``pytest_hsocket._core.toxics`` (``Latency(100)``, ...).
        Returns:
            Its handle.
        """
        return self._add(Toxic(self, spec))

    def latency(self, ms: float, jitter: float = 0) -> Toxic:
        """Delay every chunk by ``ms`` milliseconds, plus or minus up to ``jitter`` ms.

        Order is kept; chunks in flight do not add up (each waits ``ms`` from its arrival).

        Args:
            ms: The delay in milliseconds.
            jitter: Up to this many milliseconds more or less, drawn per chunk.
        Returns:
            The toxic's handle.
        Raises:
            TypeError, ValueError: If a value is not a number of 0 or more.
        """
        return self.add(Latency(ms, jitter))

    def bandwidth(self, bytes_per_second: float) -> Toxic:
        """Cap the rate at ``bytes_per_second`` (sent in pieces of 1/100 s worth).

        Args:
            bytes_per_second: The rate.
        Returns:
            The toxic's handle.
        Raises:
            TypeError, ValueError: If the rate is not a positive number.
        """
        return self.add(Bandwidth(bytes_per_second))

    def slicer(self, size: int, delay: float = 0) -> Toxic:
        """Cut what is read into slices of ``size`` bytes, sent ``delay`` seconds apart.

        Args:
            size: Bytes per slice (the last slice of a read may be shorter).
            delay: Seconds between two slices.
        Returns:
            The toxic's handle.
        Raises:
            TypeError, ValueError: If ``size`` is not a positive int or ``delay`` is negative.
        """
        return self.add(Slicer(size, delay))

    def timeout(self, seconds: float) -> Toxic:
        """Stop forwarding (bytes are dropped); close the connection ``seconds`` after the toxic
        met it (0 = never close: the connection hangs until the toxic is removed).

        Args:
            seconds: Until the connection is closed; 0 = never.
        Returns:
            The toxic's handle.
        Raises:
            TypeError, ValueError: If ``seconds`` is not a number of 0 or more.
        """
        return self.add(Timeout(seconds))

    def reset_peer(self, after_bytes: int) -> Toxic:
        """Forward ``after_bytes`` more bytes, then reset the connection: both peers get a TCP
        RST (``ConnectionResetError``). 0 resets every connection at once.

        Args:
            after_bytes: Bytes let through first.
        Returns:
            The toxic's handle.
        Raises:
            TypeError, ValueError: If ``after_bytes`` is not an int of 0 or more.
        """
        return self.add(ResetPeer(after_bytes))

    def limit_data(self, after_bytes: int) -> Toxic:
        """Forward ``after_bytes`` more bytes, then close the connection (both peers see the
        end of the stream). 0 closes every connection at once.

        Args:
            after_bytes: Bytes let through first.
        Returns:
            The toxic's handle.
        Raises:
            TypeError, ValueError: If ``after_bytes`` is not an int of 0 or more.
        """
        return self.add(LimitData(after_bytes))
