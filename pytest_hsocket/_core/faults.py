"""What the TCP fault proxy and the UDP chaos proxy share that is pure: the two directions, the
base of their specs, and the check of a proxy's ports. Every argument check is in
:mod:`pytest_hsocket._core.checks`. Nothing here touches a socket, a clock or gevent.
"""

from __future__ import annotations

from pytest_hsocket._core.checks import FINITE_MAX, SECONDS_MAX, check_int, check_real

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
        self.ms = check_real(ms, f"{self.name}() ms", high=MS_MAX)
        self.jitter = check_real(jitter, f"{self.name}() jitter", high=MS_MAX)

    def describe(self) -> str:
        """Return the call that adds this fault, e.g. ``latency(200, jitter=20)``."""
        jitter = f", jitter={self.jitter:g}" if self.jitter else ""
        return f"{self.name}({self.ms:g}{jitter})"


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
    check_int(upstream_port, f"{caller} upstream_port", 1, 65535)
    check_int(port, f"{caller} port", 0, 65535)
