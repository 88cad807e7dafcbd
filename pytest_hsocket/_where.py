"""Where a mock server listens, read from its ``info()``: shared by the TCP and UDP servers."""

from __future__ import annotations

from ._info import InfoValue


class LocalAddress:
    """``host``, ``port`` and ``address`` of a bound socket (put it after the socket class)."""

    def info(self) -> dict[str, InfoValue]:  # pragma: no cover - the socket class's is used
        """The socket's info keys."""
        raise NotImplementedError

    @property
    def host(self) -> str:
        """The host it is bound to (``""`` for a Unix socket)."""
        return str(self.info()["localHost"])

    @property
    def port(self) -> int:
        """The port it is bound to (0 for a Unix socket)."""
        port = self.info()["localPort"]
        return port if isinstance(port, int) else 0

    @property
    def address(self) -> tuple[str, int]:
        """``(host, port)``, ready for ``socket.create_connection`` or ``sendto``."""
        return (self.host, self.port)
