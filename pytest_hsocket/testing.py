"""Test helpers usable with or without pytest: the mock server and the blocking test client.

::

    from pytest_hsocket.testing import MockServer, TestClient

    with MockServer.start() as server:
        server.expect(b"PING\\r\\n").respond(b"+PONG\\r\\n")
        with TestClient.open(*server.address) as client:
            client.write(b"PING\\r\\n")
            assert client.expect(b"\\r\\n") == b"+PONG\\r\\n"
    server.check()
"""

from __future__ import annotations

from ._mockserver import ExpectationError, MockServer
from ._script import Rule, Script, Until, until
from ._testclient import TestClient, open_client
from ._transcript import TaggedBytes, Transcript
from ._udpserver import UdpMockServer, UdpTestClient

__all__ = [
    "ExpectationError",
    "MockServer",
    "Rule",
    "Script",
    "TaggedBytes",
    "TestClient",
    "Transcript",
    "UdpMockServer",
    "UdpTestClient",
    "Until",
    "open_client",
    "until",
]
