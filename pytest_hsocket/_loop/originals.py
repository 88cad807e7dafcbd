"""The standard library's own thread and socket primitives, taken when the package first loads.

The library needs them unpatched: in a gevent-monkey-patched process ``threading.Thread`` makes
a greenlet and ``socket.socket`` a cooperative socket of the caller's hub; and a plugin such as
pytest-socket replaces ``socket.socket`` in each test's setup. The pytest plugin imports this
module when pytest loads it, before any test sets up, while the rest of the library (and
gevent) loads only on first use. Without gevent loaded nothing can be patched yet, and the
modules' own attributes are the originals.
"""

from __future__ import annotations

import _thread
import socket
import sys
from typing import Any, Callable


def _original(module: str, name: str) -> Any:
    monkey = sys.modules.get("gevent.monkey")
    if monkey is not None:
        return monkey.get_original(module, name)
    return getattr(sys.modules[module], name)


start_new_thread: Callable[..., int] = _original("_thread", "start_new_thread")
allocate_lock: Callable[[], Any] = _original("_thread", "allocate_lock")
get_ident: Callable[[], int] = _original("_thread", "get_ident")
os_socket: type[socket.socket] = _original("socket", "socket")
getaddrinfo: Callable[..., Any] = _original("socket", "getaddrinfo")

__all__ = [
    "_thread",
    "allocate_lock",
    "get_ident",
    "getaddrinfo",
    "keep_loaded_modules",
    "os_socket",
    "restore_modules",
    "start_new_thread",
]


# -- modules the library loaded, kept across pytester's in-process runs -----------------------

_KEEP_PREFIXES = (
    "pytest_hsocket",
    "gevent",
    "greenlet",
    "zope",
    "trustme",
    "cryptography",
    "idna",
    "_cffi_backend",
    "ssl",
    "_ssl",
    "asyncio",
    "_asyncio",
)
_KEPT: dict[str, Any] = {}
_SCANNED = 0  # len(sys.modules) at the last scan


def keep_loaded_modules() -> None:
    """Remember the library's modules (and gevent's, trustme's...) loaded so far.

    The library loads on first use, which may be inside a pytester in-process run; at its end
    pytester drops from ``sys.modules`` every module first imported during the run. Imported
    again, gevent would make a second hub class beside the running loop's, and trustme and
    cryptography classes that fail the old ones' isinstance checks: :func:`restore_modules`
    puts the first ones back instead.
    """
    global _SCANNED
    if len(sys.modules) == _SCANNED:
        return  # nothing imported since the last look (the usual case, once per test)
    for name, module in list(sys.modules.items()):
        if name.split(".", 1)[0] in _KEEP_PREFIXES and name not in _KEPT:
            _KEPT[name] = module
    _SCANNED = len(sys.modules)


def restore_modules() -> None:
    """Put back into ``sys.modules`` what :func:`keep_loaded_modules` kept and is missing."""
    modules = sys.modules
    for name, module in _KEPT.items():
        if name not in modules:
            modules[name] = module
