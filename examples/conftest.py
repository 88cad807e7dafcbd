"""What the example suite shares: ``pytester`` (a suite run inside a test) and a real
redis-server, installed by the system and started here for the tests that talk to one."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest

pytest_plugins = ["pytester"]


class RedisServer(NamedTuple):
    """A throw-away redis-server: its port, and its process (a test may stop it early)."""

    port: int
    proc: subprocess.Popen[bytes]

    def stop(self) -> None:
        """Stop it (again is fine)."""
        if self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _accepts(proc: subprocess.Popen[bytes], port: int) -> bool:
    """Connect until redis-server accepts (True), exits or 10 s pass (False)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return True
        except OSError:
            time.sleep(0.05)  # another process: nothing to wait on but its port
    return False


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """Start a redis-server on a free loopback port; skip where it is not installed."""
    executable = shutil.which("redis-server")
    if executable is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    log = tmp_path / "redis.log"
    for _attempt in range(3):  # another process may take the free port before redis binds it
        port = _free_port()
        argv = [executable, "--port", str(port), "--bind", "127.0.0.1"]
        argv += ["--save", "", "--appendonly", "no", "--dir", str(tmp_path)]
        with log.open("wb") as out:
            proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
        server = RedisServer(port, proc)
        if _accepts(proc, port):
            break
        server.stop()
    else:
        pytest.fail(f"redis-server did not start:\n{log.read_text()}")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_server_port(redis_server: RedisServer) -> int:
    """The port of ``redis_server``."""
    return redis_server.port
