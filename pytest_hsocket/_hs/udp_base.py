"""What every ``hsocket.udp`` socket shares: state, configuration, queries, address choice,
and the reports its I/O sends it on the loop. The operations are in ``udp``."""

from __future__ import annotations

import logging
import socket
from collections import deque
from typing import Any, Callable, Optional, TypeVar

import gevent

import pytest_hsocket._core.platform as _platform
import pytest_hsocket._hs.info as _info
from pytest_hsocket._core.address import ip_family, parse_address, sockaddr_of
from pytest_hsocket._core.checks import (
    check_callable,
    check_int,
    check_timeout,
    default_timeout,
)
from pytest_hsocket._core.errors import CallbackError, raise_first
from pytest_hsocket._hs.defaults import UDP_TIMEOUT
from pytest_hsocket._io.datagram import Datagrams
from pytest_hsocket._loop.callbacks import CallbackQueue
from pytest_hsocket._loop.hub import get_loop
from pytest_hsocket._loop.originals import getaddrinfo

log = logging.getLogger("pytest_hsocket.udp")

DatagramCallback = Callable[[bytes, bytes], object]
"""``fn(data, sockaddr)``: a datagram and its sender's BSD sockaddr bytes."""
SendCallback = Callable[[int], object]
U = TypeVar("U", bound="UdpCore")

LOCAL_NAMES = {"localhost": ("127.0.0.1", "::1"), "loopback": ("127.0.0.1", "::1")}


def needs_resolver(host: str) -> bool:
    """Whether ``host`` is a name that must go to the resolver (not a literal or localhost)."""
    return ip_family(host) is None and host.lower() not in LOCAL_NAMES


def _sender_text(sockaddr: bytes) -> str:
    sender = parse_address(sockaddr)
    return f"{sender['host']}:{sender['port']}" if sender else "?"


