"""The sans-IO read queue: every framing rule, without sockets."""

from __future__ import annotations

import re
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_hsocket._core.framing import (
    AVAILABLE,
    Completed,
    Prefixed,
    ReadQueue,
    ReadRequest,
    make_request,
)


def test_delimiter_read_completes_across_packets() -> None:
    queue = ReadQueue()
    queue.push(ReadRequest(b"\r\n", tag=7))
    assert queue.feed(b"+PO") == []
    assert queue.feed(b"NG\r\n+") == [Completed(b"+PONG\r\n", 7)]
    assert queue.unread() == b"+"


def test_length_read_delivers_exactly_n_bytes() -> None:
    queue = ReadQueue()
    queue.push(ReadRequest(5, tag=1))
    assert queue.feed(b"abcd") == []
    assert queue.feed(b"efgh") == [Completed(b"abcde", 1)]
    assert queue.buffered == 3


def test_reads_complete_in_order_from_one_chunk() -> None:
    queue = ReadQueue()
    for request in (ReadRequest(b"\n", 1), ReadRequest(3, 2), ReadRequest(b"\n", 3)):
        queue.push(request)
    assert queue.feed(b"a\nbcdef\nrest") == [
        Completed(b"a\n", 1),
        Completed(b"bcd", 2),
        Completed(b"ef\n", 3),
    ]
    assert queue.pending == 0
    assert queue.unread() == b"rest"


def test_buffered_data_serves_a_later_read() -> None:
    queue = ReadQueue()
    assert queue.feed(b"HELLO\r\nWORLD") == []
    assert queue.push(ReadRequest(b"\r\n", 4)) == [Completed(b"HELLO\r\n", 4)]
    assert queue.push(ReadRequest(5, 5)) == [Completed(b"WORLD", 5)]


def test_push_behind_a_waiting_read_does_not_complete_early() -> None:
    queue = ReadQueue()
    queue.push(ReadRequest(b"\n", 1))
    queue.feed(b"abc")
    assert queue.push(ReadRequest(1, 2)) == []
    assert queue.feed(b"\n") == [Completed(b"abc\n", 1)]
    assert queue.feed(b"x") == [Completed(b"x", 2)]


def test_delimiter_split_inside_itself_is_found() -> None:
    queue = ReadQueue()
    queue.push(ReadRequest(b"\r\n\r\n", 1))
    for piece in (b"HEAD\r", b"\n", b"\r", b"\n"):
        result = queue.feed(piece)
    assert result == [Completed(b"HEAD\r\n\r\n", 1)]


def test_regex_delimiter_reads_to_the_end_of_the_first_match() -> None:
    queue = ReadQueue()
    queue.push(make_request(re.compile(rb"\d+;"), 3))
    assert queue.feed(b"abc12") == []
    assert queue.feed(b"3;tail") == [Completed(b"abc123;", 3)]


def test_str_delimiter_is_utf8_encoded() -> None:
    request = make_request("é\n", 1)
    assert request.matcher == "é\n".encode()


def test_clear_returns_what_was_dropped() -> None:
    queue = ReadQueue()
    queue.push(ReadRequest(b"\n", 9))
    queue.feed(b"partial")
    lost, unread = queue.clear()
    assert [r.tag for r in lost] == [9]
    assert unread == b"partial"
    assert queue.pending == 0
    assert queue.buffered == 0


def test_delimiter_scan_is_linear_in_the_data() -> None:
    # 16 MiB arriving in 4 KiB chunks: a rescan from the start on each chunk would touch
    # ~32 GiB; counting find() calls' start offsets proves each byte is scanned about once.
    queue = ReadQueue()
    queue.push(ReadRequest(b"\r\n", 1))
    chunk = b"x" * 4096
    scanned = 0
    for _ in range(4096):
        before = queue._scan_from
        queue.feed(chunk)
        scanned += queue.buffered - before
    assert scanned < 2 * 16 * 1024 * 1024
    assert queue.feed(b"\r\n") == [Completed(b"x" * (16 * 1024 * 1024) + b"\r\n", 1)]


