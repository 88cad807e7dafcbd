"""Frames (sans-IO): reads that a header sizes, and reads that a function sizes.

The frame specs, each usable wherever a read or a mock-server rule is named (this module
holds the base and :class:`Prefixed`; ``_framers`` the other two):

- :class:`Prefixed`, a length field (Netty's ``LengthFieldBasedFrameDecoder``): bytes before
  the length, a length of 1, 2, 3, 4 or 8 bytes in either byte order, a varint (MQTT,
  protobuf) or a BER length (LDAP), an adjustment (a length that counts the header itself),
  a fixed trailer, and how much of the frame to deliver.
- :class:`Announced`, a header line that announces how many bytes follow (memcached ``set``,
  RESP bulk strings, HTTP ``Content-Length``).
- :class:`Framer`, a function of the buffered bytes that returns a frame's length or ``None``
  for "need more" (Go's ``bufio.SplitFunc``), for every other framing.

Each measures a frame with ``measure(buf, start, size)``: ``None`` (need more bytes), or
``(data_from, data_end, end)`` (what to deliver, and where the frame ends); it raises
:class:`FrameError` when the bytes can never make a frame (a length over ``max_length``, a
wrong trailer). ``ReadQueue`` and the rules call it; nothing here does I/O.
"""

from __future__ import annotations

import struct
from abc import abstractmethod
from typing import Callable, Optional, Union

from pytest_hsocket._core.checks import check_bool, check_bytes, check_int

__all__ = ["DEFAULT_MAX_LENGTH", "FrameError", "FrameSpec", "Prefixed", "frame_end"]

DEFAULT_MAX_LENGTH = 64 * 1024 * 1024
"""The largest payload a frame spec accepts unless given ``max_length`` (64 MiB)."""
_PREFIX_ORDERS = ("!", ">", "<")
_PREFIX_CODES = ("B", "H", "I", "Q")
_VARINT_MAX = 10  # a 64-bit varint takes at most 10 bytes (protobuf's limit)
_BER_MAX = 8  # a BER long form of more than 8 length bytes cannot fit a 64-bit length

Buffer = Union[bytes, bytearray]


class FrameError(ValueError):
    """The buffered bytes can never make a frame of this spec (the read fails)."""


def over_length(spec: FrameSpec, length: int) -> FrameError:
    """Return the error of a frame whose header announced ``length``, over ``spec.max_length``."""
    return FrameError(f"length {length} over max_length {spec.max_length} in a {spec!r} read")


def frame_end(
    spec: FrameSpec, buf: Buffer, body: int, length: int, size: int, trailer: bytes
) -> Optional[int]:
    """Return where a frame whose payload starts at ``body`` ends, its trailer checked.

    Shared by the length-field and the announced-count frames.

    Args:
        spec: The frame's spec (its ``max_length`` bounds ``length``; messages name it).
        buf: The buffered bytes.
        body: Where the payload starts in ``buf``.
        length: The payload's length, as the header announced it.
        size: How many bytes of ``buf`` count.
        trailer: The bytes the frame must end with.
    Returns:
        The frame's end in ``buf``, or ``None`` if more bytes are needed.
    Raises:
        FrameError: If ``length`` is over ``spec.max_length`` or the trailer is wrong.
    """
    if length > spec.max_length:
        raise over_length(spec, length)
    end = body + length + len(trailer)
    if size < end:
        return None
    if trailer and buf[end - len(trailer) : end] != trailer:
        got = bytes(buf[end - len(trailer) : end])
        raise FrameError(f"frame ends in {got!r}, not the trailer {trailer!r}, in a {spec!r} read")
    return end


class FrameSpec:
    """The base of the frame specs: a frame's data is measured from the buffered bytes.

    Attributes:
        max_length: The largest payload length accepted (read-only: set by the constructor).
    """

    __slots__ = ("max_length",)

    max_length: int

    @abstractmethod
    def measure(self, buf: Buffer, start: int, size: int) -> Optional[tuple[int, int, int]]:
        """Measure the frame that starts at ``buf[start]`` (``ReadQueue`` and the rules call it).

        Args:
            buf: The buffered bytes.
            start: Where the frame starts.
            size: How many bytes of ``buf`` count (``len(buf)``).
        Returns:
            ``None`` (need more bytes), or ``(data_from, data_end, end)``: the data to
            deliver is ``buf[data_from:data_end]``, and the frame ends at ``end``.
        Raises:
            FrameError: If the bytes can never make a frame of this spec.
        """
        raise NotImplementedError  # pragma: no cover

    def describe(self) -> str:
        """Say what the read waits for, for messages: ``"a Prefixed('!I') frame"``."""
        return f"a {self!r} frame"


