"""Sans-IO server scripts: matching rules against bytes, without sockets."""

from __future__ import annotations

import re
from typing import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_hsocket._core.script import Action, Conversation, Script, until


def _sent(actions: list[Action]) -> list[bytes]:
    return [a.data for a in actions if a.kind == "send"]


def test_exact_rule_responds_once_matched_across_chunks() -> None:
    script = Script()
    script.expect(b"PING\r\n").respond(b"+PONG\r\n")
    conv = Conversation(script)
    assert conv.feed(b"PI") == []
    assert _sent(conv.feed(b"NG\r\n")) == [b"+PONG\r\n"]
    assert conv.unmet() == []
    assert conv.unexpected == []


def test_rules_are_ordered_by_default() -> None:
    script = Script()
    script.expect(b"A\n").respond(b"1")
    script.expect(b"B\n").respond(b"2")
    conv = Conversation(script)
    assert _sent(conv.feed(b"B\n")) == []
    assert conv.unexpected == ["b'B\\n' (expected expect(b'A\\n'))"]
    assert conv.unmet() == [
        "expect(b'A\\n') matched 0 of 1 times",
        "expect(b'B\\n') matched 0 of 1 times",
    ]


def test_unordered_and_repeating_rules() -> None:
    script = Script()
    script.expect(b"PING\n", times=None, ordered=False).respond(b"PONG\n")
    script.expect(b"HELLO\n").respond(b"HI\n")
    script.expect(b"BYE\n").respond(b"CIAO\n")
    conv = Conversation(script)
    assert _sent(conv.feed(b"PING\nHELLO\nPING\nPING\nBYE\n")) == [
        b"PONG\n", b"HI\n", b"PONG\n", b"PONG\n", b"CIAO\n"
    ]  # fmt: skip
    assert conv.unmet() == []


def test_times_counts_and_then_moves_on() -> None:
    script = Script()
    script.expect(b"x", times=3).respond(b"y")
    script.expect(b"z").respond(b"done")
    conv = Conversation(script)
    assert _sent(conv.feed(b"xx")) == [b"y", b"y"]
    assert conv.unmet() == [
        "expect(b'x', times=3) matched 2 of 3 times",
        "expect(b'z') matched 0 of 1 times",
    ]
    assert _sent(conv.feed(b"xz")) == [b"y", b"done"]
    assert conv.unmet() == []


def test_delimiter_length_and_regex_matches() -> None:
    script = Script()
    script.expect(until(b"\r\n")).respond(lambda data: data[::-1])
    script.expect(4).respond("four")
    script.expect(re.compile(rb"\d+;")).respond(b"number")
    conv = Conversation(script)
    assert _sent(conv.feed(b"abc\r\n1234")) == [b"\n\rcba", b"four"]
    assert _sent(conv.feed(b"42;")) == [b"number"]


def test_close_and_reset_end_the_conversation() -> None:
    script = Script()
    script.expect(b"QUIT\n").respond(b"bye\n").close().respond(b"never")
    conv = Conversation(script)
    actions = conv.feed(b"QUIT\nmore")
    assert [a.kind for a in actions] == ["matched", "send", "close"]
    assert conv.ended
    assert conv.feed(b"ignored") == []


def test_respond_function_errors_are_kept() -> None:
    script = Script()
    script.expect(b"x").respond(lambda data: 1 / 0)  # type: ignore[arg-type,return-value]
    conv = Conversation(script)
    assert _sent(conv.feed(b"x")) == []
    assert isinstance(conv.errors[0], ZeroDivisionError)


def test_greetings_start_the_conversation() -> None:
    script = Script().greet(b"220 hello\r\n").greet("ready\r\n")
    assert _sent(Conversation(script).start()) == [b"220 hello\r\n", b"ready\r\n"]


def test_data_after_the_script_is_unexpected() -> None:
    script = Script()
    script.expect(b"A")
    conv = Conversation(script)
    conv.feed(b"AB")
    assert conv.unexpected == ["b'B' (expected nothing more)"]


