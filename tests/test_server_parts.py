"""The mock server is composed, not stacked: it has a listener and a script player.

``MockServer`` is no hs.socket ``Socket`` (no ``connect()``); the server API the docs let
you drive it with is forwarded to its listening socket, and behaves as an ``hsocket.server``'s
over real loopback sockets: each scenario below runs against both and must see the same.
"""

from __future__ import annotations

import inspect
import queue
import socket
import threading
from collections.abc import Iterator
from typing import Callable, Union

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

import pytest_hsocket as hsocket
from pytest_hsocket._helpers.mockserver_play import ScriptPlayer
from pytest_hsocket._helpers.mockserver_sockets import MockConnection, MockListener
from pytest_hsocket._loop.hub import get_loop
from pytest_hsocket._loop.sync import Gate
from pytest_hsocket.testing import MockServer, TestClient

WAIT = 5.0

# Public names of an hs.socket Socket a listening server has no use for.
CLIENT_ONLY = {"connect"}

Server = Union[hsocket.Socket, MockServer]
MakeServer = Callable[[Callable[..., object]], Server]


def hs_server(fn: Callable[..., object]) -> Server:
    return hsocket.server(0, fn)


def mock_server(fn: Callable[..., object]) -> Server:
    server = MockServer.start(wait_timeout=WAIT)
    server.expect(b"hi\n").respond(b"from the script\n")  # set_callback switches it off
    return server.set_callback(fn)


BOTH = pytest.mark.parametrize(
    "make", [pytest.param(hs_server, id="hsocket.server"), pytest.param(mock_server, id="mock")]
)


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    made: list[Server] = []
    yield made
    for server in made:
        server.disconnect()


def port_of(server: Server) -> int:
    port = server.info()["localPort"]
    assert isinstance(port, int)
    return port


def connect_all(server: Server, count: int) -> list[socket.socket]:
    """``count`` stdlib clients, returned once the server has accepted every one."""
    accepted = threading.Semaphore(0)
    server.on_connect(lambda client: accepted.release())
    clients = [socket.create_connection(("127.0.0.1", port_of(server)), WAIT) for _ in range(count)]
    for _ in clients:
        assert accepted.acquire(timeout=WAIT)
    return clients


def ended(sock: socket.socket) -> bool:
    sock.settimeout(WAIT)
    try:
        return sock.recv(100) == b""
    except ConnectionResetError:
        return True


# -- structure ---------------------------------------------------------------------------------


def test_a_mock_server_is_no_socket() -> None:
    assert not issubclass(MockServer, hsocket.Socket)
    assert not hasattr(MockServer, "connect")
    server = MockServer()
    assert isinstance(server._socket, MockListener)
    assert isinstance(server._player, ScriptPlayer)
    assert not isinstance(server._player, hsocket.Socket)


def test_every_server_method_of_a_socket_is_the_mock_servers_own_with_a_docstring() -> None:
    api = {name for name in dir(hsocket.Socket) if not name.startswith("_")} - CLIENT_ONLY
    assert api - set(dir(MockServer)) == set()
    for name in sorted(api | {"callback_errors", "last_disconnect_reason"}):
        owner = next(klass for klass in MockServer.__mro__ if name in vars(klass))
        assert not issubclass(owner, hsocket.Socket), name
        assert inspect.getdoc(getattr(MockServer, name)), name


def test_the_calls_that_chain_return_the_mock_server() -> None:
    server = MockServer.start(wait_timeout=WAIT)
    try:
        assert server.set_callback(lambda data, tag: None) is server
        assert server.setCallback(None) is server
        assert server.set_timeout(2.0) is server
        assert server.on_connect(lambda client: None) is server
        assert server.on_disconnect(lambda reason: None) is server
        assert server.read(b"\n") is server
        assert server.write(b"x") is server
    finally:
        assert server.disconnect() is server
    assert server.write(b"x") is None  # not listening: refused, as hsocket's


# -- the server API over loopback, beside hsocket.server ------------------------------------------


