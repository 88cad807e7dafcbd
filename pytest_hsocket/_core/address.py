"""Socket addresses as the original's BSD ``struct sockaddr`` bytes (pure functions).

hs.socket hands addresses around as raw macOS ``sockaddr`` bytes: byte 0 is the length, byte 1
the family (2 = IPv4, 30 = IPv6), then the port big-endian and the address. We produce that
layout on every platform so the original's test vectors hold, and accept the platform's native
layout as well.
"""

from __future__ import annotations

import socket
import struct
from typing import Optional, TypedDict, Union

from pytest_hsocket._core.platform import is_macos

BSD_AF_INET = 2
BSD_AF_INET6 = 30
_SOCKADDR_IN_LEN = 16
_SOCKADDR_IN6_LEN = 28
# On Linux and Windows sa_family is a native-endian u16 with no length byte.
_NATIVE_FAMILY = struct.Struct("=H")


class Address(TypedDict):
    """A parsed socket address, as ``parse_address`` returns it."""

    host: str
    port: int
    addressFamily: int


def ip_family(host: str) -> Optional[int]:
    """Return the family of an IP literal (an IPv6 scope suffix allowed), or ``None``."""
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, host.split("%", 1)[0])
        except OSError:
            continue
        return family
    return None


def encode_sockaddr(host: str, port: int, flowinfo: int = 0, scope_id: int = 0) -> bytes:
    """Encode an IP address and port as BSD ``sockaddr`` bytes.

    Args:
        host: An IPv4 or IPv6 literal (an IPv6 scope suffix such as ``%lo`` is dropped).
        port: The port, 0-65535.
        flowinfo: IPv6 flow information.
        scope_id: IPv6 scope id.

    Returns:
        16 bytes for IPv4, 28 bytes for IPv6.

    Raises:
        ValueError: If ``host`` is not an IP literal.
    """
    host = host.split("%", 1)[0]
    if ":" in host:
        packed = socket.inet_pton(socket.AF_INET6, host)
        return (
            bytes((_SOCKADDR_IN6_LEN, BSD_AF_INET6))
            + struct.pack("!HI", port, flowinfo)
            + packed
            + struct.pack("!I", scope_id)
        )
    try:
        packed = socket.inet_pton(socket.AF_INET, host)
    except OSError as exc:
        raise ValueError(f"host must be an IP address literal, not {host!r}") from exc
    return bytes((_SOCKADDR_IN_LEN, BSD_AF_INET)) + struct.pack("!H", port) + packed + bytes(8)


def sockaddr_of(addr: object) -> bytes:
    """Encode a Python socket address tuple (as ``getpeername`` returns) as BSD bytes.

    Returns:
        The BSD ``sockaddr`` bytes, or ``b""`` for anything that is not an IP address
        (a Unix path, an empty address).
    """
    if isinstance(addr, tuple) and len(addr) >= 2 and isinstance(addr[0], str):
        try:
            if len(addr) == 4:
                return encode_sockaddr(addr[0], int(addr[1]), int(addr[2]), int(addr[3]))
            return encode_sockaddr(addr[0], int(addr[1]))
        except (ValueError, OSError):
            return b""
    return b""


def parse_address(sockaddr: Union[bytes, bytearray, memoryview, str]) -> Optional[Address]:
    """Parse binary ``sockaddr`` bytes into ``{"host", "port", "addressFamily"}``.

    Accepts the original's BSD layout (as found in ``info()["connectedAddress"]`` and the UDP
    callback's second argument) and this platform's native layout.

    Args:
        sockaddr: The raw address bytes. A ``str`` is taken as Latin-1 bytes, as a Lua
            string would be.

    Returns:
        A dict whose ``addressFamily`` is this platform's ``socket.AF_INET`` or
        ``socket.AF_INET6``, or ``None`` if the bytes are not an IPv4/IPv6 address.

    Raises:
        TypeError: If ``sockaddr`` is not bytes-like or str.
    """
    if isinstance(sockaddr, str):
        try:
            data = sockaddr.encode("latin-1")
        except UnicodeEncodeError:
            return None
    elif isinstance(sockaddr, (bytes, bytearray, memoryview)):
        data = bytes(sockaddr)
    else:
        raise TypeError(f"sockaddr must be bytes, not {type(sockaddr).__name__}")
    if len(data) < _SOCKADDR_IN_LEN:
        return None
    family = data[1]
    if family not in (BSD_AF_INET, BSD_AF_INET6) or data[0] in (0, 2, 10, 23):
        # Not the BSD layout (whose length byte is 16 or 28): try the native one.
        family = _native_family(data)
    if family == BSD_AF_INET or family == socket.AF_INET:
        port = struct.unpack_from("!H", data, 2)[0]
        host = socket.inet_ntop(socket.AF_INET, data[4:8])
        return {"host": host, "port": port, "addressFamily": int(socket.AF_INET)}
    if family == BSD_AF_INET6 or family == socket.AF_INET6:
        if len(data) < _SOCKADDR_IN6_LEN:
            return None
        port = struct.unpack_from("!H", data, 2)[0]
        host = socket.inet_ntop(socket.AF_INET6, data[8:24])
        return {"host": host, "port": port, "addressFamily": int(socket.AF_INET6)}
    return None


def _native_family(data: bytes) -> int:
    native = int(_NATIVE_FAMILY.unpack_from(data, 0)[0])
    if native == socket.AF_INET:
        return int(socket.AF_INET)
    if native == socket.AF_INET6 and not is_macos():
        return int(socket.AF_INET6)
    return -1


parseAddress = parse_address
