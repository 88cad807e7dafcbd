"""kafka-python against a scripted Kafka broker: rules only, framed by the 4-byte size.

A Kafka request or response is a 4-byte big-endian size, then that many bytes; a request
starts with its API key (2 bytes), API version (2) and correlation id (4), which the response
echoes. The producer opens two connections to the same broker (bootstrap, then the
partition leader the metadata names), so the produce rule is ``shared``: once, on whichever
connection. The answers are built with kafka-python's own message classes.
"""

from __future__ import annotations

import struct
from typing import Callable

import pytest
from kafka import KafkaProducer
from kafka.protocol.metadata import ApiVersionsResponse, MetadataResponse
from kafka.protocol.producer import ProduceResponse

from pytest_hsocket import Prefixed
from pytest_hsocket.testing import MockServer

# The framing glue: a whole request; a check of its API key; an answer echoing its id.
KAFKA = Prefixed("!I", include_header=True)


def api(key: int) -> Callable[[bytes], bool]:
    return lambda frame: struct.unpack_from("!h", frame, 4)[0] == key


def reply(message: object, version: int) -> Callable[[bytes], bytes]:
    def build(request: bytes) -> bytes:
        body = request[8:12] + message.encode(version=version)  # type: ignore[attr-defined]
        return struct.pack("!I", len(body)) + body

    return build


def is_produce(frame: bytes) -> bool:
    """A check: a Produce request (API key 0) of the record ``order-17`` to ``orders``."""
    return api(0)(frame) and b"orders" in frame and frame.endswith(b"order-17")


def script_broker(server: MockServer) -> None:
    """One broker (this server) leading partition 0 of ``orders``; one record produced."""
    av, md, pr = ApiVersionsResponse, MetadataResponse, ProduceResponse
    versions = av(
        error_code=0,
        throttle_time_ms=0,
        api_keys=[
            av.ApiVersion(api_key=key, min_version=0, max_version=top)
            for key, top in ((18, 3), (3, 1), (0, 3))  # ApiVersions, Metadata, Produce
        ],
    )
    partition = md.MetadataResponseTopic.MetadataResponsePartition(
        error_code=0, partition_index=0, leader_id=0, replica_nodes=[0], isr_nodes=[0]
    )
    metadata = md(
        brokers=[md.MetadataResponseBroker(node_id=0, host=server.host, port=server.port)],
        controller_id=0,
        topics=[
            md.MetadataResponseTopic(
                error_code=0, name="orders", is_internal=False, partitions=[partition]
            )
        ],
    )
    topic = pr.TopicProduceResponse
    produced = pr(
        throttle_time_ms=0,
        responses=[
            topic(
                name="orders",
                partition_responses=[
                    topic.PartitionProduceResponse(
                        index=0, error_code=0, base_offset=41, log_append_time_ms=-1
                    )
                ],
            )
        ],
    )
    # Handshakes and metadata refreshes: on every connection, as often as they come.
    server.expect(KAFKA, api(18), times=None, ordered=False).respond(reply(versions, 3))
    server.expect(KAFKA, api(3), times=None, ordered=False).respond(reply(metadata, 1))
    server.expect(KAFKA, is_produce, shared=True, name="produce").respond(reply(produced, 3))


def produce_once(host: str, port: int) -> int:
    """What the code under test does: send one record, return its offset."""
    producer = KafkaProducer(
        bootstrap_servers=f"{host}:{port}",
        enable_idempotence=False,
        request_timeout_ms=5000,
        max_block_ms=5000,
    )
    try:
        return producer.send("orders", b"order-17").get(timeout=5).offset  # type: ignore[no-any-return]
    finally:
        producer.close(timeout=5)


def test_produce(hsock_server: MockServer) -> None:
    script_broker(hsock_server)
    assert produce_once(hsock_server.host, hsock_server.port) == 41


@pytest.mark.hsock_fragment(runs=5)
def test_produce_with_every_reply_cut(hsock_server: MockServer) -> None:
    script_broker(hsock_server)
    assert produce_once(hsock_server.host, hsock_server.port) == 41
