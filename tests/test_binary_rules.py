"""Mock-server rules take every read spec, with an optional check of the framed bytes; shared
and named rules; bounded labels; a linear matcher; fail-fast past an unordered regex."""

from __future__ import annotations

import re
import struct
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_hsocket import Announced, Framer, Prefixed
from pytest_hsocket._core.script import Conversation, Script, until


def _pg(kind: bytes, payload: bytes) -> bytes:
    return kind + struct.pack("!I", len(payload) + 4) + payload


PG = Prefixed("!I", offset=1, adjust=-4, include_header=True)


def _sent(actions: list[object]) -> bytes:
    return b"".join(a.data for a in actions if a.kind == "send")  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("spec", "check", "message", "other"),
    [
        pytest.param(
            PG,
            re.compile(rb"^Q.*SELECT 1", re.S),
            _pg(b"Q", b"SELECT 1\x00"),
            _pg(b"Q", b"SELECT 2\x00"),
            id="prefixed-regex",
        ),
        pytest.param(
            Prefixed("!I", offset=1, adjust=-4),
            b"SELECT 1\x00",
            _pg(b"Q", b"SELECT 1\x00"),
            _pg(b"Q", b"SELECT 2\x00"),
            id="prefixed-exact",
        ),
        pytest.param(
            Announced(rb"^\$(\d+)", trailer=b"\r\n"),
            lambda d: d == b"ping",
            b"$4\r\nping\r\n",
            b"$4\r\npong\r\n",
            id="announced-predicate",
        ),
        pytest.param(
            Framer(lambda b: 3 if len(b) >= 3 else None, name="three"),
            b"abc",
            b"abc",
            b"abd",
            id="framer",
        ),
        pytest.param(5, "HELLO", b"HELLO", b"HELLx", id="count"),
        pytest.param(until(b"\n"), re.compile(rb"^GET "), b"GET /\n", b"PUT /\n", id="until"),
    ],
)
@settings(max_examples=30, deadline=None)
@given(cut=st.integers(min_value=0, max_value=40))
def test_rules_frame_any_read_spec_and_check_the_framed_bytes(
    spec: object, check: object, message: bytes, other: bytes, cut: int
) -> None:
    script = Script()
    script.expect(spec, check).respond(lambda data: b"got " + data)  # type: ignore[arg-type]
    conv = Conversation(script)
    cut %= len(message) + 1
    out = _sent(conv.feed(message[:cut])) + _sent(conv.feed(message[cut:]))
    assert out.startswith(b"got ")
    assert conv.unmet() == []
    assert conv.leftover() == b""
    assert not conv.unexpected
    # The negative twin: the same framing, bytes the check refuses, fail fast.
    refused = Conversation(script)
    assert _sent(refused.feed(other)) == b""
    assert refused.derailed
    assert refused.unexpected


def test_a_shared_rule_counts_across_connections() -> None:
    script = Script()
    script.expect(b"PING\r\n", shared=True).respond(b"+PONG\r\n")
    script.expect(until(b"\r\n"), times=None, ordered=False).respond(b"+OK\r\n")
    first, second = Conversation(script), Conversation(script)
    assert _sent(first.feed(b"SET a 1\r\n")) == b"+OK\r\n"
    assert _sent(second.feed(b"PING\r\n")) == b"+PONG\r\n"
    assert first.unmet() == []
    assert second.unmet() == []
    assert script.rules[0].total == 1
    # Met once in all: a second PING on the first connection is just another line.
    assert _sent(first.feed(b"PING\r\n")) == b"+OK\r\n"


def test_labels_are_bounded_and_named() -> None:
    script = Script()
    rule = script.expect(re.compile(b"A" * 70_000 + rb"\d"), name="huge login")
    text = repr(rule)
    assert text.startswith("'huge login' expect(re.compile(b'AAAA")
    assert len(text) < 200
    assert repr(script.expect(re.compile(rb"END\d"))) == "expect(re.compile(b'END\\\\d'))"


