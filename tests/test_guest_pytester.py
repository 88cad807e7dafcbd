"""The library loads on first use, which may be inside a pytester in-process run; pytester then
drops from sys.modules what the run imported. What the library loaded is put back, never
imported twice (gevent, trustme, cryptography: a second copy breaks the first's objects)."""

from __future__ import annotations

import pytest

OUTER = '''
import sys

pytest_plugins = ["pytester"]

INNER = """
def test_tls(hsock_tls_server, hsock_client):
    hsock_tls_server.expect(b"hi\\\\n").respond(b"ho\\\\n")
    client = hsock_client(hsock_tls_server, tls=True)
    client.write(b"hi\\\\n")
    assert client.expect(b"\\\\n") == b"ho\\\\n"
"""


def test_inner_runs_one_after_another(pytester):
    assert "trustme" not in sys.modules  # first loaded inside the first inner run
    for _ in range(3):
        pytester.makepyfile(test_inner=INNER)
        pytester.runpytest_inprocess("-p", "no:cacheprovider").assert_outcomes(passed=1)
    import pytest_hsocket as hsocket

    with hsocket.server(0) as server:  # and the API, after them, in the outer test
        assert server.info()["localPort"] > 0
'''


def test_the_library_survives_pytesters_module_snapshots(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_outer=OUTER)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
