"""What a test's hsocket fixtures share, kept by hooks rather than by more fixtures.

Every fixture costs pytest some 15-20 µs a test to set up and tear down, and each one that asks
for ``request`` costs as much again; ``hsock_server`` + ``hsock_client`` used to bring nine of
them. Here the per-test state is made by a ``pytest_runtest_setup`` hook and found by the
fixtures with :func:`current_test`; the session's TLS material and listener pool hang off the
config. The same hooks fail a test whose socket callbacks raised (what no fixture reported).

The plugin is a guest in every pytest run of its environment: these hooks load no gevent and
start no loop thread (the fixtures and the API do that, on first use), and once a test's last
report is made, :func:`finish` lets go of its servers, clients and transcripts.
"""

from __future__ import annotations

import traceback
from typing import TYPE_CHECKING, Any, Optional

import pytest

from pytest_hsocket._core.errors import CallbackError
from pytest_hsocket._loop.hub import RUN_SYNC_TIMEOUT, peek_loop
from pytest_hsocket._loop.originals import keep_loaded_modules, restore_modules
from pytest_hsocket.plugin.options import reuse_ports, wait_timeout
from pytest_hsocket.plugin.tls import TlsMaterial, tls_material

if TYPE_CHECKING:
    from pytest_hsocket._core.fragment import Fragmenter
    from pytest_hsocket._helpers.pool import ServerPool
    from pytest_hsocket._loop.sync import Gate

FRAGMENTER: pytest.StashKey[Fragmenter] = pytest.StashKey()
"""Per test: the fragmentation run of ``@pytest.mark.hsock_fragment``, for its report."""

_POOL: pytest.StashKey[ServerPool] = pytest.StashKey()
_TEST: pytest.StashKey[HsockTest] = pytest.StashKey()
_RUNS = pytest.StashKey[int]()


class HsockTest:
    """What one test's hsocket fixtures share.

    Attributes:
        node: The test item.
        attempt: Which run of the item this is (1, then 2... under pytest-rerunfailures).
        sources: The servers and clients whose transcripts a failure report shows.
        servers: How many TCP mock servers the test started (they are named by it).
        clients_closed: Opens once the loop has closed the clients ``hsock_client`` let go of.
        errors: Callback errors of any hs.socket, reported (or not) by the fixtures.
    """

    __slots__ = ("_timeout", "attempt", "clients_closed", "errors", "node", "servers", "sources")

    def __init__(self, node: pytest.Item, attempt: int = 1) -> None:
        self.node = node
        self.attempt = attempt
        self.sources: list[Any] = []
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
            from pytest_hsocket._helpers.pool import ServerPool

            pool = config.stash[_POOL] = ServerPool()
        return pool

    def transcripts(self) -> list[str]:
        """Render the transcripts of the test's servers and clients, in the order they began.

        A server (TCP or UDP) has ``transcripts``, one per connection or sender; a client has
        one ``transcript``: recognised by shape, so that a report loads no module of ours.
        """
        texts = []
        for source in self.sources:
            many = getattr(source, "transcripts", None)
            if many is not None:
                texts += [t.render() for t in many]
            else:
                texts.append(source.transcript.render())
        return texts


_CURRENT: list[HsockTest] = []  # a stack: a pytester run inside a test pushes its own


def current_test() -> HsockTest:
    """Return the state of the test being run (the innermost one under pytester).

    Raises:
        RuntimeError: If no test is running.
    """
    if not _CURRENT:
        raise RuntimeError("hsocket fixtures are only available while a test runs")
    return _CURRENT[-1]


def state_of(item: pytest.Item) -> Optional[HsockTest]:
    """Return the state of ``item``'s current run, if it is running."""
    return item.stash.get(_TEST, None)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Before the fixtures: make the test's state and collect socket callback errors (the
    loop, if a test starts it, reports to the sink; registering it starts nothing)."""
    restore_modules()  # what a pytester in-process run dropped (see _originals)
    runs = item.stash[_RUNS] = item.stash.get(_RUNS, 0) + 1
    attempt = getattr(item, "execution_count", None)  # pytest-rerunfailures counts its runs
    test = HsockTest(item, attempt if isinstance(attempt, int) else runs)
    item.stash[_TEST] = test
    _CURRENT.append(test)
    peek_loop().add_error_sink(test.errors.append)


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item: pytest.Item) -> None:
    """After the fixtures: wait until ``hsock_client``'s clients are closed, then fail the test
    if a socket callback raised and no fixture reported it."""
    test = state_of(item)
    if test is None:
        return
    closed = test.clients_closed
    if closed is not None and not closed.wait(RUN_SYNC_TIMEOUT):
        pytest.fail("the socket loop did not close hsock_client's clients", pytrace=False)
    unreported = [e for e in test.errors if not e.reported]
    if unreported:
        details = []
        for error in unreported:
            details.append(f"{error}")
            cause = error.__cause__
            if cause is not None and cause.__traceback__ is not None:
                details += traceback.format_tb(cause.__traceback__)
        pytest.fail("a socket callback raised:\n" + "\n".join(details), pytrace=False)


def finish(item: pytest.Item) -> None:
    """Once the teardown report is made: stop collecting the test's callback errors and let
    go of everything it held (servers, clients, buffers, transcripts, tracebacks)."""
    test = item.stash.get(_TEST, None)
    if test is None:
        return
    del item.stash[_TEST]
    peek_loop().remove_error_sink(test.errors.append)
    if test in _CURRENT:
        _CURRENT.remove(test)
    if peek_loop().running:  # the library is in use: keep its modules from now on
        keep_loaded_modules()
    test.sources.clear()
    test.errors.clear()


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    """Close the session's pooled listeners (before other plugins count what is left open)."""
    pool = session.config.stash.get(_POOL, None)
    if pool is not None:
        pool.close()
