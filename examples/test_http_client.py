"""The HTTP client of hs.socket's documentation, ported line by line to Python.

The original (Lua)::

    local TAG_HTTP_HEADER, TAG_HTTP_CONTENT = 1, 2
    local body = ""
    local function httpCallback(data, tag)
      if tag == TAG_HTTP_HEADER then
        local contentLength = data:match("\\r\\nContent%-Length: (%d+)\\r\\n")
        client:read(tonumber(contentLength), TAG_HTTP_CONTENT)
      elseif tag == TAG_HTTP_CONTENT then
        body = data
      end
    end
    client = hs.socket.new(httpCallback):connect("google.com", 80)
    client:write("GET /index.html HTTP/1.0\\r\\nHost: google.com\\r\\n\\r\\n")
    client:read("\\r\\n\\r\\n", TAG_HTTP_HEADER)

The port lives in ``fetch_index`` and meets two servers: a real ``http.server`` on loopback,
started by the test itself, and ``hsock_server`` scripted to answer the GET with the 301 that
google.com sent back when the documentation was written. The last test turns things around:
the stdlib's own HTTP client, ``http.client.HTTPConnection``, talks to a scripted
``hsock_server`` over one keep-alive connection.
"""

# --8<-- [start:tutorial]
from __future__ import annotations

import http.client
import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import NamedTuple

import pytest

import pytest_hsocket as hsocket
from pytest_hsocket.testing import MockServer, until

TAG_HTTP_HEADER, TAG_HTTP_CONTENT = 1, 2

PAGE = b"<HTML><HEAD><TITLE>301 Moved</TITLE></HEAD><BODY>The document has moved</BODY></HTML>\n"


class Response(NamedTuple):
    """What the documentation example collects: the header block and the body."""

    header: bytes
    body: bytes


def fetch_index(host: str, port: int, timeout: float = 5.0) -> Response:
    """GET /index.html the way the hs.socket documentation does: two tagged reads.

    The header is read up to the blank line (TAG_HTTP_HEADER); its Content-Length says how
    many bytes the second read (TAG_HTTP_CONTENT) takes.

    Raises:
        TimeoutError: If the body does not arrive within ``timeout`` seconds.
    """
    done = threading.Event()
    result: dict[str, bytes] = {}

    def http_callback(data: bytes, tag: int) -> None:
        if tag == TAG_HTTP_HEADER:
            result["header"] = data
            match = re.search(rb"\r\nContent-Length: (\d+)\r\n", data)
            assert match is not None, f"no Content-Length in {data!r}"
            client.read(int(match.group(1)), TAG_HTTP_CONTENT)
        elif tag == TAG_HTTP_CONTENT:
            result["body"] = data
            done.set()

    client = hsocket.new(http_callback)
    if client.connect(host, port) is None:  # None: refused at once (the reason is logged)
        raise ConnectionError(f"cannot connect to {host}:{port}")
    client.write(f"GET /index.html HTTP/1.0\r\nHost: {host}\r\n\r\n")
    client.read("\r\n\r\n", TAG_HTTP_HEADER)

    arrived = done.wait(timeout)
    client.disconnect()
    client.check()  # raises what the callback raised, if anything
    if not arrived:
        raise TimeoutError(f"no body within {timeout} s; got {result!r}")
    return Response(result["header"], result["body"])


# -- against a real http.server ---------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(301)
        self.send_header("Location", "http://www.example.com/index.html")
        self.send_header("Content-Type", "text/html; charset=UTF-8")
        self.send_header("Content-Length", str(len(PAGE)))
        self.end_headers()
        self.wfile.write(PAGE)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def http_server() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(5)


def test_the_documentation_http_example(http_server: ThreadingHTTPServer) -> None:
    host, port = http_server.server_address[:2]

    response = fetch_index(str(host), port)

    assert response.header.startswith(b"HTTP/1.0 301 Moved Permanently\r\n")
    assert response.header.endswith(b"\r\n\r\n")
    assert response.body == PAGE


