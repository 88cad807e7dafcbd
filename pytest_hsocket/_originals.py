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

__all__ = ["_thread", "allocate_lock", "get_ident", "getaddrinfo", "os_socket", "start_new_thread"]
