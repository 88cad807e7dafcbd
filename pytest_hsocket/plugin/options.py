"""Command-line and ini options, and the ``hsocket`` marker."""

from __future__ import annotations

import threading
from typing import Any, Optional

import pytest

import pytest_hsocket

DEFAULT_TIMEOUT = 5.0


def pytest_addoption(parser: pytest.Parser) -> None:
    """Register the ``hsocket`` option group and its ini twins."""
    group = parser.getgroup("hsocket", "pytest-hsocket (mock servers and clients over sockets)")
    group.addoption(
        "--hsock-timeout",
        type=float,
        default=None,
        help=f"seconds a helper waits for data before failing (default {DEFAULT_TIMEOUT})",
    )
    group.addoption(
        "--hsock-log-level",
        default=None,
        help="level of the pytest_hsocket logger: debug, info, warning or error",
    )
    group.addoption(
        "--hsock-no-transcripts",
        action="store_true",
        default=None,
        help="do not add socket transcripts to the report of a failed test",
    )
    group.addoption(
        "--hsock-fresh-servers",
        action="store_true",
        default=None,
        help="give every hsock_server a listener (and port) of its own instead of a pooled one",
    )
    group.addoption(
        "--hsock-fragment-seed",
        type=int,
        default=0,
        help="base seed of @pytest.mark.hsock_fragment's cuts (default 0: the same every run)",
    )
    parser.addini(
        "hsock_timeout", f"default wait timeout in seconds ({DEFAULT_TIMEOUT})", default=None
    )
    parser.addini("hsock_log_level", "level of the pytest_hsocket logger", default=None)
    parser.addini(
        "hsock_reuse_ports",
        "lend hsock_server a pooled listener: the port may repeat across tests (default true)",
        type="bool",
        default=True,
    )
    parser.addini(
        "hsock_transcripts", "show socket transcripts for failed tests", type="bool", default=True
    )


def pytest_configure(config: pytest.Config) -> None:
    """Register the marker and apply the log level."""
    config.addinivalue_line(
        "markers",
        "hsocket(timeout=None, transcripts=None): per-test settings of pytest-hsocket's fixtures",
    )
    config.addinivalue_line(
        "markers",
        "hsock_fragment(runs=20, pause=0.002): run the test once per fragmentation pattern; "
        "the mock servers cut every response into pieces (every byte, around delimiters, random)",
    )
    level = config.getoption("--hsock-log-level") or config.getini("hsock_log_level")
    if level:
        try:
            pytest_hsocket.set_log_level(int(level) if str(level).isdigit() else str(level))
        except ValueError as exc:
            raise pytest.UsageError(f"--hsock-log-level / hsock_log_level: {exc}") from None


def _marker(node: pytest.Item, key: str) -> Optional[Any]:
    marker = node.get_closest_marker("hsocket")
    if marker is None:
        return None
    unknown = set(marker.kwargs) - {"timeout", "transcripts"}
    if unknown or marker.args:
        raise pytest.UsageError(
            f"@pytest.mark.hsocket takes timeout= and transcripts= only, not {marker!r}"
        )
    return marker.kwargs.get(key)


def wait_timeout(node: pytest.Item) -> float:
    """The wait timeout for a test: marker, then command line, then ini, then 5 s.

    Raises:
        pytest.UsageError: If a value is not a positive, finite number (``inf`` and ``nan``
            are refused: the timeout is there so that no test hangs for ever).
    """
    value: Any = _marker(node, "timeout")
    if value is None:
        value = node.config.getoption("--hsock-timeout")
    if value is None:
        value = node.config.getini("hsock_timeout") or DEFAULT_TIMEOUT
    try:
        seconds = float(value)
    except OverflowError:  # an int past float: 10**400
        seconds = float("inf")
    except (TypeError, ValueError):
        raise pytest.UsageError(
            f"hsock timeout must be a number of seconds, not {value!r}"
        ) from None
    if seconds <= 0:
        raise pytest.UsageError(f"hsock timeout must be positive, not {value!r}")
    # inf is refused, not read as "no limit": the option exists so that no test can hang for
    # ever. threading.TIMEOUT_MAX (~292 years) is the longest wait a blocking helper can make;
    # nan fails both comparisons.
    if not seconds <= threading.TIMEOUT_MAX:
        shown = repr(value) if isinstance(value, (str, float)) else repr(seconds)  # not 400 digits
        raise pytest.UsageError(
            f"hsock timeout must be a finite number of seconds, "
            f"at most {threading.TIMEOUT_MAX:.0f}, not {shown}"
        )
    return seconds


def show_transcripts(node: pytest.Item) -> bool:
    """Whether a failed test's report gets the transcripts section."""
    try:
        value = _marker(node, "transcripts")
    except pytest.UsageError:
        value = None  # reported where the fixtures read the marker, not in a report hook
    if value is not None:
        return bool(value)
    if node.config.getoption("--hsock-no-transcripts"):
        return False
    return bool(node.config.getini("hsock_transcripts"))


def reuse_ports(config: pytest.Config) -> bool:
    """Whether plain mock servers borrow pooled listeners (``--hsock-fresh-servers`` and ini
    ``hsock_reuse_ports = false`` say no)."""
    if config.getoption("--hsock-fresh-servers"):
        return False
    return bool(config.getini("hsock_reuse_ports"))
