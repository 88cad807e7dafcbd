"""pytest-cov counts the code the socket loop runs: rule functions and server callbacks
(DESIGN 2: traced as code on any threading.Thread is), with default coverage settings."""

from __future__ import annotations

import re

import pytest

pytest.importorskip("pytest_cov")

HANDLERS = """
def respond(data):
    word = data.strip()
    if word == b"PING":
        return b"+PONG\\r\\n"
    return b"-ERR\\r\\n"


def on_data(data, tag, client):
    if tag == 1:
        client.write(b"len " + str(len(data)).encode() + b"\\n")
        client.read(3, 2)
    else:
        client.write(data.upper() + b"\\n")
"""

TESTS = """
import re

from handlers import on_data, respond


def test_rule_function(hsock_server, hsock_client):
    hsock_server.expect(re.compile(rb"\\w+\\r\\n"), times=2).respond(respond)
    client = hsock_client(hsock_server)
    client.write(b"PING\\r\\n")
    assert client.expect(b"\\r\\n") == b"+PONG\\r\\n"
    client.write(b"PONG\\r\\n")
    assert client.expect(b"\\r\\n") == b"-ERR\\r\\n"


def test_server_callback(hsock_server, hsock_client):
    hsock_server.set_callback(on_data)
    hsock_server.on_connect(lambda client: client.read(b"\\n", 1))
    client = hsock_client(*hsock_server.address)
    client.read(b"\\n", 10).read(b"\\n", 11)
    client.write(b"hello\\nabc")
    assert client.wait(tag=11) == b"ABC\\n"
    assert client.wait() == b"len 6\\n"
"""


def test_pytest_cov_counts_code_run_on_the_loop(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(handlers=HANDLERS, test_handlers=TESTS)
    result = pytester.runpytest_subprocess(
        "--cov=handlers", "--cov-report=term-missing", "-p", "no:cacheprovider"
    )
    result.assert_outcomes(passed=2)
    line = next(line for line in result.outlines if line.startswith("handlers.py"))
    statements, missed, percent = re.split(r"\s+", line)[1:4]
    assert (int(statements), int(missed), percent) == (10, 0, "100%"), line
