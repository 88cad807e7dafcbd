"""``settle()`` and ``close()`` process what clients did before the call, connections that are
still in the listener's backlog included (the accept loop may not have had its turn yet)."""

from __future__ import annotations

import socket
import threading

from pytest_hsocket._loop.hub import get_loop
from pytest_hsocket.testing import MockServer

from .conftest import WAIT


def settles_a_connection_in_the_backlog(server: MockServer) -> None:
    seen = threading.Event()
    server.set_callback(lambda data, tag, client: seen.set())
    server.on_connect(lambda client: client.read(b"\n"))
    done = threading.Event()
    marked: list[int] = []

    def on_loop() -> None:
        assert done.wait(WAIT)  # a plain thread wait: the loop is held, nothing is accepted
        marked.append(len(server.pull_and_mark()[1]))

    get_loop().call(on_loop)
    with socket.create_connection(server.address, timeout=WAIT) as peer:
        peer.sendall(b"hello\n")
        done.set()
        server.settle()
        assert marked == [1]  # the backlog's connection was taken and marked
        assert seen.is_set()  # and its read callback ran before settle() returned


def test_a_server_of_its_own_takes_its_backlog() -> None:
    server = MockServer.start()
    try:
        settles_a_connection_in_the_backlog(server)
    finally:
        server.close()


def test_a_pooled_server_takes_its_backlog(hsock_server: MockServer) -> None:
    # hsock_server listens on a socket lent by the session's pool, whose acceptor it is.
    settles_a_connection_in_the_backlog(hsock_server)
