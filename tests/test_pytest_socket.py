"""Coexistence with pytest-socket: the fixtures work under its network lock-down.

Each test runs a small suite in a subprocess (pytester) with pytest-socket's flags. Plugin
autoloading is off in the subprocess and both plugins are named with ``-p``, so the run does
not depend on what else is installed (with autoloading on, pytest-socket is already registered
as ``socket`` and ``-p pytest_socket`` would be a usage error).
"""

from __future__ import annotations

from typing import Protocol

import pytest

pytest.importorskip(
    "pytest_socket", reason="pytest-socket is not installed (pip install pytest-socket)"
)

LOCKED_DOWN = ("--disable-socket", "--allow-hosts=127.0.0.1,::1", "--allow-unix-socket")

SUITE = """
import socket

import pytest
import pytest_socket


def test_tcp_server_and_client(hsock_server, hsock_client):
    hsock_server.expect(b"PING\\r\\n").respond(b"+PONG\\r\\n")
    client = hsock_client(hsock_server)
    client.write(b"PING\\r\\n")
    assert client.expect(b"\\r\\n") == b"+PONG\\r\\n"


def test_stdlib_client_of_a_mock_server(hsock_server):
    hsock_server.expect(b"HELO\\n").respond(b"250 ok\\n")
    with socket.create_connection(hsock_server.address, timeout=5) as conn:
        conn.sendall(b"HELO\\n")
        assert conn.recv(100) == b"250 ok\\n"


def test_unix_server(hsock_unix_server, hsock_client):
    hsock_unix_server.expect(b"hi\\n").respond(b"hello\\n")
    client = hsock_client(hsock_unix_server.path)
    client.write(b"hi\\n")
    assert client.expect(b"\\n") == b"hello\\n"


def test_udp_server_and_client(hsock_udp_server, hsock_udp_client):
    hsock_udp_server.expect(b"ping").respond(b"pong")
    assert hsock_udp_client(hsock_udp_server).request(b"ping") == b"pong"


def test_stdlib_udp_client_of_a_mock_server(hsock_udp_server):
    hsock_udp_server.expect(b"ping").respond(b"pong")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as raw:
        raw.settimeout(5)
        raw.sendto(b"ping", hsock_udp_server.address)
        assert raw.recv(100) == b"pong"


def test_udp_proxy(hsock_udp_server, hsock_udp_client, hsock_udp_proxy):
    hsock_udp_server.expect(b"ping").respond(b"pong")
    proxy = hsock_udp_proxy(hsock_udp_server)
    assert hsock_udp_client(proxy).request(b"ping") == b"pong"


@pytest.mark.filterwarnings("ignore::UserWarning")  # some pytest-socket versions warn too
def test_other_hosts_are_still_blocked():
    sock = socket.socket()
    try:
        with pytest.raises(pytest_socket.SocketConnectBlockedError):
            sock.connect(("192.0.2.1", 80))
    finally:
        sock.close()
"""


class Runner(Protocol):
    def __call__(self, *args: str) -> pytest.RunResult: ...


@pytest.fixture
def run(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Runner:
    """Run the suite in a subprocess with pytest-socket and the given flags."""
    pytester.makepyfile(test_suite=SUITE)
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")

    def runner(*args: str) -> pytest.RunResult:
        return pytester.runpytest_subprocess(
            "-p", "pytest_socket", "-p", "pytest_hsocket.plugin", "-p", "no:cacheprovider", *args
        )

    return runner


def test_fixtures_pass_with_sockets_locked_to_loopback(run: Runner) -> None:
    result = run(*LOCKED_DOWN)
    result.assert_outcomes(passed=7)


def test_udp_and_unix_fixtures_pass_under_disable_socket_alone(run: Runner) -> None:
    # Without --allow-hosts, socket.socket itself is replaced: the library's sockets were made
    # from the class it captured at import, so these work (the tests' own stdlib sockets would
    # not); so do TCP servers, whose accepted sockets are built from that class too.
    result = run("--disable-socket", "--allow-unix-socket", "-k", "unix or udp_server or proxy")
    result.assert_outcomes(passed=3)


def test_the_lock_down_is_real(run: Runner) -> None:
    # The negative twin: with 127.0.0.1 not allowed, the stdlib client of the mock server is
    # refused, so the run above passed because of the allow-list, not despite an idle plugin.
    result = run("--disable-socket", "--allow-hosts=::1", "-k", "stdlib_client")
    result.assert_outcomes(failed=1, errors=1)  # and the mock server's rule stays unmet
    result.stdout.fnmatch_lines(["*SocketConnectBlockedError*127.0.0.1*"])


def test_tcp_server_under_disable_socket_alone(run: Runner) -> None:
    result = run("--disable-socket", "--hsock-timeout=0.5", "-k", "tcp_server_and_client")
    result.assert_outcomes(passed=1)
