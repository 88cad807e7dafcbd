"""The test helpers' named APIs between objects (issue 20): what used to be reached through
another object's private names.

- A proxy direction's chain lists and removes its handles (``Chain.handles`` /
  ``Chain.remove``); a handle goes through them, so the three views agree whatever the order.
- ``TestClient.open`` is ``TestClient(...)`` then ``connect_and_wait``; the latter connects a
  client that was never connected, and refuses one that was.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_hsocket._core.errors import HSocketError
from pytest_hsocket._helpers.proxy import FaultProxy
from pytest_hsocket._helpers.udp_proxy import UdpProxy
from pytest_hsocket.testing import MockServer, TestClient


@pytest.fixture(scope="module")
def proxies() -> object:
    with FaultProxy.start("127.0.0.1", 9) as tcp, UdpProxy.start("127.0.0.1", 9) as datagram:
        yield tcp, datagram


@settings(max_examples=30, deadline=None)
@given(steps=st.lists(st.tuples(st.booleans(), st.integers(0, 5)), max_size=12))
def test_a_chain_and_its_handles_agree(proxies: object, steps: list[tuple[bool, int]]) -> None:
    tcp, datagram = proxies  # type: ignore[misc]
    for chain, add in (
        (tcp.upstream, lambda c: c.latency(1)),
        (datagram.downstream, lambda c: c.drop(0.5)),
    ):
        model: list[object] = []
        for adding, pick in steps:
            if adding or not model:
                model.append(add(chain))
            else:
                handle = model.pop(pick % len(model))
                (chain.remove if pick % 2 else type(handle).remove)(handle)
                assert not handle.active
            assert chain.handles() == model
            assert all(handle.active for handle in model)
        chain.clear()
        assert chain.handles() == []


def test_connect_and_wait_connects_a_new_client_and_refuses_a_used_one() -> None:
    with MockServer.start() as server:
        server.expect(b"ping\n").respond(b"pong\n")
        client = TestClient(wait_timeout=5.0)
        try:
            assert client.connect_and_wait(server.host, server.port) is client
            client.write(b"ping\n")
            assert client.expect(b"\n") == b"pong\n"
        finally:
            client.close()
        with pytest.raises(HSocketError, match="never connected"):
            client.connect_and_wait(server.host, server.port)
