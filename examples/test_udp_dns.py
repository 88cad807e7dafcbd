"""A tiny DNS client, tested against a scripted DNS server on ``hsock_udp_server``.

DNS over UDP is one datagram each way. The query is a 12-byte header (an id, flags, the
section counts) and a question: the name as length-prefixed labels (``7example3com0``), a type
(1 = A, an IPv4 address) and a class (1 = IN). The answer echoes the id and the question, sets
the QR bit, and appends resource records; a name in a record is usually a *pointer* to the copy
in the question (``0xc00c``: offset 12). The last four bits of the flags are the response code:
0 for success, 3 (NXDOMAIN) for a name that does not exist.

``resolve`` builds the query with ``struct``, sends it over a plain stdlib UDP socket and parses
the reply. The scripted server answers from a small zone with a ``respond`` function that reads
the query it matched -- a real server in miniature, so the client's id and question must come
back as it sent them. The rule itself matches any id but insists on a standard recursive query
for the expected name, so a malformed query fails the test at teardown.
"""

from __future__ import annotations

import ipaddress
import random
import re
import socket
import struct
import time
from collections.abc import Callable
from typing import NamedTuple, Optional

import pytest

from pytest_hsocket.testing import UdpMockServer, UdpTestClient

HEADER = struct.Struct(">HHHHHH")  # id, flags, questions, answers, authority, additional
QUESTION_TAIL = struct.Struct(">HH")  # type, class
RECORD = struct.Struct(">HHIH")  # type, class, TTL, data length (after the record's name)

TYPE_A, CLASS_IN = 1, 1
FLAG_QR, FLAG_RD, FLAG_RA = 0x8000, 0x0100, 0x0080
RCODE_OK, RCODE_NXDOMAIN = 0, 3

ZONE = {"example.com": "93.184.216.34", "mail.example.com": "192.0.2.25"}


class NameNotFound(LookupError):
    """The server answered NXDOMAIN: the name does not exist."""


class DnsError(Exception):
    """A reply that is not an answer to the query, or a failure code other than NXDOMAIN."""


class Question(NamedTuple):
    query_id: int
    name: str
    qtype: int
    qclass: int
    end: int  # offset just past the question in the packet


# -- the client ---------------------------------------------------------------------------------


def encode_name(name: str) -> bytes:
    """``example.com`` -> ``b"\\x07example\\x03com\\x00"``."""
    labels = [label.encode("ascii") for label in name.rstrip(".").split(".")]
    if any(not 0 < len(label) < 64 for label in labels):
        raise ValueError(f"not a valid host name: {name!r}")
    return b"".join(bytes([len(label)]) + label for label in labels) + b"\x00"


def decode_name(packet: bytes, offset: int) -> tuple[str, int]:
    """Read a (possibly compressed) name at ``offset``; return it and the offset after it."""
    labels: list[str] = []
    end: Optional[int] = None  # where the name ends in the packet, once a pointer is followed
    for _ in range(128):  # a bound on pointer loops
        length = packet[offset]
        if length & 0xC0 == 0xC0:  # a pointer: 14 bits of offset
            if end is None:
                end = offset + 2
            offset = struct.unpack_from(">H", packet, offset)[0] & 0x3FFF
        elif length == 0:
            return ".".join(labels), offset + 1 if end is None else end
        else:
            labels.append(packet[offset + 1 : offset + 1 + length].decode("ascii"))
            offset += 1 + length
    raise DnsError("name compression loop")


def build_query(name: str, query_id: int) -> bytes:
    """A standard recursive query for the A record of ``name``: RD set, one question."""
    header = HEADER.pack(query_id, FLAG_RD, 1, 0, 0, 0)
    return header + encode_name(name) + QUESTION_TAIL.pack(TYPE_A, CLASS_IN)


def parse_question(packet: bytes) -> Question:
    """The id and the (first) question of a query or a reply."""
    query_id = HEADER.unpack_from(packet)[0]
    name, offset = decode_name(packet, HEADER.size)
    qtype, qclass = QUESTION_TAIL.unpack_from(packet, offset)
    return Question(query_id, name, qtype, qclass, offset + QUESTION_TAIL.size)


