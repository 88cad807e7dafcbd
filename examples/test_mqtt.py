"""paho-mqtt against a scripted MQTT broker: rules only, framed by MQTT's varint length.

An MQTT packet is one fixed-header byte (the packet type in its high nibble), the "remaining
length" as a varint (7 bits a byte, least significant first), then that many bytes. One
``Prefixed("varint", offset=1)`` frames every packet; each rule checks the framed bytes.
"""

from __future__ import annotations

import re
import threading

import paho.mqtt.client as mqtt
import pytest

from pytest_hsocket import Prefixed
from pytest_hsocket.testing import MockServer

# The framing glue: every MQTT packet, header included.
MQTT = Prefixed("varint", offset=1, include_header=True)
CONNACK = b"\x20\x02\x00\x00"  # session present 0, return code 0 (accepted)


def script_broker(server: MockServer) -> None:
    """CONNECT -> CONNACK, then one QoS 0 PUBLISH to ``sensors/1``, then DISCONNECT."""
    server.expect(MQTT, re.compile(rb"\A\x10.\x00\x04MQTT", re.S)).respond(CONNACK)
    server.expect(MQTT, lambda f: f[0] >> 4 == 3 and b"sensors/1" in f and f.endswith(b"21.5"))
    server.expect(MQTT, b"\xe0\x00")


def publish_once(host: str, port: int) -> None:
    """What the code under test does: connect, publish a reading, disconnect."""
    connected = threading.Event()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="probe-1")
    client.on_connect = lambda *args: connected.set()
    client.connect(host, port, keepalive=60)
    client.loop_start()
    try:
        assert connected.wait(5), "no CONNACK"
        client.publish("sensors/1", b"21.5", qos=0).wait_for_publish(5)
        client.disconnect()
    finally:
        client.loop_stop()


def test_publish(hsock_server: MockServer) -> None:
    script_broker(hsock_server)
    publish_once(hsock_server.host, hsock_server.port)


@pytest.mark.hsock_fragment(runs=5)
def test_publish_with_every_reply_cut(hsock_server: MockServer) -> None:
    script_broker(hsock_server)
    publish_once(hsock_server.host, hsock_server.port)
