"""What the TCP fault proxy and the UDP chaos proxy share that is pure: the two directions, the
base of their specs, and the checks of their arguments.

Each check returns the value it accepts and otherwise raises a one-line ``TypeError`` or
``ValueError`` that names the argument (``what``, e.g. ``"latency() ms"``) and shows the value.
Nothing here touches a socket, a clock or gevent.
"""

from __future__ import annotations

from pytest_hsocket._core.checks import FINITE_MAX, SECONDS_MAX, check_real

MS_MAX = SECONDS_MAX * 1000
"""The longest delay in milliseconds: the longest wait in seconds (``_checks.SECONDS_MAX``)."""

UPSTREAM = "upstream"
"""Client to server: what the code under test sends."""
DOWNSTREAM = "downstream"
"""Server to client: what the code under test receives."""
DIRECTIONS = (UPSTREAM, DOWNSTREAM)
ANY = FINITE_MAX
"""No bound but a finite float: for a rate, where any size means something."""


class FaultSpec:
    """What a fault does, independent of where it is applied (the subclasses say what).

    Attributes:
        name: The fault's name, as the direction's method that adds it.
    """

    name = "fault"

    def describe(self) -> str:
        """Return the call that adds this fault, e.g. ``latency(200, jitter=20)``."""
        return f"{self.name}()"

    def __repr__(self) -> str:
        return self.describe()


class DelaySpec(FaultSpec):
    """A fault that delays by ``ms`` milliseconds, plus or minus up to ``jitter``: its checked
    arguments and its call (mixed into the TCP ``Latency`` and the UDP ``Delay``).

    Args:
        ms: The delay in milliseconds.
        jitter: Up to this many milliseconds more or less.
    Raises:
        TypeError: If a value is not a number.
        ValueError: If a value is negative.
    """

    def __init__(self, ms: float, jitter: float = 0) -> None:
        self.ms = check_number(ms, f"{self.name}() ms", MS_MAX)
        self.jitter = check_number(jitter, f"{self.name}() jitter", MS_MAX)

    def describe(self) -> str:
        """Return the call that adds this fault, e.g. ``latency(200, jitter=20)``."""
        jitter = f", jitter={self.jitter:g}" if self.jitter else ""
        return f"{self.name}({self.ms:g}{jitter})"


def check_number(value: object, what: str, high: float = SECONDS_MAX) -> float:
    """Return ``value`` as a float if it is a finite number from 0 to ``high``.

    Args:
        value: What the caller gave.
        what: The argument, as messages name it.
        high: The largest value accepted: :data:`~._checks.SECONDS_MAX` for seconds,
            :data:`MS_MAX` for milliseconds, :data:`ANY` for a rate with no natural bound.
    Raises:
        TypeError: If it is not a number (a bool is not).
        ValueError: If it is NaN, negative, infinite or larger than ``high``.
    """
    return check_real(value, what, high=high)


def check_int(value: object, what: str, low: int = 0, bound: str = "") -> int:
    """Return ``value`` if it is an int of ``low`` or more.

    Args:
        value: What the caller gave.
        what: The argument, as messages name it.
        low: The smallest value accepted.
        bound: How a message says the range; ``f"{low} or more"`` by default.
    Raises:
        TypeError: If it is not an int (a bool is not).
        ValueError: If it is less than ``low``.
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int, not {value!r}")
    if value < low:
        raise ValueError(f"{what} must be {bound or f'{low} or more'}, not {value!r}")
    return value


def check_rate(value: object, what: str) -> float:
    """Return ``value`` as a float if it is a probability, from 0 to 1.

    Raises:
        TypeError: If it is not a number (a bool is not).
        ValueError: If it is NaN or not from 0 to 1.
    """
    return check_real(value, what, high=1.0)


def check_ports(caller: str, upstream_port: object, port: object) -> None:
    """Check the ports a proxy's ``start()`` was given.

    Args:
        caller: The call, as messages name it (``"FaultProxy.start()"``).
        upstream_port: The real server's port: 1-65535.
        port: Where the proxy listens: 0-65535 (0 lets the OS choose).
    Raises:
        TypeError: If a port is not an int (a bool is not).
        ValueError: If a port is out of range.
    """
    for value, what, low in ((upstream_port, "upstream_port", 1), (port, "port", 0)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{caller} {what} must be an int, not {value!r}")
        if not low <= value <= 65535:
            raise ValueError(f"{caller} {what} must be {low}-65535, not {value!r}")