class Prefixed(FrameSpec):
    """A length-field frame: optional bytes, a length, that many bytes, an optional trailer.

    Use it wherever a delimiter is accepted: ``sock.read(Prefixed("!I"), tag)``,
    ``client.expect(Prefixed("<H"))``, ``hsock_server.expect(Prefixed("!I"))``. The read
    completes once the whole frame has arrived, and delivers its payload (or the whole frame).

    A frame is ``offset`` bytes (a type byte, a channel), the length field, ``length +
    adjust`` bytes, then ``trailer``. Netty's ``LengthFieldBasedFrameDecoder`` names the same
    numbers ``lengthFieldOffset``, ``lengthFieldLength``, ``lengthAdjustment`` and
    ``initialBytesToStrip``.

    Args:
        fmt: The length field: a ``struct`` format of one unsigned integer, ``"!B"`` / ``"B"``
            (1 byte), or ``"!"`` / ``">"`` (big-endian) or ``"<"`` (little-endian) followed by
            ``"H"`` (2 bytes), ``"3"`` (3 bytes), ``"I"`` (4) or ``"Q"`` (8); or ``"varint"``
            (base-128, least significant group first: MQTT, protobuf) or ``"ber"`` (ASN.1
            BER definite length: LDAP).
        include_header: Deliver the whole frame (header, payload and trailer); by default
            only the payload.
        max_length: The largest payload length accepted (after ``adjust``). A header
            announcing more makes the read fail: see :attr:`ReadQueue.error`.
        offset: Bytes before the length field (they belong to the header).
        adjust: Added to the length field's value to get the payload's length: ``-4`` when
            a 4-byte length counts itself (PostgreSQL), ``1`` when a byte follows the length
            that it does not count (MySQL's sequence id).
        strip: Bytes to cut from the frame's start before delivering it; by default the
            header (``offset`` and the length field), or nothing with ``include_header``.
        trailer: Bytes every frame ends with (AMQP's ``b"\\xce"``), checked; delivered only
            with ``include_header``.

    Raises:
        TypeError: If an argument has the wrong type.
        ValueError: If ``fmt`` is not one of the lengths above, ``max_length`` is not
            positive, ``offset`` or ``strip`` is negative, or both ``strip`` and
            ``include_header`` are given.

    Attributes:
        max_length: The largest payload length accepted.
        header_size: The length field's size in bytes: 1, 2, 3, 4 or 8 (0 for a varint or
            BER length).
        simple: Whether the frame is a ``struct`` length field alone (no offset, adjust,
            strip or trailer): ``ReadQueue`` then measures it inline, from ``header_size``,
            ``unpack_from``, ``max_length`` and ``data_start``, instead of calling
            :meth:`measure` (the read hot path: plain attributes, no property, read per
            frame). Every attribute here is read-only, set by the constructor.
        unpack_from: The length field's ``struct.Struct.unpack_from`` (for a simple frame).
        data_start: Where the delivered data starts in a simple frame: ``header_size``, or
            0 with ``include_header``.
    """

    __slots__ = (
        "_adjust",
        "_decode",
        "_fmt",
        "_include_header",
        "_offset",
        "_strip",
        "_trailer",
        "data_start",
        "header_size",
        "simple",
        "unpack_from",
    )

    def __init__(
        self,
        fmt: str,
        *,
        include_header: bool = False,
        max_length: int = DEFAULT_MAX_LENGTH,
        offset: int = 0,
        adjust: int = 0,
        strip: Optional[int] = None,
        trailer: bytes = b"",
    ) -> None:
        self._decode = _parse_fmt(fmt)
        check_bool(include_header, "Prefixed() include_header")
        self.max_length = check_int(max_length, "Prefixed() max_length", 1)
        self._offset = check_int(offset, "Prefixed() offset", 0)
        check_int(adjust, "Prefixed() adjust", None)
        if strip is not None:
            check_int(strip, "Prefixed() strip", 0)
            if include_header:
                raise ValueError(
                    f"Prefixed() strip={strip!r} and include_header=True contradict; give one"
                )
        self._trailer = check_bytes(trailer, "Prefixed() trailer")
        self._fmt = fmt
        self._include_header = include_header
        self._adjust = adjust
        self._strip = strip
        self.unpack_from: Callable[..., tuple[int, ...]]
        if self._decode is None:
            header = struct.Struct(fmt)
            self.header_size = header.size
            self.unpack_from = header.unpack_from
        else:
            self.header_size = 3 if fmt[1:] == "3" else 0  # 0: a varint or BER length varies
            self.unpack_from = _no_struct
        # The fast path of ReadQueue: a struct length alone, the payload or the whole frame.
        self.simple = (
            self._decode is None and not offset and not adjust and strip is None and not trailer
        )
        # Where the delivered data starts in a simple frame: 0 keeps the header.
        self.data_start = 0 if include_header else self.header_size

    @property
    def fmt(self) -> str:
        """The length field's format, as given."""
        return self._fmt

    @property
    def include_header(self) -> bool:
        """Whether the whole frame is delivered."""
        return self._include_header

    def measure(self, buf: Buffer, start: int, size: int) -> Optional[tuple[int, int, int]]:
        """Measure the frame at ``buf[start]``: see :meth:`FrameSpec.measure`."""
        pos = start + self._offset
        decode = self._decode
        if decode is None:
            body = pos + self.header_size
            if size < body:
                return None
            length = self.unpack_from(buf, pos)[0]
        else:
            found = decode(self, buf, pos, size)
            if found is None:
                return None
            length, body = found
        length += self._adjust
        if length < 0:
            raise FrameError(
                f"length {length - self._adjust} with adjust {self._adjust} is negative "
                f"in a {self!r} read"
            )
        trailer = self._trailer
        end = frame_end(self, buf, body, length, size, trailer)
        if end is None:
            return None
        if self._include_header:
            return start, end, end
        data_from = body if self._strip is None else start + self._strip
        return min(data_from, end - len(trailer)), end - len(trailer), end

    def _key(self) -> tuple[object, ...]:
        return (
            self._fmt,
            self._include_header,
            self.max_length,
            self._offset,
            self._adjust,
            self._strip,
            self._trailer,
        )

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
        if self.max_length != DEFAULT_MAX_LENGTH:
            options += f", max_length={self.max_length}"
        for name in ("offset", "adjust", "strip"):
            value = getattr(self, f"_{name}")
            if value:
                options += f", {name}={value!r}"
        if self._trailer:
            options += f", trailer={self._trailer!r}"
        return f"Prefixed({self._fmt!r}{options})"


