"""``hsocket.udp``: Hammerspoon's ``hs.socket.udp``, asynchronous UDP sockets.

::

    from pytest_hsocket import udp

    def on_datagram(data: bytes, sockaddr: bytes) -> None:
        sender = udp.parse_address(sockaddr)
        server.send(data.upper(), sender["host"], sender["port"])

    server = udp.server(0, on_datagram).receive()

The callback receives ``(data, sockaddr)``: the datagram as bytes and the sender as BSD
``sockaddr`` bytes (``parse_address`` reads them). Snake_case names, with the original's
camelCase aliases.
"""

from __future__ import annotations

import logging
import socket
import sys
import warnings
from collections import deque
from typing import Any, Callable, Optional, Union

import gevent

from . import _info
from ._address import parse_address, sockaddr_of
from ._checks import as_bytes, check_callable, check_port, check_tag, check_timeout
from ._datagram import Datagrams
from ._errors import CallbackError
from ._loop import CallbackQueue, get_loop

log = logging.getLogger(__name__)

timeout: float = -1
"""Default send timeout, in seconds, copied by each new UDP socket; negative = none."""

DatagramCallback = Callable[[bytes, bytes], object]
"""``fn(data, sockaddr)``: a datagram and its sender's BSD sockaddr bytes."""
SendCallback = Callable[[int], object]

_MUST_BIND = (
    "Must bind socket before you can receive data. You can do this explicitly via bind, "
    "or implicitly via connect or by sending data."
)
_LOCAL_NAMES = {"localhost": ("127.0.0.1", "::1"), "loopback": ("127.0.0.1", "::1")}


def _ip_family(host: str) -> Optional[int]:
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, host.split("%", 1)[0])
        except OSError:
            continue
        return family
    return None