class UdpCore:
    """State, configuration, queries and I/O reports of a UDP socket (see ``UdpSocket``)."""

    def __init__(self, fn: Optional[DatagramCallback] = None) -> None:
        check_callable(fn, "callback")
        self._loop = get_loop()
        self._callback = fn
        self._timeout = default_timeout(UDP_TIMEOUT.value, "hsocket.udp")
        self._io: Optional[Datagrams] = None
        self._bound = False
        self._connected = False
        self._connecting = False
        self._peer: tuple[str, int] = ("", 0)
        self._user_data = ""
        self._ipv4 = True
        self._ipv6 = True
        self._prefer = 0
        self._max4 = 65535
        self._max6 = 65535
        self._broadcast = False
        self._reuse = False
        self._callbacks = CallbackQueue(self._callback_failed)
        self.callback_errors: list[CallbackError] = []
        self._send_queue: deque[
            tuple[bytes, Optional[str], Optional[int], int, Optional[SendCallback]]
        ] = deque()
        self._send_worker: Any = None
        # Work handed to the loop that may make the OS socket there (a first send): close()
        # must then go to the loop too, or the socket made after it would leak.
        self._handed_off = False

    # -- configuration ----------------------------------------------------------------------

    def set_callback(self: U, fn: Optional[DatagramCallback] = None) -> U:
        """Set the datagram callback ``fn(data, sockaddr)``; ``None`` clears it.

        Returns:
            This socket.
        Raises:
            TypeError: If ``fn`` is not callable.
        """
        check_callable(fn, "callback")
        self._callback = fn
        return self

    def set_timeout(self: U, timeout: float) -> U:
        """Set the send timeout (seconds; negative = none). A timed-out send is dropped with an
        ERROR log; the socket stays open.

        Returns:
            This socket.
        Raises:
            TypeError: If ``timeout`` is not a number.
        """
        self._timeout = check_timeout(timeout, "set_timeout()")
        return self

    def set_buffer_size(self: U, size: int, version: Optional[int] = None) -> U:
        """Set the largest datagram delivered whole (longer ones are truncated, with a warning).

        Args:
            size: Bytes; IPv4 is capped at 65535. 0, as in the original, delivers nothing
                (every datagram is consumed and dropped).
            version: 4 or 6 for one family; ``None`` for both.
        Returns:
            This socket.
        Raises:
            TypeError: If ``size`` or ``version`` is not an int.
            ValueError: If ``size`` is negative or ``version`` is not 4, 6 or None.
        """
        check_int(size, "set_buffer_size() size")
        if version not in (None, 4, 6):
            raise ValueError(f"set_buffer_size() version must be 4, 6 or None, not {version!r}")
        if version in (None, 4):
            self._max4 = min(size, 65535)
        if version in (None, 6):
            self._max6 = min(size, 4294967295)
        # In force when the call returns: a datagram sent after it is read at the new size.
        self._loop.run_sync(self._apply_buffer_size)
        return self

    def _apply_buffer_size(self) -> None:
        if self._io is not None:
            self._io.buffer_size = self._max6 if self._io.family == socket.AF_INET6 else self._max4

    def enable_ipv(self: U, version: int, flag: bool = True) -> Optional[U]:
        """Allow or forbid an IP version for the addresses this socket resolves and binds.

        Returns:
            This socket, or ``None`` with ``Invalid IP version: N`` logged at ERROR.
        Raises:
            TypeError: If ``version`` is not an int or ``flag`` not a bool.
        """
        check_int(version, "enable_ipv() version", None)
        if not isinstance(flag, bool):
            raise TypeError(f"enable_ipv() flag must be a bool, not {flag!r}")
        if version not in (4, 6):
            log.error("Invalid IP version: %d", version)
            return None
        if version == 4:
            self._ipv4 = flag
        else:
            self._ipv6 = flag
        return self

    def prefer_ipv(self: U, version: Optional[int] = None) -> U:
        """Prefer IPv4 (4) or IPv6 (6) when a name resolves to both; anything else = neutral.

        Returns:
            This socket.
        """
        self._prefer = version if version in (4, 6) else 0
        return self

    def broadcast(self: U, flag: bool = True) -> Optional[U]:
        """Allow (or, with False, forbid) sending to broadcast addresses (IPv4).

        ``broadcast(True)`` enables it (the original's code disabled it by mistake).

        Returns:
            This socket, or ``None`` with ``Unable to enable broadcasting: ...`` logged.
        """
        if not isinstance(flag, bool):
            raise TypeError(f"broadcast() flag must be a bool, not {flag!r}")
        self._broadcast = flag
        return self._set_option("Unable to enable broadcasting: %s", socket.SO_BROADCAST, flag)

    enable_broadcast = broadcast

    def reuse_port(self: U, flag: bool = True) -> Optional[U]:
        """Let several sockets bind the same port (``SO_REUSEPORT``); call before ``listen``.

        Returns:
            This socket, or ``None`` with ``Unable to enable port reuse: ...`` logged.
        """
        if not isinstance(flag, bool):
            raise TypeError(f"reuse_port() flag must be a bool, not {flag!r}")
        self._reuse = flag
        option = _platform.udp_reuse_port_option()
        if option is None:
            log.error("Unable to enable port reuse: %s", "SO_REUSEPORT is not available here")
            return None
        return self._set_option("Unable to enable port reuse: %s", option, flag)

    def _set_option(self: U, message: str, option: int, flag: bool) -> Optional[U]:
        def apply() -> None:
            io = self._ensure(socket.AF_INET if self._ipv4 else socket.AF_INET6)
            io.sock.setsockopt(socket.SOL_SOCKET, option, int(flag))

        try:
            self._loop.run_sync(apply)
        except OSError as exc:
            log.error(message, exc.strerror or exc)
            return None
        return self

    def _ensure(self, family: int) -> Datagrams:
        # On the loop: the OS socket, made for ``family`` if there is none yet.
        if self._io is None:
            self._io = Datagrams(self, family)
            sock = self._io.sock
            option = _platform.udp_reuse_port_option()
            if self._reuse and option is not None:
                sock.setsockopt(socket.SOL_SOCKET, option, 1)
            if self._broadcast and family == socket.AF_INET:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
            self._apply_buffer_size()
        return self._io

    # -- queries ----------------------------------------------------------------------------

    def connected(self) -> bool:
        """Return whether ``connect`` completed."""
        return self._connected

    def closed(self) -> bool:
        """Return whether the socket has no OS socket (new, or closed)."""
        return self._io is None

    def info(self) -> dict[str, _info.InfoValue]:
        """Return the original's 25 info keys; absent values are ``""``, ``0`` or ``False``."""
        io = self._io
        family = io.family if io is not None else None
        local = None
        if io is not None:
            try:
                local = io.sock.getsockname()
            except OSError:
                local = None
        host, port = _info.endpoint(local) if local and local[1] else ("", 0)
        address = sockaddr_of(local) if port else b""
        v4 = family == socket.AF_INET
        v6 = family == socket.AF_INET6
        peer_host, peer_port = self._peer
        return {
            "connectedAddress": sockaddr_of(self._peer) if peer_port else "",
            "connectedHost": peer_host,
            "connectedPort": peer_port,
            "isClosed": io is None,
            "isConnected": self._connected,
            "isIPv4": v4 if io is not None else self._ipv4,
            "isIPv4Enabled": self._ipv4,
            "isIPv4Preferred": self._prefer == 4,
            "isIPv6": v6 if io is not None else self._ipv6,
            "isIPv6Enabled": self._ipv6,
            "isIPv6Preferred": self._prefer == 6,
            "isIPVersionNeutral": self._prefer == 0,
            "localAddress": address or "",
            "localHost": host,
            "localPort": port,
            "localAddress_IPv4": (address or "") if v4 else "",
            "localHost_IPv4": host if v4 else "",
            "localPort_IPv4": port if v4 else 0,
            "localAddress_IPv6": (address or "") if v6 else "",
            "localHost_IPv6": host if v6 else "",
            "localPort_IPv6": port if v6 else 0,
            "maxReceiveIPv4BufferSize": self._max4,
            "maxReceiveIPv6BufferSize": self._max6,
            "timeout": self._timeout,
            "userData": self._user_data,
        }

    def __str__(self) -> str:
        info = self.info()
        server = info["userData"] == "SERVER"
        host = str(info["localHost"] if server else info["connectedHost"]) or "(null)"
        port = info["localPort"] if server else info["connectedPort"]
        if ":" in host:
            host = f"[{host}]"
        return f"hs.socket.udp: {host}:{port!s}"

    def __repr__(self) -> str:
        return f"<{self}>"

    def _resolve_now(self, host: str, port: int, passive: bool = False) -> tuple[int, Any]:
        # Literals and localhost need no resolver; others go to the OS (at most /etc/hosts for
        # the local names a test binds).
        candidates = LOCAL_NAMES.get(host.lower(), (host,))
        options: list[tuple[int, Any]] = []
        for name in candidates:
            family = ip_family(name)
            if family is not None:
                options.append((family, (name, port)))
        if not options:
            flags = socket.AI_PASSIVE if passive else 0
            for family, _, _, _, address in getaddrinfo(host, port, 0, socket.SOCK_DGRAM, 0, flags):
                options.append((family, address))
        return self._pick(options, host)

    def _pick(self, options: list[tuple[int, Any]], host: str) -> tuple[int, Any]:
        allowed = [
            o
            for o in options
            if (o[0] == socket.AF_INET and self._ipv4) or (o[0] == socket.AF_INET6 and self._ipv6)
        ]
        if self._io is not None:
            same = [o for o in allowed if o[0] == self._io.family]
            allowed = same or allowed
        if self._prefer:
            want = socket.AF_INET if self._prefer == 4 else socket.AF_INET6
            allowed.sort(key=lambda o: o[0] != want)
        if not allowed:
            raise OSError(
                0,
                f"no usable address for {host!r} (IP versions enabled: "
                f"{'4' if self._ipv4 else ''}{'6' if self._ipv6 else ''})",
            )
        return allowed[0]

    def _close(self, reason: Optional[str]) -> None:
        self._send_queue.clear()
        worker, self._send_worker = self._send_worker, None
        if worker is not None and worker is not gevent.getcurrent():
            worker.kill(block=False)
        io, self._io = self._io, None
        if io is not None:
            io.close()
        self._bound = self._connected = self._connecting = self._handed_off = False
        self._peer = ("", 0)
        self._user_data = ""
        level = logging.DEBUG if reason is None else logging.WARNING
        log.log(level, "UDP socket closed: %s", reason or "(null)")

    def check(self) -> None:
        """Raise the first error a callback of this socket raised, if any.

        Raises:
            CallbackError: With the callback's exception as ``__cause__``.
        """
        raise_first(self.callback_errors)

    # -- reports from the I/O (on the loop) -------------------------------------------------

    def _loopback(self) -> str:
        # The original binds every interface; we bind loopback only (DESIGN 1b.7), so with
        # IPv4 disabled the loopback to bind is IPv6's.
        return "127.0.0.1" if self._ipv4 or not self._ipv6 else "::1"

    def _datagram(self, data: bytes, sockaddr: bytes, truncated: bool) -> None:
        if not data and self._io is not None and self._io.buffer_size == 0:
            # set_buffer_size(0), as the original: recvfrom gives 0 bytes, which it reads as
            # "nothing yet", so nothing is ever delivered (the datagram is consumed).
            log.debug("UDP datagram from %s not delivered: buffer size 0", _sender_text(sockaddr))
            return
        if truncated:
            log.warning(
                "UDP datagram from %s truncated to %d bytes: set_buffer_size() receives more",
                _sender_text(sockaddr),
                len(data),
            )
        if log.isEnabledFor(logging.DEBUG):
            log.debug("Data read from UDP socket")
        fn = self._callback
        if fn is None:
            log.warning("datagram received with no callback set: %r dropped", data[:64])
            return
        self._callbacks.post("hs.socket.udp:read callback", fn, data, sockaddr)

    def _sent(self, tag: int, fn: Optional[SendCallback]) -> None:
        if fn is not None:
            self._callbacks.post("hs.socket.udp:write callback", fn, tag)

    def _not_sent(self, reason: str) -> None:
        log.error("Data not sent on UDP socket: %s", reason)

    def _failed(self, reason: str) -> None:
        self._close(reason)

    def _callback_failed(self, where: str, exc: BaseException) -> None:
        self._loop.callback_failed(log, where, exc, self.callback_errors)

    # -- the original's camelCase names -----------------------------------------------------

    setCallback = set_callback
    setTimeout = set_timeout
    setBufferSize = set_buffer_size
    enableIPv = enable_ipv
    preferIPv = prefer_ipv
    enableBroadcast = enable_broadcast
    reusePort = reuse_port
