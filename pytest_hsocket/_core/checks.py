"""Argument checks shared by the public API: each raises a one-line TypeError/ValueError that
names the argument and shows the value."""

from __future__ import annotations

import logging
import math
import os
import sys
import threading
from typing import Optional

from pytest_hsocket._core.platform import unix_path_max

log = logging.getLogger(__name__)

UNIX_PATH_MAX = unix_path_max()

SECONDS_MAX = threading.TIMEOUT_MAX
"""The longest wait in seconds (~292 years on 64-bit Linux): the stdlib's own limit for a
thread's wait, which every blocking helper ends in; more is refused, never an OverflowError."""

FINITE_MAX = sys.float_info.max
"""No bound but a finite float: for a rate or a time stamp, where any size means something."""


def show(value: object) -> str:
    """Return ``repr(value)``, short for an int too long to print (``10**400``).

    An int of thousands of digits has no repr at all (``sys.set_int_max_str_digits``), and one
    of hundreds would fill the error line.
    """
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        digits = math.floor(value.bit_length() * math.log10(2)) + 1
        return f"{'a negative' if value < 0 else 'an'} int of about {digits} digits"
    return repr(value)


def check_real(
    value: object,
    what: str,
    *,
    low: Optional[float] = 0.0,
    high: float = SECONDS_MAX,
    noun: str = "a number",
) -> float:
    """Return ``value`` as a float if it is a finite number from ``low`` to ``high``.

    The one check of every number the public API turns into a float: a timeout, a delay, a
    rate, a toxic's milliseconds. ``10**400``, ``inf`` and ``nan`` are a ``ValueError`` naming
    the argument here, never an ``OverflowError`` from deep inside later.

    Args:
        value: What the caller gave.
        what: The argument, as messages name it (``"set_timeout() timeout"``).
        low: The smallest value accepted; ``None`` accepts down to ``-high``.
        high: The largest value accepted (finite).
        noun: What the argument is, as messages say it (``"a number of seconds"``).
    Returns:
        The value as a float.
    Raises:
        TypeError: If it is not an int or a float (a bool is not).
        ValueError: If it is NaN, infinite, or outside ``low``-``high``.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{what} must be {noun}, not {show(value)}")
    if value != value:
        raise ValueError(f"{what} must be {noun}, not nan")
    if low is None:
        if not -high <= value <= high:
            raise ValueError(
                f"{what} must be {noun} of at most {_plain(high)} either way "
                f"(negative = none), not {show(value)}"
            )
    elif value < low:
        bound = "not be negative" if low == 0 else f"be {_plain(low)} or more"
        raise ValueError(f"{what} must {bound}, not {show(value)}")
    elif value > high:
        raise ValueError(f"{what} must be at most {_plain(high)}, not {show(value)}")
    return float(value)


def _plain(bound: float) -> str:
    if abs(bound) >= 1e16:
        return f"{bound:.3g}"
    return str(int(bound)) if bound == int(bound) else repr(bound)


def check_seconds(value: object, what: str) -> float:
    """Return ``value`` as a float if it is a duration: 0 to :data:`SECONDS_MAX` seconds.

    Raises:
        TypeError: If it is not a number.
        ValueError: If it is negative, NaN, infinite or too large.
    """
    return check_real(value, what, noun="a number of seconds")


def check_wait(timeout: object, what: str) -> Optional[float]:
    """Return a blocking helper's timeout: seconds, or ``None`` for no limit.

    A wait has no other spelling of "no limit", so ``inf`` (and anything longer than
    :data:`SECONDS_MAX`, which no lock can wait) means that; a socket's ``set_timeout`` has
    one (negative) and refuses ``inf``.

    Raises:
        TypeError: If it is not a number.
        ValueError: If it is NaN.
    """
    if (
        isinstance(timeout, (int, float))
        and not isinstance(timeout, bool)
        and timeout > SECONDS_MAX
    ):
        return None
    return check_timeout(timeout, what)


def default_timeout(value: object, name: str) -> float:
    """Return a module's default timeout (``hsocket.timeout``) as a new socket copies it.

    A value :func:`check_timeout` would refuse cannot be refused where it was set (a plain
    module attribute): every new socket falls back to -1 (no timeout) and says why at WARNING.
    """
    try:
        return check_timeout(value, name)
    except (TypeError, ValueError) as exc:
        log.warning("%s; new sockets use -1 (no timeout)", exc)
        return -1.0


def check_int(
    value: object,
    what: str,
    low: Optional[int] = 0,
    high: Optional[int] = None,
    *,
    bound: str = "",
    noun: str = "an int",
) -> int:
    """Return ``value`` if it is an int from ``low`` to ``high``.

    The one check of every int argument: a size, a count, a port, a tag, a seed.

    Args:
        value: What the caller gave.
        what: The argument, as messages name it (``"dribble() size"``).
        low: The smallest value accepted; ``None`` for no bound.
        high: The largest value accepted; ``None`` for no bound.
        bound: How a message says the range after "must be"; by default ``must not be
            negative`` (as :func:`check_real` says it), ``must be positive``, ``must be N or
            more`` or ``must be in N-M``.
        noun: What the argument is, as the ``TypeError`` says it (``"an int or None"``).
    Returns:
        The value.
    Raises:
        TypeError: If it is not an int (a bool is not).
        ValueError: If it is outside ``low``-``high``.
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be {noun}, not {show(value)}")
    if (low is not None and value < low) or (high is not None and value > high):
        rule = f"be {bound}" if bound else _int_range(low, high)
        raise ValueError(f"{what} must {rule}, not {show(value)}")
    return value


