"""pytest-hsocket: Hammerspoon's ``hs.socket`` on gevent, and pytest fixtures around it.

``import pytest_hsocket as hsocket`` gives the hs.socket API::

    import pytest_hsocket as hsocket

    TAG_HEADER, TAG_BODY = 1, 2

    def on_data(data: bytes, tag: int) -> None:
        if tag == TAG_HEADER:
            client.read(int(data.split(b"Content-Length: ")[1].split(b"\\r\\n")[0]), TAG_BODY)
        else:
            print(data)

    client = hsocket.new(on_data).connect("127.0.0.1", 8080)
    client.write(b"GET / HTTP/1.0\\r\\n\\r\\n")
    client.read(b"\\r\\n\\r\\n", TAG_HEADER)

Python names are snake_case; the original's camelCase names are aliases.
"""

from __future__ import annotations

import importlib
import logging
import sys
from typing import TYPE_CHECKING, Any, Union

from pytest_hsocket._hs.defaults import TCP_TIMEOUT, show_on_module

if TYPE_CHECKING:
    from pytest_hsocket._core.address import Address, parse_address
    from pytest_hsocket._core.errors import (
        CallbackError,
        ConnectionClosed,
        HSocketError,
        InvalidThreadUseError,
        LoopError,
        ReadTimeout,
    )
    from pytest_hsocket._core.framing import (
        Announced,
        Completed,
        Framer,
        Prefixed,
        ReadQueue,
        ReadRequest,
    )
    from pytest_hsocket._hs.factories import new, server
    from pytest_hsocket._hs.tcp import Socket

    from . import udp

    parseAddress = parse_address

# The pytest plugin (pytest_hsocket.plugin) loads in every pytest run of the environment, and
# importing it imports this package first: the API (gevent with it) loads on first use of a
# name, never at import (PEP 562).
_LAZY = {
    "udp": ("udp", None),
    "Address": ("_core.address", "Address"),
    "parse_address": ("_core.address", "parse_address"),
    "parseAddress": ("_core.address", "parse_address"),
    "CallbackError": ("_core.errors", "CallbackError"),
    "ConnectionClosed": ("_core.errors", "ConnectionClosed"),
    "HSocketError": ("_core.errors", "HSocketError"),
    "InvalidThreadUseError": ("_core.errors", "InvalidThreadUseError"),
    "LoopError": ("_core.errors", "LoopError"),
    "ReadTimeout": ("_core.errors", "ReadTimeout"),
    "Announced": ("_core.framing", "Announced"),
    "Completed": ("_core.framing", "Completed"),
    "Framer": ("_core.framing", "Framer"),
    "Prefixed": ("_core.framing", "Prefixed"),
    "ReadQueue": ("_core.framing", "ReadQueue"),
    "ReadRequest": ("_core.framing", "ReadRequest"),
    "Socket": ("_hs.tcp", "Socket"),
    "new": ("_hs.factories", "new"),
    "server": ("_hs.factories", "server"),
}


def __getattr__(name: str) -> Any:
    try:
        module_name, attribute = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    # Looked up each time, not cached here: pytester's in-process runs drop the modules first
    # imported during the run from sys.modules, and a cached class would then differ from the
    # one the re-imported modules check against.
    from pytest_hsocket._loop.originals import restore_modules

    restore_modules()
    module = importlib.import_module(f"{__name__}.{module_name}")
    return module if attribute is None else getattr(module, attribute)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY) | {"timeout"})


__version__ = "0.1.0"

timeout: float = -1
"""Default timeout, in seconds, copied by each new socket; negative = no timeout."""
# Kept in the socket layer, which reads it there; this module shows it as its attribute.
show_on_module(sys.modules[__name__], timeout=TCP_TIMEOUT)

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "warn": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}

logger = logging.getLogger("pytest_hsocket")
"""The library's logger; every module logs to a child of it."""


def set_log_level(level: Union[int, str]) -> None:
    """Set the level of the ``pytest_hsocket`` logger (and only that logger).

    Args:
        level: A ``logging`` level (``logging.DEBUG``) or a name: ``"debug"``, ``"info"``,
            ``"warning"``, ``"error"`` (the original's names; case does not matter).
    Raises:
        TypeError: If ``level`` is neither an int nor a str.
        ValueError: If the name is not a known level.
    """
    if not isinstance(level, str):
        from pytest_hsocket._core.checks import check_int  # lazy: the package imports light

        level = check_int(level, "set_log_level() level", None, noun="an int or a name")
    else:
        try:
            level = _LEVELS[level.lower()]
        except KeyError:
            raise ValueError(
                f"set_log_level() level must be one of {sorted(_LEVELS)}, not {level!r}"
            ) from None
    logger.setLevel(level)


setLogLevel = set_log_level

__all__ = [
    "Address",
    "Announced",
    "CallbackError",
    "Completed",
    "ConnectionClosed",
    "Framer",
    "HSocketError",
    "InvalidThreadUseError",
    "LoopError",
    "Prefixed",
    "ReadQueue",
    "ReadRequest",
    "ReadTimeout",
    "Socket",
    "new",
    "parseAddress",
    "parse_address",
    "server",
    "setLogLevel",
    "set_log_level",
    "timeout",
    "udp",
]