@pytest.mark.parametrize(
    ("match", "error"),
    [
        pytest.param(b"", ValueError, id="empty"),
        pytest.param(0, ValueError, id="zero"),
        pytest.param(None, TypeError, id="none"),
        pytest.param(re.compile("x"), TypeError, id="str-pattern"),
        pytest.param(True, TypeError, id="bool"),
    ],
)
def test_bad_matches_are_refused(match: object, error: type[Exception]) -> None:
    with pytest.raises(error, match="expect"):
        Script().expect(match)  # type: ignore[arg-type]


def test_bad_steps_are_refused() -> None:
    rule = Script().expect(b"x")
    with pytest.raises(TypeError, match="respond\\(\\) payload must be bytes, str or callable"):
        rule.respond(5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="delay\\(\\) seconds must not be negative"):
        rule.delay(-1)
    with pytest.raises(ValueError, match="expect\\(\\) times must be a positive int or None"):
        Script().expect(b"x", times=0)


@settings(max_examples=300, deadline=None)
@given(
    messages=st.lists(st.sampled_from([b"PING\r\n", b"ECHO hi\r\n", b"SET k v\r\n"]), max_size=8),
    cuts=st.lists(st.integers(0, 200), max_size=10),
)
def test_any_split_gives_the_same_responses(messages: list[bytes], cuts: list[int]) -> None:
    script = Script()
    script.expect(b"PING\r\n", times=None, ordered=False).respond(b"+PONG\r\n")
    script.expect(re.compile(rb"ECHO ([^\r]*)\r\n"), times=None, ordered=False).respond(
        lambda data: data[5:]
    )
    script.expect(until(b"\r\n"), times=None, ordered=False).respond(b"+OK\r\n")
    stream = b"".join(messages)
    whole = _sent(Conversation(script).feed(stream))
    conv = Conversation(script)
    points = sorted({c for c in cuts if c < len(stream)})
    pieces = [stream[a:b] for a, b in zip([0, *points], [*points, len(stream)])]
    split: list[bytes] = []
    for piece in pieces:
        split += _sent(conv.feed(piece))
    assert split == whole
    assert len(whole) == len(messages)


def test_text_that_cannot_be_encoded_is_refused_when_scripted() -> None:
    with pytest.raises(ValueError, match="expect\\(\\) match is not valid text"):
        Script().expect("\udcff")
    with pytest.raises(ValueError, match="respond\\(\\) payload is not valid text"):
        Script().expect(b"x").respond("\udcff")


def test_the_rules_in_play_follow_matches_and_rules_added_meanwhile() -> None:
    # The conversation caches which rules may match next: a counted match, a move along the
    # ordered rules and a rule added while it runs must each be seen at once.
    def script_and_sent() -> tuple[Script, Conversation, Callable[[bytes], list[bytes]]]:
        script = Script()
        script.expect(b"a", times=2).respond(b"1")
        script.expect(b"x", ordered=False, times=None).respond(b"X")
        conversation = Conversation(script)

        def sent(data: bytes) -> list[bytes]:
            return [action.data for action in conversation.feed(data) if action.kind == "send"]

        return script, conversation, sent

    script, conversation, sent = script_and_sent()
    assert sent(b"a") == [b"1"]
    assert sent(b"x") == [b"X"]
    assert sent(b"a") == [b"1"]
    assert sent(b"a") == []  # matched its two times: no longer in play
    assert conversation.derailed

    script, conversation, sent = script_and_sent()
    assert sent(b"a") + sent(b"a") == [b"1", b"1"]
    script.expect(b"b").respond(b"2")
    assert sent(b"b") == [b"2"]
    assert sent(b"x") == [b"X"]
    assert sent(b"b") == []
    assert conversation.unexpected == ["b'b' (expected expect(b'x', times=None, ordered=False))"]
