"""The hs.socket TCP API: servers, info(), Unix sockets, bad input, lifetime, threads."""

from __future__ import annotations

import gc
import logging
import os
import re
import socket
import stat
import struct
import sys
import threading
import warnings
from pathlib import Path
from typing import Any

import pytest

import pytest_hsocket as hsocket
from pytest_hsocket._loop.hub import get_loop

from .conftest import WAIT, Inbox, Signal, _live_greenlets, port_of

INFO_KEYS = {
    "connectedAddress", "connectedHost", "connectedPort", "connectedURL", "connections",
    "isConnected", "isDisconnected", "isIPv4", "isIPv4Enabled", "isIPv4PreferredOverIPv6",
    "isIPv6", "isIPv6Enabled", "isSecure", "localAddress", "localHost", "localPort", "timeout",
    "unixSocketPath", "userData",
}  # fmt: skip


def _has_ipv6() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


def test_server_fans_reads_and_writes_out_to_every_client() -> None:
    inbox = Inbox()
    server = hsocket.server(0, inbox)
    accepted = Signal()
    server.on_connect(accepted)
    clients = [socket.create_connection(("127.0.0.1", port_of(server)), WAIT) for _ in range(3)]
    accepted.wait(3)
    assert server.connections() == 3
    assert server.connected()
    server.read(b"\n", 4)
    for i, client in enumerate(clients):
        client.sendall(b"hi %d\n" % i)
    items = inbox.wait_for(3)
    assert sorted(items) == [(b"hi 0\n", 4), (b"hi 1\n", 4), (b"hi 2\n", 4)]
    written = Signal()
    server.write(b"all\n", 8, written)
    assert written.wait() == [(8,)]
    for client in clients:
        client.settimeout(WAIT)
        assert client.recv(10) == b"all\n"
    server.disconnect()
    for client in clients:
        assert client.recv(10) == b""
        client.close()
    assert server.connections() == 0
    assert not server.connected()


def test_server_callback_can_answer_one_client_alone() -> None:
    def answer(data: bytes, tag: int, client: hsocket.Socket) -> None:
        client.write(b"you said " + data)

    server = hsocket.server(0, answer)
    server.on_connect(lambda client: client.read(b"\n"))
    one = socket.create_connection(("127.0.0.1", port_of(server)), WAIT)
    two = socket.create_connection(("127.0.0.1", port_of(server)), WAIT)
    one.sendall(b"one\n")
    assert one.recv(100) == b"you said one\n"
    two.sendall(b"two\n")
    assert two.recv(100) == b"you said two\n"
    one.close()
    two.close()
    server.disconnect()


def test_info_of_a_connected_client_has_every_key(echo_server: hsocket.Socket) -> None:
    connected = Signal()
    client = hsocket.new(Inbox()).connect("127.0.0.1", port_of(echo_server), connected)
    assert client is not None
    connected.wait()
    info = client.info()
    assert set(info) == INFO_KEYS
    assert info["connectedHost"] == "127.0.0.1"
    assert info["connectedPort"] == port_of(echo_server)
    assert info["isConnected"] is True
    assert info["isDisconnected"] is False
    assert info["isIPv4"] is True
    assert info["isIPv6"] is False
    assert info["userData"] == "DEFAULT"
    assert info["connections"] == 1
    peer = hsocket.parse_address(info["connectedAddress"])  # type: ignore[arg-type]
    local = hsocket.parse_address(info["localAddress"])  # type: ignore[arg-type]
    assert peer == {
        "host": "127.0.0.1",
        "port": port_of(echo_server),
        "addressFamily": socket.AF_INET,
    }
    assert local is not None
    assert local["port"] == info["localPort"]
    assert str(client) == f"hs.socket: 127.0.0.1:{port_of(echo_server)}"
    client.disconnect()
    after = client.info()
    assert after["isDisconnected"] is True
    assert after["userData"] == ""
    assert after["connectedAddress"] == ""
    assert None not in after.values()


def test_info_of_a_server() -> None:
    server = hsocket.server(0)
    info = server.info()
    assert set(info) == INFO_KEYS
    assert info["userData"] == "SERVER"
    assert info["localHost"] == "127.0.0.1"
    assert info["connectedHost"] == ""
    assert info["connectedPort"] == 0
    assert info["isConnected"] is False
    assert info["isDisconnected"] is False
    assert str(server) == f"hs.socket(server): 127.0.0.1:{info['localPort']}"
    server.disconnect()
    assert server.info()["isDisconnected"] is True


