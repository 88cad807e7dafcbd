"""Every bad recording is a ValueError naming its line; ``serve`` exits 2 with one line.

Issue 17, item 17: ``"text": 5`` or ``null`` gave AttributeError, a 400-digit ``"t"``
OverflowError, deeply nested JSON RecursionError, and ``python -m pytest_hsocket serve`` then
printed a traceback and exited 1.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_hsocket._core.record import RecordEntry, load_recording

GOOD = '{"t": 0, "dir": "upstream", "conn": 1, "text": "ok"}'
DEEP = "[" * 100_000 + "]" * 100_000

BAD_LINES = [
    pytest.param('{"t": 0, "dir": "upstream", "conn": 1, "text": 5}', "'text'", id="text-int"),
    pytest.param('{"t": 0, "dir": "upstream", "conn": 1, "text": null}', "'text'", id="text-null"),
    pytest.param('{"t": 0, "dir": "upstream", "conn": 1, "b64": 5}', "'b64'", id="b64-int"),
    pytest.param('{"t": 0, "dir": 5, "conn": 1, "text": ""}', "'dir'", id="dir-int"),
    pytest.param('{"t": 0, "dir": [], "conn": 1, "text": ""}', "'dir'", id="dir-list"),
    pytest.param(
        '{"t": 1' + "0" * 400 + ', "dir": "upstream", "conn": 1, "text": ""}', "'t'", id="t-huge"
    ),
    pytest.param('{"t": 1e400, "dir": "upstream", "conn": 1, "text": ""}', "'t'", id="t-1e400"),
    pytest.param('{"t": NaN, "dir": "upstream", "conn": 1, "text": ""}', "'t'", id="t-nan"),
    pytest.param('{"t": -1, "dir": "upstream", "conn": 1, "text": ""}', "'t'", id="t-negative"),
    pytest.param('{"t": "0", "dir": "upstream", "conn": 1, "text": ""}', "'t'", id="t-str"),
    pytest.param('{"t": 0, "dir": "upstream", "conn": 1.5, "text": ""}', "'conn'", id="conn"),
    pytest.param('{"t": 0, "dir": "upstream", "text": ""}', "'conn'", id="no-conn"),
    pytest.param(
        '{"t": 0, "dir": "upstream", "conn": 1, "text": "\\ud800"}', "surrogate", id="surrogate"
    ),
    pytest.param(DEEP, "nested too deep", id="deeply-nested"),
    pytest.param('{"a": ' * 50_000 + "1" + "}" * 50_000, "nested too deep", id="deep-objects"),
]


@pytest.mark.parametrize(("line", "why"), BAD_LINES)
def test_a_bad_value_is_a_value_error_naming_the_line(tmp_path: Path, line: str, why: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(GOOD + "\n\n" + line + "\n", encoding="utf-8", errors="surrogatepass")
    with pytest.raises(ValueError, match="line 3 is not a record") as caught:
        load_recording(path)
    message = str(caught.value)
    assert why in message
    assert "\n" not in message
    assert len(message) < 300, message


def test_bytes_that_are_not_utf8_name_their_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_bytes(GOOD.encode() + b"\n\xff\xfe\n")
    with pytest.raises(ValueError, match="line 2 is not a record: 'utf-8' codec"):
        load_recording(path)


def test_a_good_file_with_blank_lines_loads(tmp_path: Path) -> None:
    # The twin of every case above.
    path = tmp_path / "good.jsonl"
    path.write_text(f"{GOOD}\n   \n{GOOD}\n", encoding="utf-8")
    assert load_recording(path) == [RecordEntry(0.0, "upstream", 1, b"ok")] * 2


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=10**300, max_value=10**420)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=8,
)
FIELD = st.sampled_from(["t", "dir", "conn", "text", "b64"])
VALUE = JSON | st.sampled_from(["upstream", "downstream", "aGk=", "!!", 0, 1, 0.5])
RECORD = st.dictionaries(FIELD, VALUE, max_size=5)
LINE = (
    RECORD.map(json.dumps)
    | JSON.map(json.dumps)
    | st.text(max_size=30)
    | st.just('{"t": 0, "dir": "downstream", "conn": 2, "b64": "aGk="}')
)


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("recordings")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lines=st.lists(LINE, min_size=1, max_size=4))
def test_any_file_loads_or_is_a_value_error_naming_a_line(fuzz_dir: Path, lines: list[str]) -> None:
    path = fuzz_dir / "fuzz.jsonl"
    body = "\n".join(line.replace("\n", " ").replace("\r", " ") for line in lines) + "\n"
    path.write_bytes(body.encode("utf-8", "surrogatepass"))
    message = None
    try:
        entries = load_recording(path)
    except ValueError as exc:  # any other exception fails the test
        message = str(exc)
    if message is None:
        assert all(isinstance(entry, RecordEntry) for entry in entries)
        assert all(entry.t >= 0 for entry in entries)
        return
    found = re.search(r" line (\d+) is not a record: ", message)
    assert found, message
    assert 1 <= int(found.group(1)) <= len(lines)
    assert "\n" not in message


@pytest.mark.parametrize(
    "line",
    [
        pytest.param('{"t": 0, "dir": "upstream", "conn": 1, "text": 5}', id="text-int"),
        pytest.param(DEEP, id="deeply-nested"),
    ],
)
def test_serve_a_bad_recording_exits_2_with_one_line(tmp_path: Path, line: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(line + "\n", encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "pytest_hsocket", "serve", str(path)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    [message] = result.stderr.splitlines()
    assert message.startswith("error: ")
    assert "line 1 is not a record" in message
    assert result.stdout == ""
