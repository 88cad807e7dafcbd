"""Every difference between operating systems, in one place.

The rest of the package asks this module instead of testing ``sys.platform`` or reaching for a
socket option that may not exist. Each fact below is read at call time, so a test can simulate
another platform by monkeypatching it (``tests/test_platform.py`` does). ``docs/platforms.md``
lists the same facts for users.

| difference | Linux | macOS | Windows |
|---|---|---|---|
| Unix domain sockets (``AF_UNIX``) | yes | yes | only on some Pythons; else a clear error |
| longest Unix socket path | 108 bytes | 104 bytes | 108 bytes |
| TCP listener option | ``SO_REUSEADDR`` | ``SO_REUSEADDR`` | ``SO_EXCLUSIVEADDRUSE`` |
| UDP ``reuse_port(True)`` | ``SO_REUSEPORT`` | ``SO_REUSEPORT`` | ``SO_REUSEADDR`` |
| bytes a socket has not delivered | ``TIOCOUTQ`` ioctl | ``SO_NWRITE`` | unknown (0) |
| native ``sockaddr`` has a length byte | no | yes (BSD) | no |
"""

from __future__ import annotations

import socket
import struct
import sys
from typing import Optional

PLATFORM: str = sys.platform
"""``sys.platform`` as this module sees it (monkeypatched by tests that simulate another)."""

AF_UNIX: Optional[int] = getattr(socket, "AF_UNIX", None)
"""``socket.AF_UNIX``, or ``None`` on a Python without Unix domain sockets (some Windows builds)."""

SO_REUSEPORT: Optional[int] = getattr(socket, "SO_REUSEPORT", None)
"""``socket.SO_REUSEPORT`` where the OS has it (Linux 3.9+, macOS, the BSDs), else ``None``."""

SO_EXCLUSIVEADDRUSE: Optional[int] = getattr(socket, "SO_EXCLUSIVEADDRUSE", None)
"""Windows only: a listener that no other socket may share, even one with ``SO_REUSEADDR``."""

# Linux answers "bytes not yet acknowledged by the peer" with the TIOCOUTQ (= SIOCOUTQ) ioctl.
# macOS has TIOCOUTQ too, but for terminals only (a socket gets ENOTTY); its socket option
# SO_NWRITE (0x1024 in <sys/socket.h>, not exported by Python) answers the same question.
try:
    import fcntl
    import termios

    TIOCOUTQ: Optional[int] = getattr(termios, "TIOCOUTQ", None)
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]
    TIOCOUTQ = None
SO_NWRITE = 0x1024


def is_windows() -> bool:
    """Whether this is Windows (``sys.platform == "win32"``)."""
    return PLATFORM == "win32"


def is_macos() -> bool:
    """Whether this is macOS (``sys.platform == "darwin"``)."""
    return PLATFORM == "darwin"


def has_unix_sockets() -> bool:
    """Whether this Python can make Unix domain sockets (``socket.AF_UNIX`` exists)."""
    return AF_UNIX is not None


def unix_sockets_missing() -> str:
    """The reason to log, raise or skip with where Unix domain sockets are missing."""
    return f"Unix domain sockets (socket.AF_UNIX) are not available on this Python ({PLATFORM})"


def unix_family() -> int:
    """Return ``socket.AF_UNIX``.

    Raises:
        OSError: Where this Python has no Unix domain sockets (``strerror`` says so); callers
            that follow the hs.socket contract log it and return ``None``.
    """
    if AF_UNIX is None:
        raise OSError(0, unix_sockets_missing())
    return AF_UNIX


def is_unix_family(family: object) -> bool:
    """Whether ``family`` is ``AF_UNIX`` (always ``False`` where there is none)."""
    return AF_UNIX is not None and family == AF_UNIX


def unix_path_max() -> int:
    """The longest Unix socket path in bytes: 104 on macOS and the BSDs, 108 elsewhere."""
    return 104 if PLATFORM == "darwin" or PLATFORM.startswith("freebsd") else 108


def tcp_listener_options() -> list[tuple[int, int, int]]:
    """The ``(level, option, value)`` a TCP listener sets before ``bind``.

    Elsewhere ``SO_REUSEADDR`` lets a restarted server bind a port whose old connections are in
    TIME_WAIT, and never lets two listeners share a port. On Windows it would let a second
    listener take a port in use, so there the listener asks for ``SO_EXCLUSIVEADDRUSE``
    instead (what ``socket.create_server`` does).

    Returns:
        The options to set, in order (empty where none applies).
    """
    if is_windows():
        if SO_EXCLUSIVEADDRUSE is None:
            return []
        return [(socket.SOL_SOCKET, SO_EXCLUSIVEADDRUSE, 1)]
    return [(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)]


def udp_reuse_port_option() -> Optional[int]:
    """The option that lets several UDP sockets bind one port, or ``None`` where there is none.

    ``SO_REUSEPORT`` where the OS has it; on Windows, ``SO_REUSEADDR``, which has that meaning
    for UDP there.
    """
    if SO_REUSEPORT is not None:
        return SO_REUSEPORT
    if is_windows():
        return socket.SO_REUSEADDR
    return None


def unsent_bytes(sock: socket.socket) -> int:
    """Bytes ``sock`` has queued that the peer has not yet acknowledged; 0 where unknown.

    Linux: the ``TIOCOUTQ`` ioctl. macOS: ``SO_NWRITE``. Windows and the rest: unknown, 0 (a
    caller that waits for the queue to drain then does not wait).
    """
    try:
        if is_macos():
            return int(sock.getsockopt(socket.SOL_SOCKET, SO_NWRITE))
        if TIOCOUTQ is None or fcntl is None or not PLATFORM.startswith("linux"):
            return 0
        raw = fcntl.ioctl(sock.fileno(), TIOCOUTQ, b"\0\0\0\0")
    except OSError:
        return 0
    value: int = struct.unpack("i", raw)[0]
    return value
