"""The I/O of one UDP socket on the loop: receiving datagrams and sending them in order.

A :class:`Datagrams` owns a non-blocking OS socket. Its receiver greenlet runs while the socket
is receiving (continuously or for one datagram); sends go out inline when the kernel takes them
and otherwise, in order, from a sender greenlet with the send timeout. It reports to its owner
(the public ``udp`` socket) and never calls user code itself. Every method runs on the loop.
"""

from __future__ import annotations

import logging
import socket
from collections import deque
from typing import Any, Callable, Optional, Protocol

import gevent

from pytest_hsocket._core.address import sockaddr_of
from pytest_hsocket._io.stream import Closed, os_socket

log = logging.getLogger(__name__)

SEND_TIMEOUT = "Send operation timed out"
_YIELD_EVERY = 64


class DatagramOwner(Protocol):
    """What a datagram socket reports to."""

    def _datagram(self, data: bytes, sockaddr: bytes, truncated: bool) -> None: ...
    def _sent(self, tag: int, fn: Optional[Callable[[int], object]]) -> None: ...
    def _not_sent(self, reason: str) -> None: ...
    def _failed(self, reason: str) -> None: ...


class Datagrams:
    """A UDP socket's receiver and sender (see the module docstring).

    Attributes:
        sock: The OS socket.
        receiving: ``"continuous"``, ``"once"`` or ``None`` (paused).
        buffer_size: The most bytes one datagram delivers; longer ones are truncated.
    """

    def __init__(self, owner: DatagramOwner, family: int) -> None:
        self._owner = owner
        self._hub: Any = gevent.get_hub()
        self.sock: socket.socket = os_socket(family, socket.SOCK_DGRAM)
        self.sock.setblocking(False)
        if family == socket.AF_INET6:
            self.sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        fd = self.sock.fileno()
        self._read_watcher: Any = self._hub.loop.io(fd, 1)
        self._write_watcher: Any = self._hub.loop.io(fd, 2)
        self.receiving: Optional[str] = None
        self.buffer_size = 65535
        self._receiver: Any = None
        self._sender: Any = None
        self._sends: deque[tuple[bytes, Any, int, Optional[Callable[[int], object]], float]] = (
            deque()
        )
        self.closed = False

    @property
    def family(self) -> int:
        """The socket's address family."""
        return int(self.sock.family)

    # -- receiving --------------------------------------------------------------------------

    def receive(self, mode: Optional[str]) -> None:
        """Receive continuously, once, or (``None``) pause; datagrams wait in the kernel."""
        self.receiving = mode
        if mode is None:
            receiver, self._receiver = self._receiver, None
            if receiver is not None and receiver is not gevent.getcurrent():
                receiver.kill(Closed, block=False)
        elif self._receiver is None and not self.closed:
            self._receiver = gevent.spawn(self._receive_loop)

    def _receive_loop(self) -> None:
        sock = self.sock
        received = 0
        try:
            while self.receiving is not None and not self.closed:
                try:
                    data, _, flags, addr = sock.recvmsg(self.buffer_size)
                except (BlockingIOError, InterruptedError):
                    self._hub.wait(self._read_watcher)
                    continue
                except OSError as exc:
                    self._receiver = None
                    self._owner._failed(exc.strerror or str(exc))
                    return
                if self.receiving == "once":
                    self.receiving = None
                self._owner._datagram(data, sockaddr_of(addr), bool(flags & socket.MSG_TRUNC))
                received += 1
                if received % _YIELD_EVERY == 0:
                    gevent.sleep(0)  # fairness with the loop's other sockets
        except Closed:
            return
        self._receiver = None

    def pull_now(self) -> int:
        """Deliver at once the datagrams waiting in the kernel (when receiving); return the count.

        Used to settle a conversation before it is checked.
        """
        count = 0
        while self.receiving is not None and not self.closed:
            try:
                data, _, flags, addr = self.sock.recvmsg(self.buffer_size)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                self._owner._failed(exc.strerror or str(exc))
                break
            if self.receiving == "once":
                self.receiving = None
            self._owner._datagram(data, sockaddr_of(addr), bool(flags & socket.MSG_TRUNC))
            count += 1
        return count

    # -- sending ----------------------------------------------------------------------------

    def send(
        self,
        data: bytes,
        address: Any,
        tag: int,
        fn: Optional[Callable[[int], object]],
        timeout: float,
    ) -> None:
        """Queue a datagram (to ``address``, or the connected peer when it is ``None``)."""
        if not self._sends and not self.closed:
            try:
                self._send_now(data, address)
            except (BlockingIOError, InterruptedError):
                pass
            except OSError as exc:
                self._owner._failed(exc.strerror or str(exc))
                return
            else:
                self._owner._sent(tag, fn)
                return
        self._sends.append((data, address, tag, fn, timeout))
        if self._sender is None and not self.closed:
            self._sender = gevent.spawn(self._send_loop)

    def _send_now(self, data: bytes, address: Any) -> None:
        if address is None:
            self.sock.send(data)
        else:
            self.sock.sendto(data, address)

    def _send_loop(self) -> None:
        sends = self._sends
        try:
            while sends and not self.closed:
                data, address, tag, fn, timeout = sends[0]
                timer = gevent.Timeout(timeout) if timeout >= 0 else None
                if timer is not None:
                    timer.start()
                try:
                    while True:
                        try:
                            self._send_now(data, address)
                            break
                        except (BlockingIOError, InterruptedError):
                            self._hub.wait(self._write_watcher)
                except gevent.Timeout as exc:
                    if exc is not timer:
                        raise
                    sends.popleft()
                    self._owner._not_sent(SEND_TIMEOUT)  # the socket stays open
                    continue
                except OSError as exc:
                    self._sender = None
                    self._owner._failed(exc.strerror or str(exc))
                    return
                finally:
                    if timer is not None:
                        timer.close()
                sends.popleft()
                self._owner._sent(tag, fn)
        except Closed:
            return
        self._sender = None

    # -- closing ----------------------------------------------------------------------------

    def close(self) -> int:
        """Close the socket; queued sends are dropped. Returns how many were dropped."""
        if self.closed:
            return 0
        self.closed = True
        self.receiving = None
        dropped = len(self._sends)
        self._sends.clear()
        current = gevent.getcurrent()
        for greenlet in (self._receiver, self._sender):
            if greenlet is not None and greenlet is not current:
                greenlet.kill(Closed, block=False)
        self._receiver = self._sender = None
        self._hub.cancel_waits_close_and_then(
            [self._read_watcher, self._write_watcher], Closed, self.sock.close
        )
        return dropped