def test_an_unordered_regex_rule_does_not_stop_fail_fast() -> None:
    script = Script()
    script.expect(b"HELLO\r\n")
    script.expect(re.compile(rb"NOOP \d+\r\n"), ordered=False, times=None)
    conv = Conversation(script)
    conv.feed(b"QUIT\r\n")
    assert conv.derailed  # the bytes disagree with the regex's literal start: no waiting


def test_a_zero_width_pattern_is_refused_by_expect() -> None:
    with pytest.raises(ValueError, match="must not match the empty string"):
        Script().expect(re.compile(rb"\b"))


@pytest.mark.parametrize(
    "spec",
    [
        pytest.param(1 << 24, id="count"),
        pytest.param(until(b"\r\n"), id="until"),
        pytest.param(Prefixed("!I"), id="prefixed"),
        pytest.param(b"x" * (1 << 24), id="exact"),
    ],
)
def test_the_rule_matcher_is_linear(spec: object) -> None:
    # 16 MiB in 4 KiB chunks (4096 feeds): a rescan or a buffer copy per chunk would look at
    # ~32 GiB (seconds); each byte looked at a bounded number of times is ~16 MiB (tens of
    # ms). The bound of 2 s of CPU leaves a busy machine wide headroom either way.
    body = b"x" * (1 << 24)
    message = {Prefixed("!I"): struct.pack("!I", len(body)) + body}.get(spec, body)  # type: ignore[call-overload]
    if isinstance(spec, type(until(b"\n"))):
        message = body + b"\r\n"
    script = Script()
    script.expect(spec).respond(b"ok")  # type: ignore[arg-type]
    conv = Conversation(script)
    started = time.process_time()
    out = b""
    for start in range(0, len(message), 4096):
        out += _sent(conv.feed(message[start : start + 4096]))
    assert out == b"ok"
    assert time.process_time() - started < 2.0


SPECS = [
    pytest.param(b"HELLO\r\n", id="exact"),
    pytest.param(7, id="count"),
    pytest.param(until(b"\r\n"), id="until"),
    pytest.param(Prefixed("!H", include_header=True), id="prefixed"),
    pytest.param(re.compile(rb"HE\w+\r\n"), id="regex"),
    pytest.param(Announced(rb"^\$(\d+)", trailer=b"\r\n", include_header=True), id="announced"),
]


@pytest.mark.parametrize("spec", SPECS)
@settings(max_examples=60, deadline=None)
@given(
    stream=st.lists(
        st.sampled_from(
            [b"HELLO\r\n", b"\x00\x03abc", b"$2\r\nhi\r\n", b"HE", b"LLO", b"\r\n", b"x", b"\xce"]
        ),
        max_size=8,
    ).map(b"".join),
    cuts=st.lists(st.integers(min_value=0, max_value=80), max_size=10),
)
def test_a_rule_matches_the_same_for_any_split(
    spec: object, stream: bytes, cuts: list[int]
) -> None:
    # The matcher resumes each scan where the last one stopped: fed in pieces, a conversation
    # must do exactly what it does with the whole stream at once.
    def play(pieces: list[bytes]) -> tuple[list[tuple[str, bytes]], bool, bytes, list[int]]:
        script = Script()
        script.expect(spec, times=None).respond(lambda data: b"<" + data + b">")  # type: ignore[arg-type]
        conv = Conversation(script)
        actions = [a for piece in pieces for a in conv.feed(piece)]
        return [(a.kind, a.data) for a in actions], conv.derailed, conv.leftover(), conv.counts

    edges = sorted({c % (len(stream) + 1) for c in cuts})
    pieces = [stream[a:b] for a, b in zip([0, *edges], [*edges, len(stream)])]
    assert play(pieces) == play([stream])


def test_an_unexpected_note_names_a_bounded_number_of_rules() -> None:
    script = Script()
    for number in range(50):
        script.expect(b"CMD%d\r\n" % number, ordered=False, times=None)
    conv = Conversation(script)
    conv.feed(b"NOPE\r\n")
    (note,) = conv.unexpected
    assert note.endswith("and 45 more rules)")
    assert len(note) < 400
