"""``--hsock-timeout``, its ini twin and the marker refuse a timeout that is not a positive,
finite number with a usage error, before any socket is made (issue 17, item 14).

inf is refused rather than read as "no limit": the timeout exists so that no test can hang for
ever (docs/bad-input.md says so).
"""

from __future__ import annotations

import pytest

TEST = """
def test_ping(hsock_server, hsock_client):
    hsock_server.expect(b"PING\\r\\n").respond(b"+PONG\\r\\n")
    client = hsock_client(hsock_server)
    client.write(b"PING\\r\\n")
    assert client.expect(b"\\r\\n") == b"+PONG\\r\\n"
"""

MARKED = """
import pytest

@pytest.mark.hsocket(timeout={value})
def test_ping(hsock_server, hsock_client):
    hsock_server.expect(b"PING\\r\\n").respond(b"+PONG\\r\\n")
    client = hsock_client(hsock_server)
    client.write(b"PING\\r\\n")
    assert client.expect(b"\\r\\n") == b"+PONG\\r\\n"
"""


def _refused(result: pytest.RunResult, shown: str) -> None:
    out = result.stdout.str()
    assert result.ret != 0, out
    assert "hsock timeout must be a finite number of seconds" in out, out
    assert f"not {shown}" in out, out
    assert "E   OverflowError" not in out, out
    assert "Invalid value NaN" not in out, out


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        pytest.param("inf", "inf", id="inf"),
        pytest.param("nan", "nan", id="nan"),
    ],
)
def test_command_line_timeout_that_is_not_finite_is_a_usage_error(
    pytester: pytest.Pytester, value: str, shown: str
) -> None:
    pytester.makepyfile(TEST)
    _refused(pytester.runpytest("-p", "no:cacheprovider", f"--hsock-timeout={value}"), shown)


@pytest.mark.parametrize("value", ["inf", "nan"])
def test_ini_timeout_that_is_not_finite_is_a_usage_error(
    pytester: pytest.Pytester, value: str
) -> None:
    pytester.makeini(f"[pytest]\nhsock_timeout = {value}\n")
    pytester.makepyfile(TEST)
    _refused(pytester.runpytest("-p", "no:cacheprovider"), repr(value))


def test_marker_timeout_that_is_not_finite_is_a_usage_error(pytester: pytest.Pytester) -> None:
    cases = {"inf": 'float("inf")', "nan": 'float("nan")', "huge": "10**400", "long": "10**10"}
    pytester.makepyfile(
        **{f"test_{name}": MARKED.format(value=value) for name, value in cases.items()}
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(errors=4)
    for shown in ("inf", "nan", "10000000000.0"):
        _refused(result, shown)


@pytest.mark.parametrize(
    "args", [pytest.param(["--hsock-timeout=2.5"], id="option"), pytest.param([], id="default")]
)
def test_a_finite_timeout_is_used(pytester: pytest.Pytester, args: list[str]) -> None:
    # The twin: a positive, finite value runs the test.
    pytester.makepyfile(TEST)
    pytester.runpytest("-p", "no:cacheprovider", *args).assert_outcomes(passed=1)
