"""parse_address and the BSD sockaddr layout: the original's test vectors, and round trips."""

from __future__ import annotations

import ipaddress
import socket
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

import pytest_hsocket as hsocket
from pytest_hsocket._core.address import encode_sockaddr


def test_original_ipv4_vector() -> None:
    data = bytes([16, 2, 0, 80, 216, 58, 218, 110, 0, 0, 0, 0, 0, 0, 0, 0])
    assert hsocket.parse_address(data) == {
        "host": "216.58.218.110",
        "port": 80,
        "addressFamily": socket.AF_INET,
    }


def test_original_ipv6_vector() -> None:
    # string.char(28,30,0,80, 0,0,0,0, 0x26,0x07,0xf8,0xb0,0x40,0,0x08,0, 0,0,0,0,0,0,0x20,0x0e, 0,0,0,0)
    data = bytes.fromhex("1c1e0050000000002607f8b040000800000000000000200e00000000")
    assert hsocket.parseAddress(data) == {
        "host": "2607:f8b0:4000:800::200e",
        "port": 80,
        "addressFamily": socket.AF_INET6,
    }


def test_nonsense_gives_none() -> None:
    assert hsocket.parse_address("nonsense") is None
    assert hsocket.parse_address(b"") is None
    assert hsocket.parse_address(bytes(16)) is None


def test_native_layout_is_accepted() -> None:
    native_v4 = struct.pack("=H", socket.AF_INET) + struct.pack("!H", 8080)
    native_v4 += socket.inet_aton("10.1.2.3") + bytes(8)
    assert hsocket.parse_address(native_v4) == {
        "host": "10.1.2.3",
        "port": 8080,
        "addressFamily": socket.AF_INET,
    }


def test_wrong_type_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="sockaddr must be bytes, not int"):
        hsocket.parse_address(5)  # type: ignore[arg-type]


@given(st.ip_addresses(v=4), st.integers(0, 65535))
def test_ipv4_round_trip(address: object, port: int) -> None:
    parsed = hsocket.parse_address(encode_sockaddr(str(address), port))
    assert parsed == {"host": str(address), "port": port, "addressFamily": socket.AF_INET}


@given(st.ip_addresses(v=6), st.integers(0, 65535))
def test_ipv6_round_trip(address: object, port: int) -> None:
    data = encode_sockaddr(str(address), port)
    assert len(data) == 28
    assert data[:2] == bytes([28, 30])
    parsed = hsocket.parse_address(data)
    assert parsed is not None
    assert ipaddress.ip_address(parsed["host"]) == address
    assert (parsed["port"], parsed["addressFamily"]) == (port, socket.AF_INET6)