# --8<-- [end:tutorial]
# -- against a scripted hsock_server ----------------------------------------------------------

MOVED = (
    b"HTTP/1.0 301 Moved Permanently\r\n"
    b"Location: http://www.google.com/index.html\r\n"
    b"Content-Type: text/html; charset=UTF-8\r\n"
    b"Content-Length: " + str(len(PAGE)).encode() + b"\r\n"
    b"\r\n" + PAGE
)


def test_the_documentation_http_example_against_a_scripted_301(hsock_server: MockServer) -> None:
    # The exact request the example writes; anything else fails the test at teardown.
    hsock_server.expect(b"GET /index.html HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").respond(
        MOVED
    ).close()

    response = fetch_index(hsock_server.host, hsock_server.port)

    assert response.header == MOVED[: MOVED.index(b"\r\n\r\n") + 4]
    assert b"\r\nLocation: http://www.google.com/index.html\r\n" in response.header
    assert response.body == PAGE


def test_the_example_stops_at_content_length(hsock_server: MockServer) -> None:
    # Bytes after the announced body are never delivered: the second read takes exactly
    # Content-Length bytes, as in the original.
    hsock_server.expect(until(b"\r\n\r\n")).respond(MOVED + b"TRAILING GARBAGE").close()

    response = fetch_index(hsock_server.host, hsock_server.port)

    assert response.body == PAGE
    assert len(response.body) == len(PAGE)


# -- the stdlib's http.client against a scripted hsock_server ---------------------------------

STATUS = json.dumps({"status": "green", "nodes": 3}).encode()
CREATED = json.dumps({"id": 42}).encode()
NEW_USER = json.dumps({"name": "ada"}).encode()


def _response(status: str, body: bytes, *extra_headers: bytes) -> bytes:
    head = [
        b"HTTP/1.1 " + status.encode(),
        b"Content-Type: application/json",
        b"Content-Length: " + str(len(body)).encode(),
        *extra_headers,
    ]
    return b"\r\n".join(head) + b"\r\n\r\n" + body


def test_http_client_talks_to_a_scripted_server(hsock_server: MockServer) -> None:
    # Request 1: any header block, as long as it is a GET of /status (a bytes regex matches at
    # the start of what the client sent; it ends with the blank line).
    hsock_server.expect(re.compile(rb"GET /status HTTP/1\.1\r\n(?:[^\r\n]+\r\n)*\r\n")).respond(
        _response("200 OK", STATUS, b"X-Request-Id: 1")
    )
    # Request 2 on the same connection: the header block, then exactly the JSON body.
    hsock_server.expect(re.compile(rb"POST /users HTTP/1\.1\r\n(?:[^\r\n]+\r\n)*\r\n"))
    hsock_server.expect(NEW_USER).respond(_response("201 Created", CREATED, b"Location: /users/42"))

    conn = http.client.HTTPConnection(hsock_server.host, hsock_server.port, timeout=5)
    try:
        conn.request("GET", "/status")
        first = conn.getresponse()
        first_body = first.read()
        conn.request("POST", "/users", body=NEW_USER, headers={"Content-Type": "application/json"})
        second = conn.getresponse()
        second_body = second.read()
    finally:
        conn.close()

    assert (first.status, first.reason) == (200, "OK")
    assert first.getheader("Content-Type") == "application/json"
    assert first.getheader("X-Request-Id") == "1"
    assert json.loads(first_body) == {"status": "green", "nodes": 3}

    assert (second.status, second.reason) == (201, "Created")
    assert second.getheader("Location") == "/users/42"
    assert json.loads(second_body) == {"id": 42}

    # Both requests travelled over one keep-alive connection, with the headers http.client
    # adds by itself.
    assert len(hsock_server.transcripts) == 1
    received = hsock_server.transcripts[0].received()
    assert f"\r\nHost: {hsock_server.host}:{hsock_server.port}\r\n".encode() in received
    assert f"\r\nContent-Length: {len(NEW_USER)}\r\n".encode() in received
    assert received.endswith(b"\r\n\r\n" + NEW_USER)
