"""Fragmentation fuzzing: a naive client (one recv() per reply) is caught, a correct one passes."""

from __future__ import annotations

import pytest

from pytest_hsocket._core.fragment import Cut, Fragmenter

CLIENTS = """
import socket
import pytest

def naive_get(address):
    with socket.create_connection(address, timeout=5) as sock:
        sock.sendall(b"GET\\r\\n")
        return sock.recv(1024)  # the bug: one recv() is not one message

def buffered_get(address):
    with socket.create_connection(address, timeout=5) as sock:
        sock.sendall(b"GET\\r\\n")
        data = b""
        while not data.endswith(b"\\r\\n"):
            chunk = sock.recv(1024)
            assert chunk, "closed early"
            data += chunk
        return data
"""


def test_modes_and_seeds_are_reproducible() -> None:
    assert Fragmenter(0, 0).cut(b"abc") == [b"a", b"b", b"c"]
    assert Fragmenter(0, 1).cut(b"OK\r\nX") == [b"OK", b"\r", b"\n", b"X"]
    first = Fragmenter(7, 5).cut(b"+PONG and a long reply\r\n")
    assert Fragmenter(7, 5).cut(b"+PONG and a long reply\r\n") == first
    assert b"".join(first) == b"+PONG and a long reply\r\n"
    assert len(first) >= 2
    assert Cut(b"abcd", (1, 3)).show() == "b'a' | b'bc' | b'd'"


def test_naive_client_is_caught_and_the_run_can_be_replayed(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        CLIENTS
        + """
@pytest.mark.hsock_fragment(runs=5, pause=0.05)  # a busy client must not find every piece
def test_naive(hsock_server):
    hsock_server.expect(b"GET\\r\\n").respond(b"+HELLO WORLD\\r\\n")
    assert naive_get(hsock_server.address) == b"+HELLO WORLD\\r\\n"
"""
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(failed=5)
    result.stdout.fnmatch_lines(
        [
            "*test_naive?split0?*",
            "*hsocket fragmentation*",
            "fragmentation run 0 (bytes cuts), seed 0:",
            "  b'+' | b'H' | b'E' | *",
            "replay exactly this run: pytest '*test_naive?split0?' --hsock-fragment-seed=0",
        ]
    )


def test_buffered_client_passes_every_run(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        CLIENTS
        + """
@pytest.mark.hsock_fragment(runs=12)
def test_buffered(hsock_server):
    hsock_server.expect(b"GET\\r\\n").respond(b"+HELLO WORLD\\r\\n")
    assert buffered_get(hsock_server.address) == b"+HELLO WORLD\\r\\n"
"""
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "--hsock-fragment-seed", "99")
    result.assert_outcomes(passed=12)


def test_bad_runs_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
import pytest

@pytest.mark.hsock_fragment(runs=0)
def test_x(hsock_server):
    pass
"""
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*hsock_fragment runs must be a positive int, not 0*"])


def test_a_callback_driven_server_is_cut_too(pytester: pytest.Pytester) -> None:
    # A set_callback server writes with client.write(): those writes are cut as the
    # script's are (the fragmentation log holds them), instead of passing untested.
    pytester.makepyfile(
        CLIENTS
        + """
def on_data(data, tag, client):
    client.write(b"+HELLO WORLD\\r\\n")
    client.read(b"\\r\\n")

@pytest.mark.hsock_fragment(runs=3)
def test_buffered(hsock_server, hsock_fragmentation):
    hsock_server.set_callback(on_data)
    hsock_server.on_connect(lambda client: client.read(b"\\r\\n"))
    assert buffered_get(hsock_server.address) == b"+HELLO WORLD\\r\\n"
    hsock_server.settle()
    assert [cut.data for cut in hsock_fragmentation.log] == [b"+HELLO WORLD\\r\\n"]
    assert len(hsock_fragmentation.log[0].pieces()) >= 2
"""
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=3)


def test_a_broadcast_is_cut_for_each_connection(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        CLIENTS
        + """
@pytest.mark.hsock_fragment(runs=2)
def test_broadcast(hsock_server, hsock_client, hsock_fragmentation):
    hsock_server.expect(b"hi\\\\n", times=None)  # both connections accepted before the write
    first, second = hsock_client(hsock_server), hsock_client(hsock_server)
    first.write(b"hi\\\\n")
    second.write(b"hi\\\\n")
    hsock_server.settle()
    written = []
    hsock_server.write(b"+NEWS\\\\r\\\\n", lambda tag: written.append(tag))
    assert first.expect(b"\\\\r\\\\n") == b"+NEWS\\\\r\\\\n"
    assert second.expect(b"\\\\r\\\\n") == b"+NEWS\\\\r\\\\n"
    hsock_server.settle()
    assert [cut.data for cut in hsock_fragmentation.log] == [b"+NEWS\\\\r\\\\n"] * 2
    assert written == [-1]
"""
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
