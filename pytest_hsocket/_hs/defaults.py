"""The module-level settings a new socket copies: ``hsocket.timeout`` and ``hsocket.udp.timeout``.

They live here, in the socket layer, so that a socket reads them without reaching up to the
public module above it. The public modules show them as plain module attributes through
:func:`show_on_module` (a property of the module's class), so ``hsocket.timeout = 5`` and
``monkeypatch.setattr(hsocket, "timeout", 5)`` work as the original's variable does.
"""

from __future__ import annotations

from types import ModuleType


class Setting:
    """One module-level setting.

    Attributes:
        value: What the module attribute was last set to. Anything can be set (a plain
            module attribute cannot refuse a value); a socket checks it when it copies it.
    """

    __slots__ = ("doc", "value")

    def __init__(self, value: object, doc: str) -> None:
        self.value = value
        self.doc = doc


TCP_TIMEOUT = Setting(
    -1, "Default timeout, in seconds, copied by each new socket; negative = none."
)
"""``hsocket.timeout``: seconds a new TCP or Unix socket copies."""

UDP_TIMEOUT = Setting(-1, "Default send timeout, in seconds, copied by each new UDP socket.")
"""``hsocket.udp.timeout``: the send timeout a new UDP socket copies."""


def _shown(setting: Setting) -> property:
    def get(_module: ModuleType) -> object:
        return setting.value

    def set_(_module: ModuleType, value: object) -> None:
        setting.value = value

    return property(get, set_, doc=setting.doc)


def show_on_module(module: ModuleType, **settings: Setting) -> None:
    """Make each ``module.<name>`` read and set ``settings[name]``.

    The module's class becomes a subclass of ``ModuleType`` with one property per setting
    (Python looks data descriptors up on the class first), and the plain attribute that
    the module's source declares for readers and type checkers is dropped from its dict.

    Args:
        module: The public module (``sys.modules[__name__]``).
        settings: The settings by attribute name.
    """
    attributes: dict[str, object] = {name: _shown(s) for name, s in settings.items()}
    attributes["__module__"] = module.__name__
    module.__class__ = type("PublicModule", (ModuleType,), attributes)
    for name, setting in settings.items():
        setting.value = module.__dict__.pop(name, setting.value)
