"""``host``, ``port`` and ``address`` of a bound socket, read from its ``info()`` (the TCP and
UDP mock servers)."""

from __future__ import annotations

from abc import abstractmethod
from typing import Optional

from pytest_hsocket._hs.info import InfoValue


class LocalAddress:
    """``host``, ``port`` and ``address`` of a bound socket (put it after the socket class)."""

    @abstractmethod
    def info(self) -> dict[str, InfoValue]:
        """The socket's info keys (the socket class's ``info``)."""

    def _bound_ip(self) -> Optional[tuple[str, int]]:
        """``(host, port)`` read straight off the bound IP socket, if the class can: cheaper
        than the 19 keys of ``info()``, which a test asks for on every connect."""
        return None

    @property
    def host(self) -> str:
        """The host it is bound to (``""`` for a Unix socket)."""
        bound = self._bound_ip()
        return bound[0] if bound is not None else str(self.info()["localHost"])

    @property
    def port(self) -> int:
        """The port it is bound to (0 for a Unix socket)."""
        bound = self._bound_ip()
        if bound is not None:
            return bound[1]
        port = self.info()["localPort"]
        return port if isinstance(port, int) else 0

    @property
    def address(self) -> tuple[str, int]:
        """``(host, port)``, ready for ``socket.create_connection`` or ``sendto``."""
        return (self.host, self.port)
