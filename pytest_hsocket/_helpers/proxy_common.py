"""What the TCP fault proxy and the UDP chaos proxy share on the loop's side: the handles a test
holds on a direction's faults, and the helpers that start and stop a proxy's greenlets.

A :class:`Proxy` has a :class:`Chain` per direction: that direction's list of faults as the
test sees it, each behind a :class:`Handle`. Adding or removing one runs on the socket loop,
where the proxy applies it to the traffic (the chain's ``attach`` / ``detach`` callbacks), so
the traffic sees a change of the chain all at once or not at all.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterable
from types import TracebackType
from typing import Any, Callable, Generic, Optional, TypeVar

from pytest_hsocket._core.faults import DOWNSTREAM, UPSTREAM, FaultSpec
from pytest_hsocket._io.sockets import Closed
from pytest_hsocket._loop.hub import get_loop

SpecT = TypeVar("SpecT", bound=FaultSpec)
HandleT = TypeVar("HandleT", bound="Handle[Any]")
ChainT = TypeVar("ChainT", bound="Chain[Any]")
ScopedT = TypeVar("ScopedT", bound="Scoped")


class Scoped:
    """A context manager that ends the object on exit (``_leave``: closes or removes it)."""

    @abstractmethod
    def _leave(self) -> None:
        """End the object (each subclass says how)."""

    def __enter__(self: ScopedT) -> ScopedT:
        return self

    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self._leave()


class Handle(Scoped, Generic[SpecT]):
    """A fault on one direction of a proxy, as the direction's methods return it.

    Usable as a context manager that removes it on exit.

    Attributes:
        spec: What it does (``spec.describe()`` gives the call that added it).
        direction: ``"upstream"`` or ``"downstream"``.
    """

    _kind = "Handle"  # how repr() names it

    def __init__(self, chain: Chain[Any], spec: SpecT) -> None:
        self._chain = chain
        self.spec = spec
        self.direction = chain.direction

    @property
    def active(self) -> bool:
        """Whether it is still on (not removed)."""
        return self in self._chain.handles()

    def remove(self) -> None:
        """Take it off at once; idempotent."""
        self._chain.remove(self)

    def _leave(self) -> None:
        self.remove()

    def __repr__(self) -> str:
        state = "" if self.active else " (removed)"
        return f"<{self._kind} {self.direction}.{self.spec.describe()}{state}>"


class Chain(Generic[HandleT]):
    """The faults on one direction of a proxy, in the order they were added.

    Args:
        direction: ``"upstream"`` or ``"downstream"``.
        attach: Applies a fault just added to the traffic (called on the loop).
        detach: Takes a fault just removed off the traffic (called on the loop).

    Attributes:
        direction: ``"upstream"`` (client to server) or ``"downstream"`` (server to client).

    A :class:`Handle` lists and removes itself through :meth:`handles` and :meth:`remove`.
    """

    _kind = "Chain"  # how repr() names it
    _empty = "nothing"  # what repr() says of an empty chain

    def __init__(
        self,
        direction: str,
        attach: Callable[[HandleT], None],
        detach: Callable[[HandleT], None],
    ) -> None:
        self.direction = direction
        self._attach = attach
        self._detach = detach
        self._handles: list[HandleT] = []

    def clear(self) -> None:
        """Remove everything on this direction."""
        for handle in self.handles():
            handle.remove()

    def handles(self) -> list[HandleT]:
        """Return the handles on this direction, in chain order (a copy)."""
        return list(self._handles)

    # The list changes on the loop only, so what the proxy applies always matches it.

    def _add(self, handle: HandleT) -> HandleT:
        def add() -> None:
            self._handles.append(handle)
            self._attach(handle)

        get_loop().run_sync(add)
        return handle

    def remove(self, handle: HandleT) -> None:
        """Take ``handle`` off this direction at once (on the loop); idempotent.

        Args:
            handle: A handle this direction returned.
        """

        def remove() -> None:
            if handle in self._handles:
                self._handles.remove(handle)
                self._detach(handle)

        get_loop().run_sync(remove)

    def __repr__(self) -> str:
        chain = ", ".join(h.spec.describe() for h in self.handles()) or self._empty
        return f"<{self._kind} {self.direction}: {chain}>"


class Proxy(Scoped, Generic[ChainT]):
    """What both proxies are: one upstream, a chain of faults per direction, and a context
    manager that closes the proxy (the subclass defines ``close``).

    Attributes:
        upstream_address: Where the traffic is forwarded, ``(host, port)``.
    """

    def __init__(self, upstream_address: tuple[str, int], chains: dict[str, ChainT]) -> None:
        """A proxy to ``upstream_address`` with a chain of faults per direction."""
        self.upstream_address = upstream_address
        self._chains = chains

    @property
    def upstream(self) -> ChainT:
        """The faults on what clients send to the server."""
        return self._chains[UPSTREAM]

    @property
    def downstream(self) -> ChainT:
        """The faults on what the server sends back to clients."""
        return self._chains[DOWNSTREAM]

    @abstractmethod
    def close(self) -> None:
        """Stop forwarding; idempotent."""

    def _leave(self) -> None:
        self.close()

    def _upstream_text(self) -> str:
        return f"{self.upstream_address[0]}:{self.upstream_address[1]}"


def io_watchers(hub: Any, fileno: int) -> tuple[Any, Any]:
    """Return a readable and a writable watcher of ``fileno`` on ``hub``'s loop (on the loop)."""
    return hub.loop.io(fileno, 1), hub.loop.io(fileno, 2)


def stop_greenlets(greenlets: Iterable[Any], watchers: Iterable[Any]) -> None:
    """Kill ``greenlets`` (with :class:`Closed`, waiting), then close ``watchers`` (on the loop).

    In this order, no greenlet is left waiting on a watcher that is closed; close the sockets
    after this. ``None`` watchers (never made) are passed over.
    """
    for greenlet in greenlets:
        greenlet.kill(Closed, block=True)
    for watcher in watchers:
        if watcher is not None:
            watcher.close()
