"""The pytest plugin, tested the way its users see it: through pytester runs and their output."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


def test_the_design_example_passes(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        def test_ping(hsock_server, hsock_client):
            hsock_server.expect(b"PING\\r\\n").respond(b"+PONG\\r\\n")
            client = hsock_client(hsock_server)
            client.write(b"PING\\r\\n")
            data = client.expect(b"\\r\\n", tag=7)
            assert data == b"+PONG\\r\\n"
            assert data.tag == 7
            assert hsock_server.address == (hsock_server.host, hsock_server.port)
            assert hsock_server.host == "127.0.0.1"
        """
    )
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1)


def test_unmet_expectation_fails_at_teardown_with_transcripts(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        def test_quit_never_sent(hsock_server, hsock_client):
            hsock_server.expect(b"PING\\r\\n").respond(b"+PONG\\r\\n")
            hsock_server.expect(b"QUIT\\r\\n").respond(b"+BYE\\r\\n")
            client = hsock_client(hsock_server)
            client.write(b"PING\\r\\n")
            client.expect(b"\\r\\n")
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_quit_never_sent*",
            "hsock_server (127.0.0.1:*): 1 problem(s)",
            "  - connection 1: unmet expect(b'QUIT\\r\\n') matched 0 of 1 times",
            "*hsocket transcripts (teardown)*",
            "transcript of hsock_server connection 1:",
            "  +*s  connected",
            "  +*s  << b'PING\\r\\n'",
            "  +*s  matched: expect(b'PING\\r\\n')",
            "  +*s  >> b'+PONG\\r\\n'",
            "transcript of hsock_client to 127.0.0.1:*:",
        ]
    )


def test_unexpected_data_fails(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        def test_wrong_command(hsock_server, hsock_client):
            hsock_server.expect(b"PING\\r\\n").respond(b"+PONG\\r\\n")
            client = hsock_client(hsock_server)
            client.write(b"PONG\\r\\n")
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "hsock_server (127.0.0.1:*): 2 problem(s)",
            "  - connection 1: unmet expect(b'PING\\r\\n') matched 0 of 1 times",
            "  - connection 1: unexpected data b'PONG\\r\\n' (expected expect(b'PING\\r\\n'))",
        ]
    )


def test_no_client_at_all_is_an_unmet_expectation(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        def test_nobody(hsock_server):
            hsock_server.expect(b"HELLO\\n")
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["  - no client connected: unmet expect(b'HELLO\\n')"])


def test_wait_timeout_names_tag_delimiter_and_buffer(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.hsocket(timeout=0.2)
        def test_slow(hsock_server, hsock_client):
            hsock_server.greet(b"+PO")
            client = hsock_client(hsock_server)
            client.expect(b"\\r\\n", tag=7)
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "E * pytest_hsocket._core.errors.ReadTimeout: no data for read to b'\\r\\n' (tag 7) "
            "within 0.2 s; 3 bytes buffered: b'+PO'",
        ]
    )


def test_peer_close_error_shows_the_bytes_it_had(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        def test_cut(hsock_server, hsock_client):
            hsock_server.expect(b"GET\\r\\n").respond(b"+PO").close()
            client = hsock_client(hsock_server)
            client.write(b"GET\\r\\n")
            client.expect(b"\\r\\n", tag=7)
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "E * pytest_hsocket._core.errors.ConnectionClosed: peer closed after b'+PO' "
            "while reading to b'\\r\\n', tag 7",
        ]
    )


def test_failed_comparison_shows_tag_and_hexdump_diff(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        def test_binary(hsock_server, hsock_client):
            hsock_server.expect(b"\\x01").respond(b"\\x00\\x00\\x00\\x05hello")
            client = hsock_client(hsock_server)
            client.write(b"\\x01")
            assert client.expect(9, tag=3) == b"\\x00\\x00\\x00\\x04hell"
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "E       AssertionError: assert b'\\x00\\x00\\x00\\x05hello' == "
            "b'\\x00\\x00\\x00\\x04hell'  (read with tag 3)",
            "E         expected 8 bytes, received 9; first difference at byte 3: "
            "expected 0x04, received 0x05",
            "E         -00000000  00 00 00 04 68 65 6c 6c *|....hell|",
            "E         +00000000  00 00 00 05 68 65 6c 6c 6f *|....hello|",
            "*hsocket transcripts (call)*",
            "transcript of hsock_client to 127.0.0.1:*:",
            "  +*s  << 9 bytes  (tag 3)",
        ]
    )


