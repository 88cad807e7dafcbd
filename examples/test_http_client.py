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

Here the server is a real ``http.server`` on loopback, started by the test itself.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

import pytest_hsocket as hsocket

PAGE = b"<HTML><HEAD><TITLE>301 Moved</TITLE></HEAD><BODY>The document has moved</BODY></HTML>\n"


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
    TAG_HTTP_HEADER, TAG_HTTP_CONTENT = 1, 2
    done = threading.Event()
    result: dict[str, bytes] = {}

    def http_callback(data: bytes, tag: int) -> None:
        if tag == TAG_HTTP_HEADER:
            result["header"] = data
            match = re.search(rb"\r\nContent-Length: (\d+)\r\n", data)
            assert match is not None
            client.read(int(match.group(1)), TAG_HTTP_CONTENT)
        elif tag == TAG_HTTP_CONTENT:
            result["body"] = data
            done.set()

    host, port = http_server.server_address[:2]
    client = hsocket.new(http_callback).connect(str(host), port)
    assert client is not None
    client.write(f"GET /index.html HTTP/1.0\r\nHost: {host}\r\n\r\n")
    client.read("\r\n\r\n", TAG_HTTP_HEADER)

    assert done.wait(5), "no body within 5 s"
    client.disconnect()
    client.check()
    assert result["header"].startswith(b"HTTP/1.0 301 Moved Permanently\r\n")
    assert result["header"].endswith(b"\r\n\r\n")
    assert result["body"] == PAGE
