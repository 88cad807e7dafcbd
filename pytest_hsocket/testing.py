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

from ._mockserver import ExpectationError, MockServer
from ._proxy import FaultProxy
from ._reads import make_request
from ._record import RecordEntry, dump_recording, load_recording
from ._script import Rule, Script, Until, until
from ._testclient import TestClient, open_client
from ._transcript import TaggedBytes, Transcript
from ._udp_proxy import UdpProxy
from ._udpserver import UdpMockServer, UdpTestClient

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
