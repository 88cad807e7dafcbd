"""A listening TCP socket and the connections it accepted: what they use of each other."""

from __future__ import annotations

import socket
import ssl
from typing import TYPE_CHECKING, Any, Callable, Optional, Protocol, runtime_checkable

from pytest_hsocket._hs.read_delivery import ReadCallback, Tap

if TYPE_CHECKING:
    from pytest_hsocket._core.framing import ReadRequest
    from pytest_hsocket._hs.tcp import Socket
    from pytest_hsocket._io.stream import Stream, WriteCallback


@runtime_checkable
class ServerFamily(Protocol):
    """What a listening Socket and the connections it accepted use of each other.

    A server builds its connections (``_new_client``), hands each the OS socket it accepted
    (``_take_accepted``), queues reads on them (``_push_read``), writes to and closes their
    streams (``_open_stream``) and closes their fast-read paths (``_end_fast_reads``). A
    connection starts with its server's callback and timeout, asks whether its reads go
    inline (``_reads_inline``) and, once closed, leaves the server's list (``_forget``).
    Underscored so that the public socket does not show them: this is their one use
    (tests/test_private_state.py checks the accesses against this list).
    """

    _callback: Optional[ReadCallback]
    _callback_takes_client: bool
    _timeout: float

    def _new_client(self) -> Socket: ...

    def _take_accepted(
        self, conn: socket.socket, tap: Optional[Tap], tls: Optional[ssl.SSLContext]
    ) -> None: ...

    def _push_read(self, request: ReadRequest) -> None: ...

    def _open_stream(self) -> Optional[Stream]: ...

    def _end_fast_reads(self) -> None: ...

    def _reads_inline(self, client: Any) -> bool: ...

    def _forget(self, client: Socket) -> None: ...


class AllWritten:
    """A server broadcast's write callback: runs once every client has taken the bytes."""

    def __init__(self, count: int, tag: int, fn: WriteCallback, post: Callable[..., None]) -> None:
        """Run ``fn(tag)`` through ``post`` (the server's callback queue) after ``count`` writes."""
        self.left = count
        self.tag = tag
        self.fn = fn
        self.post = post

    def __call__(self, tag: int) -> None:  # pragma: no cover - only called via one_done
        self.fn(tag)

    def one_done(self) -> None:
        """One client took the bytes; the last one posts the callback."""
        self.left -= 1
        if self.left == 0:
            self.post("hs.socket:write callback", self.fn, self.tag)
