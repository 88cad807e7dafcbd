"""A client's retry under a bad network, and a Redis session recorded once and replayed offline.

``hsock_proxy`` sits between the code under test and its server and makes the network
misbehave on purpose, while the server itself stays correct. Two stories:

1. ``fetch_with_retry`` is a small line-protocol client that reconnects and tries again when
   an attempt times out or is reset. Behind the proxy, ``hsock_server`` answers every
   connection; a ``downstream.latency(...)`` toxic longer than the client's timeout makes the
   first attempt time out, a ``downstream.reset_peer(0)`` toxic resets every connection, and
   once the test removes the toxic (``handle.remove()``, from the client's ``on_failure``
   hook) the next attempt gets through. The number of attempts is counted on the server side
   (``len(hsock_server.transcripts)``: every connection the proxy forwards reaches it) and the
   delays are measured with ``time.perf_counter``.

2. Record, then replay: redis-py talks to a real ``redis-server`` through the proxy, which
   records every byte both ways; ``proxy.save(path)`` writes the record as JSON lines. Then the
   redis-server is stopped, ``hsock_server.replay(path)`` plays the server's side of the
   recording, and the same redis-py session gets the same answers from the mock. The mock is
   held to the recording: a command the client did not send the first time, or one it no
   longer sends, fails the test at teardown.

The redis-py client is the quiet one of ``test_redis_resp.py`` (``protocol=2``, no driver
info: no handshake commands) with a single connection, so the recording is one connection of
exactly the five commands of the session. The redis-server fixture is copied from there too.
"""

from __future__ import annotations

import inspect
import json
import socket
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, NamedTuple, Optional

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from pytest_hsocket.plugin.proxy import ProxyFactory
from pytest_hsocket.testing import MockServer

if TYPE_CHECKING:
    from conftest import RedisServer  # the example suite's fixture type

REQUEST = b"GET config\r\n"
REPLY = b"+mode=fast\r\n"


# -- 1. a client that retries ------------------------------------------------------------------


class Failure(NamedTuple):
    """One failed attempt, as ``fetch_with_retry`` reports it to ``on_failure``."""

    attempt: int
    error: OSError
    elapsed: float  # seconds from connecting to the failure


def fetch_with_retry(
    host: str,
    port: int,
    *,
    attempts: int = 3,
    timeout: float = 0.3,
    on_failure: Optional[Callable[[Failure], None]] = None,
) -> bytes:
    """Send ``REQUEST`` and return the reply line, trying ``attempts`` times in all.

    Each attempt opens a new connection. An attempt fails when the reply does not come within
    ``timeout`` seconds (``socket.timeout``) or the connection is reset
    (``ConnectionResetError``); ``on_failure`` hears of each failure (for logs or metrics)
    before the next attempt.

    Raises:
        socket.timeout, ConnectionResetError: The last attempt's error, if every one failed.
        ConnectionError: If the server closed the connection without a whole reply.
    """
    if attempts < 1:
        raise ValueError(f"attempts must be at least 1, not {attempts}")
    for attempt in range(1, attempts + 1):
        started = time.perf_counter()
        try:
            with socket.create_connection((host, port), timeout=timeout) as sock:
                sock.sendall(REQUEST)
                with sock.makefile("rb") as reader:
                    line = reader.readline()
        except (socket.timeout, ConnectionResetError) as exc:
            if on_failure is not None:
                on_failure(Failure(attempt, exc, time.perf_counter() - started))
            if attempt == attempts:
                raise
            continue
        if not line.endswith(b"\n"):
            raise ConnectionError(f"connection closed after {line!r}")
        return line
    raise AssertionError("unreachable")


@pytest.fixture
def config_server(hsock_server: MockServer) -> MockServer:
    """``hsock_server`` answering ``REQUEST`` on every connection (each plays the script)."""
    hsock_server.expect(REQUEST).respond(REPLY)
    return hsock_server


def test_latency_under_the_timeout_only_delays_the_reply(
    config_server: MockServer, hsock_proxy: ProxyFactory
) -> None:
    proxy = hsock_proxy(config_server)
    proxy.downstream.latency(150)  # every reply 150 ms late, well under the 1 s timeout

    started = time.perf_counter()
    # A margin of 850 ms: a busy machine that wakes late must not turn this into a retry.
    assert fetch_with_retry(*proxy.address, timeout=1.0) == REPLY
    elapsed = time.perf_counter() - started

    assert len(config_server.transcripts) == 1  # one attempt was enough
    assert elapsed >= 0.150  # a busy machine only adds to it: assert the lower bound


