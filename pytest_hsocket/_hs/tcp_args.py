"""The arguments of a TCP socket's ``connect``, ``listen`` and ``start_tls``, checked.

No I/O and no socket state: each function takes what the caller passed and returns it in the
form the socket uses, or raises the error the method documents.
"""

from __future__ import annotations

import os
import ssl
from typing import Any, Callable, NamedTuple, Optional, Union

import pytest_hsocket._io.tls as _tls
from pytest_hsocket._core.checks import check_callable, check_port, check_unix_path

ConnectCallback = Callable[[], object]


class ConnectTarget(NamedTuple):
    """Where ``connect`` goes: a host and port, or a Unix socket path (``port`` None)."""

    host: str
    port: Optional[int]
    fn: Optional[ConnectCallback]
    path: str
    """The checked Unix socket path ("" for a host and port, or an empty host)."""
    what: str
    """How an error log starts (the original's words)."""


def connect_target(
    host: Any, port: Union[int, ConnectCallback, None], fn: Optional[ConnectCallback]
) -> ConnectTarget:
    """Check ``connect(host, port, fn)``'s arguments; ``connect(path, fn)`` works too.

    Returns:
        The target.
    Raises:
        TypeError: If ``host`` is not a str, the port not an int, or ``fn`` not callable.
        ValueError: If the port is out of range, the path too long, or the host has a NUL
            byte or is not valid text.
    """
    if callable(port) and fn is None:
        port, fn = None, port
    if not isinstance(host, (str, os.PathLike)):
        raise TypeError(f"connect() host must be a str, not {host!r}")
    host = os.fspath(host)
    if "\x00" in host:
        raise ValueError(f"connect() host must not contain a NUL byte: {host!r}")
    try:
        host.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"connect() host must be valid text, not {host!r}") from None
    check_callable(fn, "connect() callback")
    if port is None:
        path = check_unix_path(host, "connect()") if host else ""
        return ConnectTarget(host, None, fn, path, "Unable to connect to Unix domain socket: %s")
    checked = check_port(port, "connect()", low=1)
    return ConnectTarget(host, checked, fn, "", "Unable to connect to host/port: %s")


def listen_target(port: Union[int, str], host: Any) -> tuple[str, str]:
    """Check ``listen(port, host=)``; return the Unix path ("" for a port) and how errors start.

    Raises:
        TypeError: If ``port`` is neither an int nor a path, or ``host`` not a str.
        ValueError: If the port is out of range or the path too long or empty.
    """
    if not isinstance(host, str):
        raise TypeError(f"listen() host must be a str, not {host!r}")
    if isinstance(port, (str, os.PathLike)):
        return check_unix_path(os.fspath(port), "listen()"), "Unable to bind Unix domain path: %s"
    check_port(port, "listen()")
    return "", "Unable to bind port: %s"


def tls_arguments(
    verify: Any, peer_name: Any, context: Any
) -> tuple[bool, Optional[str], Optional[ssl.SSLContext]]:
    """Check ``start_tls(verify, peer_name, context=)``; a str ``verify`` is the peer name.

    Returns:
        ``(verify, peer_name, context)``.
    Raises:
        TypeError: If one has the wrong type.
    """
    if isinstance(verify, str):
        peer_name = verify
        verify = True
    if not isinstance(verify, bool):
        raise TypeError(f"start_tls() verify must be a bool or a peer name, not {verify!r}")
    if peer_name is not None and not isinstance(peer_name, str):
        raise TypeError(f"start_tls() peer_name must be a str, not {peer_name!r}")
    if context is not None and not isinstance(context, ssl.SSLContext):
        raise TypeError(f"start_tls() context must be an ssl.SSLContext, not {context!r}")
    return verify, peer_name, context


def server_context(context: Optional[ssl.SSLContext]) -> ssl.SSLContext:
    """The context of a server side of TLS: it must be given (with a certificate).

    Raises:
        ValueError: If it is None.
    """
    if context is None:
        raise ValueError(
            "start_tls() on a server side needs context= with a certificate, "
            "e.g. trustme.CA().issue_cert('localhost').configure_cert(ctx)"
        )
    return context


def client_side(
    verify: bool, peer_name: Optional[str], context: Optional[ssl.SSLContext], host: str
) -> tuple[ssl.SSLContext, Optional[str]]:
    """The context and the name to check of a client side of TLS.

    Args:
        verify: Whether to verify the chain and the name (when no context is given).
        peer_name: The name to check; else ``host``.
        context: The context to use; else a default one.
        host: The host given to ``connect`` ("" for a Unix socket).
    Returns:
        ``(context, name)``; name None when nothing is checked.
    Raises:
        ValueError: If the context checks names and there is none (a Unix socket), or the
            name cannot be checked.
    """
    if context is None:
        context = _tls.client_context(verify)
    name = peer_name or host or None
    if context.check_hostname and not name:
        raise ValueError(
            "start_tls() cannot check the certificate's name on a Unix socket: "
            "pass peer_name=, or verify=False"
        )
    if name is not None:
        _tls.check_peer_name(context, name, "start_tls() peer_name")
    return context, name