@BOTH
def test_a_callback_gets_each_clients_reads_and_answers_it_alone(
    make: MakeServer, servers: list[Server]
) -> None:
    got: queue.Queue[tuple[bytes, int]] = queue.Queue()

    def on_data(data: bytes, tag: int, client: hsocket.Socket) -> None:
        got.put((data, tag))
        client.write(data.upper())

    server = make(on_data)
    servers.append(server)
    server.on_connect(lambda client: client.read(b"\n", 3))
    with socket.create_connection(("127.0.0.1", port_of(server)), WAIT) as sock:
        sock.sendall(b"hi\n")
        assert got.get(timeout=WAIT) == (b"hi\n", 3)
        assert sock.recv(100) == b"HI\n"
    if isinstance(server, MockServer):
        server.close()
        assert server.problems() == []  # the script was off: its rule is not required


@BOTH
def test_a_read_on_the_server_is_queued_on_each_client(
    make: MakeServer, servers: list[Server]
) -> None:
    got: queue.Queue[tuple[bytes, int]] = queue.Queue()
    server = make(lambda data, tag: got.put((data, tag)))
    servers.append(server)
    clients = connect_all(server, 2)
    assert server.read(b"\n", 4) is server
    for number, sock in enumerate(clients):
        sock.sendall(b"line %d\n" % number)
    assert sorted(got.get(timeout=WAIT) for _ in clients) == [(b"line 0\n", 4), (b"line 1\n", 4)]
    for sock in clients:
        sock.close()


@BOTH
def test_write_broadcasts_and_calls_back_once(make: MakeServer, servers: list[Server]) -> None:
    server = make(lambda data, tag: None)
    servers.append(server)
    clients = connect_all(server, 3)
    assert server.connected()
    assert server.connections() == 3 == len(server.clients())
    done: queue.Queue[tuple[str, int]] = queue.Queue()
    server.write(b"all\n", 9, lambda tag: done.put(("first", tag)))
    server.write(b"more\n", 10, lambda tag: done.put(("second", tag)))
    for sock in clients:
        sock.settimeout(WAIT)
        data = b""
        while len(data) < 9:
            data += sock.recv(100)
        assert data == b"all\nmore\n"
    # Write callbacks run in order, each once: the second's follows exactly one first.
    assert [done.get(timeout=WAIT) for _ in range(2)] == [("first", 9), ("second", 10)]
    for sock in clients:
        sock.close()


@BOTH
def test_disconnect_closes_every_client_and_stops_listening(
    make: MakeServer, servers: list[Server]
) -> None:
    server = make(lambda data, tag: None)
    servers.append(server)
    reasons: queue.Queue[str] = queue.Queue()
    server.on_disconnect(reasons.put)
    clients = connect_all(server, 2)
    server.disconnect()
    assert [ended(sock) for sock in clients] == [True, True]
    assert (server.is_server, server.connected(), server.connections()) == (False, False, 0)
    assert reasons.get(timeout=WAIT) == server.last_disconnect_reason != ""
    for sock in clients:
        sock.close()


@BOTH
def test_info_and_str_are_a_listening_sockets(make: MakeServer, servers: list[Server]) -> None:
    server = make(lambda data, tag: None)
    servers.append(server)
    [sock] = connect_all(server, 1)
    info = server.info()
    assert (info["userData"], info["connections"], info["isConnected"]) == ("SERVER", 1, False)
    assert info["localHost"] == "127.0.0.1"
    assert str(server) == f"hs.socket(server): 127.0.0.1:{port_of(server)}"
    sock.close()


def test_set_callback_none_gives_later_connections_the_script_back() -> None:
    server = MockServer.start(wait_timeout=WAIT)
    server.expect(b"PING\n", times=None).respond(b"PONG\n")
    server.set_callback(lambda data, tag, client: client.write(b"callback\n"))
    server.on_connect(lambda client: client.read(b"\n"))
    try:
        with TestClient.open(*server.address, wait_timeout=WAIT) as first:
            first.write(b"PING\n")
            assert first.expect(b"\n") == b"callback\n"
        server.set_callback(None)
        with TestClient.open(*server.address, wait_timeout=WAIT) as second:
            second.write(b"PING\n")
            assert second.expect(b"\n") == b"PONG\n"
    finally:
        server.close()
    server.check()
    assert [t.sent() for t in server.transcripts] == [b"callback\n", b"PONG\n"]


