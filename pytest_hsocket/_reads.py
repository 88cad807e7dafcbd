"""What a read is (sans-IO): its kinds, the request queued for it, and what it completes with.

A read waits for a byte count, a delimiter, a bytes regex or a length-prefixed frame
(:class:`Prefixed`). :func:`make_request` validates ``read()``'s arguments into a
:class:`ReadRequest`; a :class:`~pytest_hsocket._framing.ReadQueue` completes it as a
:class:`Completed`.
"""

from __future__ import annotations

import re
import struct
from typing import Any, NamedTuple, Union

Delimiter = Union[int, bytes, str, "re.Pattern[bytes]", "Prefixed"]
"""What a read waits for: a byte count, a delimiter (bytes or UTF-8 str), a bytes regex, or a
length-prefixed frame."""

_Matcher = Union[int, bytes, "re.Pattern[bytes]", "Prefixed"]

BARRIER = -1
"""An internal matcher that never completes: reads queued behind it wait until it is removed
with ``pop_barrier`` (used by ``start_tls``, which waits for the reads queued before it)."""

AVAILABLE = 0
"""An internal matcher: whatever is buffered, at least one byte (GCDAsyncSocket's third read
kind, used by the scripted mock server). ``make_request`` never builds it from user input."""


_PREFIX_ORDERS = ("!", ">", "<")
_PREFIX_CODES = ("B", "H", "I", "Q")
_DEFAULT_MAX_LENGTH = 64 * 1024 * 1024


class Prefixed:
    """A length-prefixed read: an unsigned integer header, then that many payload bytes.

    Use it wherever a delimiter is accepted: ``sock.read(Prefixed("!I"), tag)``,
    ``client.expect(Prefixed("<H"))``. The read completes once the header and the whole
    payload have arrived, and delivers the payload (or the header and the payload).

    Args:
        fmt: A ``struct`` format of one unsigned integer: ``"!B"`` / ``"B"`` (1 byte), or
            ``"!"`` / ``">"`` (big-endian) or ``"<"`` (little-endian) followed by ``"H"``
            (2 bytes), ``"I"`` (4) or ``"Q"`` (8).
        include_header: Deliver the header with the payload; by default only the payload.
        max_length: The largest payload length accepted (the header itself not counted).
            A header announcing more makes the read fail: see :attr:`ReadQueue.error`.

    Raises:
        TypeError: If ``fmt`` is not a str, ``include_header`` not a bool, or ``max_length``
            not an int.
        ValueError: If ``fmt`` is not one unsigned integer with a byte order, or
            ``max_length`` is not positive.
    """

    __slots__ = ("_fmt", "_include_header", "_max_length", "_size", "_start", "_unpack_from")

    def __init__(
        self, fmt: str, *, include_header: bool = False, max_length: int = _DEFAULT_MAX_LENGTH
    ) -> None:
        if not isinstance(fmt, str):
            raise TypeError(f"Prefixed() fmt must be a struct format str such as '!I', not {fmt!r}")
        order, code = (fmt[0], fmt[1:]) if fmt[:1] in _PREFIX_ORDERS else ("", fmt)
        if code.upper() in _PREFIX_CODES and code not in _PREFIX_CODES:
            fix = (order or ("" if code == "b" else "!")) + code.upper()
            raise ValueError(f"Prefixed() fmt must be unsigned, not {fmt!r}; use {fix!r}")
        if code not in _PREFIX_CODES:
            raise ValueError(
                "Prefixed() fmt must be one unsigned integer, '!B', '!H', '!I' or '!Q' "
                f"('<' for little-endian), not {fmt!r}"
            )
        if not order and code != "B":
            raise ValueError(
                f"Prefixed() fmt must give the byte order, not {fmt!r}; "
                f"use '!{code}' (big-endian) or '<{code}' (little-endian)"
            )
        if not isinstance(include_header, bool):
            raise TypeError(f"Prefixed() include_header must be a bool, not {include_header!r}")
        if isinstance(max_length, bool) or not isinstance(max_length, int):
            raise TypeError(f"Prefixed() max_length must be an int, not {max_length!r}")
        if max_length <= 0:
            raise ValueError(f"Prefixed() max_length must be positive, not {max_length!r}")
        header = struct.Struct(fmt)
        self._fmt = fmt
        self._include_header = include_header
        self._max_length = max_length
        self._size = header.size
        # Where the delivered data starts in the frame: 0 keeps the header.
        self._start = 0 if include_header else header.size
        self._unpack_from = header.unpack_from

    @property
    def fmt(self) -> str:
        """The header's ``struct`` format, as given."""
        return self._fmt

    @property
    def include_header(self) -> bool:
        """Whether the header is delivered with the payload."""
        return self._include_header

    @property
    def max_length(self) -> int:
        """The largest payload length accepted."""
        return self._max_length

    @property
    def header_size(self) -> int:
        """The header's size in bytes: 1, 2, 4 or 8."""
        return self._size

    def _key(self) -> tuple[str, bool, int]:
        return self._fmt, self._include_header, self._max_length

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Prefixed):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        options = ""
        if self._include_header:
            options += ", include_header=True"
        if self._max_length != _DEFAULT_MAX_LENGTH:
            options += f", max_length={self._max_length}"
        return f"Prefixed({self._fmt!r}{options})"


