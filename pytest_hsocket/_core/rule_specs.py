"""What a mock-server rule matches (sans-IO): the specs ``expect`` takes, the optional check
of the framed bytes, and :func:`scan`, which matches a spec at the start of the unmatched
bytes, resuming where its last scan stopped (linear in the bytes, not quadratic).
"""

from __future__ import annotations

import re
from typing import Callable, Optional, Union

from pytest_hsocket._core.checks import check_int
from pytest_hsocket._core.frames import FrameError, FrameSpec
from pytest_hsocket._core.reads import zero_width
from pytest_hsocket._core.transcript import brief

MatchSpec = Union[bytes, str, int, "re.Pattern[bytes]", "Until", FrameSpec]
"""What ``expect`` accepts."""
Spec = Union[bytes, int, "re.Pattern[bytes]", "Until", FrameSpec]
"""What a rule keeps, once checked (a str became bytes)."""
Check = Union[bytes, str, "re.Pattern[bytes]", Callable[[bytes], object]]
"""A rule's check of the framed bytes: exact bytes, a regex searched in them, or a predicate."""

_LABEL_LIMIT = 80  # a problem line shows this much of a pattern: one regex made a 70 KB line

NEED_MORE = -1
""":func:`scan`'s end when the spec needs more bytes to decide."""
NO_MATCH = -2
""":func:`scan`'s end when the spec can never match the bytes."""


class Until:
    """Match any bytes up to and including ``delimiter`` (``expect(until(b"\\r\\n"))``)."""

    __slots__ = ("delimiter",)

    def __init__(self, delimiter: Union[bytes, str]) -> None:
        data = delimiter.encode() if isinstance(delimiter, str) else delimiter
        if not isinstance(data, bytes) or not data:
            raise ValueError(f"until() delimiter must be non-empty bytes or str, not {delimiter!r}")
        self.delimiter = data

    def __repr__(self) -> str:
        return f"until({self.delimiter!r})"


def until(delimiter: Union[bytes, str]) -> Until:
    """Build a delimiter match for ``expect``: any content up to and including ``delimiter``.

    Raises:
        ValueError: If the delimiter is empty or not bytes/str.
    """
    return Until(delimiter)


def literal_prefix(pattern: re.Pattern[bytes]) -> bytes:
    """Return the bytes every match of ``pattern`` starts with (``b"GET /"`` for
    ``rb"GET /(\\w+)"``), or ``b""``: bytes that disagree with it can never match.

    Read from the pattern's source, not from the ``re`` module's private parser: plain bytes,
    escaped punctuation and the escapes ``\\n \\r \\t \\f \\v \\a \\xHH``, up to the first
    other special character; a byte that a quantifier follows is left out (it may be
    optional). A pattern with a top-level ``|``, or compiled with ``re.IGNORECASE`` or
    ``re.VERBOSE``, has none. Conservative: it may find less than every match shares, never
    more (only a fast failure is lost).
    """
    if pattern.flags & (re.IGNORECASE | re.VERBOSE):
        return b""
    source = pattern.pattern
    if b"|" in source and _alternatives(source):
        return b""
    out = bytearray()
    at = 0
    while at < len(source):
        found = _literal_at(source, at)
        if found is None:
            break
        value, width = found
        if source[at + width : at + width + 1] in _QUANTIFIERS:
            break
        out.append(value)
        at += width
    return bytes(out)


_SPECIAL = frozenset(b".^$*+?{}[]\\|()")
_QUANTIFIERS = (b"*", b"+", b"?", b"{")
_ESCAPES = {ord(c): ord(v) for c, v in zip("nrtfva", "\n\r\t\f\v\a")}
_HEX = frozenset(b"0123456789abcdefABCDEF")


def _literal_at(source: bytes, at: int) -> Optional[tuple[int, int]]:
    # The literal byte at source[at] and the source bytes it takes, or None if it is not one.
    byte = source[at]
    if byte != 0x5C:  # a backslash
        return None if byte in _SPECIAL else (byte, 1)
    escaped = source[at + 1 : at + 2]
    if not escaped:
        return None
    code = escaped[0]
    if code in _ESCAPES:
        return _ESCAPES[code], 2
    digits = source[at + 2 : at + 4]
    if code == ord("x") and len(digits) == 2 and all(d in _HEX for d in digits):
        return int(digits, 16), 4
    if code < 0x80 and not chr(code).isalnum():
        return code, 2  # escaped punctuation stands for itself: \. \$ \\
    return None


def _alternatives(source: bytes) -> bool:
    # Whether a compiled pattern's source has a "|" outside every group and set.
    depth = 0
    at = 0
    while at < len(source):
        byte = source[at]
        if byte == 0x5C:
            at += 2
            continue
        if byte == ord("["):
            at += 1
            at += source[at : at + 1] == b"^"
            at += source[at : at + 1] == b"]"  # a first "]" is a member, not the end
            while at < len(source) and source[at] != ord("]"):
                at += 2 if source[at] == 0x5C else 1
        elif source.startswith(b"(?#", at):
            at = source.index(b")", at)  # a comment: what it holds means nothing
        elif byte == ord("("):
            depth += 1
        elif byte == ord(")"):
            depth -= 1
        elif byte == ord("|") and not depth:
            return True
        at += 1
    return False