@pytest.mark.parametrize(
    ("delimiter", "tag", "error", "message"),
    [
        pytest.param(
            -5, -1, ValueError, "read() length must not be negative, not -5", id="negative"
        ),
        pytest.param(b"", -1, ValueError, "read() delimiter must not be empty", id="empty-bytes"),
        pytest.param("", -1, ValueError, "read() delimiter must not be empty", id="empty-str"),
        pytest.param(None, -1, TypeError, "read() delimiter must be an int", id="none"),
        pytest.param(1.5, -1, TypeError, "read() delimiter must be an int", id="float"),
        pytest.param(True, -1, TypeError, "read() delimiter must be an int", id="bool"),
        pytest.param(b"\n", "7", TypeError, "read() tag must be an int, not '7'", id="str-tag"),
        pytest.param(b"\n", 1.0, TypeError, "read() tag must be an int, not 1.0", id="float-tag"),
        pytest.param(re.compile("x"), -1, TypeError, "bytes pattern", id="str-pattern"),
        pytest.param(re.compile(rb"x*"), -1, ValueError, "empty string", id="empty-match"),
        pytest.param(re.compile(rb"\b"), -1, ValueError, "empty string", id="word-boundary"),
    ],
)
def test_bad_read_arguments_are_refused_clearly(
    delimiter: object, tag: object, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=re.escape(message)):
        make_request(delimiter, tag)


# -- length-prefixed reads ----------------------------------------------------------------

_FIVE = [
    # The header for a 5-byte payload, written out byte by byte (not with struct.pack, which
    # is what the code under test uses).
    pytest.param("!B", b"\x05", id="!B"),
    pytest.param("B", b"\x05", id="B"),
    pytest.param("!H", b"\x00\x05", id="!H"),
    pytest.param(">H", b"\x00\x05", id=">H"),
    pytest.param("<H", b"\x05\x00", id="<H"),
    pytest.param("!I", b"\x00\x00\x00\x05", id="!I"),
    pytest.param(">I", b"\x00\x00\x00\x05", id=">I"),
    pytest.param("<I", b"\x05\x00\x00\x00", id="<I"),
    pytest.param("!Q", b"\x00" * 7 + b"\x05", id="!Q"),
    pytest.param(">Q", b"\x00" * 7 + b"\x05", id=">Q"),
    pytest.param("<Q", b"\x05" + b"\x00" * 7, id="<Q"),
]


@pytest.mark.parametrize(("fmt", "header"), _FIVE)
def test_prefixed_read_delivers_the_payload(fmt: str, header: bytes) -> None:
    queue = ReadQueue()
    queue.push(make_request(Prefixed(fmt), 3))
    assert queue.feed(header + b"hello" + b"tail") == [Completed(b"hello", 3)]
    assert queue.unread() == b"tail"


@pytest.mark.parametrize(("fmt", "header"), _FIVE)
def test_prefixed_read_with_include_header_delivers_the_whole_frame(
    fmt: str, header: bytes
) -> None:
    queue = ReadQueue()
    queue.push(make_request(Prefixed(fmt, include_header=True), 3))
    assert queue.feed(header + b"hello" + b"tail") == [Completed(header + b"hello", 3)]
    assert queue.unread() == b"tail"


@pytest.mark.parametrize(
    ("fmt", "header"),
    [
        pytest.param("<H", b"\x00\x05", id="<H-reads-1280"),
        pytest.param("!H", b"\x05\x00", id="!H-reads-1280"),
        pytest.param("<I", b"\x00\x00\x00\x05", id="<I-reads-83886080"),
    ],
)
def test_prefixed_read_in_the_wrong_byte_order_waits_for_more(fmt: str, header: bytes) -> None:
    queue = ReadQueue()
    queue.push(make_request(Prefixed(fmt, max_length=2**32), 3))
    assert queue.feed(header + b"hello" + b"tail") == []
    assert queue.error is None
    assert queue.buffered == len(header) + 9