def test_callback_error_of_a_user_socket_fails_the_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import threading
        import pytest_hsocket as hsocket

        def test_broken_callback(hsock_server):
            hsock_server.greet(b"hi\\n")
            called = threading.Event()
            def broken(data, tag):
                called.set()
                raise KeyError("parser state")
            client = hsocket.new(broken).connect(*hsock_server.address)
            client.read(b"\\n", 2)
            assert called.wait(5)
            client.disconnect()
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "a socket callback raised:",
            "hs.socket:read callback raised KeyError: 'parser state'",
            "*raise KeyError*",
        ]
    )


def test_respond_function_error_fails_at_teardown(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        def test_bad_responder(hsock_server, hsock_client):
            hsock_server.expect(b"x").respond(lambda data: data.nope())
            client = hsock_client(hsock_server)
            client.write(b"x")
            client.write(b"")
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["  - connection 1: respond() raised AttributeError: *'nope'*"])


def test_retry_across_a_reconnect(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest
        from pytest_hsocket import ConnectionClosed

        def fetch(hsock_client, server):
            client = hsock_client(server)
            client.write(b"GET\\r\\n")
            return client.expect(b"\\r\\n")

        def test_second_attempt_succeeds(hsock_server, hsock_client):
            hsock_server.connection(1).expect(b"GET\\r\\n").reset()
            hsock_server.expect(b"GET\\r\\n").respond(b"+DATA\\r\\n")
            with pytest.raises(ConnectionClosed, match="Connection reset by peer"):
                fetch(hsock_client, hsock_server)
            assert fetch(hsock_client, hsock_server) == b"+DATA\\r\\n"
        """
    )
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1)


def test_hs_socket_style_server_and_wait(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        def test_state_machine(hsock_server, hsock_client):
            def on_data(data, tag, client):
                if tag == 1:
                    client.write(b"len " + str(len(data)).encode() + b"\\n")
                    client.read(3, 2)
                else:
                    client.write(data.upper() + b"\\n")
            hsock_server.set_callback(on_data)
            hsock_server.on_connect(lambda client: client.read(b"\\n", 1))
            client = hsock_client(*hsock_server.address)
            client.read(b"\\n", 10).read(b"\\n", 11)
            client.write(b"hello\\nabc")
            assert client.wait(tag=11) == b"ABC\\n"
            assert client.wait() == b"len 6\\n"
        """
    )
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1)


