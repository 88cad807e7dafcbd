"""Transcript and byte rendering, without sockets."""

from __future__ import annotations

from pytest_hsocket._core.transcript import Transcript, diff, hexdump, is_printable, show


def _clock() -> float:
    _clock.now += 0.5  # type: ignore[attr-defined]
    return float(_clock.now)  # type: ignore[attr-defined]


def test_hexdump_has_offset_hex_and_ascii() -> None:
    assert hexdump(b"PING\r\n\x00\xff") == [
        "00000000  50 49 4e 47 0d 0a 00 ff                          |PING....|"
    ]
    assert len(hexdump(bytes(40))) == 3


def test_printable_detection() -> None:
    assert is_printable(b"PING\r\n\tok")
    assert is_printable("héllo".encode())
    assert not is_printable(b"\x00\x01")
    assert not is_printable(b"\xff")


def test_show_text_and_binary_and_long() -> None:
    assert show(b"+PONG\r\n") == ["b'+PONG\\r\\n'"]
    assert show(b"\x00\x01")[0].startswith("00000000  00 01")
    assert show(b"a" * 600)[-1] == "... (88 more bytes)"


def test_text_diff_names_the_first_difference() -> None:
    lines = diff(b"+PONG\r\n", b"+PANG\r\n")
    assert lines[0] == (
        "expected 7 bytes, received 7; first difference at byte 2: expected 0x4f, received 0x41"
    )
    assert "-b'+PONG\\r\\n'" in lines
    assert "+b'+PANG\\r\\n'" in lines


def test_binary_diff_is_a_hexdump_diff() -> None:
    lines = diff(b"\x00\x00\x00\x04abcd", b"\x00\x00\x00\x05abcde")
    assert lines[0].endswith("first difference at byte 3: expected 0x04, received 0x05")
    assert any(line.startswith("-00000000  00 00 00 04") for line in lines)
    assert any(line.startswith("+00000000  00 00 00 05") for line in lines)


def test_prefix_diff_reports_end_of_data() -> None:
    assert diff(b"abc", b"ab")[0].endswith("expected 0x63, received end of data")


def test_transcript_renders_each_event() -> None:
    _clock.now = 0.0  # type: ignore[attr-defined]
    transcript = Transcript("client of server", clock=_clock)
    transcript.record("connected")
    transcript.record("out", b"PING\r\n")
    transcript("in", b"+PO", 7, "")
    transcript.record("in", b"\x00\x01\x02", 3)
    transcript.record("closed", b"+PO", 7, "Socket closed by remote peer")
    assert transcript.render().splitlines() == [
        "transcript of client of server:",
        "  +  0.500s  connected",
        "  +  1.000s  >> b'PING\\r\\n'",
        "  +  1.500s  << b'+PO'  (tag 7)",
        "  +  2.000s  << 3 bytes  (tag 3)",
        "              00000000  00 01 02" + " " * 41 + "|...|",
        "  +  2.500s  closed: Socket closed by remote peer; 3 bytes never read: b'+PO'",
    ]
    assert transcript.received() == b"+PO\x00\x01\x02"
    assert transcript.sent() == b"PING\r\n"


def test_str_of_a_transcript_is_the_conversation() -> None:
    from pytest_hsocket._core.transcript import Transcript

    transcript = Transcript("hsock_server connection 1", clock=iter([0.0, 0.5, 1.0]).__next__)
    transcript.record("in", b"PING\r\n")
    transcript.record("out", b"+PONG\r\n")
    assert str(transcript) == transcript.render()
    assert str(transcript).splitlines() == [
        "transcript of hsock_server connection 1:",
        "  +  0.500s  << b'PING\\r\\n'",
        "  +  1.000s  >> b'+PONG\\r\\n'",
    ]
    assert repr(transcript) == "<Transcript 'hsock_server connection 1': 2 events>"