def test_prefixed_read_split_inside_the_header() -> None:
    queue = ReadQueue()
    queue.push(ReadRequest(Prefixed("!I"), 1))
    assert queue.feed(b"\x00") == []
    assert queue.feed(b"\x00\x00") == []
    assert queue.feed(b"\x03ab") == []
    assert queue.feed(b"c!") == [Completed(b"abc", 1)]
    assert queue.unread() == b"!"


def test_prefixed_read_split_inside_the_payload() -> None:
    queue = ReadQueue()
    queue.push(ReadRequest(Prefixed("<H", include_header=True), 1))
    payload = bytes(range(256)) * 4
    frame = b"\x00\x04" + payload
    results = [queue.feed(frame[i : i + 100]) for i in range(0, len(frame), 100)]
    assert results[:-1] == [[]] * (len(results) - 1)
    assert results[-1] == [Completed(frame, 1)]
    assert queue.buffered == 0


def test_prefixed_read_of_a_zero_length_payload() -> None:
    queue = ReadQueue()
    queue.push(ReadRequest(Prefixed("!H"), 1))
    queue.push(ReadRequest(Prefixed("!H", include_header=True), 2))
    assert queue.feed(b"\x00") == []
    assert queue.feed(b"\x00\x00\x00x") == [Completed(b"", 1), Completed(b"\x00\x00", 2)]
    assert queue.unread() == b"x"


def test_prefixed_reads_queued_behind_other_reads_complete_in_order() -> None:
    queue = ReadQueue()
    requests = [
        make_request(b"\n", 1),
        make_request(Prefixed("B"), 2),
        make_request(2, 3),
        make_request(Prefixed("<H", include_header=True), 4),
        make_request(re.compile(rb"\d;"), 5),
    ]
    for request in requests:
        assert queue.push(request) == []
    # The delimiter read's "\n" inside the prefixed payload must not end the regex read early.
    assert queue.feed(b"line\n\x03a\nbXY\x02\x00\n;7;") == [
        Completed(b"line\n", 1),
        Completed(b"a\nb", 2),
        Completed(b"XY", 3),
        Completed(b"\x02\x00\n;", 4),
        Completed(b"7;", 5),
    ]
    assert queue.pending == 0


def test_buffered_frames_serve_prefixed_reads_pushed_later() -> None:
    queue = ReadQueue()
    assert queue.feed(b"\x02hi\x00\x01!rest\n") == []
    assert queue.push(make_request(Prefixed("!B"), 1)) == [Completed(b"hi", 1)]
    assert queue.push(make_request(Prefixed("!H"), 2)) == [Completed(b"!", 2)]
    assert queue.push(make_request(b"\n", 3)) == [Completed(b"rest\n", 3)]


def test_delimiter_scan_memo_does_not_leak_into_a_prefixed_read() -> None:
    # The delimiter read scanned "abcdef" (memo at 5) before completing; the next delimiter
    # read must scan the bytes after the prefixed frame from their start.
    queue = ReadQueue()
    queue.push(ReadRequest(b"\r\n", 1))
    queue.push(ReadRequest(Prefixed("!B"), 2))
    queue.push(ReadRequest(b"\n", 3))
    assert queue.feed(b"abcdef") == []
    assert queue._scan_from > 0
    assert queue.feed(b"\r\n\x01\n\nz") == [
        Completed(b"abcdef\r\n", 1),
        Completed(b"\n", 2),
        Completed(b"\n", 3),
    ]
    assert queue.unread() == b"z"


def test_prefixed_length_at_max_length_completes() -> None:
    queue = ReadQueue()
    queue.push(ReadRequest(Prefixed("!H", max_length=3), 1))
    assert queue.feed(b"\x00\x03abc") == [Completed(b"abc", 1)]
    assert queue.error is None


