"""What a failed comparison of binary frame data looks like: a hexdump diff.

Data from ``hsock_client.expect`` is ``TaggedBytes``: bytes that remember the tag of their read.
When an ``assert`` compares them with ``==`` and fails, the plugin explains the failure: the
tag of the read, where the first differing byte is, and -- since binary data has no lines to
diff -- a unified diff of the two hexdumps (the first line is one line in the report)::

    E   AssertionError: assert b'\\x01\\x00\\x03\\x00\\x00\\x04\\x00'
          == b'\\x01\\x00\\x04\\x00\\x00\\x04\\x00'  (read with tag 2)
    E     expected 7 bytes, received 7; first difference at byte 2: expected 0x04, received 0x03
    E     --- expected
    E     +++ received
    E     @@ -1 +1 @@
    E     -00000000  01 00 04 00 00 04 00                              |.......|
    E     +00000000  01 00 03 00 00 04 00                              |.......|

The protocol is the one of ``test_length_prefixed.py``: a 4-byte big-endian length, then the
payload. A STAT request is answered with a 7-byte payload: a version byte, a 2-byte count of
sessions and a 4-byte count of bytes served.

``pytester`` (enabled in ``conftest.py``) runs a deliberately wrong test in a scratch folder and
checks the report's lines. ``test_a_wrong_stat_frame`` is the same mistake in this suite, marked
as an expected failure: ``-rx`` lists it with its reason, and ``--runxfail`` shows its diff::

    python -m pytest examples/test_length_prefixed_diff.py --runxfail
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path

import pytest

from pytest_hsocket.testing import MockServer, TestClient

TAG_LEN, TAG_BODY = 1, 2
HEADER = struct.Struct(">I")
STAT = struct.Struct(">BHI")  # version, sessions, bytes served


def frame(payload: bytes) -> bytes:
    """Prefix ``payload`` with its length."""
    return HEADER.pack(len(payload)) + payload


# The suite pytester runs: the server reports 3 sessions, the test expects 4.
WRONG_EXPECTATION = """
import struct

HEADER = struct.Struct(">I")
STAT = struct.Struct(">BHI")


def frame(payload: bytes) -> bytes:
    return HEADER.pack(len(payload)) + payload


def test_stat(hsock_server, hsock_client):
    hsock_server.expect(frame(b"STAT")).respond(frame(STAT.pack(1, 3, 1024)))
    client = hsock_client(hsock_server)
    client.write(frame(b"STAT"))
    (length,) = HEADER.unpack(client.expect(HEADER.size, tag=1))
    assert client.expect(length, tag=2) == STAT.pack(1, 4, 1024)
"""


def test_the_report_shows_a_hexdump_diff(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_stat=WRONG_EXPECTATION)

    result = pytester.runpytest("-p", "no:cacheprovider")

    result.assert_outcomes(failed=1)  # and no error: the server's script was followed
    result.stdout.fnmatch_lines(
        [
            r"E   *AssertionError: assert b'\x01\x00\x03\x00\x00\x04\x00'"
            r" == b'\x01\x00\x04\x00\x00\x04\x00'  (read with tag 2)",
            "E * expected 7 bytes, received 7; "
            "first difference at byte 2: expected 0x04, received 0x03",
            "E * --- expected",
            "E * +++ received",
            "E * -00000000  01 00 04 00 00 04 00 * |.......|",
            "E * +00000000  01 00 03 00 00 04 00 * |.......|",
            "*- hsocket transcripts (call) -*",
        ]
    )


def test_a_slice_gets_the_plain_pytest_message(pytester: pytest.Pytester) -> None:
    # A slice of the data is plain bytes: pytest's own message, without tag and hexdump.
    pytester.makepyfile(
        test_stat=WRONG_EXPECTATION.replace(
            "assert client.expect(length, tag=2) == STAT.pack(1, 4, 1024)",
            "assert client.expect(length, tag=2)[:3] == STAT.pack(1, 4, 1024)[:3]",
        )
    )

    result = pytester.runpytest("-p", "no:cacheprovider")

    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([r"E * assert b'\x01\x00\x03' == b'\x01\x00\x04'"])
    result.stdout.no_fnmatch_line("*(read with tag*")
    result.stdout.no_fnmatch_line("*first difference at byte*")


@pytest.mark.xfail(
    strict=True, raises=AssertionError, reason="shows the hexdump diff of a wrong frame"
)
def test_a_wrong_stat_frame(
    hsock_server: MockServer, hsock_client: Callable[..., TestClient]
) -> None:
    hsock_server.expect(frame(b"STAT")).respond(frame(STAT.pack(1, 3, 1024)))
    client = hsock_client(hsock_server)

    client.write(frame(b"STAT"))
    (length,) = HEADER.unpack(client.expect(HEADER.size, tag=TAG_LEN))
    body = client.expect(length, tag=TAG_BODY)

    assert body == STAT.pack(1, 4, 1024)  # wrong on purpose: the server counts 3 sessions


def test_runxfail_shows_the_diff_of_the_expected_failure(pytester: pytest.Pytester) -> None:
    # This module, run again in a scratch folder: -rx names the expected failure, and
    # --runxfail turns it into a plain failure whose report shows the diff.
    pytester.makepyfile(example_copy=Path(__file__).read_text())
    only_it = "example_copy.py::test_a_wrong_stat_frame"

    listed = pytester.runpytest("-p", "no:cacheprovider", "-rx", only_it)
    shown = pytester.runpytest("-p", "no:cacheprovider", "--runxfail", only_it)

    listed.assert_outcomes(xfailed=1)
    listed.stdout.fnmatch_lines(["XFAIL *test_a_wrong_stat_frame - shows the hexdump diff*"])
    shown.assert_outcomes(failed=1)
    shown.stdout.fnmatch_lines(
        [
            "E * (read with tag 2)",
            "E * first difference at byte 2: expected 0x04, received 0x03",
            "E * -00000000  01 00 04 00 00 04 00 * |.......|",
            "E * +00000000  01 00 03 00 00 04 00 * |.......|",
        ]
    )
