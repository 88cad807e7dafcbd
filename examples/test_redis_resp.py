"""redis-py against a scripted RESP server, and hs.socket against a real redis-server.

A RESP command is an array of bulk strings (``*2\\r\\n$3\\r\\nGET\\r\\n$3\\r\\nkey\\r\\n``), a
reply starts with its type byte (``+OK``, ``-ERR ...``, ``:1``, ``$5\\r\\nhello``). That makes
Redis a good target for ``hsock_server``: each command the client sends is known byte for byte.

What the installed redis-py (8.1) sends when it connects, recorded with an hs.socket-style
server before any rule was written::

    HELLO 3                                          (RESP3 is its default protocol)
    CLIENT MAINT_NOTIFICATIONS ON moving-endpoint-type internal-ip   (-fqdn for a host name)
    CLIENT SETINFO LIB-NAME redis-py
    CLIENT SETINFO LIB-VER 8.1.0

Older versions send less (RESP2, so no ``HELLO``, was the default before 8.0; ``CLIENT
SETINFO`` came with 5.0), so the ``resp_server`` fixture answers the handshake with
*unordered, repeating* rules: they match whenever such a command arrives, as often as it
arrives, and are never required. The commands a test is about are ordered rules with their
exact bytes. The other way out is a client that sends no handshake at all (``protocol=2`` and
no driver info): see ``test_a_quiet_client_sends_no_handshake``.

The last tests start a real ``redis-server`` (skipped when it is not installed) and speak raw
RESP to it with ``hsock_client`` -- and check that every reply scripted above is byte for byte
what Redis itself answers.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Iterator
from typing import Any, Union

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from pytest_hsocket.testing import MockServer, TestClient

TAG_LINE, TAG_BULK = 1, 2


def command(*args: Union[str, bytes]) -> bytes:
    """Encode a command the way every Redis client does: an array of bulk strings."""
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg.encode() if isinstance(arg, str) else arg
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


def any_command(name: str, argc: int) -> re.Pattern[bytes]:
    """Match one complete ``name`` command with exactly ``argc`` arguments (any values)."""
    return re.compile(
        rb"\*%d\r\n\$%d\r\n%s\r\n(?:\$\d+\r\n[^\r\n]*\r\n){%d}"
        % (argc + 1, len(name), re.escape(name.encode()), argc)
    )


PONG = b"+PONG\r\n"
OK = b"+OK\r\n"
HELLO = b"$5\r\nhello\r\n"
NOT_AN_INTEGER = b"-ERR value is not an integer or out of range\r\n"

# The replies of the scripted commands below, checked against a real redis-server at the end.
SCRIPTED = {
    command("PING"): PONG,
    command("SET", "greeting", "hello"): OK,
    command("GET", "greeting"): HELLO,
    command("INCRBY", "greeting", "1"): NOT_AN_INTEGER,
}

# What Redis 7 answers to HELLO 3: a RESP3 map (trimmed to the keys redis-py looks at).
HELLO_3_REPLY = b"".join(
    [
        b"%3\r\n",
        b"$6\r\nserver\r\n" + b"$5\r\nredis\r\n",
        b"$7\r\nversion\r\n" + b"$6\r\n7.0.15\r\n",
        b"$5\r\nproto\r\n" + b":3\r\n",
    ]
)


def client_options() -> dict[str, Any]:
    """Options of the redis-py clients of the mock.

    No reconnect-and-retry: when a script goes off the rails the mock stops answering, and a
    test should fail after one ``socket_timeout``, not after every retry redis-py would make.
    """
    return {"socket_timeout": 5, "retry": Retry(NoBackoff(), 0)}


@pytest.fixture
def resp_server(hsock_server: MockServer) -> MockServer:
    """``hsock_server`` that answers whatever connection handshake redis-py sends."""
    hsock_server.expect(command("HELLO", "3"), times=None, ordered=False).respond(HELLO_3_REPLY)
    for argc in (2, 3, 4):  # CLIENT SETNAME x / SETINFO k v / MAINT_NOTIFICATIONS ON k v
        hsock_server.expect(any_command("CLIENT", argc), times=None, ordered=False).respond(OK)
    return hsock_server


@pytest.fixture
def redis_client(resp_server: MockServer) -> Iterator[redis.Redis]:
    """A default redis-py client of ``resp_server``."""
    r = redis.Redis(resp_server.host, resp_server.port, **client_options())
    yield r
    r.close()


def commands_sent(server: MockServer) -> list[list[bytes]]:
    """Decode every command the server's first connection received (for assertions)."""
    data, pos, found = server.transcripts[0].received(), 0, []
    while pos < len(data):
        array = re.compile(rb"\*(\d+)\r\n").match(data, pos)
        assert array is not None, f"not a RESP array at byte {pos}: {data[pos:]!r}"
        pos, args = array.end(), []
        for _ in range(int(array.group(1))):
            bulk = re.compile(rb"\$(\d+)\r\n").match(data, pos)
            assert bulk is not None, f"not a bulk string at byte {pos}: {data[pos:]!r}"
            end = bulk.end() + int(bulk.group(1))
            args.append(data[bulk.end() : end])
            pos = end + 2
        found.append(args)
    return found