def test_prefixed_length_over_max_length_sets_the_queue_error() -> None:
    queue = ReadQueue()
    queue.push(ReadRequest(b"\n", 1))
    queue.push(ReadRequest(Prefixed("!I"), 2))
    queue.push(ReadRequest(1, 3))
    assert queue.error is None
    # The read before it still completes; the bad frame is not delivered, not even in part.
    assert queue.feed(b"ok\n\xff\xff\xff") == [Completed(b"ok\n", 1)]
    assert queue.error is None
    assert queue.feed(b"\xffpayload") == []
    assert queue.error == ("length 4294967295 over max_length 67108864 in a Prefixed('!I') read")
    assert queue.feed(b"more" * 1000) == []
    assert queue.pending == 2
    assert queue.unread().startswith(b"\xff\xff\xff\xffpayload")


def test_prefixed_error_is_set_by_a_push_over_a_buffered_header() -> None:
    queue = ReadQueue()
    queue.feed(b"\x00\x09x")
    assert queue.push(ReadRequest(Prefixed("<H", max_length=8), 1)) == []
    assert queue.error == "length 2304 over max_length 8 in a Prefixed('<H', max_length=8) read"


def test_prefixed_error_is_reset_with_the_read_or_the_bytes() -> None:
    queue = ReadQueue()
    bad = ReadRequest(Prefixed("!B", max_length=1), 1)
    later = ReadRequest(1, 2)
    queue.push(bad)
    queue.push(later)
    queue.feed(b"\x02ab")
    assert queue.error is not None
    assert queue.cancel(later)
    assert queue.error is not None  # not the read at fault
    assert queue.cancel(bad)
    assert queue.error is None
    queue.push(bad)
    assert queue.feed(b"") == []
    assert queue.error is not None
    queue.clear()
    assert queue.error is None


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "message"),
    [
        pytest.param(
            ("x",), {}, ValueError, "Prefixed() fmt must be one unsigned integer", id="not-int"
        ),
        pytest.param(
            ("!II",), {}, ValueError, "Prefixed() fmt must be one unsigned integer", id="two"
        ),
        pytest.param(("=I",), {}, ValueError, "must be one unsigned integer", id="native-order"),
        pytest.param(("!L",), {}, ValueError, "must be one unsigned integer", id="long"),
        pytest.param(("",), {}, ValueError, "must be one unsigned integer", id="empty"),
        pytest.param(
            ("!i",), {}, ValueError, "Prefixed() fmt must be unsigned, not '!i'; use '!I'", id="i"
        ),
        pytest.param(("<q",), {}, ValueError, "unsigned, not '<q'; use '<Q'", id="q"),
        pytest.param(("b",), {}, ValueError, "unsigned, not 'b'; use 'B'", id="b"),
        pytest.param(
            ("H",), {}, ValueError, "Prefixed() fmt must give the byte order, not 'H'", id="H"
        ),
        pytest.param(
            (5,), {}, TypeError, "Prefixed() fmt must be a struct format str", id="int-fmt"
        ),
        pytest.param(
            (b"!I",), {}, TypeError, "Prefixed() fmt must be a struct format str", id="bytes-fmt"
        ),
        pytest.param(
            ("!I",),
            {"max_length": 0},
            ValueError,
            "Prefixed() max_length must be positive, not 0",
            id="zero-max",
        ),
        pytest.param(
            ("!I",),
            {"max_length": -1},
            ValueError,
            "Prefixed() max_length must be positive, not -1",
            id="negative-max",
        ),
        pytest.param(
            ("!I",),
            {"max_length": 1.5},
            TypeError,
            "Prefixed() max_length must be an int, not 1.5",
            id="float-max",
        ),
        pytest.param(
            ("!I",),
            {"include_header": 1},
            TypeError,
            "Prefixed() include_header must be a bool, not 1",
            id="int-include-header",
        ),
    ],
)
def test_bad_prefixed_arguments_are_refused_clearly(
    args: tuple[object, ...], kwargs: dict[str, object], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=re.escape(message)):
        Prefixed(*args, **kwargs)  # type: ignore[arg-type]


