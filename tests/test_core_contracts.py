"""The core's documented contracts between modules, each pinned.

- ``Prefixed``'s plain read-only fields (``simple``, ``header_size``, ``unpack_from``,
  ``max_length``, ``data_start``) are what ``ReadQueue`` measures a simple frame with, inline,
  on the read hot path: they must say what :meth:`Prefixed.measure` says.
- ``literal_prefix`` reads a pattern's literal start from its source (no private parser of
  the ``re`` module): every match starts with it.
"""

from __future__ import annotations

import re
import struct
from typing import Callable

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from pytest_hsocket._core.frames import FrameError
from pytest_hsocket._core.framing import Announced, Framer, Prefixed, ReadQueue, make_request
from pytest_hsocket._core.rule_specs import literal_prefix
from pytest_hsocket._core.rules import Script

SIMPLE_FORMATS = ["!B", "B", "!H", "<H", "!I", "<I", "!Q", "<Q"]


@given(
    fmt=st.sampled_from(SIMPLE_FORMATS),
    include_header=st.booleans(),
    max_length=st.integers(1, 300),
    payload=st.binary(max_size=300),
    lead=st.binary(max_size=8),
    cut=st.integers(0, 400),
)
def test_a_simple_frames_fields_say_what_measure_says(
    fmt: str, include_header: bool, max_length: int, payload: bytes, lead: bytes, cut: int
) -> None:
    spec = Prefixed(fmt, include_header=include_header, max_length=max_length)
    assert spec.simple
    frame = struct.pack(fmt, min(len(payload), 255 if fmt.endswith("B") else len(payload)))
    buf = bytearray(lead + (frame + payload)[:cut])
    start, size = len(lead), len(buf)
    # The inline measure, as ReadQueue._drain does it from the documented fields.
    inline: object
    if size - start < spec.header_size:
        inline = None
    else:
        length = spec.unpack_from(buf, start)[0]
        end = start + spec.header_size + length
        if length > spec.max_length:
            inline = FrameError
        elif size < end:
            inline = None
        else:
            inline = (start + spec.data_start, end, end)
    try:
        measured: object = spec.measure(buf, start, size)
    except FrameError:
        measured = FrameError
    assert inline == measured


@pytest.mark.parametrize("fmt", ["varint", "ber", "!3"])
def test_a_frame_that_is_not_simple_says_so(fmt: str) -> None:
    assert not Prefixed(fmt).simple
    assert not Prefixed("!I", trailer=b"\n").simple


def test_the_queue_reports_an_announced_length_over_max_length_as_measure_does() -> None:
    spec = Prefixed("!H", max_length=3)
    queue = ReadQueue()
    queue.push(make_request(spec))
    assert queue.feed(b"\x00\x04abcd") == []
    with pytest.raises(FrameError) as caught:
        spec.measure(b"\x00\x04abcd", 0, 6)
    assert queue.error == str(caught.value)


# -- literal_prefix ------------------------------------------------------------------------

PIECES = [
    b"a", b"b", b"G", b" ", b"#", b"\\.", b"\\$", b"\\\\", b"\\n", b"\\r", b"\\x41", b"\\t",
    b".", b"\\d", b"\\w", b"[ab]", b"[|]", b"[]|]", b"(a|b)", b"(?:ab)", b"|", b"*", b"+",
    b"?", b"{1,2}", b"{", b"^", b"$", b"(?#[|)", b"\\A", b"\xe9",
]  # fmt: skip


def _patterns() -> st.SearchStrategy[re.Pattern[bytes]]:
    def compiled(pieces: list[bytes]) -> re.Pattern[bytes] | None:
        try:
            return re.compile(b"".join(pieces))
        except re.error:
            return None

    flags = st.sampled_from([b"", b"(?s)", b"(?m)", b"(?i)", b"(?x)"])
    return st.builds(
        lambda f, p: compiled([f, *p]), flags, st.lists(st.sampled_from(PIECES), max_size=6)
    ).filter(lambda p: p is not None)  # type: ignore[return-value]


@settings(max_examples=400)
@given(pattern=_patterns(), data=st.data())
def test_every_match_starts_with_the_literal_prefix(
    pattern: re.Pattern[bytes], data: st.DataObject
) -> None:
    prefix = literal_prefix(pattern)
    try:
        matching = st.from_regex(pattern, fullmatch=True)
        text = data.draw(matching)
    except Exception:  # a pattern hypothesis cannot generate for (or none can match)
        assume(False)
        return
    assert text.startswith(prefix), (pattern, prefix, text)


@pytest.mark.parametrize(
    ("pattern", "prefix"),
    [
        (rb"GET /(\w+)", b"GET /"),
        (rb"\$\d+\r\n", b"$"),
        (rb"\r\n\x41\.", b"\r\nA."),
        (rb"ab?", b"a"),
        (rb"ab{2}", b"a"),
        (rb"GET /(a|b)", b"GET /"),
        (rb"a|b", b""),
        (rb"[|]a|b", b""),
        (rb"ab(?#|)c", b"ab"),
        (rb"(?i)abc", b""),
        (rb"(?x)a b", b""),
    ],
)
def test_literal_prefix_reads_the_source(pattern: bytes, prefix: bytes) -> None:
    assert literal_prefix(re.compile(pattern)) == prefix


# -- the core's flags, names and payloads go through the checks module ---------------------


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda v: Prefixed("!I", include_header=v), "Prefixed() include_header must be a bool"),
        (lambda v: Announced(rb"(\d+)", include_header=v), "Announced() include_header must be"),
        (lambda v: Framer(len, name=v), "Framer() name must be a str"),
        (lambda v: Script().expect(b"x", shared=v), "expect() shared must be a bool"),
        (lambda v: Script().expect(b"x", name=v), "expect() name must be a str"),
        (lambda v: Script().expect(b"x").respond(v), "respond() payload must be bytes, str or"),
        (lambda v: Script().expect(b"x").dribble(v), "dribble() payload must be bytes, str or"),
    ],
)
@pytest.mark.parametrize("value", [1, 0.5, [b"x"]])
def test_core_flags_names_and_payloads_refuse_other_types(
    call: Callable[[object], object], message: str, value: object
) -> None:
    with pytest.raises(TypeError) as caught:
        call(value)
    assert str(caught.value).startswith(message)
    assert str(caught.value).endswith(repr(value))
