"""Every public number the library turns into a float refuses what it cannot use.

A number too large (``10**400``), infinite or NaN is a ``ValueError`` and a bool or a string a
``TypeError``, each naming the argument: never an ``OverflowError`` from deep inside, and never
later, on the loop (issue 17, item 16; DESIGN 1b.10). One validator
module (``_core.checks``) serves them all: this file holds every float argument to
``check_real``, and ``test_robust_ints.py`` every int argument to ``check_int``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from typing import Any, Callable

import pytest

import pytest_hsocket as hsocket
from pytest_hsocket import udp
from pytest_hsocket._core.chaos import Delay, Drop, Duplicate, Reorder, Truncate
from pytest_hsocket._core.checks import SECONDS_MAX, check_real, show
from pytest_hsocket._helpers.proxy import FaultProxy
from pytest_hsocket._helpers.udp_proxy import UdpProxy
from pytest_hsocket.testing import MockServer, Script, TestClient, UdpMockServer, UdpTestClient

BAD: list[Any] = [
    pytest.param(10**400, ValueError, id="10**400"),
    pytest.param(-(10**400), ValueError, id="-10**400"),
    pytest.param(float("inf"), ValueError, id="inf"),
    pytest.param(float("-inf"), ValueError, id="-inf"),
    pytest.param(float("nan"), ValueError, id="nan"),
    pytest.param(SECONDS_MAX * 1000 + 1, ValueError, id="past-the-longest-wait"),
    pytest.param(True, TypeError, id="True"),
    pytest.param("1", TypeError, id="str"),
]


@pytest.fixture(scope="module")
def proxies() -> Iterator[tuple[FaultProxy, UdpProxy]]:
    # Nothing connects through them: the calls under test are refused before any traffic.
    with FaultProxy.start("127.0.0.1", 9) as tcp, UdpProxy.start("127.0.0.1", 9) as datagram:
        yield tcp, datagram


Call = Callable[[Any, tuple[FaultProxy, UdpProxy]], object]


def _tcp_timeout(value: Any, _: object) -> object:
    sock = hsocket.new()
    try:
        return sock.set_timeout(value)
    finally:
        sock.disconnect()


def _udp_timeout(value: Any, _: object) -> object:
    sock = udp.new()
    try:
        return sock.set_timeout(value)
    finally:
        sock.close()


def _udp_server_call(call: Callable[[UdpMockServer], object]) -> object:
    server = UdpMockServer.start()
    try:
        return call(server)
    finally:
        server.close()


def _client_open(value: Any, _: object) -> object:
    # Refused before connecting; port 9 (discard) makes a missing check fail the test.
    TestClient.open("127.0.0.1", 9, wait_timeout=value).close()
    return None


def _proxy_start(value: Any, _: object) -> object:
    FaultProxy.start("127.0.0.1", 9, connect_timeout=value).close()
    return None


def _udp_proxy_start(value: Any, _: object) -> object:
    UdpProxy.start("127.0.0.1", 9, wait_timeout=value).close()
    return None


def _server_start(value: Any, _: object) -> object:
    MockServer.start(wait_timeout=value).close()
    return None


def _udp_server_start(value: Any, _: object) -> object:
    UdpMockServer.start(wait_timeout=value).close()
    return None


def _udp_client_open(value: Any, _: object) -> object:
    UdpTestClient.open("127.0.0.1", 9, wait_timeout=value).close()
    return None


# (the call, the argument as the message names it)
CALLS: list[Any] = [
    pytest.param(_server_start, "MockServer.start() wait_timeout", id="server-start"),
    pytest.param(_udp_server_start, "UdpMockServer.start() wait_timeout", id="udp-server-start"),
    pytest.param(_udp_client_open, "UdpTestClient.open() wait_timeout", id="udp-client-open"),
    pytest.param(_client_open, "TestClient.open() wait_timeout", id="client-open"),
    pytest.param(_proxy_start, "FaultProxy.start() connect_timeout", id="proxy-start"),
    pytest.param(_udp_proxy_start, "UdpProxy.start() wait_timeout", id="udp-proxy-start"),
    pytest.param(_tcp_timeout, "set_timeout() timeout", id="tcp-set_timeout"),
    pytest.param(_udp_timeout, "set_timeout() timeout", id="udp-set_timeout"),
    pytest.param(lambda v, _: Script().expect(b"x").delay(v), "delay() seconds", id="rule-delay"),
    pytest.param(
        lambda v, _: Script().expect(b"x").dribble(b"ab", delay=v),
        "dribble() delay",
        id="rule-dribble-delay",
    ),
    pytest.param(lambda v, p: p[0].upstream.latency(v), "latency() ms", id="toxic-latency-ms"),
    pytest.param(
        lambda v, p: p[0].upstream.latency(1, jitter=v),
        "latency() jitter",
        id="toxic-latency-jitter",
    ),
    pytest.param(
        lambda v, p: p[0].downstream.bandwidth(v),
        "bandwidth() bytes_per_second",
        id="toxic-bandwidth",
    ),
    pytest.param(
        lambda v, p: p[0].downstream.slicer(1, delay=v), "slicer() delay", id="toxic-slicer"
    ),
    pytest.param(lambda v, p: p[0].downstream.timeout(v), "timeout() seconds", id="toxic-timeout"),
    pytest.param(lambda v, p: p[1].upstream.drop(v), "drop() rate", id="chaos-drop"),
    pytest.param(
        lambda v, _: UdpMockServer().chaos(drop=v).close(), "chaos() drop", id="server-chaos-rate"
    ),
    pytest.param(lambda v, p: p[1].upstream.duplicate(v), "duplicate() rate", id="chaos-dup"),
    pytest.param(lambda v, p: p[1].upstream.truncate(v, 4), "truncate() rate", id="chaos-trunc"),
    pytest.param(lambda v, p: p[1].upstream.reorder(v), "reorder() rate", id="chaos-reorder"),
    pytest.param(
        lambda v, p: p[1].upstream.reorder(0.5, max_hold_ms=v),
        "reorder() max_hold_ms",
        id="chaos-reorder-hold",
    ),
    pytest.param(lambda v, p: p[1].downstream.delay(v), "delay() ms", id="chaos-delay-ms"),
    pytest.param(
        lambda v, p: p[1].downstream.delay(1, jitter=v), "delay() jitter", id="chaos-delay-jitter"
    ),
]


@pytest.mark.parametrize(("call", "what"), CALLS)
@pytest.mark.parametrize(("value", "error"), BAD)
def test_every_public_number_refuses_what_it_cannot_use(
    proxies: tuple[FaultProxy, UdpProxy],
    call: Call,
    what: str,
    value: Any,
    error: type[Exception],
) -> None:
    if what.endswith("bytes_per_second") and value == SECONDS_MAX * 1000 + 1:
        call(value, proxies)  # a rate has no bound but a finite float: the twin, accepted
        proxies[0].downstream.clear()
        return
    with pytest.raises(error) as caught:
        call(value, proxies)
    message = str(caught.value)
    assert message.startswith(what), message
    assert "\n" not in message
    assert len(message) < 200, message  # a 400-digit number is not printed whole


@pytest.mark.parametrize(
    ("call", "what"),
    [
        pytest.param(c.values[0], c.values[1], id=c.id)
        for c in CALLS
        if not c.values[1].endswith(("rate", "drop"))
        and "settle" not in c.id
        and "expect" not in c.id
        and not c.id.endswith(("open", "start"))  # they build: the row checks the refusal
    ],
)
def test_the_largest_accepted_number_is_usable(
    proxies: tuple[FaultProxy, UdpProxy], call: Call, what: str
) -> None:
    # The bound is the longest wait the stdlib can make: what passes the check can be waited on.
    value = SECONDS_MAX if "ms" not in what and "jitter" not in what else SECONDS_MAX * 1000
    call(value, proxies)
    proxies[0].upstream.clear()
    proxies[0].downstream.clear()
    for handle in proxies[1].upstream, proxies[1].downstream:
        for effect in handle.effects:
            effect.remove()


@pytest.mark.parametrize(
    "spec",
    [
        pytest.param(lambda v: Drop(v), id="Drop"),
        pytest.param(lambda v: Duplicate(v), id="Duplicate"),
        pytest.param(lambda v: Truncate(v, 4), id="Truncate"),
        pytest.param(lambda v: Reorder(v), id="Reorder"),
        pytest.param(lambda v: Delay(1, jitter=v), id="Delay"),
    ],
)
def test_chaos_specs_refuse_nan_as_a_value_error(spec: Callable[[float], object]) -> None:
    with pytest.raises(ValueError, match="not nan"):
        spec(float("nan"))


def test_a_module_timeout_too_large_falls_back_to_none_with_a_warning(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Regression: hsocket.timeout = 10**400 made every new() raise OverflowError.
    monkeypatch.setattr(hsocket, "timeout", 10**400)
    monkeypatch.setattr(udp, "timeout", float("inf"))
    with caplog.at_level(logging.WARNING, logger="pytest_hsocket"):
        with hsocket.new() as tcp_sock, udp.new() as udp_sock:
            assert tcp_sock.info()["timeout"] == -1
            assert udp_sock.info()["timeout"] == -1
    warnings = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("hsocket timeout must be") for m in warnings), warnings
    assert any(m.startswith("hsocket.udp timeout must be") and "inf" in m for m in warnings)


def test_a_module_timeout_in_range_is_copied() -> None:
    # The twin: a usable module timeout is what a new socket starts with.
    saved = hsocket.timeout
    hsocket.timeout = 2.5
    try:
        with hsocket.new() as sock:
            assert sock.info()["timeout"] == 2.5
    finally:
        hsocket.timeout = saved


WAITS: list[Any] = [
    pytest.param(lambda c, v: c.expect(b"\n", timeout=v), "expect() timeout", id="tcp-expect"),
    pytest.param(lambda c, v: c.wait(timeout=v), "wait() timeout", id="tcp-wait"),
]


@pytest.mark.parametrize(("call", "what"), WAITS)
@pytest.mark.parametrize(
    ("value", "error"),
    [
        pytest.param(float("nan"), ValueError, id="nan"),
        pytest.param(True, TypeError, id="True"),
        pytest.param("1", TypeError, id="str"),
    ],
)
def test_a_wait_refuses_what_is_not_a_number_at_the_call(
    call: Callable[[TestClient, Any], object], what: str, value: Any, error: type[Exception]
) -> None:
    # A wait's inf (or 10**400) means no limit (tests/test_defects_expect.py waits on one):
    # only what is not a number of seconds is refused.
    with MockServer.start() as server, TestClient.open(*server.address) as client:
        with pytest.raises(error, match=rf"^{re.escape(what)} must be"):
            call(client, value)


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda s: s.settle, id="udp-server-settle"),
        pytest.param(lambda s: UdpTestClient().expect, id="udp-client-expect"),
    ],
)
@pytest.mark.parametrize(
    ("value", "error"),
    [
        pytest.param(float("nan"), ValueError, id="nan"),
        pytest.param(True, TypeError, id="True"),
    ],
)
def test_udp_waits_refuse_what_is_not_a_number(
    make: Callable[[UdpMockServer], Callable[[Any], object]], value: Any, error: type[Exception]
) -> None:
    server = UdpMockServer.start()
    try:
        with pytest.raises(error, match=r"timeout must be a number of seconds"):
            make(server)(value)
    finally:
        server.close()


@pytest.mark.parametrize("value", [float("inf"), 10**400], ids=["inf", "10**400"])
def test_a_udp_wait_takes_inf_as_no_limit(value: Any) -> None:
    # Regression: inf went to a lock wait and raised OverflowError. The answer is asked for
    # before the wait: it completes without a limit.
    with UdpMockServer.start() as server:
        server.expect(b"ping").respond(b"pong")
        client = UdpTestClient.open(*server.address)
        try:
            client.send(b"ping")
            assert client.expect(value) == b"pong"
            server.settle(value)
        finally:
            client.close()


def test_show_never_prints_a_huge_int_whole() -> None:
    assert show(10**5000) == "an int of about 5001 digits"  # str() refuses past 4300 digits
    assert show(-(10**30)) == "a negative int of about 31 digits"
    assert show(12) == "12"
    assert show(2.5) == "2.5"


@pytest.mark.parametrize("value", [0, 1, 2.5, SECONDS_MAX])
def test_check_real_returns_a_float_in_range(value: float) -> None:
    assert check_real(value, "x") == float(value)


@pytest.mark.parametrize(
    ("value", "error"),
    [
        pytest.param(float("inf"), TypeError, id="inf"),
        pytest.param(True, TypeError, id="True"),
        pytest.param(-1, ValueError, id="negative"),
    ],
)
def test_server_chaos_truncate_is_a_size(value: object, error: type[Exception]) -> None:
    # truncate=inf was accepted, then failed on the loop when an answer was cut.
    server = UdpMockServer()
    try:
        with pytest.raises(error, match=r"^chaos\(\) truncate must "):
            server.chaos(truncate=value)  # type: ignore[arg-type]
    finally:
        server.close()