def test_the_connections_are_mock_connections_that_end_as_asked() -> None:
    server = MockServer.start(wait_timeout=WAIT)
    clients: queue.Queue[hsocket.Socket] = queue.Queue()
    server.on_connect(clients.put)
    try:
        [sock] = connect_all(server, 1)
        client = clients.get(timeout=WAIT)
        assert isinstance(client, MockConnection)
        assert client.attached
        with pytest.raises(ValueError, match="end\\(\\) how must be one of"):
            client.end("later")
        get_loop().run_sync(lambda: client.end("close"))  # on the loop, as the player does
        assert ended(sock)
        sock.close()
    finally:
        server.close()


# -- random conversations keep the transcripts and problems consistent ------------------------


class _Peer:
    def __init__(self, client: TestClient, closed: Gate) -> None:
        self.client = client
        self.closed = closed
        self.sent = b""
        self.pongs = 0
        self.derailed = False
        self.open = True


class ScriptedServerMachine(RuleBasedStateMachine):
    """Clients connect, ping (whole or split), go off script or close, in any order; the
    server's transcripts and problems must say exactly what happened."""

    def __init__(self) -> None:
        super().__init__()
        self.server = MockServer.start(wait_timeout=WAIT)
        self.server.expect(b"PING\n", times=None, ordered=False).respond(b"PONG\n")
        self.accepted = threading.Semaphore(0)
        self.server.on_connect(lambda client: self.accepted.release())
        self.peers: list[_Peer] = []

    def _live(self) -> list[_Peer]:
        return [peer for peer in self.peers if peer.open]

    @precondition(lambda self: len(self._live()) < 3)
    @rule()
    def connect(self) -> None:
        client = TestClient.open(*self.server.address, wait_timeout=WAIT)
        closed = Gate()
        client.on_disconnect(lambda reason: closed.open())
        self.peers.append(_Peer(client, closed))
        assert self.accepted.acquire(timeout=WAIT)

    @precondition(lambda self: bool(self._live()))
    @rule(data=st.data(), cut=st.integers(0, 5))
    def ping(self, data: st.DataObject, cut: int) -> None:
        peer = data.draw(st.sampled_from(self._live()))
        message = b"PING\n"
        for piece in (message[:cut], message[cut:]):
            if piece:
                peer.client.write(piece)
        assert peer.client.expect(b"\n") == b"PONG\n"
        peer.sent += message
        peer.pongs += 1

    @precondition(lambda self: bool(self._live()))
    @rule(data=st.data())
    def go_off_script(self, data: st.DataObject) -> None:
        peer = data.draw(st.sampled_from(self._live()))
        peer.client.write(b"BAD\n")
        assert peer.closed.wait(WAIT)  # off_script "close": the server ends it at once
        peer.sent += b"BAD\n"
        peer.derailed, peer.open = True, False
        peer.client.close()

    @precondition(lambda self: bool(self._live()))
    @rule(data=st.data())
    def close(self, data: st.DataObject) -> None:
        peer = data.draw(st.sampled_from(self._live()))
        peer.client.close()
        peer.open = False

    @invariant()
    def one_transcript_per_connection(self) -> None:
        assert len(self.server.transcripts) == len(self.peers)

    def teardown(self) -> None:
        for peer in self.peers:
            peer.client.close()
        self.server.close()
        transcripts = self.server.transcripts
        assert [t.received() for t in transcripts] == [peer.sent for peer in self.peers]
        assert [t.sent() for t in transcripts] == [b"PONG\n" * peer.pongs for peer in self.peers]
        problems = self.server.problems()
        derailed = [n for n, peer in enumerate(self.peers, 1) if peer.derailed]
        assert len(problems) == len(derailed)
        for line, number in zip(problems, derailed):
            assert line.startswith(f"connection {number}: unexpected data"), line


TestScriptedServer = ScriptedServerMachine.TestCase
TestScriptedServer.settings = settings(max_examples=12, stateful_step_count=8, deadline=None)
