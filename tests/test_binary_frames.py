"""Frame specs in the I/O-free read queue: length fields, announced counts, framer functions,
zero-length reads and zero-width patterns."""

from __future__ import annotations

import re
import struct
from typing import Optional

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_hsocket import Announced, Framer, Prefixed
from pytest_hsocket._core.framing import Completed, ReadQueue, make_request


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _ber(value: int) -> bytes:
    if value < 0x80:
        return bytes([value])
    raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def _split_feed(queue: ReadQueue, data: bytes, cuts: list[int]) -> list[Completed]:
    done: list[Completed] = []
    last = 0
    for cut in [*sorted(set(cuts)), len(data)]:
        done += queue.feed(data[last:cut])
        last = cut
    return done


def _pg(kind: bytes, payload: bytes) -> bytes:
    return kind + struct.pack("!I", len(payload) + 4) + payload


def _mysql(seq: int, payload: bytes) -> bytes:
    return len(payload).to_bytes(3, "little") + bytes([seq]) + payload


def _amqp(payload: bytes) -> bytes:
    return b"\x01\x00\x00" + struct.pack("!I", len(payload)) + payload + b"\xce"


def _http_length(buf: bytes) -> Optional[int]:
    head = buf.find(b"\r\n\r\n")
    if head < 0:
        return None
    found = re.search(rb"(?im)^content-length: *(\d+)", buf[:head])
    end = head + 4 + (int(found.group(1)) if found else 0)
    return end if len(buf) >= end else None


PAYLOADS = [b"", b"x", b"\xce\xce", b"SELECT 1\x00", bytes(range(256)) * 2]

# (spec, encode(payload) -> frame, what the read delivers for that payload)
CASES = [
    pytest.param(
        Prefixed("!I", offset=1, adjust=-4), lambda p: _pg(b"Q", p), lambda p: p, id="postgresql"
    ),
    pytest.param(
        Prefixed("!I", offset=1, adjust=-4, include_header=True),
        lambda p: _pg(b"Q", p),
        lambda p: _pg(b"Q", p),
        id="postgresql-whole",
    ),
    pytest.param(
        Prefixed("<3", adjust=1), lambda p: _mysql(7, p), lambda p: b"\x07" + p, id="mysql"
    ),
    pytest.param(
        Prefixed("<3", adjust=1, strip=4), lambda p: _mysql(7, p), lambda p: p, id="mysql-strip"
    ),
    pytest.param(Prefixed("!I", offset=3, trailer=b"\xce"), _amqp, lambda p: p, id="amqp"),
    pytest.param(
        Prefixed("varint", offset=1),
        lambda p: b"\x30" + _varint(len(p)) + p,
        lambda p: p,
        id="mqtt",
    ),
    pytest.param(
        Prefixed("varint"), lambda p: _varint(len(p)) + p, lambda p: p, id="protobuf-delimited"
    ),
    pytest.param(
        Prefixed("ber", offset=1, include_header=True),
        lambda p: b"\x30" + _ber(len(p)) + p,
        lambda p: b"\x30" + _ber(len(p)) + p,
        id="ldap",
    ),
    pytest.param(
        Announced(rb"^\$(\d+)", trailer=b"\r\n"),
        lambda p: b"$%d\r\n" % len(p) + p + b"\r\n",
        lambda p: p,
        id="resp-bulk",
    ),
    pytest.param(
        Announced(rb"^set \S+ \d+ \d+ (\d+)", trailer=b"\r\n", include_header=True),
        lambda p: b"set k 0 0 %d\r\n" % len(p) + p + b"\r\n",
        lambda p: b"set k 0 0 %d\r\n" % len(p) + p + b"\r\n",
        id="memcached-set",
    ),
    pytest.param(
        Announced(rb"(?im)^content-length: *(\d+)", end=b"\r\n\r\n"),
        lambda p: b"POST / HTTP/1.1\r\nContent-Length: %d\r\n\r\n" % len(p) + p,
        lambda p: p,
        id="http-content-length",
    ),
    pytest.param(
        Framer(_http_length),
        lambda p: b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(p) + p,
        lambda p: b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(p) + p,
        id="http-framer",
    ),
]


@pytest.mark.parametrize(("spec", "encode", "delivered"), CASES)
@settings(max_examples=40, deadline=None)
@given(
    payloads=st.lists(st.sampled_from(PAYLOADS) | st.binary(max_size=300), max_size=5),
    cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=12),
)
def test_any_split_of_the_stream_gives_the_same_frames(
    spec: object, encode: object, delivered: object, payloads: list[bytes], cuts: list[int]
) -> None:
    stream = b"".join(encode(p) for p in payloads)  # type: ignore[operator]
    queue = ReadQueue()
    for tag in range(len(payloads)):
        assert queue.push(make_request(spec, tag)) == []
    done = _split_feed(queue, stream + b"tail", [c % (len(stream) + 1) for c in cuts])
    assert done == [Completed(delivered(p), i) for i, p in enumerate(payloads)]  # type: ignore[operator]
    assert queue.error is None
    assert queue.unread() == b"tail"


