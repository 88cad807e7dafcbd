"""``info()`` and ``str()`` of a TCP socket, computed from its OS sockets."""

from __future__ import annotations

import socket
from typing import Any, Optional, Union

from pytest_hsocket._core.address import sockaddr_of
from pytest_hsocket._core.platform import is_unix_family

InfoValue = Union[str, int, float, bool, bytes]


def _name(fn: Any) -> Any:
    try:
        return fn()
    except OSError:
        return None


def endpoint(addr: Any) -> tuple[str, int]:
    """Return ``(host, port)`` of an IP socket address, or ``("", 0)``."""
    if isinstance(addr, tuple) and len(addr) >= 2:
        return str(addr[0]), int(addr[1])
    return "", 0


def tcp_info(
    *,
    sock: Optional[socket.socket],
    listening: bool,
    connected: bool,
    started: bool,
    connections: int,
    secure: bool,
    timeout: float,
    unix_path: str,
    user_data: str,
) -> dict[str, InfoValue]:
    """Build the original's 19 ``info()`` keys; absent values are ``""``, ``0`` or ``False``."""
    peer = _name(sock.getpeername) if sock is not None and not listening else None
    local = _name(sock.getsockname) if sock is not None else None
    family = sock.family if sock is not None else None
    unix = is_unix_family(family)
    connected_host, connected_port = ("", 0) if unix else endpoint(peer)
    local_host, local_port = ("", 0) if unix else endpoint(local)
    return {
        "connectedAddress": sockaddr_of(peer) or "",
        "connectedHost": connected_host,
        "connectedPort": connected_port,
        "connectedURL": f"file://{unix_path}" if unix and not listening and unix_path else "",
        "connections": connections,
        "isConnected": connected,
        "isDisconnected": not started,
        "isIPv4": family == socket.AF_INET,
        "isIPv4Enabled": True,
        "isIPv4PreferredOverIPv6": True,
        "isIPv6": family == socket.AF_INET6,
        "isIPv6Enabled": True,
        "isSecure": secure,
        "localAddress": sockaddr_of(local) or "",
        "localHost": local_host,
        "localPort": local_port,
        "timeout": timeout,
        "unixSocketPath": unix_path,
        "userData": user_data,
    }


def describe(info: dict[str, InfoValue], prefix: str = "hs.socket") -> str:
    """Name a socket as the original's ``tostring`` does (without the pointer)."""
    server = info["userData"] == "SERVER"
    host = str(info["localHost"] if server else info["connectedHost"]) or "(null)"
    port = info["localPort"] if server else info["connectedPort"]
    if ":" in host:
        host = f"[{host}]"
    where = str(info["unixSocketPath"]) or f"{host}:{port!s}"
    return f"{prefix}(server): {where}" if server else f"{prefix}: {where}"