class UdpSocket:
    """An asynchronous UDP socket with hs.socket.udp's API (see the module docstring).

    Its OS socket is made on first need (``listen``, ``connect``, ``send``, ``broadcast``,
    ``reuse_port``): until then ``closed()`` is True, as in the original.

    Attributes:
        callback_errors: Errors raised by this socket's callbacks (see ``check``).
    """

    def __init__(self, fn: Optional[DatagramCallback] = None) -> None:
        check_callable(fn, "callback")
        self._loop = get_loop()
        self._callback = fn
        module_timeout = getattr(sys.modules[__name__], "timeout", -1)
        self._timeout = float(module_timeout) if isinstance(module_timeout, (int, float)) else -1.0
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

    # -- configuration ----------------------------------------------------------------------

    def set_callback(self, fn: Optional[DatagramCallback] = None) -> UdpSocket:
        """Set the datagram callback ``fn(data, sockaddr)``; ``None`` clears it.

        Returns:
            This socket.
        Raises:
            TypeError: If ``fn`` is not callable.
        """
        check_callable(fn, "callback")
        self._callback = fn
        return self

    def set_timeout(self, timeout: float) -> UdpSocket:
        """Set the send timeout (seconds; negative = none). A timed-out send is dropped with an
        ERROR log; the socket stays open.

        Returns:
            This socket.
        Raises:
            TypeError: If ``timeout`` is not a number.
        """
        self._timeout = check_timeout(timeout, "set_timeout()")
        return self

    def set_buffer_size(self, size: int, version: Optional[int] = None) -> UdpSocket:
        """Set the largest datagram delivered whole (longer ones are truncated, with a warning).

        Args:
            size: Bytes; IPv4 is capped at 65535.
            version: 4 or 6 for one family; ``None`` for both.
        Returns:
            This socket.
        Raises:
            TypeError: If ``size`` or ``version`` is not an int.
            ValueError: If ``size`` is not positive or ``version`` is not 4, 6 or None.
        """
        if isinstance(size, bool) or not isinstance(size, int):
            raise TypeError(f"set_buffer_size() size must be an int, not {size!r}")
        if size <= 0:
            raise ValueError(f"set_buffer_size() size must be positive, not {size!r}")
        if version not in (None, 4, 6):
            raise ValueError(f"set_buffer_size() version must be 4, 6 or None, not {version!r}")
        if version in (None, 4):
            self._max4 = min(size, 65535)
        if version in (None, 6):
            self._max6 = min(size, 4294967295)
        self._loop.call(self._apply_buffer_size)
        return self

    def _apply_buffer_size(self) -> None:
        if self._io is not None:
            self._io.buffer_size = self._max6 if self._io.family == socket.AF_INET6 else self._max4

    def enable_ipv(self, version: int, flag: bool = True) -> Optional[UdpSocket]:
        """Allow or forbid an IP version for the addresses this socket resolves and binds.

        Returns:
            This socket, or ``None`` with ``Invalid IP version: N`` logged at ERROR.
        Raises:
            TypeError: If ``version`` is not an int or ``flag`` not a bool.
        """
        if isinstance(version, bool) or not isinstance(version, int):
            raise TypeError(f"enable_ipv() version must be an int, not {version!r}")
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

    def prefer_ipv(self, version: Optional[int] = None) -> UdpSocket:
        """Prefer IPv4 (4) or IPv6 (6) when a name resolves to both; anything else = neutral.

        Returns:
            This socket.
        """
        self._prefer = version if version in (4, 6) else 0
        return self

    def broadcast(self, flag: bool = True) -> Optional[UdpSocket]:
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

    def reuse_port(self, flag: bool = True) -> Optional[UdpSocket]:
        """Let several sockets bind the same port (``SO_REUSEPORT``); call before ``listen``.

        Returns:
            This socket, or ``None`` with ``Unable to enable port reuse: ...`` logged.
        """
        if not isinstance(flag, bool):
            raise TypeError(f"reuse_port() flag must be a bool, not {flag!r}")
        self._reuse = flag
        option = getattr(socket, "SO_REUSEPORT", socket.SO_REUSEADDR)
        return self._set_option("Unable to enable port reuse: %s", option, flag)

    def _set_option(self, message: str, option: int, flag: bool) -> Optional[UdpSocket]:
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
            if self._reuse:
                sock.setsockopt(socket.SOL_SOCKET, getattr(socket, "SO_REUSEPORT", 15), 1)
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

    # -- binding and connecting -------------------------------------------------------------

    def listen(self, port: int, *, host: str = "127.0.0.1") -> Optional[UdpSocket]:
        """Bind to ``host``:``port`` (0 = the OS picks) to receive datagrams.

        Returns:
            This socket, or ``None`` with ``Unable to bind port: ...`` logged at ERROR
            (in use, bound already, connected already).
        Raises:
            TypeError, ValueError: For a bad port or host.
        """
        check_port(port, "listen()")
        if not isinstance(host, str):
            raise TypeError(f"listen() host must be a str, not {host!r}")
        try:
            self._loop.run_sync(lambda: self._bind(host, port))
        except OSError as exc:
            log.error("Unable to bind port: %s", exc.strerror or exc)
            return None
        return self

    def _bind(self, host: str, port: int) -> None:
        if self._connected or self._connecting:
            raise OSError(0, "Cannot bind after connecting. If needed, bind first, then connect.")
        if self._bound:
            raise OSError(0, "Cannot bind a socket more than once.")
        family, address = self._resolve_now(host, port, passive=True)
        if self._io is not None and self._io.family != family:
            self._io.close()
            self._io = None
        io = self._ensure(family)
        try:
            io.sock.bind(address)
        except OSError:
            if not self._reuse and not self._broadcast:
                io.close()
                self._io = None
            raise
        self._bound = True
        self._user_data = "SERVER"

    def _resolve_now(self, host: str, port: int, passive: bool = False) -> tuple[int, Any]:
        # Literals and localhost need no resolver; others go to the OS (at most /etc/hosts for
        # the local names a test binds).
        candidates = _LOCAL_NAMES.get(host.lower(), (host,))
        options: list[tuple[int, Any]] = []
        for name in candidates:
            family = _ip_family(name)
            if family is not None:
                options.append((family, (name, port)))
        if not options:
            flags = socket.AI_PASSIVE if passive else 0
            for family, _, _, _, address in socket.getaddrinfo(
                host, port, 0, socket.SOCK_DGRAM, 0, flags
            ):
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

    def connect(
        self, host: str, port: int, fn: Optional[Callable[[], object]] = None
    ) -> Optional[UdpSocket]:
        """Connect: send to and receive from ``host``:``port`` only.

        An IP literal or ``localhost`` connects before this returns; a host name is resolved
        on the loop and ``fn()`` runs once connected. A failure logs
        ``UDP socket did not connect: <reason>`` at ERROR and leaves ``connected()`` False.

        Returns:
            This socket, or ``None`` with ``Unable to connect: ...`` logged at ERROR if it is
            connected already.
        Raises:
            TypeError, ValueError: For a bad host, port or ``fn``.
        """
        if not isinstance(host, str) or not host:
            raise TypeError(f"connect() host must be a non-empty str, not {host!r}")
        check_port(port, "connect()", low=1)
        check_callable(fn, "connect() callback")
        if self._connected or self._connecting:
            log.error("Unable to connect: %s", "Cannot connect a socket more than once.")
            return None
        self._connecting = True
        literal = host.lower() in _LOCAL_NAMES or _ip_family(host) is not None
        if literal:
            self._loop.run_sync(lambda: self._connect_now(host, port, fn))
        else:
            self._loop.call(lambda: gevent.spawn(self._connect_now, host, port, fn))
        return self

    def _connect_now(self, host: str, port: int, fn: Optional[Callable[[], object]]) -> None:
        try:
            if _ip_family(host) is None and host.lower() not in _LOCAL_NAMES:
                hub = gevent.get_hub()
                infos = hub.resolver.getaddrinfo(host, port, 0, socket.SOCK_DGRAM)
                family, address = self._pick([(i[0], i[4]) for i in infos], host)
            else:
                family, address = self._resolve_now(host, port)
            io = self._ensure(family)
            io.sock.connect(address)
        except (OSError, socket.gaierror) as exc:
            self._connecting = False
            reason = exc.args[1] if isinstance(exc, socket.gaierror) and len(exc.args) > 1 else exc
            log.error("UDP socket did not connect: %s", getattr(exc, "strerror", None) or reason)
            return
        self._connecting = False
        self._connected = True
        self._peer = _info.endpoint(io.sock.getpeername())
        self._user_data = "DEFAULT"
        log.debug("UDP socket connected")
        if fn is not None:
            self._callbacks.post("hs.socket.udp:connect", fn)

    # -- receiving --------------------------------------------------------------------------

    def receive(self, fn: Optional[DatagramCallback] = None) -> Optional[UdpSocket]:
        """Deliver every datagram to the callback from now on, until ``pause`` or ``close``.

        Args:
            fn: Replaces the callback if given.
        Returns:
            This socket, or ``None`` with an ERROR log: ``No callback defined!``, or
            ``Unable to read from UDP socket: Must bind socket before ...`` if it has no socket.
        """
        return self._receive(fn, "continuous")

    def receive_one(self, fn: Optional[DatagramCallback] = None) -> Optional[UdpSocket]:
        """Deliver the next datagram only (calling it again while one is pending does nothing).

        Returns:
            As ``receive``.
        """
        return self._receive(fn, "once")

    def _receive(self, fn: Optional[DatagramCallback], mode: str) -> Optional[UdpSocket]:
        if fn is not None:
            self.set_callback(fn)
        if self._callback is None:
            log.error("No callback defined!")
            return None
        # Asked on the loop: a send() just before may be what creates the socket.
        if not self._loop.run_sync(lambda: self._start_receiving(mode)):
            log.error("Unable to read from UDP socket: %s", _MUST_BIND)
            return None
        return self

    def _start_receiving(self, mode: str) -> bool:
        if self._io is None:
            return False
        self._io.receive(mode)
        return True

    def pause(self) -> UdpSocket:
        """Stop delivering datagrams; they wait in the kernel for the next ``receive``.

        Returns:
            This socket.
        """
        self._loop.call(self._start_receiving_none)
        return self

    def _start_receiving_none(self) -> None:
        if self._io is not None:
            self._io.receive(None)

    # -- sending ----------------------------------------------------------------------------

    def send(
        self,
        message: Union[bytes, bytearray, memoryview, str],
        host: Optional[Union[str, SendCallback]] = None,
        port: Optional[int] = None,
        tag: int = -1,
        fn: Optional[SendCallback] = None,
    ) -> UdpSocket:
        """Send a datagram to ``host``:``port``, or to the connected peer if both are omitted.

        ``fn(tag)`` runs once the datagram is handed to the kernel. An empty message is
        ignored (logged), as in the original. A send error other than "busy" closes the socket
        with ``UDP socket closed: <reason>`` logged.

        Args:
            message: bytes, or a str sent as UTF-8.
            host: The destination host (``send(message, fn)`` also works when connected).
            port: The destination port.
            tag: Handed to ``fn``.
            fn: Called as ``fn(tag)`` once sent.
        Returns:
            This socket.
        Raises:
            TypeError: If the message is not bytes/str, host/port are missing on an unconnected
                socket (or only one is given), or tag/fn have the wrong type.
            ValueError: If the port is out of range.
        """
        if callable(host) and port is None and fn is None:
            fn, host = host, None
        data = as_bytes(message, "send()")
        tag = check_tag(tag, "send()")
        check_callable(fn, "send() callback")
        if (host is None) != (port is None):
            raise TypeError("send() needs both host and port, or neither (to the connected peer)")
        if host is None and not (self._connected or self._connecting):
            raise TypeError("send() needs host and port: the socket is not connected")
        if host is not None:
            if not isinstance(host, str) or not host:
                raise TypeError(f"send() host must be a non-empty str, not {host!r}")
            check_port(port, "send()", low=1)
        if not data:
            log.warning("Ignoring attempt to send nil/empty data.")
            return self
        self._loop.call(self._push_send, data, host, port, tag, fn)
        return self

    write = send

    def _push_send(
        self,
        data: bytes,
        host: Optional[str],
        port: Optional[int],
        tag: int,
        fn: Optional[SendCallback],
    ) -> None:
        item = (data, host, port, tag, fn)
        named = host is not None and _ip_family(host) is None and host.lower() not in _LOCAL_NAMES
        if self._send_queue or named:
            # A name is resolved in a greenlet; later sends wait behind it to keep their order.
            self._send_queue.append(item)
            if self._send_worker is None:
                self._send_worker = gevent.spawn(self._resolve_and_send)
            return
        self._send_resolved(item, None)

    def _resolve_and_send(self) -> None:
        queue = self._send_queue
        try:
            while queue:
                item = queue[0]
                host, port = item[1], item[2]
                resolved = None
                if host is not None and port is not None and _ip_family(host) is None:
                    try:
                        infos = gevent.get_hub().resolver.getaddrinfo(
                            host, port, 0, socket.SOCK_DGRAM
                        )
                        resolved = self._pick([(i[0], i[4]) for i in infos], host)
                    except (OSError, socket.gaierror) as exc:
                        queue.popleft()
                        reason = exc.args[1] if len(exc.args) > 1 else exc
                        log.error("Data not sent on UDP socket: %s", reason)
                        continue
                queue.popleft()
                self._send_resolved(item, resolved)
        finally:
            self._send_worker = None

    def _send_resolved(
        self,
        item: tuple[bytes, Optional[str], Optional[int], int, Optional[SendCallback]],
        resolved: Optional[tuple[int, Any]],
    ) -> None:
        data, host, port, tag, fn = item
        if host is not None and (self._connected or self._connecting):
            log.error(
                "Data not sent on UDP socket: %s",
                "Cannot specify destination of packet for connected socket",
            )
            return
        address = None
        if host is not None and port is not None:
            try:
                family, address = resolved or self._resolve_now(host, port)
            except OSError as exc:
                log.error("Data not sent on UDP socket: %s", exc.strerror or exc)
                return
            io = self._ensure(family)
        elif self._io is not None:
            io = self._io
        else:
            return
        if log.isEnabledFor(logging.DEBUG):
            log.debug("Data written to UDP socket")
        io.send(data, address, tag, fn, self._timeout)

    # -- closing ----------------------------------------------------------------------------

    def close(self) -> UdpSocket:
        """Close the socket; queued sends are dropped. It can bind, connect or send again.

        Returns:
            This socket.
        """
        if self._io is not None or self._connecting:
            self._loop.run_sync(lambda: self._close(None))
        return self

    def _close(self, reason: Optional[str]) -> None:
        self._send_queue.clear()
        worker, self._send_worker = self._send_worker, None
        if worker is not None and worker is not gevent.getcurrent():
            worker.kill(block=False)
        io, self._io = self._io, None
        if io is not None:
            io.close()
        self._bound = self._connected = self._connecting = False
        self._peer = ("", 0)
        self._user_data = ""
        level = logging.DEBUG if reason is None else logging.WARNING
        log.log(level, "UDP socket closed: %s", reason or "(null)")

    def check(self) -> None:
        """Raise the first error a callback of this socket raised, if any.

        Raises:
            CallbackError: With the callback's exception as ``__cause__``.
        """
        if self.callback_errors:
            for error in self.callback_errors:
                error.reported = True
            raise self.callback_errors[0]

    def __enter__(self) -> UdpSocket:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self.close()
        if exc_type is None:
            self.check()

    def __del__(self) -> None:
        if getattr(self, "_io", None) is None or sys.is_finalizing():
            return
        warnings.warn(f"unclosed {self!r}", ResourceWarning, stacklevel=2)
        io = self._io
        if io is not None:
            self._loop.call(io.close)

    # -- reports from the I/O (on the loop) -------------------------------------------------

    def _datagram(self, data: bytes, sockaddr: bytes, truncated: bool) -> None:
        if truncated:
            log.warning(
                "UDP datagram from %s truncated to %d bytes: raise set_buffer_size() for all",
                parse_address(sockaddr) or "?",
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
        log.error("%s: %s", where, exc, exc_info=exc)
        error = CallbackError(where, exc)
        self.callback_errors.append(error)
        self._loop.report_callback_error(error)

    # -- the original's camelCase names -----------------------------------------------------

    setCallback = set_callback
    setTimeout = set_timeout
    setBufferSize = set_buffer_size
    enableIPv = enable_ipv
    preferIPv = prefer_ipv
    enableBroadcast = enable_broadcast
    reusePort = reuse_port
    read = receive
    readOne = read_one = receiveOne = receive_one


def new(fn: Optional[DatagramCallback] = None) -> UdpSocket:
    """Create a UDP socket (its OS socket is made on first need).

    Args:
        fn: The callback ``fn(data, sockaddr)``.
    Returns:
        The socket; it copies this module's ``timeout`` now.
    Raises:
        TypeError: If ``fn`` is not callable.
    """
    return UdpSocket(fn)


def server(
    port: int, fn: Optional[DatagramCallback] = None, *, host: str = "127.0.0.1"
) -> UdpSocket:
    """Create a UDP socket bound to ``host``:``port`` (0 = the OS picks); call ``receive()``.

    Returns:
        The socket; if binding failed (logged at ERROR), as in the original, it is returned
        unbound (``closed()`` is True).
    Raises:
        TypeError, ValueError: For a bad port, host or ``fn``.
    """
    sock = UdpSocket(fn)
    sock.listen(port, host=host)
    return sock


parseAddress = parse_address

__all__ = [
    "DatagramCallback",
    "UdpSocket",
    "new",
    "parseAddress",
    "parse_address",
    "server",
    "timeout",
]