def parse_answer(reply: bytes, query: bytes) -> str:
    """Return the IPv4 address that ``reply`` gives for the question of ``query``.

    Raises:
        NameNotFound: If the reply is NXDOMAIN.
        DnsError: If it is not the answer to this query, reports another error, or holds no A
            record.
    """
    asked, got = parse_question(query), parse_question(reply)
    _, flags, _, answers, _, _ = HEADER.unpack_from(reply)
    if not flags & FLAG_QR or got[:4] != asked[:4]:
        raise DnsError(f"not an answer to query {asked.query_id} for {asked.name}: {reply!r}")
    rcode = flags & 0x000F
    if rcode == RCODE_NXDOMAIN:
        raise NameNotFound(asked.name)
    if rcode != RCODE_OK:
        raise DnsError(f"server failure for {asked.name}: rcode {rcode}")
    offset = got.end
    for _ in range(answers):
        _, offset = decode_name(reply, offset)
        rtype, rclass, _, length = RECORD.unpack_from(reply, offset)
        offset += RECORD.size
        if (rtype, rclass, length) == (TYPE_A, CLASS_IN, 4):
            return str(ipaddress.IPv4Address(reply[offset : offset + 4]))
        offset += length  # a CNAME or another type: skip it
    raise DnsError(f"no A record for {asked.name}")