def test_bad_prefixed_messages_are_one_line() -> None:
    for fmt in ("x", "!i", "H", 5):
        with pytest.raises((TypeError, ValueError)) as info:
            Prefixed(fmt)  # type: ignore[arg-type]
        assert "\n" not in str(info.value)


def test_prefixed_is_a_read_kind_and_describes_itself() -> None:
    request = make_request(Prefixed("!I"), 4)
    assert request.matcher == Prefixed("!I")
    assert request.matcher != Prefixed("<I")
    assert request.describe() == "a Prefixed('!I') frame"
    assert repr(request) == "ReadRequest(a Prefixed('!I') frame, tag=4)"
    described = make_request(Prefixed("<Q", include_header=True, max_length=10)).describe()
    assert described == "a Prefixed('<Q', include_header=True, max_length=10) frame"
    assert Prefixed(">H").header_size == 2
    assert {Prefixed("!B"), Prefixed("!B")} == {Prefixed("!B")}


# -- properties ---------------------------------------------------------------------------

_PREFIXED = [
    Prefixed("!B"),
    Prefixed("B", max_length=8),
    Prefixed("<H"),
    Prefixed("!H", include_header=True),
    Prefixed(">I", max_length=30),
    Prefixed("<Q", include_header=True, max_length=300),
]

_reads = st.lists(
    st.one_of(
        st.integers(min_value=1, max_value=40),
        st.sampled_from([b"\n", b"\r\n", b"ab", b"\x00\xff", b"aaa"]),
        st.sampled_from(_PREFIXED),
    ),
    min_size=1,
    max_size=12,
)


def _run(
    reads: list[object], chunks: list[bytes], push_first: bool
) -> tuple[list[Completed], bytes, str | None]:
    queue = ReadQueue()
    done: list[Completed] = []
    if push_first:
        for tag, delimiter in enumerate(reads):
            done += queue.push(make_request(delimiter, tag))
        for chunk in chunks:
            done += queue.feed(chunk)
    else:
        for chunk in chunks:
            done += queue.feed(chunk)
        for tag, delimiter in enumerate(reads):
            done += queue.push(make_request(delimiter, tag))
    return done, queue.unread(), queue.error


def _segment_for(draw: st.DrawFn, read: object) -> bytes:
    # Bytes made to complete this read (a frame may be over its max_length), or noise.
    if draw(st.booleans()):
        return draw(st.binary(max_size=20))
    if isinstance(read, int):
        return draw(st.binary(min_size=read, max_size=read))
    if isinstance(read, bytes):
        return draw(st.binary(max_size=20)) + read
    assert isinstance(read, Prefixed)
    sizes = st.integers(0, 40)
    if read.max_length <= 300:
        sizes |= st.sampled_from([read.max_length, read.max_length + 1])  # the limit's edge
    size = draw(sizes)
    return struct.pack(read.fmt, size) + draw(st.binary(min_size=size, max_size=size))


@st.composite
def _reads_and_stream(draw: st.DrawFn) -> tuple[list[object], bytes, list[bytes]]:
    reads = draw(_reads)
    if draw(st.booleans()):
        data = draw(st.binary(max_size=300) | st.text("ab\r\n\x00", max_size=300).map(str.encode))
    else:
        data = b"".join(_segment_for(draw, read) for read in reads)
        data += draw(st.binary(max_size=10))
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=30)))
    pieces = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)])]
    return reads, data, pieces


@settings(max_examples=400, deadline=None)
@given(case=_reads_and_stream(), push_first=st.booleans())
def test_any_split_of_the_stream_gives_the_same_reads(
    case: tuple[list[object], bytes, list[bytes]], push_first: bool
) -> None:
    reads, data, pieces = case
    whole = _run(reads, [data], push_first=True)
    assert _run(reads, pieces, push_first) == whole


