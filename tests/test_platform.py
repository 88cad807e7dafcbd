"""The platform differences in ``pytest_hsocket._core.platform``: real where this OS allows, and
simulated (its facts monkeypatched) for the platforms CI here does not run."""

from __future__ import annotations

import logging
import socket

import pytest

import pytest_hsocket as hsocket
from pytest_hsocket._core import platform as _platform
from pytest_hsocket._io.listener import bind_listener

PLATFORMS = ["linux", "darwin", "win32", "freebsd14", "cygwin"]


@pytest.fixture
def no_af_unix(monkeypatch: pytest.MonkeyPatch) -> None:
    """A Python without Unix domain sockets, as some Windows builds are."""
    monkeypatch.delattr(socket, "AF_UNIX", raising=False)
    monkeypatch.setattr(_platform, "AF_UNIX", None)
    monkeypatch.setattr(_platform, "PLATFORM", "win32")


# -- AF_UNIX ----------------------------------------------------------------------------------


def test_unix_server_fixture_skips_with_the_reason_without_af_unix(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeconftest(
        """
        import socket
        import pytest
        from pytest_hsocket._core import platform as _platform

        @pytest.fixture(autouse=True)
        def no_af_unix(monkeypatch):
            monkeypatch.delattr(socket, "AF_UNIX", raising=False)
            monkeypatch.setattr(_platform, "AF_UNIX", None)
            monkeypatch.setattr(_platform, "PLATFORM", "win32")
        """
    )
    pytester.makepyfile(
        """
        def test_unix(hsock_unix_server):
            raise AssertionError("not reached")

        def test_factory(hsock_server_factory):
            hsock_server_factory(unix=True)
            raise AssertionError("not reached")

        def test_tcp_still_works(hsock_server, hsock_client):
            hsock_server.expect(b"PING\\r\\n").respond(b"+PONG\\r\\n")
            client = hsock_client(hsock_server)
            client.write(b"PING\\r\\n")
            assert client.expect(b"\\r\\n") == b"+PONG\\r\\n"
        """
    )
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-rs")
    result.assert_outcomes(passed=1, skipped=2)
    result.stdout.fnmatch_lines(["*Unix domain sockets (socket.AF_UNIX) are not available*win32*"])


def test_connect_to_a_path_without_af_unix_logs_the_reason_and_returns_none(
    no_af_unix: None, caplog: pytest.LogCaptureFixture
) -> None:
    with hsocket.new(lambda data, tag: None) as sock:
        with caplog.at_level(logging.ERROR, logger="pytest_hsocket"):
            assert sock.connect("/tmp/hsock-no-such.sock") is None
    assert "Unable to connect to Unix domain socket: Unix domain sockets" in caplog.text


def test_server_on_a_path_without_af_unix_logs_the_reason(
    no_af_unix: None, caplog: pytest.LogCaptureFixture, tmp_path: object
) -> None:
    with caplog.at_level(logging.ERROR, logger="pytest_hsocket"):
        server = hsocket.server(f"{tmp_path}/s.sock")
    with server:
        assert server.connections() == 0
        assert not server.info()["isConnected"]
    assert "Unable to bind Unix domain path: Unix domain sockets" in caplog.text


def test_unix_family_raises_an_oserror_with_the_reason(no_af_unix: None) -> None:
    assert not _platform.has_unix_sockets()
    assert not _platform.is_unix_family(1)
    with pytest.raises(OSError, match=r"socket\.AF_UNIX\) are not available"):
        _platform.unix_family()


# -- TCP listeners ----------------------------------------------------------------------------


def test_windows_listeners_ask_for_an_exclusive_port_not_reuseaddr(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_platform, "PLATFORM", "win32")
    monkeypatch.setattr(_platform, "SO_EXCLUSIVEADDRUSE", -5)  # ~SO_REUSEADDR in winsock2.h
    assert _platform.tcp_listener_options() == [(socket.SOL_SOCKET, -5, 1)]


def test_posix_listeners_set_reuseaddr(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("linux", "darwin"):
        monkeypatch.setattr(_platform, "PLATFORM", name)
        assert _platform.tcp_listener_options() == [(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)]


@pytest.mark.parametrize("host", ["127.0.0.1", pytest.param("::1", id="ipv6")])
def test_a_second_listener_cannot_take_a_port_in_use(host: str) -> None:
    if host == "::1" and not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    try:
        first = bind_listener(host, 0, "")
    except OSError as exc:
        pytest.skip(f"cannot bind {host}: {exc}")
    with first:
        port = first.getsockname()[1]
        with pytest.raises(OSError):
            bind_listener(host, port, "").close()


def test_server_on_a_port_in_use_logs_unable_to_bind(caplog: pytest.LogCaptureFixture) -> None:
    with hsocket.server(0) as first:
        port = first.info()["localPort"]
        with caplog.at_level(logging.ERROR, logger="pytest_hsocket"):
            second = hsocket.server(port)
        with second:
            assert not second.info()["isConnected"]
    assert "Unable to bind port" in caplog.text


# -- UDP port reuse ---------------------------------------------------------------------------


def test_udp_reuse_port_without_so_reuseport_logs_and_returns_none(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(_platform, "SO_REUSEPORT", None)
    monkeypatch.setattr(_platform, "PLATFORM", "linux")
    with hsocket.udp.new() as sock:
        with caplog.at_level(logging.ERROR, logger="pytest_hsocket"):
            assert sock.reuse_port(True) is None
    assert "Unable to enable port reuse: SO_REUSEPORT is not available" in caplog.text


def test_udp_reuse_port_on_windows_uses_reuseaddr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_platform, "SO_REUSEPORT", None)
    monkeypatch.setattr(_platform, "PLATFORM", "win32")
    assert _platform.udp_reuse_port_option() == socket.SO_REUSEADDR


@pytest.mark.skipif(not hasattr(socket, "SO_REUSEPORT"), reason="no SO_REUSEPORT on this OS")
def test_two_udp_sockets_with_reuse_port_share_a_port() -> None:
    with hsocket.udp.new() as first, hsocket.udp.new() as second:
        assert first.reuse_port(True) is first
        assert first.listen(0) is first
        port = first.info()["localPort"]
        assert second.reuse_port(True) is second
        assert second.listen(port) is second
        assert second.info()["localPort"] == port


# -- bytes not yet delivered ------------------------------------------------------------------


@pytest.mark.skipif(not _platform.PLATFORM.startswith("linux"), reason="TIOCOUTQ is Linux's")
def test_unsent_bytes_counts_what_the_peer_has_not_taken() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    with listener, socket.create_connection(listener.getsockname()) as sender:
        peer, _ = listener.accept()
        with peer:
            assert _platform.unsent_bytes(sender) == 0
            peer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sender.setblocking(False)
            sent = 0
            try:
                while sent < 8 * 1024 * 1024:
                    sent += sender.send(b"x" * 65536)
            except BlockingIOError:
                pass
            assert _platform.unsent_bytes(sender) > 0


@pytest.mark.parametrize("name", ["darwin", "win32"])
def test_unsent_bytes_elsewhere_never_raises(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    # On Linux, the simulated macOS option is refused (ENOPROTOOPT): 0, as "unknown".
    monkeypatch.setattr(_platform, "PLATFORM", name)
    a, b = socket.socketpair()
    with a, b:
        assert _platform.unsent_bytes(a) >= 0


# -- the facts, for every platform and with or without AF_UNIX ---------------------------------


@pytest.mark.parametrize("has_unix", [True, False], ids=["af_unix", "no_af_unix"])
@pytest.mark.parametrize("name", PLATFORMS)
def test_every_platform_gets_a_coherent_set_of_facts(
    monkeypatch: pytest.MonkeyPatch, name: str, has_unix: bool
) -> None:
    monkeypatch.setattr(_platform, "PLATFORM", name)
    monkeypatch.setattr(_platform, "SO_EXCLUSIVEADDRUSE", -5 if name == "win32" else None)
    if not has_unix:
        monkeypatch.setattr(_platform, "AF_UNIX", None)
    options = [option for _, option, _ in _platform.tcp_listener_options()]
    # Windows never gets SO_REUSEADDR on a listener: it would share the port.
    assert (socket.SO_REUSEADDR in options) == (name != "win32")
    assert _platform.unix_path_max() in (104, 108)
    assert _platform.has_unix_sockets() == has_unix
    option = _platform.udp_reuse_port_option()
    assert option is None or option in (getattr(socket, "SO_REUSEPORT", None), socket.SO_REUSEADDR)
    if has_unix:
        assert _platform.is_unix_family(_platform.unix_family())
    else:
        with pytest.raises(OSError, match=name):
            _platform.unix_family()
