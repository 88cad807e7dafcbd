"""Teardown diagnostics for binary protocols, through pytest: the closest rule with a hexdump
diff and the first differing offset, tracebacks of respond() functions, shared rules, and
length-framed rules over a real socket."""

from __future__ import annotations

import pytest


def test_binary_unexpected_data_shows_the_closest_rule_and_a_hexdump_diff(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        """
        def test_wrong_frame(hsock_server, hsock_client):
            hsock_server.expect(b"\\x00\\x01PING\\xff\\xfe").respond(b"ok")
            hsock_server.expect(b"\\x09\\x09other\\x00")
            client = hsock_client(hsock_server)
            client.write(b"\\x00\\x01PONG\\xff\\xfe")
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "  - connection 1: unexpected data b'\\x00\\x01PONG\\xff\\xfe' (expected *",
            "      closest rule: expect(b'\\x00\\x01PING\\xff\\xfe')",
            "      expected 8 bytes, received 8; first difference at byte 3",
            "      -00000000  00 01 50 49 4e 47 ff fe *",
            "      +00000000  00 01 50 4f 4e 47 ff fe *",
        ]
    )


def test_a_respond_function_error_carries_its_traceback(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        def build_reply(data):
            return data.decode("ascii").missing

        def test_reply(hsock_server, hsock_client):
            hsock_server.expect(b"PING").respond(build_reply)
            client = hsock_client(hsock_server)
            client.write(b"PING")
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "  - connection 1: respond() raised AttributeError: *missing*",
            "      Traceback (most recent call last):",
            "*in build_reply*",
        ]
    )


def test_a_shared_rule_is_met_once_on_any_connection(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        def test_pool(hsock_server, hsock_client):
            hsock_server.expect(b"PING\\r\\n", shared=True, name="ping").respond(b"+PONG\\r\\n")
            hsock_server.expect(b"HELLO\\r\\n", times=None, ordered=False).respond(b"+HI\\r\\n")
            monitor, pooled = hsock_client(hsock_server), hsock_client(hsock_server)
            monitor.write(b"HELLO\\r\\n")
            assert monitor.expect(b"\\r\\n") == b"+HI\\r\\n"
            pooled.write(b"PING\\r\\n")
            assert pooled.expect(b"\\r\\n") == b"+PONG\\r\\n"

        def test_pool_unmet(hsock_server, hsock_client):
            hsock_server.expect(b"PING\\r\\n", shared=True, name="ping").respond(b"+PONG\\r\\n")
            hsock_server.expect(b"HELLO\\r\\n", times=None, ordered=False).respond(b"+HI\\r\\n")
            client = hsock_client(hsock_server)
            client.write(b"HELLO\\r\\n")
            assert client.expect(b"\\r\\n") == b"+HI\\r\\n"
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*test_pool_unmet*",
            "  - unmet 'ping' expect(b'PING\\r\\n', shared=True) matched 0 of 1 times "
            "on all connections",
        ]
    )


def test_length_framed_rules_over_a_real_socket(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import re, struct
        import pytest
        from pytest_hsocket import Prefixed

        PG = Prefixed("!I", offset=1, adjust=-4)

        def pg(kind, payload):
            return kind + struct.pack("!I", len(payload) + 4) + payload

        @pytest.mark.hsock_fragment(5)
        def test_query(hsock_server, hsock_client):
            hsock_server.expect(PG, re.compile(rb"^SELECT")).respond(pg(b"C", b"SELECT 1\\x00"))
            hsock_server.expect(PG, b"").respond(pg(b"Z", b"I"))  # Sync: an empty body
            client = hsock_client(hsock_server)
            client.write(pg(b"Q", b"SELECT 1\\x00") + pg(b"S", b""))
            assert client.expect(Prefixed("!I", offset=1, adjust=-4)) == b"SELECT 1\\x00"
            assert client.expect(Prefixed("!I", offset=1, adjust=-4)) == b"I"
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=5)


def test_a_raising_callback_ends_its_connection_and_fails_the_test(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        """
        import pytest
        from pytest_hsocket import ConnectionClosed

        def broken(data, tag, client):
            raise ValueError("bad frame")

        @pytest.mark.parametrize("on_error", ["close", "reset"])
        def test_server_callback_raises(hsock_server, hsock_client, on_error):
            hsock_server.on_error = on_error
            hsock_server.set_callback(broken)
            hsock_server.on_connect(lambda client: client.read(b"\\n"))
            client = hsock_client(hsock_server)
            client.write(b"hello\\n")
            with pytest.raises(ConnectionClosed):
                client.expect(b"\\n", timeout=10)  # ends at once, not after 10 s

        def test_respond_raises(hsock_server, hsock_client):
            hsock_server.expect(b"hello\\n").respond(lambda data: 1 / 0)
            client = hsock_client(hsock_server)
            client.write(b"hello\\n")
            with pytest.raises(ConnectionClosed):
                client.expect(b"\\n", timeout=10)
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "--durations=0")
    result.assert_outcomes(passed=3, errors=3)
    result.stdout.fnmatch_lines(["*callback error: *ValueError: bad frame*"])
    result.stdout.fnmatch_lines(["*respond() raised ZeroDivisionError*"])
    result.stdout.fnmatch_lines(["*callback error: hs.socket:read callback raised ValueError*"])


def test_a_helper_failure_shows_the_test_frame_not_ours(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        def test_timeout(hsock_server, hsock_client):
            hsock_server.expect(b"PING").respond(b"+PO")
            client = hsock_client(hsock_server)
            client.write(b"PING")
            client.expect(b"\\r\\n", timeout=0.2)
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([">       client.expect(*timeout=0.2)", "E   *ReadTimeout*"])
    result.stdout.no_fnmatch_line("*_refuse_on_loop*")
    result.stdout.no_fnmatch_line("*_helpers/client_reads.py*")


def test_binary_data_no_rule_can_compare_to_is_hexdumped(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        from pytest_hsocket import Prefixed

        def test_wrong_frame(hsock_server, hsock_client):
            hsock_server.expect(Prefixed("!H"), lambda data: data.startswith(b"OK"))
            client = hsock_client(hsock_server)
            client.write(b"\\x00\\x03\\xff\\xfe\\x01")
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "  - connection 1: unexpected data b'\\x00\\x03\\xff\\xfe\\x01' (expected *",
            "      00000000  00 03 ff fe 01 * |.....|",
        ]
    )


def test_pytest_fail_in_a_rule_function_fails_the_test(pytester: pytest.Pytester) -> None:
    # DESIGN 2: a BaseException raised by code we run for the user (pytest.fail() in a respond()
    # function or a content check) is never swallowed; before, only Exception was caught there
    pytester.makepyfile(
        """
        import pytest
        from pytest_hsocket.testing import until

        def refuse(data):
            pytest.fail("the client sent " + repr(data))

        def test_respond_fails(hsock_server, hsock_client):
            hsock_server.expect(b"hello\\n").respond(refuse)
            client = hsock_client(hsock_server)
            client.write(b"hello\\n")
            client.expect(0)

        def test_check_fails(hsock_server, hsock_client):
            hsock_server.expect(until(b"\\n"), lambda data: refuse(data)).respond(b"ok\\n")
            client = hsock_client(hsock_server)
            client.write(b"hello\\n")
            client.expect(0)
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, errors=2)
    # reported as the rule function's error, with its traceback (not as a broken read callback)
    assert result.stdout.str().count("raised Failed: the client sent b'hello\\n'") >= 2
    result.stdout.no_fnmatch_line("*read callback raised Failed*")