@pytest.mark.parametrize(
    ("spec", "data", "error"),
    [
        pytest.param(
            Prefixed("!I", offset=3, trailer=b"\xce"),
            b"\x01\x00\x00\x00\x00\x00\x01x\xcf",
            "frame ends in b'\\xcf', not the trailer b'\\xce'",
            id="wrong-trailer",
        ),
        pytest.param(
            Prefixed("!I", offset=1, adjust=-4), b"Q\x00\x00\x00\x02", "is negative", id="negative"
        ),
        pytest.param(Prefixed("varint"), b"\xff" * 10, "varint length longer than 10", id="varint"),
        pytest.param(Prefixed("ber"), b"\x80", "indefinite BER length", id="ber-indefinite"),
        pytest.param(
            Prefixed("<3", max_length=10),
            b"\xff\xff\xff",
            "length 16777215 over max_length 10",
            id="max",
        ),
        pytest.param(
            Framer(lambda b: len(b) + 1, name="greedy"),
            b"abc",
            "Framer(greedy) returned 4",
            id="framer-over",
        ),
        pytest.param(
            Framer(lambda b: int("x"), name="bad"),
            b"abc",
            "Framer(bad) refused the bytes",
            id="framer-raises",
        ),
        pytest.param(
            re.compile(rb"(?=END)"), b"END", "matched no bytes at the read's start", id="zero-width"
        ),
        pytest.param(
            Framer(lambda b: b[99], name="buggy"),
            b"abc",
            "Framer(buggy) raised IndexError",
            id="framer-bug",
        ),
        pytest.param(
            Announced(rb"^LEN (\S+)"),
            b"LEN ten\r\n",
            "count b'ten' is not a decimal",
            id="count-text",
        ),
    ],
)
def test_bytes_that_can_never_frame_fail_the_read_with_a_reason(
    spec: object, data: bytes, error: str
) -> None:
    queue = ReadQueue()
    queue.push(make_request(b"\n", 1))
    queue.push(make_request(spec, 2))
    assert queue.feed(b"first\n" + data) == [Completed(b"first\n", 1)]
    assert queue.error is not None
    assert error in queue.error
    assert queue.pending == 1  # the read stays, the owner closes the connection


def test_zero_width_pattern_completes_a_later_match() -> None:
    queue = ReadQueue()
    queue.push(make_request(re.compile(rb"(?=END)"), 1))
    assert queue.feed(b"abcEND") == [Completed(b"abc", 1)]


@pytest.mark.parametrize(
    "spec",
    [re.compile(rb"\b"), re.compile(rb"^"), re.compile(rb"a*"), re.compile(rb"$")],
    ids=["boundary", "caret", "star", "dollar"],
)
def test_patterns_that_match_no_bytes_are_refused_at_the_call(spec: re.Pattern[bytes]) -> None:
    with pytest.raises(ValueError, match="must not match the empty string"):
        make_request(spec, 1)


def test_read_zero_completes_at_once_with_no_bytes() -> None:
    queue = ReadQueue()
    assert queue.push(make_request(0, 5)) == [Completed(b"", 5)]


def test_read_zero_completes_in_its_turn() -> None:
    queue = ReadQueue()
    queue.push(make_request(b"\n", 1))
    assert queue.push(make_request(0, 2)) == []
    queue.push(make_request(3, 3))
    assert queue.feed(b"a\n") == [Completed(b"a\n", 1), Completed(b"", 2)]
    assert queue.feed(b"xyz") == [Completed(b"xyz", 3)]


@settings(max_examples=100, deadline=None)
@given(
    reads=st.lists(st.sampled_from([0, 1, 3, b"\n"]), max_size=12),
    cuts=st.lists(st.integers(min_value=0, max_value=60), max_size=8),
)
def test_zero_reads_keep_their_place_for_any_split(reads: list[object], cuts: list[int]) -> None:
    # A reference: each read takes its share of the stream, in order.
    stream = b"ab\ncde\nf\ng\n\nhijklmnop\n" * 2
    expected, pos = [], 0
    for tag, what in enumerate(reads):
        end = pos + what if isinstance(what, int) else stream.index(b"\n", pos) + 1
        expected.append(Completed(stream[pos:end], tag))
        pos = end
    queue = ReadQueue()
    done: list[Completed] = []
    for tag, what in enumerate(reads):
        done += queue.push(make_request(what, tag))
    done += _split_feed(queue, stream, [c % len(stream) for c in cuts])
    assert done == expected


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "message"),
    [
        pytest.param(
            ("!3",),
            {"offset": -1},
            ValueError,
            "Prefixed() offset must not be negative, not -1",
            id="offset",
        ),
        pytest.param(
            ("!I",),
            {"adjust": 1.0},
            TypeError,
            "Prefixed() adjust must be an int, not 1.0",
            id="adjust",
        ),
        pytest.param(
            ("!I",),
            {"trailer": "x"},
            TypeError,
            "Prefixed() trailer must be bytes, not 'x'",
            id="trailer",
        ),
        pytest.param(
            ("!I",),
            {"strip": 1, "include_header": True},
            ValueError,
            "contradict",
            id="strip-header",
        ),
        pytest.param(("3",), {}, ValueError, "use '!3' (big-endian)", id="three-no-order"),
    ],
)
def test_bad_length_field_arguments_are_refused_clearly(
    args: tuple[object, ...], kwargs: dict[str, object], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=re.escape(message)):
        Prefixed(*args, **kwargs)  # type: ignore[arg-type]


def test_frame_specs_describe_themselves() -> None:
    assert repr(Prefixed("!I", offset=1, adjust=-4)) == "Prefixed('!I', offset=1, adjust=-4)"
    assert repr(Prefixed("!I", offset=3, trailer=b"\xce")) == (
        "Prefixed('!I', offset=3, trailer=b'\\xce')"
    )
    assert repr(Announced(rb"^\$(\d+)", trailer=b"\r\n")) == (
        "Announced(b'^\\\\$(\\\\d+)', trailer=b'\\r\\n')"
    )
    assert make_request(Framer(_http_length)).describe() == "a Framer(_http_length) frame"
    with pytest.raises(ValueError, match="must have a group"):
        Announced(rb"\d+")
    with pytest.raises(TypeError, match="Framer\\(\\) fn must be callable, not 5"):
        Framer(5)  # type: ignore[arg-type]
