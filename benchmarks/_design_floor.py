"""The *loop* latency variant of ``bench_latency.py``: the floor of the fixtures' design.

No ``pytest_hsocket`` code at all: the test's thread hands each request to **one background
thread that owns both ends** of the connection (a selector, a wake-up pipe and a lock), as
DESIGN.md's threading model puts every socket on the socket loop. Whatever implements that
model pays at least this per round trip: the hand-over to the loop and back, and both ends'
system calls in one thread, one after the other (raw's two threads run theirs in parallel).

Not a script: ``_latency_peers.py`` lists it among the variants.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import socket
import threading
from collections import deque
from typing import Any, Optional

from _common import HOST, BenchmarkError

PING = b"PING\r\n"
PONG = b"+PONG\r\n"
CRLF = b"\r\n"
_WAKE, _SERVER, _CLIENT = "wake", "server", "client"


class DesignFloor:
    """A connection whose two ends are served by one thread; ``round_trip()`` from another.

    Raises:
        BenchmarkError: From ``round_trip`` if no reply comes within ``timeout`` seconds, or
            the server end read something other than PING lines.
    """

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.answered = 0
        self.error: Optional[BaseException] = None
        with socket.create_server((HOST, 0)) as listener:
            self._client = socket.create_connection(listener.getsockname(), timeout=timeout)
            self._server, _ = listener.accept()
        for sock in (self._client, self._server):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setblocking(False)
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._wake_r, selectors.EVENT_READ, _WAKE)
        self._selector.register(self._server, selectors.EVENT_READ, _SERVER)
        self._selector.register(self._client, selectors.EVENT_READ, _CLIENT)
        self._outbox: deque[bytes] = deque()
        self._done: Any = None
        self._reply = b""
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="design-floor-loop", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        server_buffer = client_buffer = b""
        try:
            while not self._stopping:
                for key, _ in self._selector.select():
                    if key.data == _WAKE:
                        os.read(self._wake_r, 4096)
                        while self._outbox:
                            self._client.send(self._outbox.popleft())
                    elif key.data == _SERVER:
                        server_buffer += self._server.recv(4096)
                        while CRLF in server_buffer:
                            line, _, server_buffer = server_buffer.partition(CRLF)
                            if line + CRLF != PING:
                                raise BenchmarkError(f"loop floor: the server end got {line!r}")
                            self._server.send(PONG)
                            self.answered += 1
                    else:
                        client_buffer += self._client.recv(4096)
                        if client_buffer.endswith(CRLF):
                            self._reply, client_buffer = client_buffer, b""
                            self._done.release()
        except BaseException as exc:  # reported by the next round_trip() or close()
            self.error = exc
            if self._done is not None and self._done.locked():
                self._done.release()

    def round_trip(self) -> bytes:
        """Hand a PING to the loop thread and wait for the reply it read; return it."""
        done = threading.Lock()
        done.acquire()
        self._done = done
        self._outbox.append(PING)
        os.write(self._wake_w, b"x")
        if not done.acquire(timeout=self.timeout):
            raise BenchmarkError(f"loop floor: no reply within {self.timeout} s")
        if self.error is not None:
            raise BenchmarkError(f"loop floor: {self.error!r}")
        return self._reply

    def close(self) -> None:
        """Stop the loop thread and close everything."""
        self._stopping = True
        os.write(self._wake_w, b"x")
        self._thread.join(self.timeout)
        self._selector.close()
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._client.close()
        self._server.close()