@pytest.mark.skipif(not _has_ipv6(), reason="this machine has no IPv6 loopback")
def test_ipv6_server_and_client(inbox: Inbox) -> None:
    server = hsocket.server(0, lambda d, t, c: c.write(d), host="::1")
    server.on_connect(lambda c: c.read(b"\n"))
    port = port_of(server)
    assert server.info()["isIPv6"] is True
    connected = Signal()
    client = hsocket.new(inbox).connect("::1", port, connected)
    assert client is not None
    connected.wait()
    info = client.info()
    assert info["connectedHost"] == "::1"
    assert hsocket.parse_address(info["connectedAddress"]) == {  # type: ignore[arg-type]
        "host": "::1",
        "port": port,
        "addressFamily": socket.AF_INET6,
    }
    assert str(client) == f"hs.socket: [::1]:{port}"
    client.write(b"six\n").read(b"\n", 6)
    assert inbox.wait_for(1) == [(b"six\n", 6)]
    client.disconnect()
    server.disconnect()


def test_connect_by_host_name(echo_server: hsocket.Socket, inbox: Inbox) -> None:
    client = hsocket.new(inbox).connect("localhost", port_of(echo_server))
    assert client is not None
    client.write(b"named\n").read(b"\n", 1)
    assert inbox.wait_for(1) == [(b"named\n", 1)]
    client.disconnect()


def test_disconnect_and_reuse(echo_server: hsocket.Socket, inbox: Inbox) -> None:
    sock = hsocket.new(inbox)
    for round_ in range(3):
        assert sock.connect("127.0.0.1", port_of(echo_server)) is sock
        sock.write(b"round %d\n" % round_).read(b"\n", round_)
        inbox.wait_for(round_ + 1)
        sock.disconnect()
        assert not sock.connected()
    assert [tag for _, tag in inbox.items] == [0, 1, 2]
    assert sock.listen(0) is sock
    assert sock.info()["userData"] == "SERVER"
    sock.disconnect()


# -- Unix sockets ---------------------------------------------------------------------------


def test_unix_socket_with_spaces_in_the_path(tmp_path: Path, inbox: Inbox) -> None:
    path = str(tmp_path / "my sock")
    server = hsocket.server(path, lambda d, t, c: c.write(d.upper()))
    server.on_connect(lambda c: c.read(b"\n"))
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert server.info()["unixSocketPath"] == path
    assert str(server) == f"hs.socket(server): {path}"
    connected = Signal()
    client = hsocket.new(inbox).connect(path, connected)
    assert client is not None
    connected.wait()
    assert client.info()["connectedURL"] == f"file://{path}"
    client.write(b"quiet\n").read(b"\n", 2)
    assert inbox.wait_for(1) == [(b"QUIET\n", 2)]
    client.disconnect()
    server.disconnect()
    assert not os.path.exists(path)


def test_stale_unix_socket_file_is_replaced(tmp_path: Path) -> None:
    path = str(tmp_path / "stale.sock")
    dead = socket.socket(socket.AF_UNIX)
    dead.bind(path)
    dead.close()
    assert os.path.exists(path)
    server = hsocket.server(path)
    assert server.info()["userData"] == "SERVER"
    server.disconnect()


