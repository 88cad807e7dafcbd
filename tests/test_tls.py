"""TLS with real handshakes: trustme certificates, STARTTLS, mutual TLS, real peers."""

from __future__ import annotations

import logging
import re
import shutil
import smtplib
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

import pytest_hsocket as hsocket
from pytest_hsocket.testing import MockServer, TestClient, until

from .conftest import WAIT, Inbox, Signal, port_of

needs_openssl = pytest.mark.skipif(
    shutil.which("openssl") is None, reason="the openssl command line tool is not installed"
)


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def server_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost", "tls.example").configure_cert(context)
    return context


@pytest.fixture
def client_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


@pytest.fixture
def tls_echo(server_context: ssl.SSLContext) -> Iterator[hsocket.Socket]:
    """An hsocket server speaking TLS from the first byte, echoing lines."""

    def echo(data: bytes, tag: int, client: hsocket.Socket) -> None:
        client.write(data)
        client.read(b"\n", tag)

    server = hsocket.server(0, echo)
    server.start_tls(context=server_context)
    server.on_connect(lambda client: client.read(b"\n", 0))
    yield server
    server.disconnect()
    server.check()


def _connect_tls(
    server: hsocket.Socket, inbox: Inbox, host: str = "127.0.0.1", **tls: object
) -> tuple[hsocket.Socket, Signal]:
    gone = Signal()
    client = hsocket.new(inbox).on_disconnect(gone).connect(host, port_of(server))
    assert client is not None
    client.start_tls(**tls)  # type: ignore[arg-type]
    return client, gone


def test_client_and_server_tls_on_one_loop(
    tls_echo: hsocket.Socket, client_context: ssl.SSLContext
) -> None:
    inbox = Inbox()
    client, _gone = _connect_tls(tls_echo, inbox, context=client_context)
    client.write(b"over tls\n").read(b"\n", 5)
    assert inbox.wait_for(1) == [(b"over tls\n", 5)]
    assert client.info()["isSecure"] is True
    client.disconnect()
    assert client.info()["isSecure"] is False


def test_wrong_peer_name_fails_the_handshake(
    tls_echo: hsocket.Socket, client_context: ssl.SSLContext, caplog: pytest.LogCaptureFixture
) -> None:
    # The original's security note: a trusted certificate for another name must not pass.
    inbox = Inbox()
    client, gone = _connect_tls(tls_echo, inbox, peer_name="bank.example", context=client_context)
    client.write(b"secret\n")
    client.read(b"\n", 1)
    [(reason,)] = gone.wait()
    assert reason.startswith("TLS negotiation failed: certificate verify failed: Hostname mismatch")
    assert "'bank.example'" in reason
    assert inbox.items == []
    assert not client.connected()
    assert client.info()["isSecure"] is False
    assert any(
        r.levelno == logging.WARNING and "Hostname mismatch" in r.getMessage()
        for r in caplog.records
    )


def test_right_peer_name_passes(tls_echo: hsocket.Socket, client_context: ssl.SSLContext) -> None:
    inbox = Inbox()
    client, _ = _connect_tls(tls_echo, inbox, peer_name="tls.example", context=client_context)
    client.write(b"named\n").read(b"\n")
    assert inbox.wait_for(1) == [(b"named\n", -1)]
    client.disconnect()


def test_peer_name_as_first_argument_like_the_original(
    tls_echo: hsocket.Socket, client_context: ssl.SSLContext
) -> None:
    inbox = Inbox()
    _client, gone = _connect_tls(tls_echo, inbox, verify="other.example", context=client_context)
    [(reason,)] = gone.wait()
    assert "Hostname mismatch" in reason


def test_untrusted_ca_fails_and_verify_false_passes(tls_echo: hsocket.Socket) -> None:
    # The default context trusts the system store, which does not know this test CA.
    inbox = Inbox()
    client, gone = _connect_tls(tls_echo, inbox)
    # Not chained: the handshake may already have failed (and closed the socket) by now.
    client.write(b"x\n")
    client.read(b"\n")
    [(reason,)] = gone.wait()
    assert reason.startswith("TLS negotiation failed: certificate verify failed")
    assert inbox.items == []

    lax = Inbox()
    client, _ = _connect_tls(tls_echo, lax, verify=False)
    client.write(b"self-signed is fine\n").read(b"\n", 2)
    assert lax.wait_for(1) == [(b"self-signed is fine\n", 2)]
    client.disconnect()


