"""TCP reads, writes, timeouts and peer closes over real loopback sockets."""

from __future__ import annotations

import logging
import re
import socket
import threading

import pytest

import pytest_hsocket as hsocket
from pytest_hsocket._io.stream import HIGH_WATER

from .conftest import WAIT, Inbox, Signal, port_of


@pytest.fixture
def raw_pair() -> tuple[socket.socket, hsocket.Socket, Inbox]:
    """A plain blocking peer accepted from an hsocket client (the client under test)."""
    listener = socket.create_server(("127.0.0.1", 0))
    inbox = Inbox()
    connected = Signal()
    client = hsocket.new(inbox).connect("127.0.0.1", listener.getsockname()[1], connected)
    assert client is not None
    listener.settimeout(WAIT)
    peer, _ = listener.accept()
    listener.close()
    peer.settimeout(WAIT)
    connected.wait()
    yield peer, client, inbox
    client.disconnect()
    peer.close()
    client.check()


def test_ping_pong_through_a_server_callback_with_the_client(
    echo_server: hsocket.Socket, inbox: Inbox
) -> None:
    client = hsocket.new(inbox).connect("127.0.0.1", port_of(echo_server))
    assert client is not None
    client.write(b"PING\n").read(b"\n", 7)
    assert inbox.wait_for(1) == [(b"PING\n", 7)]
    client.disconnect()


def test_read_n_delivers_exactly_n_bytes(
    raw_pair: tuple[socket.socket, hsocket.Socket, Inbox],
) -> None:
    peer, client, inbox = raw_pair
    client.read(4, 1).read(2, 2)
    peer.sendall(b"abc")
    peer.sendall(b"defgh")
    assert inbox.wait_for(2) == [(b"abcd", 1), (b"ef", 2)]


def test_data_that_arrived_before_the_read_is_served_from_the_buffer(
    raw_pair: tuple[socket.socket, hsocket.Socket, Inbox],
) -> None:
    peer, client, inbox = raw_pair
    peer.sendall(b"EARLY\r\nLATE")
    seen = Signal()
    client.on_disconnect(seen)
    # A 1-byte read proves the early bytes are buffered before the delimiter read is queued.
    client.read(1, 0)
    assert inbox.wait_for(1) == [(b"E", 0)]
    client.read("\r\n", 1).read(4, 2)
    assert inbox.wait_for(3)[1:] == [(b"ARLY\r\n", 1), (b"LATE", 2)]


def test_regex_delimiter_over_the_wire(
    raw_pair: tuple[socket.socket, hsocket.Socket, Inbox],
) -> None:
    peer, client, inbox = raw_pair
    client.read(re.compile(rb"END\d"), 3)
    peer.sendall(b"payload EN")
    peer.sendall(b"D7 more")
    assert inbox.wait_for(1) == [(b"payload END7", 3)]


def test_str_write_is_utf8_and_fn_gets_the_tag(
    raw_pair: tuple[socket.socket, hsocket.Socket, Inbox],
) -> None:
    peer, client, _ = raw_pair
    written = Signal()
    client.write("héllo\n", 42, written)
    assert written.wait() == [(42,)]
    assert peer.recv(100) == "héllo\n".encode()


def test_write_callbacks_are_per_write_and_empty_write_completes(
    raw_pair: tuple[socket.socket, hsocket.Socket, Inbox],
) -> None:
    _, client, _ = raw_pair
    written = Signal()
    client.write(b"one", 1, written).write(b"", 2, written).write(b"three", written)
    assert written.wait(3) == [(1,), (2,), (-1,)]


