"""What a test's hsocket fixtures share, kept by hooks rather than by more fixtures.

Every fixture costs pytest some 15-20 µs a test to set up and tear down, and each one that asks
for ``request`` costs as much again; ``hsock_server`` + ``hsock_client`` used to bring nine of
them. Here the per-test state is made by a ``pytest_runtest_setup`` hook and found by the
fixtures with :func:`current_test`; the session's TLS material and listener pool hang off the
config. The same hooks fail a test whose socket callbacks raised (what no fixture reported).
"""

from __future__ import annotations

import traceback
from collections.abc import Generator
from typing import Any, Optional

import pytest

from .._errors import CallbackError
from .._loop import RUN_SYNC_TIMEOUT, get_loop
from .._pool import ServerPool
from .._sync import Gate
from .options import reuse_ports, wait_timeout
from .tls import TlsMaterial, tls_material

TRANSCRIPT_SOURCES = pytest.StashKey[list[Any]]()
"""Per test: the servers and clients whose transcripts a failure report shows."""

_POOL = pytest.StashKey[ServerPool]()


class HsockTest:
    """What one test's hsocket fixtures share.

    Attributes:
        node: The test item.
        sources: The servers and clients whose transcripts a failure report shows.
        servers: How many TCP mock servers the test started (they are named by it).
        clients_closed: Opens once the loop has closed the clients ``hsock_client`` let go of.
        errors: Callback errors of any hs.socket, reported (or not) by the fixtures.
    """

    __slots__ = ("_timeout", "clients_closed", "errors", "node", "servers", "sources")

    def __init__(self, node: pytest.Item) -> None:
        self.node = node
        self.sources: list[Any] = node.stash.setdefault(TRANSCRIPT_SOURCES, [])
        self.servers = 0
        self.clients_closed: Optional[Gate] = None
        self.errors: list[CallbackError] = []
        self._timeout: Optional[float] = None

    @property
    def timeout(self) -> float:
        """The test's wait timeout (marker, command line, ini, else 5 s).

        Raises:
            pytest.UsageError: If the marker or an option is not a positive number.
        """
        if self._timeout is None:
            self._timeout = wait_timeout(self.node)
        return self._timeout

    @property
    def material(self) -> TlsMaterial:
        """The session's TLS material (made lazily: no CA exists unless a test uses TLS)."""
        return tls_material(self.node.config)

    @property
    def pool(self) -> Optional[ServerPool]:
        """The session's pooled listeners, or ``None`` with ``--hsock-fresh-servers``."""
        config = self.node.config
        if not reuse_ports(config):
            return None
        pool = config.stash.get(_POOL, None)
        if pool is None:
            pool = config.stash[_POOL] = ServerPool()
        return pool


_CURRENT: list[HsockTest] = []  # a stack: a pytester run inside a test pushes its own


def current_test() -> HsockTest:
    """Return the state of the test being run (the innermost one under pytester).

    Raises:
        RuntimeError: If no test is running.
    """
    if not _CURRENT:
        raise RuntimeError("hsocket fixtures are only available while a test runs")
    return _CURRENT[-1]


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, None, None]:
    """Make the test's state and start collecting socket callback errors."""
    test = HsockTest(item)
    _CURRENT.append(test)
    get_loop().add_error_sink(test.errors.append)
    return (yield)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_teardown(item: pytest.Item) -> Generator[None, None, None]:
    """After the fixtures: wait until ``hsock_client``'s clients are closed, then fail the test
    if a socket callback raised and no fixture reported it."""
    test = next((t for t in reversed(_CURRENT) if t.node is item), None)
    try:
        result = yield
        closed = test.clients_closed if test is not None else None
        if closed is not None and not closed.wait(RUN_SYNC_TIMEOUT):
            pytest.fail("the socket loop did not close hsock_client's clients", pytrace=False)
    finally:
        if test is not None:
            get_loop().remove_error_sink(test.errors.append)
            _CURRENT.remove(test)
    unreported = [e for e in test.errors if not e.reported] if test is not None else []
    if unreported:
        details = []
        for error in unreported:
            details.append(f"{error}")
            cause = error.__cause__
            if cause is not None and cause.__traceback__ is not None:
                details += traceback.format_tb(cause.__traceback__)
        pytest.fail("a socket callback raised:\n" + "\n".join(details), pytrace=False)
    return result


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    """Close the session's pooled listeners (before other plugins count what is left open)."""
    pool = session.config.stash.get(_POOL, None)
    if pool is not None:
        pool.close()
