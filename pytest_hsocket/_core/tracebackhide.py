"""Which frames pytest leaves out of a failure: a helper module sets its ``__tracebackhide__``
to :func:`hide_helper_frames`, so a ``ReadTimeout`` from ``expect()`` shows the test's line and
the message, not the helper's own code (an error that is a bug of ours still shows them)."""

from __future__ import annotations

from pytest_hsocket._core.errors import HSocketError


def hide_helper_frames(excinfo: object) -> bool:
    """Return whether pytest should hide a helper's frame from the failure ``excinfo``.

    Args:
        excinfo: pytest's ``ExceptionInfo`` of the failure.
    Returns:
        True for the errors the helpers raise for the test (``HSocketError`` and its
        subclasses, ``AssertionError``); False for anything else, so that a bug shows where.
    """
    return isinstance(getattr(excinfo, "value", None), (HSocketError, AssertionError))