def test_unix_path_in_use_or_not_a_socket_is_refused(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = str(tmp_path / "busy.sock")
    first = hsocket.server(path)
    assert hsocket.new().listen(path) is None
    plain = tmp_path / "plain"
    plain.write_text("keep me")
    assert hsocket.new().listen(str(plain)) is None
    assert plain.read_text() == "keep me"
    first.disconnect()
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert errors[0] == "Unable to bind Unix domain path: Address already in use"
    assert errors[1].startswith("Unable to bind Unix domain path: a file that is not a socket")


def test_unix_path_in_a_missing_folder(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = str(tmp_path / "nope" / "s.sock")
    assert hsocket.new().listen(path) is None
    assert "Unable to bind Unix domain path: No such file or directory" in caplog.messages
    gone = Signal()
    client = hsocket.new().on_disconnect(gone).connect(path)
    assert client is not None
    assert gone.wait() == [("No such file or directory",)]
    assert not client.connected()


def test_unix_path_too_long_is_a_value_error(tmp_path: Path) -> None:
    path = str(tmp_path / ("x" * 120))
    with pytest.raises(ValueError, match="path is too long for a Unix socket"):
        hsocket.server(path)
    with pytest.raises(ValueError, match="path is too long for a Unix socket"):
        hsocket.new().connect(path)


# -- bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        pytest.param(lambda: hsocket.server(70000), ValueError, "listen() port must be in 0-65535, not 70000", id="port-high"),
        pytest.param(lambda: hsocket.server(-1), ValueError, "listen() port must be in 0-65535, not -1", id="port-negative"),
        pytest.param(lambda: hsocket.server(8.5), TypeError, "listen() port must be an int, not 8.5", id="port-float"),
        pytest.param(lambda: hsocket.server(None), TypeError, "listen() port must be an int, not None", id="port-none"),
        pytest.param(lambda: hsocket.new().connect("h", 0), ValueError, "connect() port must be in 1-65535, not 0", id="connect-port-0"),
        pytest.param(lambda: hsocket.new().connect("h", "80"), TypeError, "connect() port must be an int, not '80'", id="connect-port-str"),
        pytest.param(lambda: hsocket.new().connect(None, 80), TypeError, "connect() host must be a str, not None", id="connect-host-none"),
        pytest.param(lambda: hsocket.new(5), TypeError, "callback must be callable or None, not 5", id="callback-int"),
        pytest.param(lambda: hsocket.new().set_timeout("1"), TypeError, "timeout must be a number of seconds, not '1'", id="timeout-str"),
        pytest.param(lambda: hsocket.new(print).read(-1), ValueError, "read() length must not be negative, not -1", id="read-negative"),
        pytest.param(lambda: hsocket.new(print).read(b""), ValueError, "read() delimiter must not be empty", id="read-empty"),
        pytest.param(lambda: hsocket.new(print).read(b"\n", "x"), TypeError, "read() tag must be an int, not 'x'", id="read-tag"),
        pytest.param(lambda: hsocket.new().write(5), TypeError, "write() message must be bytes or str, not 5", id="write-int"),
        pytest.param(lambda: hsocket.new().write(None), TypeError, "write() message must be bytes or str, not None", id="write-none"),
        pytest.param(lambda: hsocket.new().write(b"x", 1.5), TypeError, "write() tag must be an int, not 1.5", id="write-tag"),
        pytest.param(lambda: hsocket.new().write(b"x", 1, 7), TypeError, "write() callback must be callable or None, not 7", id="write-fn"),
        pytest.param(lambda: hsocket.set_log_level("loud"), ValueError, "set_log_level() level must be one of", id="level-name"),
        pytest.param(lambda: hsocket.set_log_level(None), TypeError, "set_log_level() level must be an int or a name", id="level-none"),
    ],
)  # fmt: skip
def test_bad_arguments_raise_clear_errors(call: Any, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=re.escape(message)):
        call()


def test_soft_failures_return_none_and_log_at_error(
    echo_server: hsocket.Socket, caplog: pytest.LogCaptureFixture
) -> None:
    connected = Signal()
    client = hsocket.new().connect("127.0.0.1", port_of(echo_server), connected)
    assert client is not None
    connected.wait()
    checks = [
        (client.read(b"\n"), "No callback defined!"),
        (
            client.connect("127.0.0.1", 1),
            "Unable to connect to host/port: Attempting to connect while connected or "
            "accepting connections. Disconnect first.",
        ),
        (
            client.listen(0),
            "Unable to bind port: Attempting to accept while connected or accepting "
            "connections. Disconnect first.",
        ),
        (
            echo_server.listen(0),
            "Unable to bind port: Attempting to accept while connected or accepting "
            "connections. Disconnect first.",
        ),
        (
            hsocket.new(print).read(b"\n"),
            "Unable to read: the socket is not connected; call connect() first",
        ),
        (
            hsocket.new().write(b"x"),
            "Unable to write: the socket is not connected; call connect() first",
        ),
        (
            hsocket.new().connect("", 80),
            'Unable to connect to host/port: Invalid host parameter (nil or ""). '
            "Should be a domain name or IP address string.",
        ),
    ]
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    for (result, message), logged in zip(checks, errors):
        assert result is None
        assert logged == message
    assert len(errors) == len(checks)
    client.disconnect()


def test_port_in_use_logs_and_returns_a_socket_that_does_not_listen(
    caplog: pytest.LogCaptureFixture,
) -> None:
    first = hsocket.server(0)
    second = hsocket.server(port_of(first))
    assert second.info()["userData"] == ""
    assert not second.is_server
    assert "Unable to bind port: Address already in use" in caplog.messages
    first.disconnect()


