"""The sans-IO read queue: tagged reads matched against a byte stream.

A :class:`ReadQueue` holds the reads that were asked for (by length, delimiter, regex or
length prefix) and the bytes that arrived. ``push`` a request, ``feed`` bytes; both return the
reads that completed, in order. Nothing here knows about sockets, threads or gevent, so every
framing rule can be tested in microseconds, for every split of the input.
"""

from __future__ import annotations

import re
import struct
from collections import deque
from typing import Any, NamedTuple, Optional, Union

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
_COPY_VIEW = 2048
"""Reads longer than this are copied out of the buffer through a memoryview (one copy);
shorter ones by slicing, which costs less than making the view."""
_WINDOW_MIN = 512
_WINDOW_MAX = 64 * 1024
"""Bounds of the bytes snapshot that ``ReadQueue.take`` slices lines from: it starts small
(a protocol that mixes reads copies little) and doubles while takes keep using it up."""


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


def _split(data: bytes, delimiter: bytes) -> list[bytes]:
    """Split ``data`` after each ``delimiter`` (kept); the last item is what follows the last
    one (may be empty: dropped if so). Lines of b"\n" or b"\r\n" split in one C call where
    no other line break could mislead ``splitlines``."""
    if delimiter == b"\n":
        if b"\r" not in data:
            return data.splitlines(True)
    elif delimiter == b"\r\n":
        pairs = data.count(delimiter)
        if data.count(b"\r") == pairs and data.count(b"\n") == pairs:
            return data.splitlines(True)
    parts = data.split(delimiter)
    tail = parts.pop()
    lines = [part + delimiter for part in parts]
    if tail:
        lines.append(tail)
    return lines


