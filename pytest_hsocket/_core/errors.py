"""The exception family of pytest_hsocket.

Errors are named by what the caller can do about them. Misuse of an argument is a plain
``TypeError``/``ValueError``; everything the library itself raises derives from
:class:`HSocketError`.
"""

from __future__ import annotations

import socket


def reason_of(exc: BaseException) -> str:
    """The original's kind of reason for a failure: the OS's text (``Connection refused``)."""
    if isinstance(exc, socket.gaierror):
        return str(exc.args[1]) if len(exc.args) > 1 else str(exc)
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


class HSocketError(Exception):
    """Base class for every error raised by pytest_hsocket."""


class LoopError(HSocketError, RuntimeError):
    """The socket loop could not run a call (it is stopped, or it did not answer in time)."""


class InvalidThreadUseError(HSocketError, RuntimeError):
    """A blocking helper was called on the socket loop's own thread, where it would deadlock."""


class CallbackError(HSocketError):
    """A user callback raised; the original exception is the ``__cause__``.

    Attributes:
        where: Which callback raised, in the original's words (``"hs.socket:read callback"``).
        reported: True once it was raised to the caller (``check()``) or failed a test, so it
            is not reported twice.
    """

    def __init__(self, where: str, exc: BaseException) -> None:
        super().__init__(f"{where} raised {type(exc).__name__}: {exc}")
        self.where = where
        self.reported = False
        self.__cause__ = exc


class ReadTimeout(HSocketError, TimeoutError):
    """A blocking wait for a read did not complete in time."""


class ConnectionClosed(HSocketError, ConnectionError):
    """The connection closed before the awaited read could complete.

    Attributes:
        reason: The disconnect reason, in the original's words.
        unread: Bytes received but not delivered to any read (never silently lost).
    """

    def __init__(self, message: str, reason: str = "", unread: bytes = b"") -> None:
        super().__init__(message)
        self.reason = reason
        self.unread = unread


def raise_first(errors: list[CallbackError]) -> None:
    """Raise the first of a socket's callback errors (all count as reported), if any."""
    if errors:
        for error in errors:
            error.reported = True
        raise errors[0]
