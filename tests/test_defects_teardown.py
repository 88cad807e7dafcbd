"""Issue 17 item 5: bytes a test wrote reach the server before teardown judges them.

``TestClient.close()`` sends what was written, then the end of the stream; the ``hsock_client``
fixture closes its clients so and waits for it, whatever order the fixtures were requested in.
"""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Iterator
from typing import Optional

import pytest
import trustme

from pytest_hsocket.testing import TestClient

from .conftest import WAIT

MiB = 1024 * 1024


class Sink:
    """A real server that counts the bytes of one connection until its end (FIN)."""

    def __init__(self, context: Optional[ssl.SSLContext] = None, read: bool = True) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.context = context
        self.read = read
        self.received = 0
        self.ended = threading.Event()
        self.release = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.listener.accept()
        conn.settimeout(WAIT * 4)
        stream: socket.socket = conn
        try:
            if not self.read:
                self.release.wait(WAIT * 4)
                return
            if self.context is not None:
                stream = self.context.wrap_socket(conn, server_side=True)  # takes conn's fd
            while True:
                chunk = stream.recv(1 << 20)
                if not chunk:
                    self.ended.set()
                    break
                self.received += len(chunk)
        except (OSError, ssl.SSLError) as exc:
            self.exc = exc
        finally:
            stream.close()
            conn.close()

    def close(self) -> None:
        self.release.set()
        self.listener.close()
        self.thread.join(WAIT * 4)


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def sinks() -> Iterator[list[Sink]]:
    made: list[Sink] = []
    yield made
    for sink in made:
        sink.close()


@pytest.mark.parametrize("size", [0, 1, 65536, 4 * MiB + 3, 16 * MiB])
@pytest.mark.parametrize("how", ["close()", "close(wait=False) + wait_closed()"])
@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
def test_close_sends_every_byte_written_then_the_end(
    size: int, how: str, tls: bool, ca: trustme.CA, sinks: list[Sink]
) -> None:
    server_context = client_context = None
    if tls:
        server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("127.0.0.1").configure_cert(server_context)
        client_context = ssl.create_default_context()
        ca.configure_trust(client_context)
    sink = Sink(server_context)
    sinks.append(sink)
    client = TestClient.open("127.0.0.1", sink.port, wait_timeout=WAIT * 4, tls=client_context)
    client.write(b"\xab" * size)
    if how == "close()":
        client.close()
    else:
        client.close(wait=False)
        assert client.wait_closed()
    assert not client.connected()
    assert sink.ended.wait(WAIT * 4)
    assert sink.received == size


def test_close_gives_up_on_a_peer_that_never_reads(sinks: list[Sink]) -> None:
    sink = Sink(read=False)
    sinks.append(sink)
    client = TestClient.open("127.0.0.1", sink.port, wait_timeout=WAIT)
    client.write(b"x" * (64 * MiB))  # far more than the kernel buffers hold
    client.close(wait=False)
    assert client.wait_closed(timeout=0.2) is False
    assert not client.connected()


@pytest.mark.parametrize("signature", ["hsock_server, hsock_client", "hsock_client, hsock_server"])
def test_a_last_large_write_reaches_the_server_before_teardown(
    signature: str, pytester: pytest.Pytester
) -> None:
    pytester.makepyfile(
        f"""
        import pytest

        PAYLOAD = bytes(range(256)) * (16 * 4096)  # 16 MiB

        @pytest.mark.parametrize("i", range(5))
        def test_it({signature}, i):
            hsock_server.expect(len(PAYLOAD))
            client = hsock_client(hsock_server)
            client.write(PAYLOAD)
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=5)