@settings(max_examples=300, deadline=None)
@given(case=_reads_and_stream())
def test_reads_partition_the_stream_without_loss(
    case: tuple[list[object], bytes, list[bytes]],
) -> None:
    reads, data, pieces = case
    done, unread, error = _run(reads, pieces, push_first=True)
    consumed = b""
    for completed, read in zip(done, reads):
        if isinstance(read, Prefixed) and not read.include_header:
            consumed += struct.pack(read.fmt, len(completed.data))
        consumed += completed.data
    assert consumed + unread == data
    assert [c.tag for c in done] == list(range(len(done)))
    for completed, read in zip(done, reads):
        if isinstance(read, int):
            assert len(completed.data) == read
        elif isinstance(read, bytes):
            assert completed.data.endswith(read)
            assert read not in completed.data[:-1]
        else:
            assert isinstance(read, Prefixed)
            payload = completed.data
            if read.include_header:
                size = read.header_size
                (length,) = struct.unpack(read.fmt, payload[:size])
                payload = payload[size:]
                assert length == len(payload)
            assert len(payload) <= read.max_length
    # The first read left waiting could not complete; if it is a frame over its limit, and
    # only then, the queue says so.
    if len(done) < len(reads):
        head = reads[len(done)]
        over = None
        if isinstance(head, Prefixed) and len(unread) >= head.header_size:
            (length,) = struct.unpack(head.fmt, unread[: head.header_size])
            if length > head.max_length:
                over = f"length {length} over max_length {head.max_length} in a {head!r} read"
            else:
                assert len(unread) < head.header_size + length
        assert error == over
    else:
        assert error is None


def test_available_read_takes_whatever_is_buffered() -> None:
    queue = ReadQueue()
    queue.push(ReadRequest(AVAILABLE, 1))
    assert queue.feed(b"") == []
    assert queue.feed(b"some") == [Completed(b"some", 1)]
    queue.feed(b"more")
    assert queue.push(ReadRequest(AVAILABLE, 2)) == [Completed(b"more", 2)]


def test_barrier_holds_later_reads_until_popped() -> None:
    from pytest_hsocket._core.framing import BARRIER

    queue = ReadQueue()
    queue.push(ReadRequest(b"\n", 1))
    queue.push(ReadRequest(BARRIER))
    queue.push(ReadRequest(3, 2))
    assert queue.feed(b"STARTTLS\nabc") == [Completed(b"STARTTLS\n", 1)]
    assert queue.at_barrier
    assert queue.take_unread() == b"abc"
    queue.feed(b"xyz")
    assert queue.pop_barrier() == [Completed(b"xyz", 2)]
    assert not queue.at_barrier


# -- take: the fast reads' completion -------------------------------------------------------


def test_take_completes_a_delimiter_read_from_the_buffer() -> None:
    queue = ReadQueue()
    queue.feed(b"one\ntwo\nthr")
    delimiter = b"\n"
    assert queue.take(delimiter) == b"one\n"
    assert queue.buffered == 7
    assert queue.take(delimiter) == b"two\n"
    assert queue.take(delimiter) is None  # "thr" has no delimiter yet
    assert queue.unread() == b"thr"
    queue.feed(b"ee\n")
    assert queue.take(delimiter) == b"three\n"
    assert queue.buffered == 0


def test_take_refuses_while_a_read_is_queued() -> None:
    queue = ReadQueue()
    assert queue.push(make_request(10, 1)) == []
    queue.feed(b"abc\n")
    assert queue.take(b"\n") is None
    assert queue.unread() == b"abc\n"


def test_take_then_push_continues_after_what_was_taken() -> None:
    queue = ReadQueue()
    queue.feed(b"a\r\nb\r\n12345rest")
    assert queue.take(b"\r\n") == b"a\r\n"
    assert queue.push(make_request(3, 7)) == [Completed(b"b\r\n", 7)]
    assert queue.push(make_request(5, 8)) == [Completed(b"12345", 8)]
    assert queue.clear() == ([], b"rest")


