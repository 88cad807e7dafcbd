"""An async client under test, in asyncio, trio and anyio, against a scripted mock server.

The client is the kind of code people write for a line protocol with asyncio streams or trio
sockets; the test drives it in its own event loop while ``hsock_server`` answers from the
socket loop's thread, and ``aexpect`` lets the test itself wait without blocking that loop.
"""

from __future__ import annotations

import asyncio

import pytest

from pytest_hsocket.plugin import ClientFactory
from pytest_hsocket.testing import MockServer


async def asyncio_get(host: str, port: int, key: str) -> str:
    """A small asyncio client: ``GET key`` and one line back."""
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(f"GET {key}\r\n".encode())
    await writer.drain()
    line = await reader.readuntil(b"\r\n")
    writer.close()
    await writer.wait_closed()
    return line.decode().rstrip("\r\n")


def test_asyncio_client(hsock_server: MockServer) -> None:
    hsock_server.expect(b"GET colour\r\n").respond(b"blue\r\n")
    assert asyncio.run(asyncio_get(hsock_server.host, hsock_server.port, "colour")) == "blue"


def test_trio_client(hsock_server: MockServer) -> None:
    trio = pytest.importorskip("trio")
    hsock_server.expect(b"GET size\r\n").dribble(b"large\r\n", size=1, delay=0.001)

    async def trio_get(key: str) -> str:
        stream = await trio.open_tcp_stream(hsock_server.host, hsock_server.port)
        async with stream:
            await stream.send_all(f"GET {key}\r\n".encode())
            data = b""
            while not data.endswith(b"\r\n"):  # the reply arrives a byte at a time
                data += await stream.receive_some(100)
        return data.decode().rstrip("\r\n")

    assert trio.run(trio_get, "size") == "large"


def test_the_test_itself_awaits_with_anyio(
    hsock_server: MockServer, hsock_client: ClientFactory
) -> None:
    anyio = pytest.importorskip("anyio")
    hsock_server.greet(b"+READY\r\n")
    hsock_server.expect(b"PING\r\n").delay(0.02).respond(b"+PONG\r\n")
    client = hsock_client(hsock_server)

    async def main() -> list[bytes]:
        ready = await client.aexpect(b"\r\n", tag=1)
        client.write(b"PING\r\n")
        return [ready, await client.aexpect(b"\r\n", tag=2)]

    assert anyio.run(main) == [b"+READY\r\n", b"+PONG\r\n"]