def test_ssl_cert_file_is_honoured_per_call(
    tls_echo: hsocket.Socket, ca: trustme.CA, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    inbox = Inbox()
    client, _ = _connect_tls(tls_echo, inbox)
    client.write(b"env trust\n").read(b"\n")
    assert inbox.wait_for(1) == [(b"env trust\n", -1)]
    client.disconnect()


def test_reads_and_writes_before_start_tls_complete_first(
    server_context: ssl.SSLContext, client_context: ssl.SSLContext
) -> None:
    def on_data(data: bytes, tag: int, client: hsocket.Socket) -> None:
        if tag == 1:
            client.write(b"220 go ahead\r\n")
            client.start_tls(context=server_context)
            client.read(b"\n", 2)
        else:
            client.write(b"decrypted: " + data)

    server = hsocket.server(0, on_data)
    server.on_connect(lambda client: client.read(b"\n", 1))
    inbox = Inbox()
    client = hsocket.new(inbox).connect("127.0.0.1", port_of(server))
    assert client is not None
    # All queued at once: the plaintext parts must finish before the handshake begins.
    client.write(b"STARTTLS\n").read(b"\r\n", 10)
    client.start_tls(context=client_context)
    client.write(b"hello\n").read(b"\n", 11)
    assert inbox.wait_for(2) == [(b"220 go ahead\r\n", 10), (b"decrypted: hello\n", 11)]
    assert client.info()["isSecure"] is True
    client.disconnect()
    server.disconnect()


def test_client_hello_in_the_same_packet_as_starttls_is_not_lost(
    server_context: ssl.SSLContext, client_context: ssl.SSLContext
) -> None:
    # A raw client that sends STARTTLS and its ClientHello back to back, before any reply.
    secured = Signal()

    def on_data(data: bytes, tag: int, client: hsocket.Socket) -> None:
        if tag == 1:
            client.start_tls(context=server_context)
            client.read(b"\n", 2)
        else:
            client.write(b"got " + data)
            secured(client.info()["isSecure"])

    server = hsocket.server(0, on_data)
    server.on_connect(lambda client: client.read(b"\n", 1))
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = client_context.wrap_bio(incoming, outgoing, server_hostname="127.0.0.1")
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    raw = socket.create_connection(("127.0.0.1", port_of(server)), WAIT)
    raw.sendall(b"STARTTLS\n" + outgoing.read())
    while True:
        try:
            tls.do_handshake()
            break
        except ssl.SSLWantReadError:
            if outgoing.pending:
                raw.sendall(outgoing.read())
            incoming.write(raw.recv(65536))
    tls.write(b"ping\n")
    raw.sendall(outgoing.read())
    assert secured.wait() == [(True,)]
    reply = b""
    while not reply.endswith(b"\n"):
        try:
            reply += tls.read(100)
        except ssl.SSLWantReadError:
            incoming.write(raw.recv(65536))
    assert reply == b"got ping\n"
    raw.close()
    server.disconnect()


def test_start_tls_argument_errors(server_context: ssl.SSLContext, tmp_path: Path) -> None:
    with pytest.raises(TypeError, match=r"start_tls\(\) verify must be a bool or a peer name"):
        hsocket.new().start_tls(5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"start_tls\(\) context must be an ssl\.SSLContext"):
        hsocket.new().start_tls(context="ctx")  # type: ignore[arg-type]
    assert hsocket.new().start_tls() is None  # never connected: logged, as a read would be
    server = hsocket.server(0)
    with pytest.raises(ValueError, match="on a server side needs context="):
        server.start_tls()
    server.disconnect()
    path = str(tmp_path / "tls.sock")
    unix = hsocket.server(path)
    client = hsocket.new().connect(path)
    assert client is not None
    with pytest.raises(ValueError, match="cannot check the certificate's name on a Unix socket"):
        client.start_tls()
    client.disconnect()
    unix.disconnect()


def test_peer_vanishing_mid_handshake_disconnects_without_hanging(
    client_context: ssl.SSLContext,
) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    inbox = Inbox()
    gone = Signal()
    client = hsocket.new(inbox).on_disconnect(gone).connect("127.0.0.1", listener.getsockname()[1])
    assert client is not None
    client.start_tls(context=client_context)
    listener.settimeout(WAIT)
    peer, _ = listener.accept()
    peer.settimeout(WAIT)
    assert peer.recv(5)[:1] == b"\x16"  # a TLS handshake record: the ClientHello
    peer.close()
    listener.close()
    [(reason,)] = gone.wait()
    assert reason
    assert not client.connected()


# -- the fixtures --------------------------------------------------------------------------


def test_fixture_tls_server_with_stdlib_client(
    hsock_tls_server: MockServer, hsock_ca: trustme.CA
) -> None:
    hsock_tls_server.expect(b"hi\n").respond(b"hello\n")
    context = ssl.create_default_context()
    hsock_ca.configure_trust(context)
    with socket.create_connection(hsock_tls_server.address, WAIT) as raw:
        with context.wrap_socket(raw, server_hostname="localhost") as tls:
            tls.sendall(b"hi\n")
            assert tls.recv(100) == b"hello\n"


def test_fixture_tls_server_with_hsock_client(
    hsock_tls_server: MockServer, hsock_client: object
) -> None:
    hsock_tls_server.expect(b"PING\r\n").respond(b"+PONG\r\n")
    client: TestClient = hsock_client(hsock_tls_server, tls=True)  # type: ignore[operator]
    assert client.info()["isSecure"] is True
    client.write(b"PING\r\n")
    assert client.expect(b"\r\n") == b"+PONG\r\n"


def test_starttls_script_with_smtplib(hsock_server: MockServer, hsock_ca: trustme.CA) -> None:
    hsock_server.greet(b"220 mock ESMTP\r\n")
    hsock_server.expect(until(b"\r\n")).respond(b"250-mock\r\n250 STARTTLS\r\n")
    hsock_server.expect(b"STARTTLS\r\n").respond(b"220 ready\r\n").start_tls()
    hsock_server.expect(until(b"\r\n")).respond(b"250 mock, now secret\r\n")
    hsock_server.expect(b"quit\r\n").respond(b"221 bye\r\n").close()
    context = ssl.create_default_context()
    hsock_ca.configure_trust(context)
    smtp = smtplib.SMTP(hsock_server.host, hsock_server.port, timeout=WAIT)
    assert smtp.starttls(context=context)[0] == 220
    code, message = smtp.ehlo()
    assert (code, message) == (250, b"mock, now secret")
    smtp.quit()


def test_starttls_from_the_hsock_client(hsock_server: MockServer, hsock_client: object) -> None:
    hsock_server.expect(b"STARTTLS\r\n").respond(b"220 go\r\n").start_tls()
    hsock_server.expect(b"AUTH secret\r\n").respond(b"+OK\r\n")
    client: TestClient = hsock_client(hsock_server)  # type: ignore[operator]
    client.write(b"STARTTLS\r\n")
    assert client.expect(b"\r\n") == b"220 go\r\n"
    client.start_tls()
    client.write(b"AUTH secret\r\n")
    assert client.expect(b"\r\n") == b"+OK\r\n"
    assert client.info()["isSecure"] is True


def test_mutual_tls_requires_a_client_certificate(
    hsock_server_factory: object, hsock_client: object
) -> None:
    server: MockServer = hsock_server_factory(mutual=True)  # type: ignore[operator]
    server.expect(b"who\n").respond(b"verified\n")
    client: TestClient = hsock_client(server, client_cert=True)  # type: ignore[operator]
    client.write(b"who\n")
    assert client.expect(b"\n") == b"verified\n"
    # With TLS 1.3 the refusal may come during the handshake or right after it: either way the
    # client without a certificate gets no answer.
    with pytest.raises(ConnectionError, match=r"CERTIFICATE_REQUIRED|peer closed"):  # noqa: PT012
        stranger: TestClient = hsock_client(server, tls=True)  # type: ignore[operator]
        stranger.write(b"who\n")
        stranger.expect(b"\n")


@needs_openssl
def test_openssl_s_client_against_our_server(
    hsock_tls_server: MockServer, hsock_ca: trustme.CA, tmp_path: Path
) -> None:
    cafile = tmp_path / "ca.pem"
    hsock_ca.cert_pem.write_to_path(str(cafile))
    hsock_tls_server.expect(b"PING\r\n").respond(b"+PONG\r\n").close()
    result = subprocess.run(
        ["openssl", "s_client", "-connect", hsock_tls_server.url, "-CAfile", str(cafile),
         "-verify_return_error", "-verify_hostname", "localhost", "-servername", "localhost",
         "-quiet"],
        input=b"PING\r\n", capture_output=True, timeout=30, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert b"+PONG\r\n" in result.stdout
    assert b"verify return:1" in result.stderr


@needs_openssl
def test_our_client_against_openssl_s_server(tmp_path: Path, ca: trustme.CA) -> None:
    cert = tmp_path / "server.pem"
    ca.issue_cert("localhost").private_key_and_cert_chain_pem.write_to_path(str(cert))
    server = subprocess.Popen(
        ["openssl", "s_server", "-accept", "127.0.0.1:0", "-cert", str(cert), "-rev", "-naccept", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        assert server.stdout is not None
        port = 0
        for line in server.stdout:
            found = re.match(rb"ACCEPT 127\.0\.0\.1:(\d+)", line)
            if found:
                port = int(found.group(1))
                break
        assert port, "openssl s_server did not report its port"
        context = ssl.create_default_context()
        ca.configure_trust(context)
        inbox = Inbox()
        client = hsocket.new(inbox).connect("localhost", port)
        assert client is not None
        client.start_tls(context=context)
        client.write(b"hello\n").read(b"\n", 3)
        assert inbox.wait_for(1) == [(b"olleh\n", 3)]
        assert client.info()["isSecure"] is True
        client.disconnect()
    finally:
        server.kill()
        server.wait(WAIT)
        if server.stdout is not None:
            server.stdout.close()


def test_many_tls_clients_at_once(tls_echo: hsocket.Socket, client_context: ssl.SSLContext) -> None:
    inbox = Inbox()
    clients = []
    for n in range(20):
        client, _ = _connect_tls(tls_echo, inbox, context=client_context)
        client.write(b"client %d\n" % n).read(b"\n", n)
        clients.append(client)
    items = inbox.wait_for(20)
    assert sorted(items) == sorted((b"client %d\n" % n, n) for n in range(20))
    for client in clients:
        client.disconnect()
    threading.enumerate()
