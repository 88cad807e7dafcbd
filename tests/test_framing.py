"""The sans-IO read queue: every framing rule, without sockets."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_hsocket._framing import Completed, ReadQueue, ReadRequest, make_request


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
        pytest.param(0, -1, ValueError, "read() length must be positive, not 0", id="zero"),
        pytest.param(-5, -1, ValueError, "read() length must be positive, not -5", id="negative"),
        pytest.param(b"", -1, ValueError, "read() delimiter must not be empty", id="empty-bytes"),
        pytest.param("", -1, ValueError, "read() delimiter must not be empty", id="empty-str"),
        pytest.param(None, -1, TypeError, "read() delimiter must be an int", id="none"),
        pytest.param(1.5, -1, TypeError, "read() delimiter must be an int", id="float"),
        pytest.param(True, -1, TypeError, "read() delimiter must be an int", id="bool"),
        pytest.param(b"\n", "7", TypeError, "read() tag must be an int, not '7'", id="str-tag"),
        pytest.param(b"\n", 1.0, TypeError, "read() tag must be an int, not 1.0", id="float-tag"),
        pytest.param(re.compile("x"), -1, TypeError, "bytes pattern", id="str-pattern"),
        pytest.param(re.compile(rb"x*"), -1, ValueError, "empty string", id="empty-match"),
    ],
)
def test_bad_read_arguments_are_refused_clearly(
    delimiter: object, tag: object, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=re.escape(message)):
        make_request(delimiter, tag)


# -- properties ---------------------------------------------------------------------------

_reads = st.lists(
    st.one_of(
        st.integers(min_value=1, max_value=40),
        st.sampled_from([b"\n", b"\r\n", b"ab", b"\x00\xff", b"aaa"]),
    ),
    min_size=1,
    max_size=12,
)


def _run(
    reads: list[object], chunks: list[bytes], push_first: bool
) -> tuple[list[Completed], bytes]:
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
    return done, queue.unread()


@st.composite
def _stream_and_split(draw: st.DrawFn) -> tuple[bytes, list[bytes]]:
    data = draw(st.binary(max_size=300) | st.text("ab\r\n\x00", max_size=300).map(str.encode))
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=30)))
    pieces = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)])]
    return data, pieces


@settings(max_examples=400, deadline=None)
@given(reads=_reads, stream=_stream_and_split(), push_first=st.booleans())
def test_any_split_of_the_stream_gives_the_same_reads(
    reads: list[object], stream: tuple[bytes, list[bytes]], push_first: bool
) -> None:
    data, pieces = stream
    whole = _run(reads, [data], push_first=True)
    assert _run(reads, pieces, push_first) == whole


@settings(max_examples=300, deadline=None)
@given(reads=_reads, stream=_stream_and_split())
def test_reads_partition_the_stream_without_loss(
    reads: list[object], stream: tuple[bytes, list[bytes]]
) -> None:
    data, pieces = stream
    done, unread = _run(reads, pieces, push_first=True)
    assert b"".join(c.data for c in done) + unread == data
    assert [c.tag for c in done] == list(range(len(done)))
    for completed, delimiter in zip(done, reads):
        if isinstance(delimiter, int):
            assert len(completed.data) == delimiter
        else:
            assert isinstance(delimiter, bytes)
            assert completed.data.endswith(delimiter)
            assert delimiter not in completed.data[:-1]


def test_available_read_takes_whatever_is_buffered() -> None:
    queue = ReadQueue()
    queue.push(ReadRequest(0, 1))
    assert queue.feed(b"") == []
    assert queue.feed(b"some") == [Completed(b"some", 1)]
    queue.feed(b"more")
    assert queue.push(ReadRequest(0, 2)) == [Completed(b"more", 2)]


def test_barrier_holds_later_reads_until_popped() -> None:
    from pytest_hsocket._framing import BARRIER

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
