"""Pooled listeners: a fresh mock server on a reused port, and nothing carried across tests."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from pytest_hsocket._helpers.pool import ServerPool
from pytest_hsocket.testing import MockServer, TestClient, open_client

WAIT = 5.0


@pytest.fixture
def pool() -> Iterator[ServerPool]:
    pool = ServerPool()
    yield pool
    pool.close()


def _ended(sock: socket.socket) -> bool:
    """Whether the peer closed: EOF or a reset, waited for with a timeout (no sleeps)."""
    sock.settimeout(WAIT)
    try:
        return sock.recv(100) == b""
    except ConnectionResetError:
        return True


def _ping(server: MockServer) -> TestClient:
    client = open_client(server, wait_timeout=WAIT)
    client.write(b"PING\r\n")
    assert client.expect(b"\r\n") == b"+PONG\r\n"
    return client


def test_the_next_server_is_new_on_the_same_port(pool: ServerPool) -> None:
    first = pool.start(name="first")
    port = first.port
    first.expect(b"PING\r\n").respond(b"+PONG\r\n")
    _ping(first).close()
    pool.release(first)
    first.check()
    assert not first.is_server
    second = pool.start(name="second")
    assert second is not first
    assert second.address == ("127.0.0.1", port)
    assert second.transcripts == []
    assert second.name == "second"
    assert second.script.rules == []
    second.expect(b"PING\r\n").respond(b"+PONG\r\n")
    _ping(second).close()
    pool.release(second)
    second.check()
    assert len(second.transcripts) == 1


def test_port_is_reused_and_unmet_rules_do_not_carry_over(pool: ServerPool) -> None:
    first = pool.start()
    port = first.port
    first.expect(b"NEVER\r\n")
    pool.release(first)
    with pytest.raises(AssertionError, match="no client connected"):
        first.check()
    second = pool.start()
    assert second.port == port
    pool.release(second)
    second.check()  # nothing expected, nothing unmet


def test_a_connection_left_open_is_closed_at_release_and_not_seen_again(
    pool: ServerPool,
) -> None:
    first = pool.start()
    first.expect(b"HI\n").respond(b"yo\n")
    left_open = socket.create_connection(first.address, timeout=WAIT)
    left_open.sendall(b"HI\n")
    assert left_open.recv(3) == b"yo\n"
    pool.release(first)
    assert _ended(left_open)  # closed by the release, not by the next test
    left_open.close()
    second = pool.start()
    second.expect(b"PING\r\n").respond(b"+PONG\r\n")
    _ping(second).close()
    pool.release(second)
    second.check()
    assert [t.received() for t in second.transcripts] == [b"PING\r\n"]


def test_a_late_connection_between_borrowers_is_closed_not_counted(pool: ServerPool) -> None:
    first = pool.start()
    port = first.port
    pool.release(first)
    # A client of the previous test connecting late: the kernel completes the handshake
    # (backlog) whether or not anybody accepts.
    late = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
    second = pool.start()
    assert second.port == port
    assert _ended(late)
    late.close()
    second.connection(1).expect(b"PING\r\n").respond(b"+PONG\r\n")
    _ping(second).close()
    pool.release(second)
    second.check()  # connection 1 is ours: the late one was never the new server's
    assert len(second.transcripts) == 1


def test_a_server_the_test_closed_is_not_reused(pool: ServerPool) -> None:
    first = pool.start()
    first.close()
    assert not first.is_server
    pool.release(first)
    # (Not probed by connecting: another process may bind the freed port meanwhile.)
    assert "0 idle, 0 lent" in repr(pool)
    second = pool.start()
    second.expect(b"PING\r\n").respond(b"+PONG\r\n")
    _ping(second).close()
    pool.release(second)
    second.check()


def test_two_servers_at_once_get_two_listeners(pool: ServerPool) -> None:
    one, two = pool.start(), pool.start()
    assert one.port != two.port
    for server in (one, two):
        server.expect(b"PING\r\n").respond(b"+PONG\r\n")
        _ping(server).close()
    pool.release(one)
    pool.release(two)
    one.check()
    two.check()


def test_a_refused_connection_names_the_reason(pool: ServerPool) -> None:
    server = pool.start()
    port = server.port
    pool.release(server)
    pool.close()
    with pytest.raises(
        ConnectionError, match=r"could not connect to 127\.0\.0\.1:\d+: Connection refused"
    ):
        TestClient.open("127.0.0.1", port, wait_timeout=WAIT)


POOLED_SUITE = """
import socket

state = {}


def test_first(hsock_server, hsock_client):
    hsock_server.expect(b"PING\\r\\n").respond(b"+PONG\\r\\n")
    client = hsock_client(hsock_server)
    client.write(b"PING\\r\\n")
    assert client.expect(b"\\r\\n") == b"+PONG\\r\\n"
    state["port"] = hsock_server.port
    state["client"] = client
    state["raw"] = socket.create_connection(hsock_server.address, timeout=5)


def test_second(hsock_server, hsock_client):
    assert state["client"].connected() is False
    raw = state["raw"]
    try:
        assert raw.recv(10) == b""
    except ConnectionResetError:
        pass
    raw.close()
    assert hsock_server.port == state["port"]
    assert hsock_server.transcripts == []
    hsock_server.connection(1).expect(b"PING\\r\\n").respond(b"+PONG\\r\\n")
    client = hsock_client(hsock_server)
    client.write(b"PING\\r\\n")
    assert client.expect(b"\\r\\n") == b"+PONG\\r\\n"
    assert len(hsock_server.transcripts) == 1
"""


def test_pooled_servers_are_isolated_between_tests(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(POOLED_SUITE)
    pytester.runpytest("-p", "no:cacheprovider", "-p", "no:randomly").assert_outcomes(passed=2)


def test_fresh_servers_on_request(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        from pytest_hsocket.plugin import current_test

        def test_not_pooled(hsock_server, hsock_client):
            assert current_test().pool is None
            hsock_server.expect(b"PING\\r\\n").respond(b"+PONG\\r\\n")
            client = hsock_client(hsock_server)
            client.write(b"PING\\r\\n")
            assert client.expect(b"\\r\\n") == b"+PONG\\r\\n"
        """
    )
    pytester.runpytest("-p", "no:cacheprovider", "--hsock-fresh-servers").assert_outcomes(passed=1)
    pytester.makeini("[pytest]\nhsock_reuse_ports = false\n")
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1)


def test_an_unmet_rule_still_fails_a_pooled_server(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        def test_quit_never_sent(hsock_server, hsock_client):
            hsock_server.expect(b"QUIT\\r\\n")
            hsock_client(hsock_server)

        def test_next_one_is_clean(hsock_server):
            pass
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*no client sent anything: unmet expect(b'QUIT\\r\\n')*",
            "*transcript of hsock_server connection 1:*",
            "*connected",
            "*closed: Socket closed by remote peer",
        ]
    )