def resolve(
    name: str,
    server: tuple[str, int],
    *,
    timeout: float = 5.0,
    query_id: Optional[int] = None,
) -> str:
    """Ask ``server`` for the A record of ``name`` over UDP; return the IPv4 address.

    Replies with another id are ignored (they may be spoofed), as real resolvers do.

    Raises:
        NameNotFound: If the name does not exist.
        DnsError: If the reply answers another question or reports another error.
        TimeoutError: If no matching reply arrives within ``timeout`` seconds.
    """
    query = build_query(name, random.getrandbits(16) if query_id is None else query_id)
    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.connect(server)  # the kernel drops datagrams from anybody else
        sock.send(query)
        while (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            try:
                reply = sock.recv(512)
            except socket.timeout:  # TimeoutError from Python 3.10 on
                break
            if reply[:2] == query[:2]:
                return parse_answer(reply, query)
    raise TimeoutError(f"no answer for {name} from {server[0]}:{server[1]} within {timeout} s")


# -- the scripted server ------------------------------------------------------------------------


def answer_from_zone(query: bytes) -> bytes:
    """What a tiny authoritative server says: the query's id and question, then one A record
    (its name a pointer to the question) or NXDOMAIN."""
    question = parse_question(query)
    address = ZONE.get(question.name)
    rcode = RCODE_OK if address is not None else RCODE_NXDOMAIN
    flags = FLAG_QR | FLAG_RD | FLAG_RA | rcode
    header = HEADER.pack(question.query_id, flags, 1, 0 if address is None else 1, 0, 0)
    reply = header + query[HEADER.size : question.end]  # the question, echoed
    if address is not None:
        record = RECORD.pack(TYPE_A, CLASS_IN, 3600, 4) + ipaddress.IPv4Address(address).packed
        reply += b"\xc0\x0c" + record  # name: pointer to offset 12, the question's name
    return reply


STANDARD_QUERY = rb"..\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00"  # any id; RD; one question
A_IN = re.escape(QUESTION_TAIL.pack(TYPE_A, CLASS_IN))


def query_for(name: str) -> re.Pattern[bytes]:
    """Match a standard recursive A query for ``name``, with any id, and nothing after it."""
    return re.compile(STANDARD_QUERY + re.escape(encode_name(name)) + A_IN + rb"\Z", re.DOTALL)


ANY_A_QUERY = re.compile(STANDARD_QUERY + rb"[^\x00]+\x00" + A_IN + rb"\Z", re.DOTALL)
"""Match a standard recursive A query for any name (labels up to the root's zero byte)."""


def test_the_query_packet_is_byte_exact() -> None:
    assert build_query("example.com", 0x1234) == (
        b"\x12\x34\x01\x00"  # id 0x1234; flags: RD (recursion desired)
        b"\x00\x01\x00\x00\x00\x00\x00\x00"  # 1 question, no records
        b"\x07example\x03com\x00"  # the name as labels
        b"\x00\x01\x00\x01"  # type A, class IN
    )


def test_resolve_an_a_record(hsock_udp_server: UdpMockServer) -> None:
    hsock_udp_server.expect(query_for("example.com")).respond(answer_from_zone)

    assert resolve("example.com", hsock_udp_server.address, query_id=0xBEEF) == "93.184.216.34"

    (transcript,) = hsock_udp_server.transcripts
    received = [entry.data for entry in transcript.entries if entry.kind == "in"]
    sent = [entry.data for entry in transcript.entries if entry.kind == "out"]
    assert received == [build_query("example.com", 0xBEEF)]
    assert len(sent) == 1
    assert sent[0][:2] == b"\xbe\xef"  # the id came back
    # The answer record: a pointer to the name, A, IN, TTL 3600, 4 bytes: 93.184.216.34.
    assert sent[0].endswith(b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x0e\x10\x00\x04\x5d\xb8\xd8\x22")


def test_a_zone_server_answers_every_sender(hsock_udp_server: UdpMockServer) -> None:
    # Each resolve() opens a new socket: a new sender, which plays the script from its start.
    # A rule that may match any number of times turns the script into a zone server.
    hsock_udp_server.expect(ANY_A_QUERY, times=None).respond(answer_from_zone)

    assert resolve("mail.example.com", hsock_udp_server.address) == "192.0.2.25"
    assert resolve("example.com", hsock_udp_server.address) == "93.184.216.34"
    with pytest.raises(NameNotFound):
        resolve("nowhere.example", hsock_udp_server.address)

    # times=None is never "unmet", so the test itself checks that all three asked.
    asked = [parse_question(t.received()).name for t in hsock_udp_server.transcripts]
    assert asked == ["mail.example.com", "example.com", "nowhere.example"]


def test_a_reply_with_the_wrong_id_is_ignored(hsock_udp_server: UdpMockServer) -> None:
    # An off-path attacker guesses an id and races the real server. Datagrams between two
    # loopback sockets arrive in the order they were sent: the forgery first.
    def forged(query: bytes) -> bytes:
        reply = bytearray(answer_from_zone(query))
        reply[0] ^= 0xFF  # a wrong id
        reply[-4:] = bytes([6, 6, 6, 6])
        return bytes(reply)

    hsock_udp_server.expect(query_for("example.com")).respond(forged).respond(answer_from_zone)

    assert resolve("example.com", hsock_udp_server.address) == "93.184.216.34"


def test_nxdomain_raises_name_not_found(hsock_udp_server: UdpMockServer) -> None:
    hsock_udp_server.expect(query_for("nowhere.example")).respond(answer_from_zone)

    with pytest.raises(NameNotFound, match=r"nowhere\.example"):
        resolve("nowhere.example", hsock_udp_server.address)


def test_udp_test_client_requests_and_parses(
    hsock_udp_server: UdpMockServer, hsock_udp_client: Callable[..., UdpTestClient]
) -> None:
    # The same server, now with the fixture's client as transport: request() sends one
    # datagram and returns the next one received.
    hsock_udp_server.expect(query_for("example.com")).respond(answer_from_zone)
    hsock_udp_server.expect(query_for("nowhere.example")).respond(answer_from_zone)
    client = hsock_udp_client(hsock_udp_server)

    query = build_query("example.com", 7)
    reply = client.request(query)
    assert reply[:2] == b"\x00\x07"
    assert HEADER.unpack_from(reply)[1] & 0x000F == RCODE_OK
    assert parse_answer(reply, query) == "93.184.216.34"

    query = build_query("nowhere.example", 8)
    reply = client.request(query)
    _, flags, questions, answers, _, _ = HEADER.unpack_from(reply)
    assert (flags & 0x000F, questions, answers) == (RCODE_NXDOMAIN, 1, 0)
    assert reply[HEADER.size :] == query[HEADER.size :]  # the question, echoed; no records
    with pytest.raises(NameNotFound):
        parse_answer(reply, query)


def test_a_reply_to_another_question_is_rejected(
    hsock_udp_server: UdpMockServer, hsock_udp_client: Callable[..., UdpTestClient]
) -> None:
    # A confused (or poisoned) server answers another name under the right id.
    def wrong_question(query: bytes) -> bytes:
        return answer_from_zone(query.replace(b"\x07nowhere", b"\x04mail"))

    hsock_udp_server.expect(query_for("nowhere.example")).respond(wrong_question)
    client = hsock_udp_client(hsock_udp_server)

    query = build_query("nowhere.example", 9)
    with pytest.raises(DnsError, match="not an answer to query 9"):
        parse_answer(client.request(query), query)