def test_take_with_line_breaks_splitlines_would_misread() -> None:
    queue = ReadQueue()
    queue.feed(b"a\rb\nc\r\nd\n")
    assert [queue.take(b"\n") for _ in range(3)] == [b"a\rb\n", b"c\r\n", b"d\n"]
    queue.feed(b"x\ny\r\nz\r\n")
    assert [queue.take(b"\r\n") for _ in range(2)] == [b"x\ny\r\n", b"z\r\n"]


def test_take_finds_a_line_across_its_snapshot() -> None:
    queue = ReadQueue()
    queue.feed(b"x" * 5000 + b"\n" + b"short\n")
    assert queue.take(b"\n") is None  # past the first snapshot: a push finds it
    assert queue.push(make_request(b"\n", 1)) == [Completed(b"x" * 5000 + b"\n", 1)]
    assert queue.take(b"\n") == b"short\n"


def _callback_style(
    reads: list[object], chunks: list[bytes], use_take: bool, peek: list[bool]
) -> tuple[list[Completed], bytes, str | None]:
    # One read outstanding at a time, the next asked for once it completes, as a callback
    # that re-queues does; with use_take, a delimiter read is taken when it can be.
    queue = ReadQueue()
    done: list[Completed] = []
    peeks = iter(peek)

    def ask(index: int) -> int:
        while index < len(reads):
            read = reads[index]
            if next(peeks, False):
                assert queue.buffered == len(queue.unread())  # settles a take in progress
            if use_take and isinstance(read, bytes):
                data = queue.take(read)
                if data is not None:
                    done.append(Completed(data, index))
                    index += 1
                    continue
            completed = queue.push(make_request(read, index))
            if not completed:
                return index
            done.extend(completed)
            index += 1
        return index

    waiting = ask(0)
    for chunk in chunks:
        completed = queue.feed(chunk)
        if completed:
            done.extend(completed)
            waiting = ask(waiting + 1)
    return done, queue.unread(), queue.error


@settings(max_examples=400, deadline=None)
@given(case=_reads_and_stream(), peek=st.lists(st.booleans(), max_size=20))
def test_taking_gives_the_same_reads_as_pushing(
    case: tuple[list[object], bytes, list[bytes]], peek: list[bool]
) -> None:
    reads, _, pieces = case
    reads = reads * 3  # a re-queued delimiter repeats: the case take is for
    pushed = _callback_style(reads, pieces, use_take=False, peek=[])
    assert _callback_style(reads, pieces, use_take=True, peek=peek) == pushed


def test_a_chunk_that_is_exactly_the_head_read_completes_as_is() -> None:
    # The request/response case takes a path of its own (no buffer): it must agree with the
    # buffered one whatever the chunk holds.
    queue = ReadQueue()
    queue.push(ReadRequest(b"\r\n", 1))
    queue.push(ReadRequest(b"\r\n", 2))
    assert queue.feed(memoryview(b"+OK\r\n")) == [Completed(b"+OK\r\n", 1)]
    assert queue.unread() == b""
    assert queue.feed(b"b\r\nc") == [Completed(b"b\r\n", 2)]
    assert queue.unread() == b"c"
    queue = ReadQueue()
    queue.push(ReadRequest(b"\r\n", 1))
    queue.push(ReadRequest(b"\r\n", 2))
    assert queue.feed(b"a\r\nb\r\n") == [Completed(b"a\r\n", 1), Completed(b"b\r\n", 2)]
    queue.push(ReadRequest(b"\r\n", 3))
    assert queue.feed(b"\r") == []
    assert queue.feed(b"\n") == [Completed(b"\r\n", 3)]
    queue.push(ReadRequest(b"END", 4))
    assert queue.feed(b"xEN") == []
    assert queue.feed(b"D") == [Completed(b"xEND", 4)]
    assert queue.unread() == b""