def test_a_timed_out_attempt_is_retried_once_the_latency_is_gone(
    config_server: MockServer, hsock_proxy: ProxyFactory
) -> None:
    proxy = hsock_proxy(config_server)
    slow = proxy.downstream.latency(60_000)  # far longer than the client waits
    failures: list[Failure] = []

    def on_failure(failure: Failure) -> None:
        failures.append(failure)
        slow.remove()  # the network recovers before the next attempt

    started = time.perf_counter()
    # 1 s per attempt: room for a busy machine, where the retry must not time out too.
    assert fetch_with_retry(*proxy.address, timeout=1.0, on_failure=on_failure) == REPLY
    elapsed = time.perf_counter() - started

    [first] = failures
    assert first.attempt == 1
    assert isinstance(first.error, socket.timeout)
    assert first.elapsed >= 1.0  # the client's own timeout, never early
    assert elapsed >= first.elapsed  # ... and one failure only: the retry got through
    # The server answered both connections at once: the first reply was held in the proxy.
    assert len(config_server.transcripts) == 2
    assert [t.received() for t in config_server.transcripts] == [REQUEST, REQUEST]
    assert proxy.accepted == 2


def test_resets_are_retried_until_the_toxic_is_removed(
    config_server: MockServer, hsock_proxy: ProxyFactory
) -> None:
    proxy = hsock_proxy(config_server)
    reset = proxy.downstream.reset_peer(0)  # every connection reset as soon as it is made
    failures: list[Failure] = []

    def on_failure(failure: Failure) -> None:
        failures.append(failure)
        if failure.attempt == 2:
            reset.remove()

    assert fetch_with_retry(*proxy.address, attempts=3, on_failure=on_failure) == REPLY

    assert [f.attempt for f in failures] == [1, 2]
    assert all(isinstance(f.error, ConnectionResetError) for f in failures)
    assert not reset.active
    # Each attempt was a connection the proxy forwarded to the server, then reset.
    assert len(config_server.transcripts) == 3
    assert config_server.transcripts[2].received() == REQUEST
    assert proxy.accepted == 3


def test_the_client_gives_up_after_its_last_attempt(
    hsock_server: MockServer, hsock_proxy: ProxyFactory
) -> None:
    # Reset at once: whether a request reaches the server before its connection is reset is a
    # race (a busy machine loses it), so here the rule may go unmet (times=None).
    hsock_server.expect(REQUEST, times=None).respond(REPLY)
    proxy = hsock_proxy(hsock_server)
    proxy.downstream.reset_peer(0)  # never removed

    with pytest.raises(ConnectionResetError):
        fetch_with_retry(*proxy.address, attempts=3)

    assert len(hsock_server.transcripts) == 3
    assert proxy.accepted == 3


# -- 2. record a real redis-server, replay it without one -------------------------------------


def _quiet_options() -> dict[str, Any]:
    """redis-py options that turn the handshake off, for the versions that have them."""
    params = inspect.signature(redis.Redis.__init__).parameters
    options: dict[str, Any] = {}
    if "protocol" in params:
        options["protocol"] = 2
    if "driver_info" in params:  # 8.x; lib_name/lib_version are deprecated there
        options["driver_info"] = None
    elif "lib_name" in params:
        options.update(lib_name=None, lib_version=None)
    return options


def redis_session(host: str, port: int) -> list[Any]:
    """The session under test, on one connection: its results, in order."""
    r = redis.Redis(
        host,
        port,
        socket_timeout=5,
        retry=Retry(NoBackoff(), 0),  # a mock off script fails at once, not after retries
        single_connection_client=True,
        **_quiet_options(),
    )
    try:
        return [r.ping(), r.set("k", "v"), r.get("k"), r.incr("n"), r.delete("k")]
    finally:
        r.close()


EXPECTED = [True, True, b"v", 1, 1]


def test_record_a_real_redis_then_replay_it_without_one(
    redis_server: RedisServer,
    hsock_proxy: ProxyFactory,
    hsock_server: MockServer,
    tmp_path: Path,
) -> None:
    # Record: redis-py -> proxy -> redis-server.
    proxy = hsock_proxy("127.0.0.1", redis_server.port)
    assert redis_session(*proxy.address) == EXPECTED
    recording = tmp_path / "redis.jsonl"
    proxy.save(recording)
    assert proxy.accepted == 1

    # The file: JSON lines of one connection, the client's commands and Redis's replies.
    lines = [json.loads(line) for line in recording.read_text(encoding="utf-8").splitlines()]
    assert lines
    assert all({"dir", "conn", "text"} <= line.keys() for line in lines)
    assert {line["conn"] for line in lines} == {1}
    sent = "".join(line["text"] for line in lines if line["dir"] == "upstream")
    answered = "".join(line["text"] for line in lines if line["dir"] == "downstream")
    assert sent.startswith("*1\r\n$4\r\nPING\r\n")
    assert [name in sent for name in ("SET", "GET", "INCRBY", "DEL")] == [True] * 4
    assert answered == "+PONG\r\n+OK\r\n$1\r\nv\r\n:1\r\n:1\r\n"

    # Replay: no redis-server any more, the mock plays its side of the recording.
    redis_server.stop()
    hsock_server.replay(recording)
    assert redis_session(*hsock_server.address) == EXPECTED

    [transcript] = hsock_server.transcripts
    assert transcript.received().decode() == sent
    assert transcript.sent().decode() == answered
    # Teardown fails the test if the replayed script is not fully met.
