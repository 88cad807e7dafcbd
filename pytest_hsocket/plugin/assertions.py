"""``assert data == expected`` on tagged reads: the tag, a byte diff and the transcript."""

from __future__ import annotations

import sys
from typing import Optional

import pytest
from _pytest._io.saferepr import saferepr


def pytest_assertrepr_compare(
    config: pytest.Config, op: str, left: object, right: object
) -> Optional[list[str]]:
    """Explain a failed ``==`` where one side is data from a tagged read."""
    if op != "==":
        return None
    # Tagged data exists only once the library has loaded: a run that never used it pays
    # nothing here, not even the import.
    transcript = sys.modules.get("pytest_hsocket._core.transcript")
    if transcript is None:
        return None
    TaggedBytes, diff = transcript.TaggedBytes, transcript.diff
    if isinstance(left, TaggedBytes) and isinstance(right, (bytes, bytearray)):
        actual, expected = left, bytes(right)
    elif isinstance(right, TaggedBytes) and isinstance(left, (bytes, bytearray)):
        actual, expected = right, bytes(left)
    else:
        return None
    # The transcript goes to the report's own section: here it would be truncated.
    shown = f"{saferepr(bytes(left))} == {saferepr(bytes(right))}"
    return [f"{shown}  (read with tag {actual.tag})", *diff(expected, bytes(actual))]
