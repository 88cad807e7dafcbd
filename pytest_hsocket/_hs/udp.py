"""The hs.socket UDP socket class: ``hsocket.udp.new()`` and ``udp.server()`` make one.

Its defaults live in the face module (``pytest_hsocket.udp``); the send, receive and resolve
work is handed to the loop through :class:`~pytest_hsocket._hs.udp_base.UdpCore`.
"""

from __future__ import annotations

import logging
import socket
import sys
import warnings
from typing import Any, Callable, Optional, Union

import gevent

import pytest_hsocket._hs.info as _info
from pytest_hsocket._core.address import ip_family
from pytest_hsocket._core.checks import as_bytes, check_callable, check_port, check_tag
from pytest_hsocket._hs.udp_base import (
    DatagramCallback,
    SendCallback,
    UdpCore,
    log,
    needs_resolver,
)

_MUST_BIND = (
    "Must bind socket before you can receive data. You can do this explicitly via bind, "
    "or implicitly via connect or by sending data."
)


class UdpSocket(UdpCore):
    """An asynchronous UDP socket with hs.socket.udp's API (see the module docstring).

    Its OS socket is made on first need (``listen``, ``connect``, ``send``, ``broadcast``,
    ``reuse_port``): until then ``closed()`` is True, as in the original.

    Attributes:
        callback_errors: Errors raised by this socket's callbacks (see ``check``).
    """

    # -- binding and connecting -------------------------------------------------------------

    def listen(self, port: int, *, host: Optional[str] = None) -> Optional[UdpSocket]:
        """Bind to ``host``:``port`` (0 = the OS picks) to receive datagrams.

        Args:
            port: The port; 0 lets the OS pick.
            host: The address to bind; by default the loopback of an enabled IP version:
                ``127.0.0.1``, or ``::1`` once ``enable_ipv(4, False)`` was called.
        Returns:
            This socket, or ``None`` with ``Unable to bind port: ...`` logged at ERROR
            (in use, bound already, connected already).
        Raises:
            TypeError, ValueError: For a bad port or host.
        """
        check_port(port, "listen()")
        if host is not None and not isinstance(host, str):
            raise TypeError(f"listen() host must be a str, not {host!r}")
        try:
            self._loop.run_sync(
                lambda: self._bind(self._loopback() if host is None else host, port)
            )
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
        literal = not needs_resolver(host)
        if literal:
            self._loop.run_sync(lambda: self._connect_now(host, port, fn))
        else:
            self._loop.call(lambda: gevent.spawn(self._connect_now, host, port, fn))
        return self

    def _connect_now(self, host: str, port: int, fn: Optional[Callable[[], object]]) -> None:
        try:
            if needs_resolver(host):
                hub = gevent.get_hub()
                infos = hub.resolver.getaddrinfo(host, port, 0, socket.SOCK_DGRAM)
                family, address = self._pick([(i[0], i[4]) for i in infos], host)
            else:
                family, address = self._resolve_now(host, port)
            io = self._ensure(family)
            io.sock.connect(address)
        except Exception as exc:  # OSError, or a guard such as pytest-socket's refusal
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
        self._handed_off = True
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
        named = host is not None and needs_resolver(host)
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
                if host is not None and port is not None and ip_family(host) is None:
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
        if self._io is not None or self._connecting or self._handed_off:
            self._loop.run_sync(lambda: self._close(None))
        return self

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

    # -- the original's camelCase names -----------------------------------------------------

    read = receive
    readOne = read_one = receiveOne = receive_one