class ReadRequest:
    """One queued read: what completes it, the tag handed back, and its timeout.

    Attributes:
        matcher: A positive byte count, a non-empty delimiter, a compiled bytes regex, or a
            :class:`Prefixed`.
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
        if isinstance(self.matcher, Prefixed):
            return f"a {self.matcher!r} frame"
        return f"re.compile({self.matcher.pattern!r})"

    def __repr__(self) -> str:
        return f"ReadRequest({self.describe()}, tag={self.tag})"


class Completed(NamedTuple):
    """A read that completed: its data (delimiter included) and its tag."""

    data: bytes
    tag: int


def _completed(pair: tuple[bytes, int], _new: Any = tuple.__new__) -> Completed:
    """``Completed(*pair)`` without NamedTuple's Python-level ``__new__`` (hot path)."""
    return _new(Completed, pair)  # type: ignore[no-any-return]


def make_request(delimiter: object, tag: object = -1, timeout: float = -1.0) -> ReadRequest:
    """Validate the arguments of ``read`` and build the request.

    Args:
        delimiter: A positive int, non-empty bytes/str, a compiled bytes regex, or a
            :class:`Prefixed` (validated when it was built).
        tag: An int.
        timeout: Seconds, negative for none.

    Returns:
        The request.

    Raises:
        TypeError: If the delimiter or tag has the wrong type.
        ValueError: If a length is not positive, or a delimiter or pattern is empty.
    """
    if isinstance(tag, bool) or not isinstance(tag, int):
        raise TypeError(f"read() tag must be an int, not {tag!r}")
    matcher: _Matcher
    if isinstance(delimiter, bool):
        raise TypeError(
            "read() delimiter must be an int, bytes, str, re.Pattern or Prefixed, "
            f"not {delimiter!r}"
        )
    if isinstance(delimiter, int):
        if delimiter <= 0:
            raise ValueError(f"read() length must be positive, not {delimiter!r}")
        matcher = delimiter
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
        if delimiter.search(b"") is not None:
            raise ValueError(
                f"read() pattern must not match the empty string: {delimiter.pattern!r}"
            )
        matcher = delimiter
    elif isinstance(delimiter, Prefixed):
        matcher = delimiter
    else:
        raise TypeError(
            "read() delimiter must be an int, bytes, str, re.Pattern or Prefixed, "
            f"not {delimiter!r}"
        )
    return ReadRequest(matcher, tag, timeout)
