"""Issue 17 item 6: a BaseException raised in a socket callback (``pytest.fail()``) is never
swallowed: it is logged, kept in ``callback_errors``, raised by ``check()`` and fails the test."""

from __future__ import annotations

import logging
from typing import Any, Callable

import pytest

import pytest_hsocket as hsocket
from pytest_hsocket import CallbackError

from .conftest import Signal, port_of


class _Custom(BaseException):
    """A BaseException that is neither Exception nor a pytest outcome."""


def _fail() -> None:
    pytest.fail("failed inside a callback")


def _custom() -> None:
    raise _Custom("custom base exception")


def _exit() -> None:
    raise SystemExit(3)


RAISERS: list[tuple[Callable[[], None], type[BaseException]]] = [
    (_fail, pytest.fail.Exception),
    (_custom, _Custom),
    (_exit, SystemExit),
]


def _read_callback(raise_: Callable[[], None], done: Signal) -> Any:
    def on_read(data: bytes, tag: int) -> None:
        done(data)
        raise_()

    return on_read


@pytest.mark.parametrize("kind", ["read", "write", "connect", "on_disconnect", "server read"])
@pytest.mark.parametrize(("raise_", "expected"), RAISERS)
def test_base_exception_in_every_kind_of_callback_is_kept_and_raised(
    kind: str,
    raise_: Callable[[], None],
    expected: type[BaseException],
    caplog: pytest.LogCaptureFixture,
) -> None:
    done = Signal()
    server_fn: Any = (lambda d, t, c: (done(d), raise_())) if kind == "server read" else None
    server = hsocket.server(0, server_fn or (lambda d, t, c: c.write(d)))
    server.on_connect(lambda c: c.read(b"\n"))
    client = hsocket.new(_read_callback(raise_, done) if kind == "read" else lambda d, t: None)
    watched: hsocket.Socket = server if kind == "server read" else client
    try:
        with caplog.at_level(logging.ERROR, logger="pytest_hsocket"):
            connect_fn = (lambda: (done(), raise_())) if kind == "connect" else None
            assert client.connect("127.0.0.1", port_of(server), connect_fn) is client
            if kind == "on_disconnect":
                client.on_disconnect(lambda reason: (done(reason), raise_()))
            if kind == "write":
                client.write(b"x\n", 1, lambda tag: (done(tag), raise_()))
            else:
                client.write(b"x\n")
            if kind == "read":
                client.read(b"\n")
            if kind == "on_disconnect":
                client.disconnect()
            done.wait()
            # The error is recorded after the callback returns: wait for that, no sleep.
            _wait_for_error(watched)
        assert len(watched.callback_errors) == 1
        error = watched.callback_errors[0]
        assert isinstance(error.__cause__, expected)
        assert any(r.exc_info and r.exc_info[0] is expected for r in caplog.records)
        with pytest.raises(CallbackError) as raised:
            watched.check()
        assert isinstance(raised.value.__cause__, expected)
    finally:
        client.disconnect()
        server.disconnect()


def _wait_for_error(sock: hsocket.Socket) -> None:
    # A round trip through the socket loop runs after the callback batch that raised.
    from pytest_hsocket._loop.hub import get_loop

    for _ in range(100):
        if sock.callback_errors:
            return
        get_loop().run_sync(lambda: None)
    raise AssertionError("the callback's error was never recorded")


def test_pytest_fail_in_a_callback_fails_the_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        def test_it(hsock_server, hsock_client):
            seen = []
            def boom(data, tag):
                seen.append(data)
                pytest.fail("from the callback")
            hsock_server.expect(b"ping\\n").respond(b"hi\\n")
            client = hsock_client(hsock_server)
            client.set_callback(boom)
            client.write(b"ping\\n")
            client.read(b"\\n")
            hsock_server.settle()
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    outcomes = result.parseoutcomes()
    # The test body passed; its teardown reports the callback's failure (the run fails).
    assert result.ret != 0
    assert outcomes.get("failed", 0) + outcomes.get("errors", 0) == 1, result.stdout.str()
    result.stdout.fnmatch_lines(["*from the callback*"])