class ReadQueue:
    """Queued reads plus the bytes received and not yet delivered.

    Delimiter scans remember where they stopped, so a message that arrives in many chunks is
    scanned once in all (linear), not once per chunk.

    Attributes:
        error: ``None``, or why the current read can never complete: a :class:`Prefixed`
            header announced a length over its ``max_length`` (``"length 4294967295 over
            max_length 67108864 in a Prefixed('!I') read"``). Set by the ``push`` or ``feed``
            that buffered the header; the reads before it still complete and are returned.
            The read stays queued and the bytes stay buffered (nothing is delivered from a
            frame that cannot be trusted); the owner of the connection should close it with
            this reason. Reset by ``cancel`` of that read, ``take_unread`` and ``clear``. A
            plain attribute, so checking it after each ``feed`` costs next to nothing.
    """

    __slots__ = (
        "_buf",
        "_lines",
        "_lines_bytes",
        "_lines_delim",
        "_lines_last",
        "_lines_next",
        "_requests",
        "_scan_from",
        "_win_size",
        "error",
    )

    def __init__(self) -> None:
        self._buf = bytearray()
        self._requests: deque[ReadRequest] = deque()
        # Where the head request's next delimiter search starts; no match lies before it.
        self._scan_from = 0
        # take()'s lines: the buffer's head split at _lines_delim in one C call, handed out
        # in order; the first _lines_next of them are delivered but still in _buf (and the
        # _lines_bytes bytes of them all are). Every other method settles them first.
        self._lines: list[bytes] = []
        self._lines_next = 0
        self._lines_last = 0  # len(_lines) - 1: a caller inlining take() stops before it
        self._lines_bytes = 0
        self._lines_delim: Optional[bytes] = None
        self._win_size = _WINDOW_MIN
        self.error: Optional[str] = None

    @property
    def buffered(self) -> int:
        """The number of bytes received and not yet delivered."""
        if self._lines_next:
            return len(self._buf) - self._taken_bytes()
        return len(self._buf)

    @property
    def pending(self) -> int:
        """The number of reads queued and not yet completed."""
        return len(self._requests)

    @property
    def current(self) -> Optional[ReadRequest]:
        """The read that incoming bytes go to now, or ``None``."""
        return self._requests[0] if self._requests else None

    def requests(self) -> list[ReadRequest]:
        """Return the queued reads, current first."""
        return list(self._requests)

    def unread(self) -> bytes:
        """Return a copy of the bytes received and not yet delivered."""
        if self._lines:
            self._settle()
        return bytes(self._buf)

    def take(self, delimiter: bytes) -> Optional[bytes]:
        """Complete a delimiter read at once, if no read is queued and the buffer holds one.

        The fast lane of a callback that queues its next read: equivalent to a ``push`` of
        ``ReadRequest(delimiter)`` that completes at once, without building the request.

        Args:
            delimiter: A non-empty delimiter (not checked: the caller validated it).
        Returns:
            The data up to and including the first ``delimiter``, or ``None`` (nothing taken)
            if a read is queued or the buffer holds no whole ``delimiter``; then ``push``.
        """
        if delimiter is self._lines_delim:
            index = self._lines_next
            lines = self._lines
            if index < len(lines):
                self._lines_next = index + 1
                return lines[index]
        return self._take_slow(delimiter)

    def _take_slow(self, delimiter: bytes) -> Optional[bytes]:
        # Split a new snapshot of the buffer's head, twice as long as the last while takes
        # keep using them up: a protocol that mixes reads splits little.
        used_up = bool(self._lines) and delimiter is self._lines_delim
        size = min(self._win_size * 2, _WINDOW_MAX) if used_up else _WINDOW_MIN
        self._settle()
        buf = self._buf
        if self._requests or not buf:
            return None
        if len(buf) > size:
            with memoryview(buf) as view:
                win = bytes(view[:size])
        else:
            win = bytes(buf)
        lines = _split(win, delimiter)
        tail = lines.pop() if lines and not lines[-1].endswith(delimiter) else b""
        if not lines:
            return None  # none yet, or one across the snapshot's end: push finds it
        self._lines, self._lines_next, self._lines_delim = lines, 1, delimiter
        self._lines_last = len(lines) - 1
        self._lines_bytes = len(win) - len(tail)
        self._win_size = size
        return lines[0]

    def _taken_bytes(self) -> int:
        # The bytes of the lines take() handed out (still at the head of _buf).
        taken = self._lines_next
        if taken == len(self._lines):
            return self._lines_bytes
        return sum(map(len, self._lines[:taken]))

    def _settle(self) -> None:
        # Drop the lines take() delivered from the buffer, and the rest of the split.
        lines = self._lines
        if not lines:
            return
        if self._lines_next:
            del self._buf[: self._taken_bytes()]
        self._lines = []
        self._lines_next = self._lines_last = 0

    def push(self, request: ReadRequest) -> list[Completed]:
        """Queue a read.

        Returns:
            The reads that completed from bytes already buffered (this one and none before it
            can have been waiting unless it is the only one).
        """
        if self._lines:
            self._settle()
        self._win_size = _WINDOW_MIN
        buf = self._buf
        if not self._requests and buf:
            matcher = request.matcher
            if type(matcher) is bytes:
                # The common case (a delimiter read with data buffered), without the loop.
                found = buf.find(matcher)
                if found >= 0:
                    end = found + len(matcher)
                    data = bytes(buf[:end])
                    del buf[:end]
                    return [_completed((data, request.tag))]
                self._requests.append(request)
                self._scan_from = max(0, len(buf) - len(matcher) + 1)
                return []
            self._requests.append(request)
            return self._drain()
        self._requests.append(request)
        return []

    def feed(self, data: Union[bytes, bytearray, memoryview]) -> list[Completed]:
        """Add received bytes.

        Returns:
            The reads that completed, in order.
        """
        if self._lines:
            self._settle()
        self._buf += data
        if self._requests:
            return self._drain()
        return []

    @property
    def at_barrier(self) -> bool:
        """Whether the current read is a barrier (every read before it has completed)."""
        return bool(self._requests) and self._requests[0].matcher == BARRIER

    def pop_barrier(self) -> list[Completed]:
        """Remove the barrier at the head; return the reads that then complete from the buffer."""
        if not self.at_barrier:
            raise ValueError("pop_barrier() needs a barrier at the head of the queue")
        self._settle()
        self._requests.popleft()
        self._scan_from = 0
        return self._drain() if self._buf else []

    def cancel(self, request: ReadRequest) -> bool:
        """Remove a queued read (a test gave up waiting); return whether it was queued."""
        self._settle()
        was_current = bool(self._requests) and self._requests[0] is request
        try:
            self._requests.remove(request)
        except ValueError:
            return False
        self._scan_from = 0
        if was_current:
            self.error = None  # the next read decides anew, on the next feed
        return True

    def take_unread(self) -> bytes:
        """Remove and return every buffered byte (for a hand-over, e.g. to TLS)."""
        self._settle()
        data = bytes(self._buf)
        self._buf.clear()
        self._scan_from = 0
        self.error = None
        return data

    def clear(self) -> tuple[list[ReadRequest], bytes]:
        """Drop every queued read and buffered byte.

        Returns:
            What was dropped: the reads (current first) and the bytes.
        """
        requests = list(self._requests)
        self._requests.clear()
        return requests, self.take_unread()

    def _drain(self) -> list[Completed]:
        # Reads complete from an offset into the buffer, which is cut once at the end: a
        # bytearray cut from the front reallocates (and copies the rest) whenever it falls
        # under half its allocation, which cut per read made bulk transfers churn memory.
        done: list[Completed] = []
        buf = self._buf
        requests = self._requests
        start = 0
        size = len(buf)
        while requests:
            request = requests[0]
            matcher = request.matcher
            data_from = start
            if isinstance(matcher, int):
                if size - start < matcher or size == start or matcher < 0:
                    break
                end = start + (matcher or size - start)
            elif isinstance(matcher, bytes):
                found = buf.find(matcher, start + self._scan_from)
                if found < 0:
                    # A delimiter may straddle the next chunk: keep its first len-1 bytes.
                    self._scan_from = max(0, size - start - len(matcher) + 1)
                    break
                end = found + len(matcher)
            elif isinstance(matcher, Prefixed):
                # Placed after the int and bytes branches so they pay nothing for it.
                # Nothing is scanned: _scan_from stays 0 while a Prefixed read is the head.
                header = matcher._size
                if size - start < header:
                    break
                length = matcher._unpack_from(buf, start)[0]
                if length > matcher._max_length:
                    if self.error is None:
                        self.error = (
                            f"length {length} over max_length {matcher._max_length} "
                            f"in a {matcher!r} read"
                        )
                    break
                end = start + header + length
                if size < end:
                    break
                data_from = start + matcher._start  # the payload may start after the header
            else:
                # Searched as if the buffer began at the read (so ^ and \A anchor there).
                with memoryview(buf) as view:
                    match = matcher.search(view[start:])
                    matched = match.end() if match is not None else 0
                    match = None  # it holds an export of the buffer
                if not matched:
                    break
                end = start + matched
            if end - data_from > _COPY_VIEW:
                with memoryview(buf) as view:
                    data = bytes(view[data_from:end])  # one copy, not two
            else:
                data = bytes(buf[data_from:end])
            done.append(_completed((data, request.tag)))
            start = end
            requests.popleft()
            self._scan_from = 0
        if start:
            del buf[:start]
        return done