def test_several_servers_and_a_unix_server(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import os, stat

        def test_many(hsock_server_factory, hsock_unix_server, hsock_client):
            primary = hsock_server_factory()
            replica = hsock_server_factory(name="replica")
            assert primary.port != replica.port
            hsock_unix_server.expect(b"hi\\n").respond(b"unix\\n")
            assert stat.S_IMODE(os.stat(os.path.dirname(hsock_unix_server.path)).st_mode) == 0o700
            client = hsock_client(hsock_unix_server)
            client.write(b"hi\\n")
            assert client.expect(b"\\n") == b"unix\\n"
        """
    )
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1)


def test_options_are_listed_in_help(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--help")
    result.stdout.fnmatch_lines(
        [
            "pytest-hsocket (mock servers and clients over sockets):",
            "*--hsock-timeout=HSOCK_TIMEOUT*",
            "*--hsock-log-level=HSOCK_LOG_LEVEL*",
            "*--hsock-no-transcripts*",
        ]
    )
    result.stdout.fnmatch_lines(["*hsock_timeout (string):*", "*hsock_transcripts (bool):*"])


def test_ini_timeout_and_no_transcripts(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nhsock_timeout = 0.1\nhsock_transcripts = false\n")
    pytester.makepyfile(
        """
        import pytest
        from pytest_hsocket import ReadTimeout

        def test_fast_fail(hsock_server, hsock_client, hsock_timeout):
            assert hsock_timeout == 0.1
            client = hsock_client(hsock_server)
            with pytest.raises(ReadTimeout, match="within 0.1 s"):
                client.expect(b"\\n")
            assert False, "fail on purpose"
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    assert "hsocket transcripts" not in result.stdout.str()


def test_safe_under_xdist(pytester: pytest.Pytester) -> None:
    pytest.importorskip("xdist")
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.parametrize("n", range(8))
        def test_parallel(hsock_server, hsock_client, n):
            hsock_server.expect(b"N %d\\n" % n).respond(b"ok %d\\n" % n)
            client = hsock_client(hsock_server)
            client.write(b"N %d\\n" % n)
            assert client.expect(b"\\n") == b"ok %d\\n" % n
        """
    )
    result = pytester.runpytest_subprocess("-n", "2", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=8)


def test_off_script_data_closes_the_connection_at_once(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest
        from pytest_hsocket import ConnectionClosed

        @pytest.mark.hsocket(timeout=3)  # a ReadTimeout instead would fail the raises() below
        def test_wrong_command_fails_fast(hsock_server, hsock_client):
            hsock_server.expect(b"PING\\r\\n").respond(b"+PONG\\r\\n")
            client = hsock_client(hsock_server)
            client.write(b"PONG\\r\\n")
            with pytest.raises(ConnectionClosed, match="peer closed after b''"):
                client.expect(b"\\r\\n")
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "  - connection 1: unexpected data b'PONG\\r\\n' (expected expect(b'PING\\r\\n'))",
            "  +*s  off script: connection close",
        ]
    )


def test_a_timed_out_expect_leaves_the_data_for_the_next(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest
        from pytest_hsocket import ReadTimeout

        def test_late_reply(hsock_server, hsock_client):
            # The reply is asked for only after the timeout: late by order, not by a delay
            # that a busy machine could outlast.
            hsock_server.expect(b"SLOW\\n")
            hsock_server.expect(b"NOW\\n").respond(b"late\\n")
            client = hsock_client(hsock_server)
            client.write(b"SLOW\\n")
            with pytest.raises(ReadTimeout):
                client.expect(b"\\n", tag=1, timeout=0.05)
            client.write(b"NOW\\n")
            assert client.expect(b"\\n", tag=2) == b"late\\n"
        """
    )
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1)


def test_bad_marker_and_log_level_are_usage_errors(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.hsocket(speed=3)
        def test_marked(hsock_server):
            pass

        def test_other():
            pass
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*@pytest.mark.hsocket takes timeout= and transcripts= only*"])
    bad = pytester.runpytest("-p", "no:cacheprovider", "--hsock-log-level", "loud")
    assert bad.ret == pytest.ExitCode.USAGE_ERROR
    bad.stderr.fnmatch_lines(
        ["*--hsock-log-level / hsock_log_level: set_log_level() level must be one of*"]
    )


def test_ipv6_servers_by_a_parameter(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import socket
        import pytest

        def _has_ipv6():
            try:
                with socket.socket(socket.AF_INET6) as probe:
                    probe.bind(("::1", 0))
            except OSError:
                return False
            return True

        @pytest.mark.skipif(not _has_ipv6(), reason="this machine has no IPv6 loopback")
        @pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
        def test_both_families(hsock_server_factory, hsock_client, host):
            server = hsock_server_factory(host=host)
            server.expect(b"hi\\n").respond(b"there\\n")
            assert server.address == (host, server.port)
            expected_url = f"[{host}]:{server.port}" if ":" in host else f"{host}:{server.port}"
            assert server.url == expected_url
            client = hsock_client(server)
            client.write(b"hi\\n")
            assert client.expect(b"\\n") == b"there\\n"
            with socket.create_connection(server.address, timeout=5) as raw:
                raw.sendall(b"hi\\n")
                assert raw.recv(100) == b"there\\n"
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "-rs")
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed") == 2 or "no IPv6 loopback" in result.stdout.str()


def test_a_bad_expect_timeout_queues_nothing(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        def test_bad_timeout(hsock_server, hsock_client):
            hsock_server.greet(b"hello\\n")
            client = hsock_client(hsock_server)
            with pytest.raises(TypeError, match="expect\\\\(\\\\) timeout must be a number of seconds"):
                client.expect(b"\\n", timeout="1")
            assert client.expect(b"\\n") == b"hello\\n"  # no stale read took it
        """
    )
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1)
