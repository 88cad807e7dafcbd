"""A BaseException raised by a user callback on the loop (``pytest.fail()``, ``SystemExit``,
``KeyboardInterrupt``) is never swallowed: it fails the test that owns the socket
(DESIGN 2; issue 17 item 6)."""

from __future__ import annotations

import pytest

RAISERS = {
    "pytest.fail": 'pytest.fail("boom in callback")',
    "SystemExit": 'raise SystemExit("boom in callback")',
    "KeyboardInterrupt": 'raise KeyboardInterrupt("boom in callback")',
}

SITES = {
    # A server's read callback (fast reads deliver it).
    "read callback": """
def test_site(hsock_server, hsock_client):
    def on_data(data, tag, client):
        {raise_}

    hsock_server.set_callback(on_data)
    hsock_server.on_connect(lambda client: client.read(b"\\n", 1))
    client = hsock_client(*hsock_server.address)
    client.write(b"hello\\n")
    client.write(b"bye\\n")
    hsock_server.close()
""",
    # A connect callback of a socket the test makes itself (the callback queue runs it).
    "connect callback": """
import threading
import pytest_hsocket as hsocket

def test_site(hsock_server):
    ran = threading.Event()

    def on_connect():
        ran.set()
        {raise_}

    client = hsocket.new().connect(*hsock_server.address, on_connect)
    assert ran.wait(5)
    client.disconnect()
""",
}


def test_a_base_exception_in_a_callback_fails_the_test(pytester: pytest.Pytester) -> None:
    # Every site with every kind, in one run (a file per pair).
    files = {}
    for site, body in SITES.items():
        for raiser, statement in RAISERS.items():
            name = f"test_{site}_{raiser}".replace(" ", "_").replace(".", "_")
            files[name] = "import pytest\n" + body.replace("{raise_}", statement)
    pytester.makepyfile(**files)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-rE")
    # Each fails at teardown, where the fixtures and the plugin report callback errors.
    assert result.parseoutcomes() == {"passed": len(files), "errors": len(files)}
    for name in files:
        result.stdout.fnmatch_lines([f"ERROR {name}.py::test_site*"])
    result.stdout.fnmatch_lines(["*callback raised*boom in callback*"] * len(files))