def scan(spec: Spec, buf: bytearray, hint: int) -> tuple[int, int, int, int]:
    """Match ``spec`` at the start of ``buf``, from where the last scan of it stopped.

    Args:
        spec: The rule's spec.
        buf: The bytes not matched yet (they only grow between scans with the same hint).
        hint: What the last scan returned (0 for a first scan): how far ``buf`` was checked.
    Returns:
        ``(end, data_from, data_end, hint)``: ``end`` is where the match ends in ``buf``,
        or ``NEED_MORE`` / ``NO_MATCH``; the framed data is ``buf[data_from:data_end]``;
        ``hint`` is for the next scan. Each byte is looked at a bounded number of times
        (linear) except by a regex or a ``Framer``, which see the whole buffer each time.
    """
    size = len(buf)
    if isinstance(spec, bytes):
        want = len(spec)
        if size >= want:
            end = want if buf[hint:want] == spec[hint:] else NO_MATCH
            return end, 0, want, hint
        if buf[hint:size] == spec[hint:size]:
            return NEED_MORE, 0, 0, size
        return NO_MATCH, 0, 0, hint
    if isinstance(spec, int):
        return (spec if size >= spec else NEED_MORE), 0, spec, 0
    if isinstance(spec, Until):
        delimiter = spec.delimiter
        found = buf.find(delimiter, max(0, hint - len(delimiter) + 1))
        if found < 0:
            return NEED_MORE, 0, 0, size
        return found + len(delimiter), 0, found + len(delimiter), hint
    if isinstance(spec, FrameSpec):
        try:
            measured = spec.measure(buf, 0, size)
        except FrameError:
            return NO_MATCH, 0, 0, 0
        if measured is None:
            return NEED_MORE, 0, 0, 0
        data_from, data_end, end = measured
        return end, data_from, data_end, 0
    match = spec.match(buf)
    if match is not None:
        end = match.end()
        return (end if end else NO_MATCH), 0, end, 0
    prefix = literal_prefix(spec)
    common = min(len(prefix), size)
    if buf[:common] != prefix[:common]:
        return NO_MATCH, 0, 0, 0  # the bytes disagree with the pattern's literal start: fail fast
    return NEED_MORE, 0, 0, 0


def make_check(check: object) -> Optional[Check]:
    """Validate a rule's check of the framed bytes.

    Raises:
        TypeError: If it is not bytes, str, a bytes regex or callable.
    """
    if check is None or callable(check) or isinstance(check, bytes):
        return check
    if isinstance(check, str):
        return check.encode("utf-8")
    if isinstance(check, (bytearray, memoryview)):
        return bytes(check)
    if isinstance(check, re.Pattern) and isinstance(check.pattern, bytes):
        return check
    raise TypeError(
        f"expect() check must be bytes, str, a bytes re.Pattern or callable, not {check!r}"
    )


def passes(check: Optional[Check], data: bytes) -> bool:
    """Return whether ``data`` passes ``check`` (exact, ``re.search``, or a true predicate)."""
    if check is None:
        return True
    if isinstance(check, bytes):
        return data == check
    if isinstance(check, re.Pattern):
        return check.search(data) is not None
    assert callable(check)
    return bool(check(data))


def label(value: object) -> str:
    """Return how a problem line shows a spec or check: regexes as ``re.compile(...)``, a
    long pattern or byte string shortened."""
    if isinstance(value, re.Pattern):
        text = repr(value.pattern)
        if len(text) > _LABEL_LIMIT:
            text = text[: _LABEL_LIMIT - 5] + "...'"
        return f"re.compile({text})"
    if isinstance(value, (bytes, bytearray)):
        return brief(bytes(value), _LABEL_LIMIT) if len(value) > _LABEL_LIMIT else repr(value)
    if callable(value) and not isinstance(value, FrameSpec):
        return getattr(value, "__name__", repr(value))
    return repr(value)


def make_spec(match: object) -> Spec:
    """Validate what ``expect`` was given.

    Raises:
        TypeError: If it is not bytes, str, int, a bytes regex, ``until(...)`` or a frame
            spec (``Prefixed``, ``Announced``, ``Framer``).
        ValueError: If it is empty, a length is not positive, or a pattern matches no bytes.
    """
    if isinstance(match, bool):
        raise TypeError(
            "expect() match must be bytes, str, int, re.Pattern, until() or a frame spec, "
            f"not {match!r}"
        )
    if isinstance(match, str):
        try:
            match = match.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError(f"expect() match is not valid text: {match!r}") from None
    if isinstance(match, (bytes, bytearray, memoryview)):
        data = bytes(match)
        if not data:
            raise ValueError("expect() match must not be empty, not b''")
        return data
    if isinstance(match, int):
        return check_int(match, "expect() length", 1)
    if isinstance(match, (Until, FrameSpec)):
        return match
    if isinstance(match, re.Pattern):
        if not isinstance(match.pattern, bytes):
            raise TypeError(f"expect() pattern must be a bytes pattern, not {match.pattern!r}")
        if zero_width(match):
            raise ValueError(f"expect() pattern must not match the empty string: {label(match)}")
        return match
    raise TypeError(
        "expect() match must be bytes, str, int, re.Pattern, until() or a frame spec, "
        f"not {match!r}"
    )
