"""Argument checks shared by the public API: each raises a one-line TypeError/ValueError that
names the argument and shows the value."""

from __future__ import annotations

import os

from ._platform import unix_path_max

UNIX_PATH_MAX = unix_path_max()


def check_port(port: object, what: str, low: int = 0) -> int:
    """Return ``port`` if it is an int in ``low``-65535.

    Raises:
        TypeError: If it is not an int.
        ValueError: If it is out of range.
    """
    if isinstance(port, bool) or not isinstance(port, int):
        raise TypeError(f"{what} port must be an int, not {port!r}")
    if not low <= port <= 65535:
        raise ValueError(f"{what} port must be in {low}-65535, not {port!r}")
    return port


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
    """Return ``timeout`` as a float: ``TypeError`` unless a number, ``ValueError`` for NaN."""
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError(f"{what} timeout must be a number of seconds, not {timeout!r}")
    if timeout != timeout:
        raise ValueError(f"{what} timeout must be a number of seconds, not {timeout!r}")
    return float(timeout)


def check_tag(tag: object, what: str) -> int:
    """Return ``tag``; raise ``TypeError`` unless it is an int."""
    if isinstance(tag, bool) or not isinstance(tag, int):
        raise TypeError(f"{what} tag must be an int, not {tag!r}")
    return tag


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
