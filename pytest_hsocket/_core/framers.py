"""Frame specs measured by a header line or by a function (sans-IO): :class:`Announced`
(memcached ``set``, RESP bulk strings, HTTP ``Content-Length``) and :class:`Framer` (Go's
``bufio.SplitFunc``). See ``_frames`` for the base and the length-field spec."""

from __future__ import annotations

import re
from typing import Callable, Optional, Union

from pytest_hsocket._core.checks import check_bool, check_bytes, check_int, check_name
from pytest_hsocket._core.frames import (
    DEFAULT_MAX_LENGTH,
    Buffer,
    FrameError,
    FrameSpec,
    frame_end,
)

__all__ = ["Announced", "Framer"]

_MAX_HEADER = 64 * 1024  # a header line longer than this fails the read: none is that long


class Announced(FrameSpec):
    """A header that announces how many bytes follow it: memcached, RESP, HTTP.

    The header runs up to and including the first ``end``; ``count`` is searched in it, and
    its first group is the decimal number of bytes that follow (then ``trailer``). A header
    where ``count`` finds nothing announces no bytes (an HTTP response without
    ``Content-Length``; a RESP simple string).

    Args:
        count: A bytes regex (or its source as bytes) whose first group is the count:
            ``rb"^\\$(\\d+)"`` (RESP bulk), ``rb"(?im)^content-length: *(\\d+)"`` (HTTP).
        end: What ends the header: ``b"\\r\\n"`` (a line, the default), ``b"\\r\\n\\r\\n"``
            (an HTTP header block).
        trailer: Bytes after the announced ones (``b"\\r\\n"`` for RESP and memcached),
            checked; delivered only with ``include_header``.
        include_header: Deliver the header, the bytes and the trailer; by default the
            announced bytes only.
        max_length: The largest count accepted; a header longer than 64 KiB fails too.

    Raises:
        TypeError: If ``count`` is not a bytes regex, or another argument has the wrong type.
        ValueError: If ``count`` has no group, ``end`` is empty, or ``max_length`` is not
            positive.
    """

    __slots__ = ("_count", "_end", "_include_header", "_trailer")

    def __init__(
        self,
        count: Union[bytes, re.Pattern[bytes]],
        *,
        end: bytes = b"\r\n",
        trailer: bytes = b"",
        include_header: bool = False,
        max_length: int = DEFAULT_MAX_LENGTH,
    ) -> None:
        if isinstance(count, (bytes, bytearray)):
            count = re.compile(bytes(count))
        if not isinstance(count, re.Pattern) or not isinstance(count.pattern, bytes):
            raise TypeError(f"Announced() count must be a bytes regex, not {count!r}")
        if count.groups < 1:
            raise ValueError(
                f"Announced() count must have a group for the number, not {count.pattern!r}"
            )
        self._end = check_bytes(end, "Announced() end")
        if not self._end:
            raise ValueError("Announced() end must not be empty, not b''")
        self._trailer = check_bytes(trailer, "Announced() trailer")
        check_bool(include_header, "Announced() include_header")
        self._count = count
        self._include_header = include_header
        self.max_length = check_int(max_length, "Announced() max_length", 1)

    def measure(self, buf: Buffer, start: int, size: int) -> Optional[tuple[int, int, int]]:
        """Measure the frame at ``buf[start]``: see :meth:`FrameSpec.measure`."""
        found = buf.find(self._end, start, min(size, start + _MAX_HEADER))
        if found < 0:
            if size - start >= _MAX_HEADER:
                raise FrameError(f"no {self._end!r} in {_MAX_HEADER} bytes in a {self!r} read")
            return None
        body = found + len(self._end)
        match = self._count.search(bytes(buf[start:body]))
        try:
            length = int(match.group(1)) if match is not None and match.group(1) else 0
        except ValueError:
            assert match is not None
            raise FrameError(
                f"count {match.group(1)!r} is not a decimal number in a {self!r} read"
            ) from None
        trailer = self._trailer
        end = frame_end(self, buf, body, length, size, trailer)
        if end is None:
            return None
        if self._include_header:
            return start, end, end
        return body, end - len(trailer), end

    def __repr__(self) -> str:
        options = "" if self._end == b"\r\n" else f", end={self._end!r}"
        options += f", trailer={self._trailer!r}" if self._trailer else ""
        options += ", include_header=True" if self._include_header else ""
        if self.max_length != DEFAULT_MAX_LENGTH:
            options += f", max_length={self.max_length}"
        return f"Announced({self._count.pattern!r}{options})"


class Framer(FrameSpec):
    """A frame that a function measures: ``fn(buffered) -> length | None`` (Go's SplitFunc).

    ``fn`` gets the bytes buffered from the frame's start (all of them, each time more
    arrive) and returns how many of them make the frame, or ``None`` for "need more". It
    may raise ``ValueError`` to say the bytes can never make a frame (the read fails with
    its message). The frame is delivered whole.

    Args:
        fn: The function.
        name: How messages name it; by default the function's ``__name__``.
        max_length: The most bytes buffered while ``fn`` still needs more.

    Raises:
        TypeError: If ``fn`` is not callable or ``name`` not a str.
        ValueError: If ``max_length`` is not positive.
    """

    __slots__ = ("_fn", "_name")

    def __init__(
        self,
        fn: Callable[[bytes], Optional[int]],
        *,
        name: Optional[str] = None,
        max_length: int = DEFAULT_MAX_LENGTH,
    ) -> None:
        if not callable(fn):
            raise TypeError(f"Framer() fn must be callable, not {fn!r}")
        check_name(name, "Framer() name")
        self._fn = fn
        self._name = name or getattr(fn, "__name__", repr(fn))
        self.max_length = check_int(max_length, "Framer() max_length", 1)

    def measure(self, buf: Buffer, start: int, size: int) -> Optional[tuple[int, int, int]]:
        """Measure the frame at ``buf[start]``: see :meth:`FrameSpec.measure`."""
        available = size - start
        if not available:
            return None
        try:
            length = self._fn(bytes(buf[start:size]))
        except ValueError as exc:
            raise FrameError(f"{self!r} refused the bytes: {exc}") from exc
        except Exception as exc:  # a bug in fn: the read fails with it, the loop goes on
            raise FrameError(f"{self!r} raised {type(exc).__name__}: {exc}") from exc
        if length is None:
            if available > self.max_length:
                raise FrameError(f"{self!r} needs more than max_length {self.max_length} bytes")
            return None
        if isinstance(length, bool) or not isinstance(length, int) or not 0 < length <= available:
            raise FrameError(
                f"{self!r} returned {length!r} for {available} bytes; "
                f"it must return 1 to {available}, or None for more"
            )
        return start, start + length, start + length

    def __repr__(self) -> str:
        return f"Framer({self._name})"