def test_a_256_mib_write_arrives_whole(
    raw_pair: tuple[socket.socket, hsocket.Socket, Inbox],
) -> None:
    peer, client, _ = raw_pair
    size = 256 * 1024 * 1024
    payload = bytes(range(256)) * (size // 256)
    written = Signal()
    client.write(payload, 5, written)
    received = bytearray()
    view = memoryview(bytearray(1 << 20))
    while len(received) < size:
        n = peer.recv_into(view)
        assert n, "peer closed early"
        received += view[:n]
    assert written.wait(timeout=30) == [(5,)]
    assert len(received) == size
    assert received == payload


def test_a_256_mib_read_arrives_whole(
    raw_pair: tuple[socket.socket, hsocket.Socket, Inbox],
) -> None:
    peer, client, inbox = raw_pair
    size = 256 * 1024 * 1024
    payload = bytes(range(256)) * (size // 256)
    client.read(size, 9)
    sender = threading.Thread(target=peer.sendall, args=(payload,))
    sender.start()
    [(data, tag)] = inbox.wait_for(1, timeout=60)
    sender.join()
    assert tag == 9
    assert data == payload


def test_reads_queued_in_the_callback_run_later_in_order(
    raw_pair: tuple[socket.socket, hsocket.Socket, Inbox],
) -> None:
    peer, client, _ = raw_pair
    order: list[str] = []
    done = threading.Event()

    def on_read(data: bytes, tag: int) -> None:
        order.append(f"start {tag}")
        if tag == 1:
            # The data for tag 2 is buffered already: its callback must still run later.
            client.read(b"\n", 2)
        order.append(f"end {tag}")
        if tag == 2:
            done.set()

    client.set_callback(on_read)
    peer.sendall(b"a\nb\n")
    client.read(b"\n", 1)
    assert done.wait(WAIT)
    assert order == ["start 1", "end 1", "start 2", "end 2"]


def test_peer_close_keeps_complete_data_readable(
    raw_pair: tuple[socket.socket, hsocket.Socket, Inbox],
) -> None:
    peer, client, inbox = raw_pair
    gone = Signal()
    client.on_disconnect(gone)
    client.read(2, 0)
    peer.sendall(b"..LINE1\nLINE2\n")
    inbox.wait_for(1)
    peer.close()
    # The peer is gone, but complete messages stay deliverable, as in the original.
    assert client.connected()
    client.read(b"\n", 1).read(b"\n", 2)
    assert inbox.wait_for(3)[1:] == [(b"LINE1\n", 1), (b"LINE2\n", 2)]
    assert gone.wait() == [("Socket closed by remote peer",)]
    assert not client.connected()
    assert client.unread == b""


def test_peer_close_mid_read_logs_the_unread_bytes(
    raw_pair: tuple[socket.socket, hsocket.Socket, Inbox], caplog: pytest.LogCaptureFixture
) -> None:
    peer, client, inbox = raw_pair
    caplog.set_level(logging.DEBUG, logger="pytest_hsocket")
    gone = Signal()
    client.on_disconnect(gone)
    client.read(b"\r\n", 7)
    peer.sendall(b"+PO")
    peer.close()
    gone.wait()
    assert inbox.items == []
    assert client.last_disconnect_reason == "Socket closed by remote peer"
    assert client.unread == b"+PO"
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert (
        "TCP socket disconnected: Socket closed by remote peer "
        "(3 bytes unread: b'+PO', reading to b'\\r\\n', tag 7)"
    ) in messages


def test_peer_close_with_no_read_pending_is_noticed(
    raw_pair: tuple[socket.socket, hsocket.Socket, Inbox],
) -> None:
    peer, client, _ = raw_pair
    gone = Signal()
    client.on_disconnect(gone)
    peer.close()
    assert gone.wait() == [("Socket closed by remote peer",)]
    assert not client.connected()


def test_read_timeout_disconnects_with_the_original_reason(
    raw_pair: tuple[socket.socket, hsocket.Socket, Inbox], caplog: pytest.LogCaptureFixture
) -> None:
    _, client, inbox = raw_pair
    caplog.set_level(logging.DEBUG, logger="pytest_hsocket")
    gone = Signal()
    client.on_disconnect(gone)
    client.set_timeout(0.05).read(b"\n", 1)
    assert gone.wait() == [("Read operation timed out",)]
    assert inbox.items == []
    assert "TCP socket disconnected: Read operation timed out" in caplog.messages


def test_read_timeout_is_armed_per_read_when_it_becomes_current(
    raw_pair: tuple[socket.socket, hsocket.Socket, Inbox],
) -> None:
    peer, client, inbox = raw_pair
    gone = Signal()
    client.on_disconnect(gone)
    client.set_timeout(2.0).read(b"\n", 1).read(b"\n", 2)
    peer.sendall(b"first\n")
    inbox.wait_for(1)
    peer.sendall(b"second\n")
    assert inbox.wait_for(2)[1] == (b"second\n", 2)
    assert client.connected()
    assert gone.calls == []


def test_module_timeout_is_copied_at_creation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hsocket, "timeout", 3.5)
    sock = hsocket.new()
    monkeypatch.setattr(hsocket, "timeout", -1)
    assert sock.info()["timeout"] == 3.5
    assert hsocket.new().info()["timeout"] == -1


def test_write_timeout_disconnects(raw_pair: tuple[socket.socket, hsocket.Socket, Inbox]) -> None:
    _, client, _ = raw_pair
    gone = Signal()
    client.on_disconnect(gone)
    # The peer never reads: once both kernel buffers are full the write cannot finish.
    client.set_timeout(0.2).write(b"x" * (64 * 1024 * 1024))
    assert gone.wait(timeout=10) == [("Write operation timed out",)]


def test_reader_pauses_at_high_water_and_resumes_on_read(
    raw_pair: tuple[socket.socket, hsocket.Socket, Inbox],
) -> None:
    peer, client, inbox = raw_pair
    size = HIGH_WATER * 3
    sender = threading.Thread(target=peer.sendall, args=(b"z" * size,))
    sender.start()
    client.read(size, 1)
    [(data, _)] = inbox.wait_for(1, timeout=30)
    sender.join()
    assert len(data) == size


def test_a_reused_read_gets_its_own_timeout(
    raw_pair: tuple[socket.socket, hsocket.Socket, Inbox],
) -> None:
    peer, client, inbox = raw_pair
    newline = b"\n"
    gone = Signal()
    client.on_disconnect(gone)

    def again(data: bytes, tag: int) -> None:
        inbox(data, tag)
        client.read(newline, tag)  # the same delimiter object: the request is reused

    client.set_callback(again)
    client.set_timeout(0.3).read(newline, 4)
    peer.sendall(b"one\n")
    assert inbox.wait_for(1) == [(b"one\n", 4)]
    # The second read must time out on its own: its timer is armed when it becomes current.
    assert gone.wait() == [("Read operation timed out",)]
