"""Issue 17 item 4: closing the fault proxy forwards what a client already sent, then passes
the end of stream on (half-close), then closes; ``hsock_proxy``'s teardown order does not
matter."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from typing import Any, Callable, Optional

import pytest

from pytest_hsocket._helpers.proxy import FaultProxy

from .conftest import WAIT


class Sink:
    """A real upstream server that keeps every byte of each connection until its end."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.received: list[bytes] = []
        self.ends = threading.Semaphore(0)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn: socket.socket) -> None:
        chunks = []
        conn.settimeout(WAIT)
        try:
            while True:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
        except OSError:
            chunks.append(b"<error>")
        finally:
            conn.close()
            self.received.append(b"".join(chunks))
            self.ends.release()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept() (Linux)
        self.listener.close()
        self.thread.join(WAIT)


@pytest.fixture
def sink() -> Iterator[Sink]:
    made = Sink()
    yield made
    made.close()


def _toxic(name: str) -> Optional[Callable[[FaultProxy], Any]]:
    return {
        "none": None,
        "latency": lambda p: p.upstream.latency(20),
        "slicer": lambda p: p.upstream.slicer(1, delay=0.0005),
        "bandwidth": lambda p: p.upstream.bandwidth(200_000),
        "slicer both ways": lambda p: (p.upstream.slicer(3), p.downstream.slicer(3)),
    }[name]


CASES = [
    ("none", 1, 30),
    ("none", 100, 30),
    ("none", 70_000, 5),
    ("slicer", 1, 30),
    ("slicer", 100, 30),
    ("latency", 100, 5),
    ("latency", 70_000, 5),
    ("bandwidth", 70_000, 2),
    ("slicer both ways", 100, 5),
]


@pytest.mark.parametrize(("toxic", "size", "rounds"), CASES)
def test_close_forwards_what_the_client_sent_then_ends_it(
    toxic: str, size: int, rounds: int, sink: Sink
) -> None:
    payload = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    for _ in range(rounds):
        proxy = FaultProxy.start("127.0.0.1", sink.port, connect_timeout=WAIT)
        add = _toxic(toxic)
        if add is not None:
            add(proxy)
        with socket.create_connection(proxy.address, timeout=WAIT) as client:
            client.sendall(payload)
            # The proxy's connection must exist before close() for there to be anything to
            # forward: wait for it (no sleep).
            assert _until(lambda: proxy.connections == 1)  # noqa: B023 - called at once
            proxy.close()
            assert sink.ends.acquire(timeout=WAIT)
            assert sink.received[-1] == payload
            # The client saw the end of the stream (half-close passed on), not a reset.
            assert client.recv(1) == b""


def _until(condition: Callable[[], bool]) -> bool:
    import time

    deadline = time.monotonic() + WAIT
    while not condition():
        if time.monotonic() > deadline:
            return False
    return True


def test_close_does_not_wait_on_a_toxic_that_swallows_everything(sink: Sink) -> None:
    proxy = FaultProxy.start("127.0.0.1", sink.port, connect_timeout=WAIT)
    proxy.upstream.timeout(0)  # drops every byte, never closes on its own
    with socket.create_connection(proxy.address, timeout=WAIT) as client:
        client.sendall(b"lost")
        assert _until(lambda: proxy.connections == 1)
        proxy.close()
        assert proxy.connections == 0
        assert sink.ends.acquire(timeout=WAIT)
        assert sink.received[-1] == b""


ORDERS = ["hsock_proxy, hsock_server", "hsock_server, hsock_proxy"]


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("client", ["hsock_client", "raw socket"])
@pytest.mark.parametrize("toxic", ["", "proxy.upstream.slicer(1, delay=0.001)"])
def test_a_last_small_write_through_hsock_proxy_always_arrives(
    order: str, client: str, toxic: str, pytester: pytest.Pytester
) -> None:
    if client == "hsock_client":
        body = "c = hsock_client(*proxy.address)\n    c.write(b'bye\\n')"
        fixtures = order + ", hsock_client"
    else:
        body = (
            "with socket.create_connection(proxy.address, timeout=5) as s:\n"
            "        s.sendall(b'bye\\n')"
        )
        fixtures = order
    pytester.makepyfile(
        f"""
import socket
import pytest

@pytest.mark.parametrize("i", range(30))
def test_it({fixtures}, i):
    hsock_server.expect(b"bye\\n")
    proxy = hsock_proxy(hsock_server)
    {toxic}
    {body}
"""
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=30)
