"""``hsocket.timeout`` and ``hsocket.udp.timeout``: module attributes a new socket copies.

They are kept in the socket layer (which must not read the public modules above it) and shown
as module attributes; TCP and UDP check them the same way.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest

import pytest_hsocket as hsocket
from pytest_hsocket import udp


def new_timeouts() -> tuple[Any, Any]:
    tcp_sock, udp_sock = hsocket.new(), udp.new()
    try:
        return tcp_sock.info()["timeout"], udp_sock.info()["timeout"]
    finally:
        tcp_sock.close()
        udp_sock.close()


@pytest.mark.parametrize("value", [2.5, 0, 7, -1])
def test_a_new_socket_copies_the_module_timeout(
    monkeypatch: pytest.MonkeyPatch, value: float
) -> None:
    monkeypatch.setattr(hsocket, "timeout", value)
    monkeypatch.setattr(udp, "timeout", value)
    assert hsocket.timeout == udp.timeout == value
    assert new_timeouts() == (value, value)


@pytest.mark.parametrize("value", [True, "5", None, float("nan"), float("inf"), 10**400])
def test_tcp_and_udp_refuse_the_same_module_timeouts(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, value: object
) -> None:
    # UDP used to take True as 1.0 where TCP refused it.
    monkeypatch.setattr(hsocket, "timeout", value)
    monkeypatch.setattr(udp, "timeout", value)
    with caplog.at_level(logging.WARNING, logger="pytest_hsocket"):
        assert new_timeouts() == (-1, -1)
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(m.startswith("hsocket timeout must be") for m in warned), warned
    assert any(m.startswith("hsocket.udp timeout must be") for m in warned), warned


def test_the_modules_show_their_own_setting() -> None:
    saved = hsocket.timeout
    hsocket.timeout = 4
    try:
        assert udp.timeout == -1  # separate, as in the original
        assert "timeout" in dir(hsocket)
        from pytest_hsocket import timeout

        assert timeout == 4
    finally:
        hsocket.timeout = saved
    assert hsocket.timeout == saved
