"""How a mock server (TCP or UDP) says its script was not followed."""

from __future__ import annotations

from typing import Optional

from pytest_hsocket._core.errors import HSocketError
from pytest_hsocket._core.transcript import Transcript

__all__ = ["ExpectationError", "raise_problems"]


class ExpectationError(HSocketError, AssertionError):
    """A mock server's script was not followed: unmet rules, unexpected data, or errors."""


def raise_problems(
    title: str, problems: list[str], transcripts: Optional[list[Transcript]] = None
) -> None:
    """Raise ``ExpectationError`` listing ``problems`` (then the transcripts), if there are any."""
    __tracebackhide__ = True
    if problems:
        lines = [f"{title}: {len(problems)} problem(s)", *(f"  - {line}" for line in problems)]
        lines += [t.render() for t in transcripts or []]
        raise ExpectationError("\n".join(lines))
