"""Running the blocking test helpers from async tests without blocking their event loop.

Each helper waits in a worker thread: asyncio's default executor, or trio's / anyio's
``to_thread`` when the test runs under them (told apart with sniffio when it is installed).
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any, Callable, TypeVar

T = TypeVar("T")


def _library() -> str:
    try:
        import sniffio
    except ImportError:
        return "asyncio"
    try:
        return str(sniffio.current_async_library())
    except sniffio.AsyncLibraryNotFoundError:
        return "asyncio"


async def to_thread(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run ``fn(*args, **kwargs)`` in a worker thread and await its result.

    Raises:
        Whatever ``fn`` raises.
    """
    call = functools.partial(fn, *args, **kwargs)
    library = _library()
    if library == "trio":
        import trio

        return await trio.to_thread.run_sync(call)
    if library != "asyncio":  # pragma: no cover - curio and friends, through anyio
        import anyio

        return await anyio.to_thread.run_sync(call)
    return await asyncio.get_running_loop().run_in_executor(None, call)
