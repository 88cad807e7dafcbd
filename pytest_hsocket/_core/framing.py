"""The sans-IO read queue: tagged reads matched against a byte stream.

A :class:`ReadQueue` holds the reads that were asked for (by length, delimiter, regex or
length prefix) and the bytes that arrived. ``push`` a request, ``feed`` bytes; both return the
reads that completed, in order. Nothing here knows about sockets, threads or gevent, so every
framing rule can be tested in microseconds, for every split of the input.
"""

from __future__ import annotations

from collections import deque
from typing import Optional, Union

from pytest_hsocket._core.frames import FrameError, FrameSpec, over_length
from pytest_hsocket._core.lines import COPY_VIEW, WINDOW_MAX, WINDOW_MIN, whole_lines
from pytest_hsocket._core.reads import (
    AVAILABLE,
    BARRIER,
    Announced,
    Completed,
    Delimiter,
    Framer,
    Prefixed,
    ReadRequest,
    completed,
    make_request,
)

__all__ = [
    "AVAILABLE",
    "BARRIER",
    "Announced",
    "Completed",
    "Delimiter",
    "FrameSpec",
    "Framer",
    "Prefixed",
    "ReadQueue",
    "ReadRequest",
    "make_request",
]


class ReadQueue:
    """Queued reads plus the bytes received and not yet delivered.

    Delimiter scans remember where they stopped, so a message that arrives in many chunks is
    scanned once in all (linear), not once per chunk.

    Attributes:
        error: ``None``, or why the current read can never complete: a frame's header
            announced a length over its ``max_length`` (``"length 4294967295 over
            max_length 67108864 in a Prefixed('!I') read"``), a frame's trailer is wrong,
            or a pattern matched no bytes at the read's start. Set by the ``push`` or ``feed``
            that buffered the header; the reads before it still complete and are returned.
            The read stays queued and the bytes stay buffered (nothing is delivered from a
            frame that cannot be trusted); the owner of the connection should close it with
            this reason. Reset by ``cancel`` of that read, ``take_unread`` and ``clear``. A
            plain attribute, so checking it after each ``feed`` costs next to nothing.
        reads_queued: The queued reads, current first (a deque). Read-only for others: the
            stream's read timer looks at its head once a message, without a property call.
        lines: The fast reads' contract (the TCP socket inlines ``take`` with it):
            ``take(d)`` split the buffer's head into ``lines`` at ``lines_delim``; while
            ``lines_next < lines_last`` and ``d is lines_delim``, a caller may take
            ``lines[lines_next]`` and add 1 to ``lines_next``, as ``take(d)`` would. Nothing
            else may be written; ``tests/test_private_state.py`` pins it.
        lines_next: See ``lines``.
        lines_last: ``len(lines) - 1``: an inlined take stops before it (``take`` settles it).
        lines_delim: See ``lines``.
    """

    __slots__ = (
        "_buf",
        "_lines_bytes",
        "_scan_from",
        "_win_size",
        "error",
        "lines",
        "lines_delim",
        "lines_last",
        "lines_next",
        "reads_queued",
    )

    def __init__(self) -> None:
        self._buf = bytearray()
        self.reads_queued: deque[ReadRequest] = deque()
        # Where the head request's next delimiter search starts; no match lies before it.
        self._scan_from = 0
        # take()'s lines: the buffer's head split at lines_delim in one C call, handed out
        # in order; the first lines_next of them are delivered but still in _buf (and the
        # _lines_bytes bytes of them all are). Every other method settles them first.
        self.lines: list[bytes] = []
        self.lines_next = 0
        self.lines_last = 0  # len(lines) - 1: a caller inlining take() stops before it
        self._lines_bytes = 0
        self.lines_delim: Optional[bytes] = None
        self._win_size = WINDOW_MIN
        self.error: Optional[str] = None

    @property
    def buffered(self) -> int:
        """The number of bytes received and not yet delivered."""
        if self.lines_next:
            return len(self._buf) - self._taken_bytes()
        return len(self._buf)

    @property
    def pending(self) -> int:
        """The number of reads queued and not yet completed."""
        return len(self.reads_queued)

    @property
    def current(self) -> Optional[ReadRequest]:
        """The read that incoming bytes go to now, or ``None``."""
        return self.reads_queued[0] if self.reads_queued else None

    def requests(self) -> list[ReadRequest]:
        """Return the queued reads, current first."""
        return list(self.reads_queued)

    def unread(self) -> bytes:
        """Return a copy of the bytes received and not yet delivered."""
        if self.lines:
            self._settle()
        return bytes(self._buf)

    def take(self, delimiter: bytes) -> Optional[bytes]:
        """Complete a delimiter read at once, if no read is queued and the buffer holds one.

        The fast read of a callback that queues its next read: equivalent to a ``push`` of
        ``ReadRequest(delimiter)`` that completes at once, without building the request.

        Args:
            delimiter: A non-empty delimiter (not checked: the caller validated it).
        Returns:
            The data up to and including the first ``delimiter``, or ``None`` (nothing taken)
            if a read is queued or the buffer holds no whole ``delimiter``; then ``push``.
        """
        if delimiter is self.lines_delim:
            index = self.lines_next
            lines = self.lines
            if index < len(lines):
                self.lines_next = index + 1
                return lines[index]
        return self._take_slow(delimiter)

    def _take_slow(self, delimiter: bytes) -> Optional[bytes]:
        # Split a new snapshot of the buffer's head, twice as long as the last while takes
        # keep using them up: a protocol that mixes reads splits little.
        used_up = bool(self.lines) and delimiter is self.lines_delim
        size = min(self._win_size * 2, WINDOW_MAX) if used_up else WINDOW_MIN
        self._settle()
        buf = self._buf
        if self.reads_queued or not buf:
            return None
        if len(buf) > size:
            with memoryview(buf) as view:
                win = bytes(view[:size])
        else:
            win = bytes(buf)
        lines, covered = whole_lines(win, delimiter)
        if not lines:
            return None  # none yet, or one across the snapshot's end: push finds it
        self.lines, self.lines_next, self.lines_delim = lines, 1, delimiter
        self.lines_last = len(lines) - 1
        self._lines_bytes = covered
        self._win_size = size
        return lines[0]

    def _taken_bytes(self) -> int:
        # The bytes of the lines take() handed out (still at the head of _buf).
        taken = self.lines_next
        if taken == len(self.lines):
            return self._lines_bytes
        return sum(map(len, self.lines[:taken]))

    def _settle(self) -> None:
        # Drop the lines take() delivered from the buffer, and the rest of the split.
        lines = self.lines
        if not lines:
            return
        if self.lines_next:
            del self._buf[: self._taken_bytes()]
        self.lines = []
        self.lines_next = self.lines_last = 0

    def push(self, request: ReadRequest) -> list[Completed]:
        """Queue a read.

        Returns:
            The reads that completed from bytes already buffered (this one and none before it
            can have been waiting unless it is the only one).
        """
        if self.lines:
            self._settle()
        self._win_size = WINDOW_MIN
        buf = self._buf
        if not self.reads_queued and buf:
            matcher = request.matcher
            if type(matcher) is bytes:
                # The common case (a delimiter read with data buffered), without the loop.
                found = buf.find(matcher)
                if found >= 0:
                    end = found + len(matcher)
                    data = bytes(buf[:end])
                    del buf[:end]
                    return [completed((data, request.tag))]
                self.reads_queued.append(request)
                self._scan_from = max(0, len(buf) - len(matcher) + 1)
                return []
            self.reads_queued.append(request)
            return self._drain()
        self.reads_queued.append(request)
        if request.matcher == 0 and len(self.reads_queued) == 1:
            return self._drain()  # read(0) completes at once, buffer or not
        return []

    def feed(self, data: Union[bytes, bytearray, memoryview]) -> list[Completed]:
        """Add received bytes.

        Returns:
            The reads that completed, in order.
        """
        if self.lines:
            self._settle()
        requests = self.reads_queued
        if requests and data and not self._buf:
            # The common case of a request/response peer: nothing buffered, and the chunk is
            # exactly the head read's (its delimiter ends it, or it reads what is available).
            # The chunk completes it as is, without passing through the buffer.
            request = requests[0]
            matcher = request.matcher
            if type(matcher) is bytes and data[-len(matcher) :] == matcher:
                chunk = bytes(data)  # the view's end compared first: no copy for nothing
                if chunk.find(matcher) == len(chunk) - len(matcher):
                    requests.popleft()
                    if requests:  # a read(0) after it completes too, in order
                        return [completed((chunk, request.tag)), *self._drain()]
                    return [completed((chunk, request.tag))]
                data = chunk
            elif type(matcher) is int and matcher == AVAILABLE:
                requests.popleft()
                if requests:
                    return [completed((bytes(data), request.tag)), *self._drain()]
                return [completed((bytes(data), request.tag))]
        self._buf += data
        if requests:
            return self._drain()
        return []

    @property
    def at_barrier(self) -> bool:
        """Whether the current read is a barrier (every read before it has completed)."""
        return bool(self.reads_queued) and self.reads_queued[0].matcher == BARRIER

    def pop_barrier(self) -> list[Completed]:
        """Remove the barrier at the head; return the reads that then complete from the buffer."""
        if not self.at_barrier:
            raise ValueError("pop_barrier() needs a barrier at the head of the queue")
        self._settle()
        self.reads_queued.popleft()
        self._scan_from = 0
        return self._drain()  # a read(0) behind the barrier completes with no bytes

    def cancel(self, request: ReadRequest) -> bool:
        """Remove a queued read (a test gave up waiting); return whether it was queued."""
        self._settle()
        was_current = bool(self.reads_queued) and self.reads_queued[0] is request
        try:
            self.reads_queued.remove(request)
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
        requests = list(self.reads_queued)
        self.reads_queued.clear()
        return requests, self.take_unread()

    def _drain(self) -> list[Completed]:
        # Reads complete from an offset into the buffer, which is cut once at the end: a
        # bytearray cut from the front reallocates (and copies the rest) whenever it falls
        # under half its allocation, which cut per read made bulk transfers churn memory.
        done: list[Completed] = []
        buf = self._buf
        requests = self.reads_queued
        start = 0
        size = len(buf)
        while requests:
            request = requests[0]
            matcher = request.matcher
            data_from = start
            if isinstance(matcher, int):
                if matcher > 0:
                    if size - start < matcher:
                        break
                    end = start + matcher
                elif not matcher:
                    end = start  # read(0): at once, in its turn
                elif matcher == AVAILABLE and size > start:
                    end = size
                else:
                    break
            elif isinstance(matcher, bytes):
                found = buf.find(matcher, start + self._scan_from)
                if found < 0:
                    # A delimiter may straddle the next chunk: keep its first len-1 bytes.
                    self._scan_from = max(0, size - start - len(matcher) + 1)
                    break
                end = found + len(matcher)
            elif isinstance(matcher, FrameSpec) and not (
                isinstance(matcher, Prefixed) and matcher.simple
            ):
                # Placed after the int and bytes branches so they pay nothing for it.
                try:
                    measured = matcher.measure(buf, start, size)
                except FrameError as exc:
                    if self.error is None:
                        self.error = str(exc)
                    break
                if measured is None:
                    break
                data_from, data_end, end = measured
                if data_end - data_from > COPY_VIEW:
                    with memoryview(buf) as view:
                        data = bytes(view[data_from:data_end])
                else:
                    data = bytes(buf[data_from:data_end])
                done.append(completed((data, request.tag)))
                start = end
                requests.popleft()
                self._scan_from = 0
                continue
            elif isinstance(matcher, Prefixed):
                # A simple frame, measured inline through Prefixed's documented fields.
                # Nothing is scanned: _scan_from stays 0 while a Prefixed read is the head.
                header = matcher.header_size
                if size - start < header:
                    break
                length = matcher.unpack_from(buf, start)[0]
                if length > matcher.max_length:
                    if self.error is None:
                        self.error = str(over_length(matcher, length))
                    break
                end = start + header + length
                if size < end:
                    break
                data_from = start + matcher.data_start  # the payload may start after the header
            else:
                # Searched as if the buffer began at the read (so ^ and \A anchor there).
                with memoryview(buf) as view:
                    match = matcher.search(view[start:])
                    matched = match.end() if match is not None else 0
                    match_at_start = match is not None
                    match = None  # it holds an export of the buffer
                if not matched:
                    if match_at_start and self.error is None:
                        self.error = (
                            f"re.compile({matcher.pattern!r}) matched no bytes at the read's "
                            "start: a zero-width pattern never completes a read"
                        )
                    break
                end = start + matched
            if end - data_from > COPY_VIEW:
                with memoryview(buf) as view:
                    data = bytes(view[data_from:end])  # one copy, not two
            else:
                data = bytes(buf[data_from:end])
            done.append(completed((data, request.tag)))
            start = end
            requests.popleft()
            self._scan_from = 0
        if start:
            del buf[:start]
        return done
