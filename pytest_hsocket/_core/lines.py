"""Fast reads (sans-IO): a snapshot of the read buffer's head split into whole lines at once.

``ReadQueue.take`` hands the lines out one by one to a callback that queues its next
delimiter read as it gets each one; splitting a snapshot in one C call costs less than a
``find`` and a cut per line. The window bounds say how much of the buffer a snapshot copies.
"""

from __future__ import annotations

__all__ = ["COPY_VIEW", "WINDOW_MAX", "WINDOW_MIN", "whole_lines"]

COPY_VIEW = 2048
"""Reads longer than this are copied out of the buffer through a memoryview (one copy);
shorter ones by slicing, which costs less than making the view."""
WINDOW_MIN = 512
WINDOW_MAX = 64 * 1024
"""Bounds of the bytes snapshot that ``ReadQueue.take`` slices lines from: it starts small
(a protocol that mixes reads copies little) and doubles while takes keep using it up."""


def whole_lines(data: bytes, delimiter: bytes) -> tuple[list[bytes], int]:
    """Split ``data`` into the pieces that end in ``delimiter``.

    LF or CRLF lines split in one C call where no other line break could mislead
    ``splitlines``.

    Args:
        data: The snapshot.
        delimiter: A non-empty delimiter.
    Returns:
        The pieces that end in ``delimiter`` (kept), in order, and how many bytes they
        cover; what follows the last one is left out.
    """
    if (delimiter == b"\n" and b"\r" not in data) or (
        delimiter == b"\r\n" and data.count(b"\r") == data.count(b"\n") == data.count(delimiter)
    ):
        lines = data.splitlines(True)
        if lines and not lines[-1].endswith(delimiter):
            return lines, len(data) - len(lines.pop())
        return lines, len(data)
    parts = data.split(delimiter)
    tail = parts.pop()
    return [part + delimiter for part in parts], len(data) - len(tail)