def _int_range(low: Optional[int], high: Optional[int]) -> str:
    # The words check_real uses for the same bound: one wording whatever the type.
    if high is not None:
        return f"be at most {high}" if low is None else f"be in {low}-{high}"
    return {0: "not be negative", 1: "be positive"}.get(low or 0, f"be {low} or more")


def check_probability(value: object, what: str) -> float:
    """Return ``value`` as a float if it is a probability, from 0 to 1 (a chaos rate).

    Raises:
        TypeError: If it is not a number (a bool is not).
        ValueError: If it is NaN or not from 0 to 1.
    """
    return check_real(value, what, high=1.0)


def check_port(port: object, what: str, low: int = 0) -> int:
    """Return ``port`` if it is an int in ``low``-65535.

    Raises:
        TypeError: If it is not an int.
        ValueError: If it is out of range.
    """
    return check_int(port, f"{what} port", low, 65535)


def check_unix_path(path: str, what: str) -> str:
    """Expand ``~`` and check the length of a Unix socket path.

    Returns:
        The expanded path.
    Raises:
        ValueError: If the path is empty or longer than the platform allows.
    """
    expanded = os.path.expanduser(path)
    if not expanded:
        raise ValueError(f"{what} path must not be empty")
    if "\x00" in expanded:
        raise ValueError(f"{what} path must not contain a NUL byte: {expanded!r}")
    size = len(os.fsencode(expanded))
    if size >= UNIX_PATH_MAX:
        raise ValueError(
            f"{what} path is too long for a Unix socket ({size} bytes, "
            f"at most {UNIX_PATH_MAX - 1}): {expanded!r}"
        )
    return expanded


def check_callable(fn: object, what: str, optional: bool = True) -> None:
    """Raise ``TypeError`` unless ``fn`` is callable (or ``None`` where ``optional``)."""
    if fn is None and optional:
        return
    if not callable(fn):
        raise TypeError(f"{what} must be callable{' or None' if optional else ''}, not {fn!r}")


def check_timeout(timeout: object, what: str) -> float:
    """Return ``timeout`` as a float: seconds, negative = none.

    Raises:
        TypeError: If it is not a number.
        ValueError: If it is NaN, infinite, or larger than :data:`SECONDS_MAX` either way.
    """
    return check_real(timeout, f"{what} timeout", low=None, noun="a number of seconds")


def check_tag(tag: object, what: str) -> int:
    """Return ``tag``; raise ``TypeError`` unless it is an int."""
    return check_int(tag, f"{what} tag", None)


def as_bytes(message: object, what: str) -> bytes:
    """Return ``message`` as bytes (a str as UTF-8); raise ``TypeError`` for anything else."""
    if isinstance(message, bytes):
        return message
    if isinstance(message, str):
        try:
            return message.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError(f"{what} message is not valid text: {message!r}") from None
    if isinstance(message, (bytearray, memoryview)):
        return bytes(message)
    raise TypeError(f"{what} message must be bytes or str, not {message!r}")


def check_bytes(value: object, what: str) -> bytes:
    """Return ``value`` as bytes if it is bytes-like; a str is refused (no encoding guessed).

    Raises:
        TypeError: If it is not bytes, bytearray or memoryview.
    """
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise TypeError(f"{what} must be bytes, not {value!r}")
    return bytes(value)


def check_bool(value: object, what: str) -> bool:
    """Return ``value`` if it is a bool (a flag); ``0``, ``1`` or ``None`` are refused.

    Raises:
        TypeError: If it is not a bool.
    """
    if not isinstance(value, bool):
        raise TypeError(f"{what} must be a bool, not {value!r}")
    return value


def check_name(value: object, what: str) -> Optional[str]:
    """Return ``value`` if it is a str or ``None`` (an optional name for messages).

    Raises:
        TypeError: If it is neither.
    """
    if value is not None and not isinstance(value, str):
        raise TypeError(f"{what} must be a str, not {value!r}")
    return value


def check_payload(payload: object, what: str) -> None:
    """Check a reply's payload: bytes, text that encodes as UTF-8, or a callable.

    Raises:
        TypeError: If it is none of those.
        ValueError: If it is a str that is not valid text (a lone surrogate).
    """
    if not isinstance(payload, (bytes, str)) and not callable(payload):
        raise TypeError(f"{what} payload must be bytes, str or callable, not {payload!r}")
    if isinstance(payload, str):
        try:
            payload.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError(f"{what} payload is not valid text: {payload!r}") from None