def _no_struct(buffer: object, offset: int = 0, /) -> tuple[int]:
    raise AssertionError("no struct length")  # pragma: no cover: only a struct fmt unpacks


def _three(order: str) -> Callable[[Prefixed, Buffer, int, int], Optional[tuple[int, int]]]:
    def decode(spec: Prefixed, buf: Buffer, pos: int, size: int) -> Optional[tuple[int, int]]:
        if size < pos + 3:
            return None
        return int.from_bytes(buf[pos : pos + 3], order), pos + 3  # type: ignore[arg-type]

    return decode


def _varint(spec: Prefixed, buf: Buffer, pos: int, size: int) -> Optional[tuple[int, int]]:
    length = shift = 0
    for index in range(pos, min(size, pos + _VARINT_MAX)):
        byte = buf[index]
        length |= (byte & 0x7F) << shift
        if byte < 0x80:
            return length, index + 1
        shift += 7
    if size >= pos + _VARINT_MAX:
        raise FrameError(f"varint length longer than {_VARINT_MAX} bytes in a {spec!r} read")
    return None


def _ber(spec: Prefixed, buf: Buffer, pos: int, size: int) -> Optional[tuple[int, int]]:
    if size <= pos:
        return None
    first = buf[pos]
    if first < 0x80:
        return first, pos + 1
    count = first & 0x7F
    if count == 0:
        raise FrameError(f"indefinite BER length (0x80) in a {spec!r} read")
    if count > _BER_MAX:
        raise FrameError(f"BER length of {count} bytes in a {spec!r} read")
    if size < pos + 1 + count:
        return None
    return int.from_bytes(buf[pos + 1 : pos + 1 + count], "big"), pos + 1 + count


_Decode = Callable[["Prefixed", Buffer, int, int], Optional[tuple[int, int]]]


def _parse_fmt(fmt: object) -> Optional[_Decode]:
    if not isinstance(fmt, str):
        raise TypeError(f"Prefixed() fmt must be a struct format str such as '!I', not {fmt!r}")
    if fmt == "varint":
        return _varint
    if fmt == "ber":
        return _ber
    order, code = (fmt[0], fmt[1:]) if fmt[:1] in _PREFIX_ORDERS else ("", fmt)
    if code == "3" and order:
        return _three("little" if order == "<" else "big")
    if code.upper() in _PREFIX_CODES and code not in _PREFIX_CODES:
        fix = (order or ("" if code == "b" else "!")) + code.upper()
        raise ValueError(f"Prefixed() fmt must be unsigned, not {fmt!r}; use {fix!r}")
    if code not in _PREFIX_CODES and code != "3":
        raise ValueError(
            "Prefixed() fmt must be one unsigned integer, '!B', '!H', '!3', '!I' or '!Q' "
            f"('<' for little-endian), 'varint' or 'ber', not {fmt!r}"
        )
    if not order and code != "B":
        raise ValueError(
            f"Prefixed() fmt must give the byte order, not {fmt!r}; "
            f"use '!{code}' (big-endian) or '<{code}' (little-endian)"
        )
    return None