def test_ping(resp_server: MockServer, redis_client: redis.Redis) -> None:
    resp_server.expect(command("PING")).respond(PONG)

    assert redis_client.ping() is True

    sent = commands_sent(resp_server)
    assert sent[-1] == [b"PING"]
    # Before it, only the handshake of the installed redis-py (see the docstring).
    assert {args[0] for args in sent[:-1]} <= {b"HELLO", b"CLIENT"}


def test_set_get_round_trip(resp_server: MockServer, redis_client: redis.Redis) -> None:
    resp_server.expect(command("SET", "greeting", "hello")).respond(OK)
    resp_server.expect(command("GET", "greeting")).respond(HELLO)

    assert redis_client.set("greeting", "hello") is True
    assert redis_client.get("greeting") == b"hello"


def test_error_reply_raises_response_error(
    resp_server: MockServer, redis_client: redis.Redis
) -> None:
    # redis-py sends INCR as INCRBY key 1.
    resp_server.expect(command("INCRBY", "greeting", "1")).respond(NOT_AN_INTEGER)
    resp_server.expect(command("PING")).respond(PONG)

    with pytest.raises(redis.ResponseError, match="value is not an integer or out of range"):
        redis_client.incr("greeting")
    # The error reply was consumed whole: the same connection goes on working.
    assert redis_client.ping() is True
    assert len(resp_server.transcripts) == 1


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


def test_a_quiet_client_sends_no_handshake(hsock_server: MockServer) -> None:
    # No handshake rules at all: the PING must be the very first thing on the wire.
    hsock_server.expect(command("PING")).respond(PONG)
    r = redis.Redis(hsock_server.host, hsock_server.port, **client_options(), **_quiet_options())
    try:
        assert r.ping() is True
    finally:
        r.close()

    assert hsock_server.transcripts[0].received() == command("PING")


# -- hs.socket against a real redis-server ----------------------------------------------------


def read_reply(client: TestClient) -> bytes:
    """Read one simple reply the hs.socket way: a line, then the bulk it announces."""
    line = client.expect(b"\r\n", tag=TAG_LINE)
    if line.startswith(b"$") and int(line[1:-2]) >= 0:
        return line + client.expect(int(line[1:-2]) + 2, tag=TAG_BULK)
    return line


def test_hs_socket_speaks_raw_resp_to_real_redis(
    redis_server_port: int, hsock_client: Callable[..., TestClient]
) -> None:
    client = hsock_client("127.0.0.1", redis_server_port)

    client.write(command("PING"))
    assert client.expect(b"\r\n", tag=TAG_LINE) == b"+PONG\r\n"

    client.write(command("SET", "greeting", "hello"))
    assert client.expect(b"\r\n", tag=TAG_LINE) == b"+OK\r\n"

    client.write(command("GET", "greeting"))
    header = client.expect(b"\r\n", tag=TAG_LINE)
    assert header == b"$5\r\n"
    assert client.expect(int(header[1:-2]) + 2, tag=TAG_BULK) == b"hello\r\n"

    client.write(command("GET", "missing"))
    assert client.expect(b"\r\n", tag=TAG_LINE) == b"$-1\r\n"  # RESP2 nil

    # Pipelined: three commands in one write, three replies in order.
    client.write(command("INCR", "hits") * 3)
    replies = [client.expect(b"\r\n", tag=TAG_LINE) for _ in range(3)]
    assert replies == [b":1\r\n", b":2\r\n", b":3\r\n"]


def test_the_scripted_replies_are_what_redis_answers(
    redis_server_port: int, hsock_client: Callable[..., TestClient]
) -> None:
    client = hsock_client("127.0.0.1", redis_server_port)

    for request, scripted in SCRIPTED.items():
        client.write(request)
        assert read_reply(client) == scripted, f"real reply to {request!r}"
