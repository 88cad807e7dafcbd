"""Security defaults: loopback binds, private Unix socket files, verified TLS, no files written."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

import pytest_hsocket as hsocket
from pytest_hsocket import udp


def test_servers_bind_loopback_unless_told_otherwise() -> None:
    tcp = hsocket.server(0)
    datagram = udp.server(0)
    assert tcp.info()["localHost"] == "127.0.0.1"
    assert datagram.info()["localHost"] == "127.0.0.1"
    tcp.disconnect()
    datagram.close()


def test_unix_socket_file_is_0600_and_removed_at_close(tmp_path: Path) -> None:
    path = tmp_path / "private.sock"
    server = hsocket.server(str(path))
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    server.disconnect()
    assert not path.exists()


def test_start_tls_verifies_by_default() -> None:
    import ssl

    from pytest_hsocket._io.tls import client_context

    context = client_context()
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname is True


def test_a_failing_test_writes_no_file(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        def test_fails(hsock_server, hsock_client):
            hsock_server.expect(b"SECRET token-123\\n").respond(b"no\\n")
            client = hsock_client(hsock_server)
            client.write(b"SECRET token-123\\n")
            assert client.expect(b"\\n") == b"yes\\n"
        """
    )

    def files() -> list[str]:
        # Python's own bytecode cache is not something the plugin wrote.
        return sorted(p.name for p in pytester.path.iterdir() if p.name != "__pycache__")

    before = files()
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    assert "token-123" in result.stdout.str()  # the transcript is in the report...
    assert files() == before  # ...and nowhere else
