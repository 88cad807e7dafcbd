"""Every public int argument refuses what it cannot use, through the one ``check_int``.

The twin of ``test_robust_numbers.py`` (the float arguments): a bool, a float (``1.5``,
``inf``, ``nan``) or a string is a ``TypeError``, a value under the argument's bound a
``ValueError``, and ``10**400`` either a usable int or a ``ValueError``: each one line that
starts with the argument's name (issue 20: one validator module, one meaning per name).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any, Callable, Optional

import pytest
from hypothesis import given
from hypothesis import strategies as st

import pytest_hsocket as hsocket
from pytest_hsocket import Announced, Framer, Prefixed, udp
from pytest_hsocket._core.checks import check_int
from pytest_hsocket._helpers.proxy import FaultProxy
from pytest_hsocket._helpers.udp_proxy import UdpProxy
from pytest_hsocket.testing import MockServer, Script, UdpMockServer

Proxies = tuple[FaultProxy, UdpProxy]
Call = Callable[[Any, Proxies], object]


@pytest.fixture(scope="module")
def proxies() -> Iterator[Proxies]:
    # Nothing connects through them: the calls under test are refused before any traffic.
    with FaultProxy.start("127.0.0.1", 9) as tcp, UdpProxy.start("127.0.0.1", 9) as datagram:
        yield tcp, datagram


def _on_tcp(value: Any, fn: Callable[[hsocket.Socket, Any], object]) -> object:
    sock = hsocket.new(print)
    try:
        return fn(sock, value)
    finally:
        sock.disconnect()


def _on_udp(value: Any, fn: Callable[[udp.UdpSocket, Any], object]) -> object:
    sock = udp.new()
    try:
        return fn(sock, value)
    finally:
        sock.close()


def _on_udp_server(value: Any, fn: Callable[[UdpMockServer, Any], object]) -> object:
    server = UdpMockServer()
    try:
        return fn(server, value)
    finally:
        server.close()


def _log_level(value: Any, _: Proxies) -> object:
    logger = logging.getLogger("pytest_hsocket")
    saved = logger.level
    try:
        return hsocket.set_log_level(value)
    finally:
        logger.setLevel(saved)


def _seed(value: Any, _: Proxies) -> object:
    with UdpProxy.start("127.0.0.1", 9, seed=value):
        return None


# Where a str means something else (a delimiter, a path, a level's name), "1" is not a bad int.
STR_MEANS_MORE = {"tcp-read-length", "tcp-listen-port", "set_log_level", "expect-length"}


def _int_row(call: Call, what: str, low: Optional[int], id: str) -> Any:
    return pytest.param(call, what, low, id=id)


# (the call, how its message starts, the smallest int it accepts or None for no bound)
CALLS: list[Any] = [
    _int_row(lambda v, _: _on_tcp(v, lambda s, x: s.read(x)), "read() ", 0, "tcp-read-length"),
    _int_row(
        lambda v, _: _on_tcp(v, lambda s, x: s.read(b"\n", x)), "read() tag", None, "read-tag"
    ),
    _int_row(
        lambda v, _: _on_tcp(v, lambda s, x: s.write(b"x", x)), "write() tag", None, "write-tag"
    ),
    _int_row(lambda v, _: hsocket.server(v).disconnect(), "listen() port", 0, "tcp-listen-port"),
    _int_row(
        lambda v, _: _on_tcp(v, lambda s, x: s.connect("127.0.0.1", x)),
        "connect() port",
        1,
        "tcp-connect-port",
    ),
    _int_row(
        # Bound first: a send's socket is made on the loop, after close() looked.
        lambda v, _: _on_udp(
            v, lambda s, x: s.listen(0, host="127.0.0.1").send(b"x", "127.0.0.1", 9, x)
        ),
        "send() tag",
        None,
        "udp-send-tag",
    ),
    _int_row(
        lambda v, _: _on_udp(v, lambda s, x: s.set_buffer_size(x)),
        "set_buffer_size() size",
        0,
        "udp-buffer-size",
    ),
    _int_row(
        lambda v, _: _on_udp(v, lambda s, x: s.enable_ipv(x)),
        "enable_ipv() version",
        None,
        "udp-enable-ipv",
    ),
    _int_row(_log_level, "set_log_level() level", None, "set_log_level"),
    _int_row(lambda v, _: Prefixed(">H", max_length=v), "Prefixed() max_length", 1, "pre-max"),
    _int_row(lambda v, _: Prefixed(">H", offset=v), "Prefixed() offset", 0, "pre-offset"),
    _int_row(lambda v, _: Prefixed(">H", adjust=v), "Prefixed() adjust", None, "pre-adjust"),
    _int_row(lambda v, _: Prefixed(">H", strip=v), "Prefixed() strip", 0, "pre-strip"),
    _int_row(
        lambda v, _: Announced(rb"#(\d+)", max_length=v), "Announced() max_length", 1, "ann-max"
    ),
    _int_row(lambda v, _: Framer(len, max_length=v), "Framer() max_length", 1, "framer-max"),
    _int_row(lambda v, _: Script().expect(v), "expect() ", 1, "expect-length"),
    _int_row(lambda v, _: Script().expect(b"x", times=v), "expect() times", 1, "expect-times"),
    _int_row(lambda v, _: Script().expect(b"x").dribble(b"a", v), "dribble() size", 1, "dribble"),
    _int_row(lambda v, _: Script().expect(b"x").trickle(b"a", v), "trickle() rate", 1, "trickle"),
    _int_row(lambda v, _: Script().expect(b"x").truncate(b"a", v), "truncate() after", 0, "trunc"),
    _int_row(
        lambda v, _: Script().expect(b"x").reset_after(b"a", v), "reset_after() after", 0, "reset"
    ),
    _int_row(lambda v, _: Script().expect(b"x").garbage(v), "garbage() size", 1, "garbage-size"),
    _int_row(lambda v, _: Script().expect(b"x").garbage(1, v), "garbage() seed", None, "g-seed"),
    _int_row(lambda v, _: MockServer().connection(v), "connection() number", 1, "connection"),
    _int_row(lambda v, p: p[0].downstream.slicer(v), "slicer() size", 1, "toxic-slicer-size"),
    _int_row(
        lambda v, p: p[0].downstream.reset_peer(v), "reset_peer() after_bytes", 0, "toxic-reset"
    ),
    _int_row(
        lambda v, p: p[0].downstream.limit_data(v), "limit_data() after_bytes", 0, "toxic-limit"
    ),
    _int_row(lambda v, p: p[1].upstream.truncate(0.5, v), "truncate() size", 0, "chaos-trunc"),
    _int_row(lambda v, p: p[1].upstream.reorder(0.5, v), "reorder() window", 1, "chaos-reorder"),
    _int_row(
        lambda v, _: _on_udp_server(v, lambda s, x: s.chaos(truncate=x)),
        "chaos() truncate",
        0,
        "server-chaos-truncate",
    ),
    _int_row(
        lambda v, _: _on_udp_server(v, lambda s, x: s.chaos(seed=x)),
        "chaos() seed",
        None,
        "server-chaos-seed",
    ),
    _int_row(
        lambda v, _: FaultProxy.start("127.0.0.1", v).close(),
        "FaultProxy.start() upstream_port",
        1,
        "proxy-upstream-port",
    ),
    _int_row(_seed, "UdpProxy.start() seed", None, "udp-proxy-seed"),
]

NOT_INTS: list[Any] = [
    pytest.param(True, id="True"),
    pytest.param(1.5, id="1.5"),
    pytest.param(float("inf"), id="inf"),
    pytest.param(float("nan"), id="nan"),
    pytest.param("1", id="str"),
]


def _clear(proxies: Proxies) -> None:
    proxies[0].upstream.clear()
    proxies[0].downstream.clear()
    for handle in proxies[1].upstream, proxies[1].downstream:
        for effect in handle.effects:
            effect.remove()


def _check_message(caught: pytest.ExceptionInfo[Exception], what: str) -> None:
    message = str(caught.value)
    assert message.startswith(what), message
    assert "\n" not in message
    assert len(message) < 200, message  # a 400-digit number is not printed whole


@pytest.mark.parametrize(("call", "what", "low"), CALLS)
@pytest.mark.parametrize("value", NOT_INTS)
def test_every_public_int_refuses_what_is_not_an_int(
    proxies: Proxies,
    call: Call,
    what: str,
    low: Optional[int],
    value: Any,
    request: pytest.FixtureRequest,
) -> None:
    if value == "1" and request.node.callspec.id.split("-", 1)[1] in STR_MEANS_MORE:
        return
    with pytest.raises(TypeError) as caught:
        call(value, proxies)
    _check_message(caught, what)


@pytest.mark.parametrize(("call", "what", "low"), [c for c in CALLS if c.values[2] is not None])
def test_every_bounded_public_int_refuses_one_less(
    proxies: Proxies, call: Call, what: str, low: int
) -> None:
    with pytest.raises(ValueError) as caught:
        call(low - 1, proxies)
    _check_message(caught, what)
    assert repr(low - 1) in str(caught.value)


@pytest.mark.parametrize(("call", "what", "low"), CALLS)
def test_a_huge_int_is_used_or_refused_by_name(
    proxies: Proxies, call: Call, what: str, low: Optional[int]
) -> None:
    # Accepted where any size means something (a byte count, a tag); a ValueError where
    # there is a bound (a port): never an OverflowError from deep inside.
    for value in (10**400, -(10**400)):
        try:
            call(value, proxies)
        except ValueError:
            pass
        except OverflowError as exc:  # pragma: no cover - the failure this test is for
            pytest.fail(f"{what}: OverflowError {exc}")
        else:
            assert low is None or value > 0, f"{what} accepted {value}"
        _clear(proxies)


@pytest.mark.parametrize("runs", ["0", "-1", "True", "1.5", "'3'", "10**400 * 0"])
def test_the_fragment_marker_refuses_a_bad_runs_by_name(
    pytester: pytest.Pytester, runs: str
) -> None:
    pytester.makepyfile(
        f"""
        import pytest

        @pytest.mark.hsock_fragment(runs={runs})
        def test_x(hsock_fragmentation):
            pass
        """
    )
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(["*@pytest.mark.hsock_fragment runs must be a positive int, not *"])


_ANYTHING = st.one_of(
    st.integers(),
    st.integers(min_value=2**63).map(lambda n: n**7),
    st.floats(),
    st.booleans(),
    st.none(),
    st.text(max_size=3),
    st.binary(max_size=3),
)


@given(
    value=_ANYTHING,
    low=st.one_of(st.none(), st.integers(-5, 5)),
    span=st.one_of(st.none(), st.integers(0, 10)),
)
def test_check_int_accepts_exactly_an_int_in_bounds_else_names_it(
    value: Any, low: Optional[int], span: Optional[int]
) -> None:
    high = None if span is None else (low or 0) + span
    is_int = isinstance(value, int) and not isinstance(value, bool)
    in_bounds = is_int and (low is None or value >= low) and (high is None or value <= high)
    if in_bounds:
        assert check_int(value, "f() n", low, high) is value
        return
    with pytest.raises(ValueError if is_int else TypeError) as caught:
        check_int(value, "f() n", low, high)
    message = str(caught.value)
    assert message.startswith("f() n must "), message
    assert "\n" not in message
    assert len(message) < 200, message
