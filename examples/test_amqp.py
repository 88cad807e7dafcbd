"""pika against a scripted AMQP 0-9-1 broker: rules only, framed by the frame header.

An AMQP frame is a type byte, a 2-byte channel, a 4-byte big-endian payload size, the
payload, then the frame-end byte ``0xCE``: ``Prefixed("!I", offset=3, trailer=b"\\xce")``.
Matching the frame end with ``until(b"\\xce")`` breaks on the first payload holding 0xCE; the
length field does not. The broker's answers are built with pika's own method classes.
"""

from __future__ import annotations

import struct
from typing import Callable

import pika
import pytest
from pika import spec
from pika.frame import Method

from pytest_hsocket import Prefixed
from pytest_hsocket.testing import MockServer

# The framing glue: a frame, whole; a check for a method frame; an answer.
FRAME = Prefixed("!I", offset=3, trailer=b"\xce", include_header=True)


def method(class_id: int, method_id: int) -> Callable[[bytes], bool]:
    return lambda f: f[0] == 1 and struct.unpack_from("!HH", f, 7) == (class_id, method_id)


def answer(channel: int, reply: spec.amqp_object.Method) -> bytes:
    return Method(channel, reply).marshal()  # type: ignore[no-any-return]


START = spec.Connection.Start(server_properties={"product": "mock"}, mechanisms="PLAIN")
BODY = b"order \xce 42"  # a 0xCE inside a payload: a delimiter would cut the frame here


def script_broker(server: MockServer) -> None:
    """Open a connection and a channel, take one message, close both."""
    server.expect(b"AMQP\x00\x00\x09\x01").respond(answer(0, START))
    server.expect(FRAME, method(10, 11)).respond(answer(0, spec.Connection.Tune(0, 131072, 0)))
    server.expect(FRAME, method(10, 31))  # Tune-Ok
    server.expect(FRAME, method(10, 40)).respond(answer(0, spec.Connection.OpenOk()))
    server.expect(FRAME, method(20, 10)).respond(answer(1, spec.Channel.OpenOk()))
    server.expect(FRAME, method(60, 40))  # Basic.Publish, then its header and body frames
    server.expect(FRAME, lambda f: f[0] == 2)
    server.expect(FRAME, lambda f: f[0] == 3 and f[7:-1] == BODY)
    server.expect(FRAME, method(20, 40)).respond(answer(1, spec.Channel.CloseOk()))
    server.expect(FRAME, method(10, 50)).respond(answer(0, spec.Connection.CloseOk()))


def publish_once(host: str, port: int) -> None:
    """What the code under test does."""
    params = pika.ConnectionParameters(host, port, connection_attempts=1, socket_timeout=5)
    connection = pika.BlockingConnection(params)
    try:
        channel = connection.channel()
        channel.basic_publish(exchange="", routing_key="orders", body=BODY)
        channel.close()
    finally:
        connection.close()


def test_publish(hsock_server: MockServer) -> None:
    script_broker(hsock_server)
    publish_once(hsock_server.host, hsock_server.port)


@pytest.mark.hsock_fragment(runs=5)
def test_publish_with_every_reply_cut(hsock_server: MockServer) -> None:
    script_broker(hsock_server)
    publish_once(hsock_server.host, hsock_server.port)
