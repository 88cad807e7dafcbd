"""Issue 17 item 1 (DESIGN 1b.17): never plaintext after ``start_tls()``.

A bad peer name is refused at the call; any failure while starting or negotiating TLS ends the
connection with "TLS negotiation failed: <why>"; and a real server sees none of the bytes
written after ``start_tls()`` in the clear, however the negotiation failed.
"""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Iterator
from typing import Optional

import pytest
import trustme

import pytest_hsocket as hsocket

from .conftest import WAIT, Signal

SECRET = b"SECRET-after-start_tls\n"
PREAMBLE = b"before\n"


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def _server_context(ca: trustme.CA, *names: str) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*names).configure_cert(context)
    return context


class Recorder:
    """A real TCP server that records every raw byte it receives from one client.

    ``mode`` says how it answers the client's TLS: ``"tls"`` negotiates with ``context``
    (through memory BIOs, so the raw bytes are still recorded), ``"garbage"`` answers
    plaintext, ``"close"`` ends its side, ``"mute"`` says nothing.
    """

    def __init__(self, mode: str, context: Optional[ssl.SSLContext] = None) -> None:
        self.mode = mode
        self.context = context
        self.raw = bytearray()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        try:
            conn, _ = self.listener.accept()
        except OSError:
            self.done.set()
            return
        conn.settimeout(WAIT)
        tls = None
        if self.mode == "tls" and self.context is not None:
            incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
            tls = self.context.wrap_bio(incoming, outgoing, server_side=True)
        answered = False
        try:
            while True:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                self.raw += chunk
                plain = max(0, len(PREAMBLE) - (len(self.raw) - len(chunk)))
                chunk = chunk[plain:]  # the plaintext before STARTTLS is not TLS
                if tls is not None and chunk:
                    incoming.write(chunk)
                    try:
                        tls.do_handshake()
                    except ssl.SSLWantReadError:
                        pass
                    except ssl.SSLError:
                        tls = None  # the client refused us: keep recording what it sends
                    if outgoing.pending:
                        conn.sendall(outgoing.read())
                elif not chunk:
                    continue
                elif not answered and self.mode == "garbage":
                    conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")
                    answered = True
                elif not answered and self.mode == "close":
                    conn.shutdown(socket.SHUT_WR)
                    answered = True
        except OSError:
            pass
        finally:
            conn.close()
            self.done.set()

    def close(self) -> None:
        self.listener.close()
        self.thread.join(WAIT)


@pytest.fixture
def recorders() -> Iterator[list[Recorder]]:
    made: list[Recorder] = []
    yield made
    for recorder in made:
        recorder.close()


def _connected_client(port: int) -> tuple[hsocket.Socket, Signal]:
    up, gone = Signal(), Signal()
    client = hsocket.new(lambda d, t: None).on_disconnect(gone)
    assert client.connect("127.0.0.1", port, up) is client
    up.wait()
    return client, gone


FAILURES = ["bad name on the loop", "untrusted", "wrong name", "garbage", "peer closes"]


@pytest.mark.parametrize("failure", FAILURES)
def test_no_plaintext_leaves_after_a_failed_start_tls(
    failure: str, ca: trustme.CA, recorders: list[Recorder]
) -> None:
    trusted = ssl.create_default_context()
    ca.configure_trust(trusted)
    if failure in ("untrusted", "wrong name"):
        issuer = trustme.CA() if failure == "untrusted" else ca
        recorder = Recorder("tls", _server_context(issuer, "elsewhere.example"))
    else:
        recorder = Recorder({"garbage": "garbage", "peer closes": "close"}.get(failure, "mute"))
    recorders.append(recorder)
    client, gone = _connected_client(recorder.port)
    client.write(PREAMBLE)  # queued before start_tls: plaintext, as asked
    if failure == "bad name on the loop":
        # A failure the call's checks cannot see (the name is the stdlib's to refuse on the
        # loop): reached here by handing the upgrade to the loop as start_tls() does.
        client._loop.call(client._push_tls, trusted, False, "a\x00b")
    else:
        name = "localhost" if failure == "wrong name" else None
        assert client.start_tls(peer_name=name, context=trusted) is client
    client.write(SECRET)
    (reason,) = gone.wait()[0]
    assert reason.startswith("TLS negotiation failed: "), reason
    assert not client.connected()
    assert recorder.done.wait(WAIT)
    assert bytes(recorder.raw).startswith(PREAMBLE)
    assert b"SECRET" not in recorder.raw


@pytest.mark.parametrize("name", ["a\x00b", ".leading.dot", "a" * 300, "a..b"])
def test_a_bad_peer_name_is_refused_at_the_call(name: str, recorders: list[Recorder]) -> None:
    recorder = Recorder("mute")
    recorders.append(recorder)
    client, _ = _connected_client(recorder.port)
    try:
        with pytest.raises(ValueError, match=r"^start_tls\(\) peer_name must be a valid host name"):
            client.start_tls(peer_name=name)
        assert client.connected()  # nothing was started: the connection is as it was
    finally:
        client.disconnect()
