"""A child forked after the socket loop started gets a fresh loop of its own on first use; the
sockets it inherited belong to the parent's loop and refuse every call at once (DESIGN 1b.20)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")

# Run in a process of its own: forking the test runner (threads, open files) is not the point.
SCRIPT = textwrap.dedent(
    """
    import os, select, sys, time, warnings
    import pytest_hsocket as hsocket
    from pytest_hsocket.testing import MockServer, TestClient

    warnings.simplefilter("ignore", DeprecationWarning)  # "fork() of a multi-threaded process"

    parent_server = MockServer.start()
    parent_server.expect(b"PING\\n", times=None).respond(b"PONG from parent\\n")
    inherited = TestClient.open(*parent_server.address, wait_timeout=5)
    inherited.write(b"PING\\n")
    assert inherited.expect(b"\\n") == b"PONG from parent\\n"

    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        lines = []
        try:
            start = time.monotonic()
            for call in (lambda: inherited.write(b"x"), lambda: inherited.expect(b"\\n")):
                try:
                    call()
                    lines.append("inherited socket: no error")
                except hsocket.LoopError as exc:
                    lines.append(f"inherited socket: LoopError {exc}")
            lines.append(f"refused within {time.monotonic() - start:.1f} s")
            # A fresh loop: a server and a client of the child's own ...
            with MockServer.start() as own:
                own.expect(b"HI\\n").respond(b"HELLO from child\\n")
                with TestClient.open(*own.address, wait_timeout=5) as client:
                    client.write(b"HI\\n")
                    lines.append(client.expect(b"\\n").decode().strip())
            # ... and a new connection to the parent's server, still served by the parent.
            with TestClient.open(*parent_server.address, wait_timeout=5) as client:
                client.write(b"PING\\n")
                lines.append(client.expect(b"\\n").decode().strip())
        except BaseException as exc:
            lines.append(f"child failed: {exc!r}")
        os.write(write_end, "\\n".join(lines).encode())
        os._exit(0)
    os.close(write_end)
    ready, _, _ = select.select([read_end], [], [], 30)
    if not ready:
        os.kill(pid, 9)
    print(os.read(read_end, 65536).decode())
    os.waitpid(pid, 0)
    inherited.close()
    parent_server.close()
    parent_server.check()
    print("parent: ok")
    """
)


def test_a_forked_child_gets_a_loop_of_its_own() -> None:
    result = subprocess.run(
        [sys.executable, "-W", "error::ResourceWarning", "-c", SCRIPT],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "child failed" not in result.stdout, result.stdout
    refusals = [line for line in lines if line.startswith("inherited socket")]
    assert len(refusals) == 2, lines
    for line in refusals:
        assert "LoopError" in line, line
        assert "before os.fork()" in line, line
    seconds = float(next(line for line in lines if line.startswith("refused within")).split()[2])
    assert seconds < 5, "refused at once, not after the loop's 30 s watchdog"
    assert "HELLO from child" in lines
    assert "PONG from parent" in lines
    assert lines[-1] == "parent: ok"
