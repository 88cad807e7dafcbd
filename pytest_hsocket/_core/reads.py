"""What a read is (sans-IO): its kinds, the request queued for it, and what it completes with.

A read waits for a byte count, a delimiter, a bytes regex or a length-prefixed frame
(:class:`Prefixed`). :func:`make_request` validates ``read()``'s arguments into a
:class:`ReadRequest`; a :class:`~pytest_hsocket._core.framing.ReadQueue` completes it as a
:class:`Completed`.
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple, Union

from pytest_hsocket._core.checks import check_int, check_tag
from pytest_hsocket._core.framers import Announced, Framer
from pytest_hsocket._core.frames import FrameSpec, Prefixed

Delimiter = Union[int, bytes, str, "re.Pattern[bytes]", FrameSpec]
"""What a read waits for: a byte count, a delimiter (bytes or UTF-8 str), a bytes regex, or a
frame (:class:`Prefixed`, :class:`Announced`, :class:`Framer`)."""

_Matcher = Union[int, bytes, "re.Pattern[bytes]", FrameSpec]

__all__ = [
    "AVAILABLE",
    "BARRIER",
    "Announced",
    "Completed",
    "Delimiter",
    "FrameSpec",
    "Framer",
    "Prefixed",
    "ReadRequest",
    "make_request",
]

BARRIER = -1
"""An internal matcher that never completes: reads queued behind it wait until it is removed
with ``pop_barrier`` (used by ``start_tls``, which waits for the reads queued before it)."""

AVAILABLE = -2
"""An internal matcher: whatever is buffered, at least one byte (GCDAsyncSocket's third read
kind, used by the scripted mock server). ``make_request`` never builds it from user input."""


class ReadRequest:
    """One queued read: what completes it, the tag handed back, and its timeout.

    Attributes:
        matcher: A byte count (0 completes at once with ``b""``), a non-empty delimiter, a
            compiled bytes regex, or a frame spec (:class:`Prefixed`, ...).
        tag: Handed back with the data.
        timeout: Seconds the read may take once it becomes current; negative = none.
    """

    __slots__ = ("matcher", "tag", "timeout")

    def __init__(self, matcher: _Matcher, tag: int = -1, timeout: float = -1.0) -> None:
        self.matcher = matcher
        self.tag = tag
        self.timeout = timeout

    def describe(self) -> str:
        """Say what the read waits for, for messages.

        ``"5 bytes"``, ``"b'\\r\\n'"``, ``"re.compile(b'END')"`` or ``"a Prefixed('!I') frame"``.
        """
        if isinstance(self.matcher, int):
            if self.matcher == AVAILABLE:
                return "any bytes"
            if self.matcher == BARRIER:
                return "the TLS handshake"
            return f"{self.matcher} byte{'' if self.matcher == 1 else 's'}"
        if isinstance(self.matcher, bytes):
            return repr(self.matcher)
        if isinstance(self.matcher, FrameSpec):
            return self.matcher.describe()
        return f"re.compile({self.matcher.pattern!r})"

    def __repr__(self) -> str:
        return f"ReadRequest({self.describe()}, tag={self.tag})"


class Completed(NamedTuple):
    """A read that completed: its data (delimiter included) and its tag."""

    data: bytes
    tag: int


def completed(pair: tuple[bytes, int], _new: Any = tuple.__new__) -> Completed:
    """``Completed(*pair)`` without NamedTuple's Python-level ``__new__`` (hot path)."""
    return _new(Completed, pair)  # type: ignore[no-any-return]


def make_request(delimiter: object, tag: object = -1, timeout: float = -1.0) -> ReadRequest:
    """Validate the arguments of ``read`` and build the request.

    Args:
        delimiter: An int of 0 or more, non-empty bytes/str, a compiled bytes regex that
            cannot match empty, or a frame spec (validated when it was built).
        tag: An int.
        timeout: Seconds, negative for none.

    Returns:
        The request.

    Raises:
        TypeError: If the delimiter or tag has the wrong type.
        ValueError: If a length is negative, a delimiter is empty, or a pattern matches
            the empty string.
    """
    tag = check_tag(tag, "read()")
    matcher: _Matcher
    if isinstance(delimiter, bool):
        raise TypeError(
            "read() delimiter must be an int, bytes, str, re.Pattern or a frame spec "
            f"(Prefixed, Announced, Framer), not {delimiter!r}"
        )
    if isinstance(delimiter, int):
        matcher = check_int(delimiter, "read() length")
    elif isinstance(delimiter, (bytes, bytearray, memoryview)):
        matcher = bytes(delimiter)
        if not matcher:
            raise ValueError("read() delimiter must not be empty, not b''")
    elif isinstance(delimiter, str):
        if not delimiter:
            raise ValueError("read() delimiter must not be empty, not ''")
        try:
            matcher = delimiter.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError(f"read() delimiter is not valid text: {delimiter!r}") from None
    elif isinstance(delimiter, re.Pattern):
        if not isinstance(delimiter.pattern, bytes):
            raise TypeError(
                f"read() pattern must be a bytes pattern, not {delimiter.pattern!r}; "
                "compile it from bytes: re.compile(rb'...')"
            )
        if zero_width(delimiter):
            raise ValueError(
                f"read() pattern must not match the empty string: {delimiter.pattern!r}"
            )
        matcher = delimiter
    elif isinstance(delimiter, FrameSpec):
        matcher = delimiter
    else:
        raise TypeError(
            "read() delimiter must be an int, bytes, str, re.Pattern or a frame spec "
            f"(Prefixed, Announced, Framer), not {delimiter!r}"
        )
    return ReadRequest(matcher, tag, timeout)


_PROBES = (b"", b"a", b"0", b" ", b"\n", b"\x00", b"\xff")


def zero_width(pattern: re.Pattern[bytes]) -> bool:
    """Return whether ``pattern`` matches no bytes at the start of a few sample buffers.

    Such a pattern (``\\b``, ``^``, ``a*``) would complete a read with nothing; the read
    queue refuses one it meets later (``(?=END)``) with :attr:`ReadQueue.error`.
    """
    for probe in _PROBES:
        match = pattern.match(probe)
        if match is not None and not match.end():
            return True
    return pattern.search(b"") is not None