def test_connect_to_a_closed_port_fails_without_hanging(caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    gone = Signal()
    connected = Signal()
    client = hsocket.new().on_disconnect(gone).connect("127.0.0.1", port, connected)
    assert client is not None
    assert gone.wait() == [("Connection refused",)]
    assert not client.connected()
    assert connected.calls == []
    assert "TCP socket disconnected: Connection refused" in caplog.messages


def test_unresolvable_host_fails_with_the_resolver_reason() -> None:
    gone = Signal()
    client = hsocket.new().on_disconnect(gone).connect("no-such-host.invalid", 80)
    assert client is not None
    [(reason,)] = gone.wait(timeout=30)
    assert reason
    assert not client.connected()


# -- callbacks, threads, lifetime -----------------------------------------------------------


def test_callback_exception_is_logged_and_raised_at_close(
    echo_server: hsocket.Socket, caplog: pytest.LogCaptureFixture
) -> None:
    boom = Signal()

    def broken(data: bytes, tag: int) -> None:
        boom()
        raise RuntimeError("bad parser")

    client = hsocket.new(broken).connect("127.0.0.1", port_of(echo_server))
    assert client is not None
    client.write(b"x\n").read(b"\n", 3)
    boom.wait()
    client.disconnect()
    with pytest.raises(
        hsocket.CallbackError, match=r"hs\.socket:read callback raised RuntimeError: bad parser"
    ) as info:
        client.check()
    assert isinstance(info.value.__cause__, RuntimeError)
    record = next(r for r in caplog.records if r.getMessage().startswith("hs.socket:read callback"))
    assert record.exc_info is not None
    assert record.levelno == logging.ERROR


def test_context_manager_closes_and_reraises_callback_errors(echo_server: hsocket.Socket) -> None:
    boom = Signal()

    def broken(data: bytes, tag: int) -> None:
        boom()
        raise ValueError("nope")

    with pytest.raises(hsocket.CallbackError):  # noqa: PT012
        with hsocket.new(broken) as client:
            client.connect("127.0.0.1", port_of(echo_server))
            client.write(b"x\n").read(b"\n")
            boom.wait()
    assert not client.connected()


def test_calls_from_eight_threads_at_once(echo_server: hsocket.Socket) -> None:
    inbox = Inbox()
    client = hsocket.new(inbox).connect("127.0.0.1", port_of(echo_server))
    assert client is not None
    start = threading.Barrier(8)

    def burst(n: int) -> None:
        start.wait()
        for i in range(50):
            client.write(b"t%d-%d\n" % (n, i))
            client.read(b"\n", n)
            client.info()
            client.connected()

    threads = [threading.Thread(target=burst, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
    items = inbox.wait_for(400)
    assert sorted(data for data, _ in items) == sorted(
        b"t%d-%d\n" % (n, i) for n in range(8) for i in range(50)
    )
    client.disconnect()


def test_unclosed_socket_warns_when_collected(echo_server: hsocket.Socket) -> None:
    connected = Signal()
    client = hsocket.new().connect("127.0.0.1", port_of(echo_server), connected)
    connected.wait()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        del client
        gc.collect()
    assert any(issubclass(w.category, ResourceWarning) for w in caught)


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc to count descriptors")
def test_200_server_cycles_leave_nothing_behind() -> None:
    # Counted as the session's leak check counts them: a hub or a resolver worker that another
    # test's DNS lookup started is not this test's.
    live_greenlets = _live_greenlets

    def cycle() -> None:
        inbox = Inbox()
        server = hsocket.server(0, lambda d, t, c: c.write(d))
        server.on_connect(lambda c: c.read(b"\n"))
        client = hsocket.new(inbox).connect("127.0.0.1", port_of(server))
        assert client is not None
        client.write(b"x\n").read(b"\n")
        inbox.wait_for(1)
        client.disconnect()
        server.disconnect()

    cycle()
    gc.collect()
    fds, threads, greenlets = _open_fds(), threading.active_count(), live_greenlets()
    for _ in range(200):
        cycle()
    # Greenlets told to end (a reader woken by the close) end on the loop's next turn.
    get_loop().run_sync(lambda: None)
    gc.collect()
    assert _open_fds() == fds
    assert threading.active_count() == threads
    assert live_greenlets() <= greenlets


def test_set_log_level_sets_only_our_logger() -> None:
    root = logging.getLogger().level
    try:
        hsocket.set_log_level("debug")
        assert logging.getLogger("pytest_hsocket").level == logging.DEBUG
        hsocket.setLogLevel(logging.ERROR)
        assert logging.getLogger("pytest_hsocket").level == logging.ERROR
        assert logging.getLogger().level == root
    finally:
        logging.getLogger("pytest_hsocket").setLevel(logging.NOTSET)


def test_works_in_a_gevent_monkey_patched_process(tmp_path: Path) -> None:
    import subprocess

    script = tmp_path / "patched.py"
    script.write_text(
        "from gevent import monkey; monkey.patch_all()\n"
        "import socket, threading\n"
        "import pytest_hsocket as hsocket\n"
        "done = threading.Event()\n"
        "got = []\n"
        "server = hsocket.server(0, lambda d, t, c: c.write(d.upper()))\n"
        "server.on_connect(lambda c: c.read(b'\\n'))\n"
        "def cb(data, tag):\n"
        "    got.append((data, tag)); done.set()\n"
        "client = hsocket.new(cb).connect('127.0.0.1', server.info()['localPort'])\n"
        "client.write(b'patched\\n').read(b'\\n', 4)\n"
        "plain = socket.create_connection(('127.0.0.1', server.info()['localPort']))\n"
        "plain.sendall(b'green\\n'); reply = plain.recv(100); plain.close()\n"
        "assert done.wait(5), got\n"
        "client.disconnect(); server.disconnect()\n"
        "print(got, reply)\n"
    )
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[(b'PATCHED\\n', 4)] b'GREEN\\n'"
    assert "Exception ignored" not in result.stderr


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        pytest.param(lambda: hsocket.new().connect("a\x00b", 80), ValueError, "connect() host must not contain a NUL byte", id="nul-host"),
        pytest.param(lambda: hsocket.new().connect("\udcff", 80), ValueError, "connect() host must be valid text", id="surrogate-host"),
        pytest.param(lambda: hsocket.server(0, host=5), TypeError, "listen() host must be a str, not 5", id="listen-host"),
        pytest.param(lambda: hsocket.server("/tmp/a\x00b"), ValueError, "listen() path must not contain a NUL byte", id="nul-path"),
        pytest.param(lambda: hsocket.new(print).read("\udcff"), ValueError, "read() delimiter is not valid text", id="surrogate-delimiter"),
        pytest.param(lambda: hsocket.new().write("\udcff"), ValueError, "write() message is not valid text", id="surrogate-message"),
        pytest.param(lambda: hsocket.new().on_connect(None), TypeError, "on_connect() hook must be callable, not None", id="hook-none"),
        pytest.param(lambda: hsocket.new().on_disconnect(3), TypeError, "on_disconnect() hook must be callable, not 3", id="hook-int"),
        pytest.param(lambda: hsocket.new().set_timeout(float("nan")), ValueError, "set_timeout() timeout must be a number of seconds, not nan", id="timeout-nan"),
    ],
)  # fmt: skip
def test_more_bad_arguments(call: Any, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=re.escape(message)):
        call()


def test_broadcast_callback_runs_even_if_a_client_drops() -> None:
    server = hsocket.server(0)
    accepted = Signal()
    server.on_connect(accepted)
    stays = socket.create_connection(("127.0.0.1", port_of(server)), WAIT)
    leaves = socket.create_connection(("127.0.0.1", port_of(server)), WAIT)
    accepted.wait(2)
    leaves.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    leaves.close()
    written = Signal()
    # Large enough that the write to the dropped client is still queued when it goes.
    server.write(b"x" * (16 * 1024 * 1024), 3, written)
    stays.settimeout(WAIT)
    received = 0
    while received < 16 * 1024 * 1024:
        received += len(stays.recv(1 << 20))
    assert written.wait() == [(3,)]
    stays.close()
    server.disconnect()


def test_an_accepted_connection_reports_disconnected_after_it_closes() -> None:
    server = hsocket.server(0)
    accepted = Signal()
    server.on_connect(accepted)
    peer = socket.create_connection(("127.0.0.1", port_of(server)), WAIT)
    [(client,)] = accepted.wait()
    assert client.info()["userData"] == "CLIENT"
    gone = Signal()
    client.on_disconnect(gone)
    peer.close()
    gone.wait()
    assert client.info()["userData"] == ""
    assert client.info()["isDisconnected"] is True
    server.disconnect()
