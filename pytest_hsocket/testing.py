"""Test helpers usable with or without pytest: the mock servers, the blocking test clients,
the TCP and UDP fault proxies, recordings, and the read requests the I/O-free core takes.

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

from pytest_hsocket._core.reads import make_request
from pytest_hsocket._core.record import RecordEntry, dump_recording, load_recording
from pytest_hsocket._core.script import Rule, Script, Until, until
from pytest_hsocket._core.transcript import TaggedBytes, Transcript
from pytest_hsocket._helpers.mockserver import ExpectationError, MockServer
from pytest_hsocket._helpers.proxy import FaultProxy
from pytest_hsocket._helpers.testclient import TestClient, open_client
from pytest_hsocket._helpers.udp_proxy import UdpProxy
from pytest_hsocket._helpers.udpserver import UdpMockServer, UdpTestClient

__all__ = [
    "ExpectationError",
    "FaultProxy",
    "MockServer",
    "RecordEntry",
    "Rule",
    "Script",
    "TaggedBytes",
    "TestClient",
    "Transcript",
    "UdpMockServer",
    "UdpProxy",
    "UdpTestClient",
    "Until",
    "dump_recording",
    "load_recording",
    "make_request",
    "open_client",
    "until",
]
