"""What a teardown says about a script (sans-IO): unmet rules, unexpected bytes next to the
rule they came closest to (a hexdump diff from the first differing offset), leftovers that
never matched, and the tracebacks of ``respond()`` functions that raised."""

from __future__ import annotations

import re
import traceback
from collections.abc import Iterable
from typing import Optional

from pytest_hsocket._core.frames import FrameSpec
from pytest_hsocket._core.rules import Rule, Until, literal_prefix
from pytest_hsocket._core.transcript import brief, diff, first_difference, hexdump, is_printable

_DIFF_LINES = 12  # a diff longer than this is cut: the first difference is what matters
_SHOW_BYTES = 256  # the diff compares at most this much around the first difference


def _expected_bytes(rule: Rule) -> Optional[bytes]:
    # The bytes a rule wants, as far as they are known in advance.
    spec = rule.spec
    if isinstance(spec, bytes):
        return spec
    if isinstance(spec, re.Pattern):
        return literal_prefix(spec) or None
    if isinstance(spec, (FrameSpec, Until, int)) and isinstance(rule.check, bytes):
        return rule.check
    return None


def closest(data: bytes, rules: Iterable[Rule]) -> Optional[tuple[Rule, bytes]]:
    """Return the rule whose known bytes agree longest with ``data`` (and those bytes)."""
    best: Optional[tuple[int, Rule, bytes]] = None
    for rule in rules:
        expected = _expected_bytes(rule)
        if expected is None:
            continue
        agree = first_difference(expected, data)
        if best is None or agree > best[0]:
            best = (agree, rule, expected)
    return None if best is None else (best[1], best[2])


def explain(data: bytes, rules: list[Rule]) -> list[str]:
    """Return lines that show how ``data`` differs from the closest of ``rules``.

    Binary data gets a hexdump diff; the summary line gives the first differing offset. With
    no rule to compare to, binary data gets a hexdump of its first 256 bytes.
    """
    found = closest(data, rules)
    if found is None:
        # No rule knows its bytes in advance (a frame with a function check): the bytes alone.
        return [] if is_printable(data) else hexdump(data[:_SHOW_BYTES])
    rule, expected = found
    at = first_difference(expected, data)
    start = max(0, at - _SHOW_BYTES // 2) & ~0xF  # keep hexdump rows aligned
    lines = [f"closest rule: {rule!r}"]
    shown = diff(expected[start : start + _SHOW_BYTES], data[start : start + _SHOW_BYTES])
    summary = f"expected {len(expected)} bytes, received {len(data)}; first difference at byte {at}"
    lines.append(summary + (f" (diff from byte {start})" if start else ""))
    body = shown[1:]
    if len(body) > _DIFF_LINES:
        body = [*body[:_DIFF_LINES], f"... ({len(body) - _DIFF_LINES} more diff lines)"]
    return lines + body


def leftover_line(where: str, data: bytes, waiting: list[Rule]) -> str:
    """Say what the bytes that never completed a match were waiting for."""
    rules = ", ".join(repr(r) for r in waiting) or "no rule"
    return f"{where}: unexpected data {brief(data)} (never matched: {rules} waited for more)"


def error_lines(where: str, errors: list[BaseException]) -> list[str]:
    """Return a problem per ``respond()`` error: a line, then its traceback, indented."""
    lines = []
    for error in errors:
        line = f"{where}: respond() raised {type(error).__name__}: {error}"
        if error.__traceback__ is not None:
            tb = traceback.format_exception(type(error), error, error.__traceback__)
            line += "".join(
                "\n      " + part for chunk in tb for part in chunk.rstrip("\n").split("\n")
            )
        lines.append(line)
    return lines


def shared_unmet(rules: Iterable[Rule]) -> list[str]:
    """Return a line for each shared rule that matched fewer times than it must, in all."""
    return [
        f"unmet {rule!r} matched {rule.total} of {rule.times} times on all connections"
        for rule in rules
        if rule.shared and rule.times is not None and rule.total < rule.times
    ]
