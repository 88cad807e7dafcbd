"""``start_tls`` of the hs.socket TCP socket: checking its arguments and handing the upgrade
to the stream on the loop (the TLS machinery itself is in ``_stream_tls`` and ``_tls``)."""

from __future__ import annotations

import ssl
from typing import Optional, TypeVar, Union

import pytest_hsocket._io.tls as _tls
from pytest_hsocket._hs.base import CLIENT, IDLE, SERVER, SocketCore, log

T = TypeVar("T", bound="TlsStart")


class TlsStart(SocketCore):
    """The TLS part of ``Socket``'s API (see ``Socket.start_tls``)."""

    def start_tls(
        self: T,
        verify: Union[bool, str] = True,
        peer_name: Optional[str] = None,
        *,
        context: Optional[ssl.SSLContext] = None,
    ) -> Optional[T]:
        """Upgrade the connection to TLS once the reads and writes queued before it are done.

        On a connection you opened this is the client side: by default the peer's chain must be
        trusted (the system store, or ``context``'s) *and* its certificate must name
        ``peer_name`` or the host given to ``connect``. On a connection a server accepted it
        is the server side (STARTTLS), and on a listening socket every client it accepts from
        now on speaks TLS from its first byte; both need ``context`` with a certificate.
        If negotiation fails the socket disconnects, with the reason logged.

        Args:
            verify: False accepts any certificate and name (self-signed peers). A str is taken
                as ``peer_name``, as in the original's ``startTLS(peerName)``.
            peer_name: The name the certificate must carry.
            context: The ``ssl.SSLContext`` to use; a fresh default one otherwise.
        Returns:
            This socket, or ``None`` with an ERROR log if it was never connected.
        Raises:
            TypeError: If ``verify``, ``peer_name`` or ``context`` has the wrong type.
            ValueError: If a server side has no ``context``, or a name cannot be checked (empty,
                with a NUL byte, or not a valid host name).
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
        if self._mode in (SERVER, CLIENT):
            if context is None:
                raise ValueError(
                    "start_tls() on a server side needs context= with a certificate, "
                    "e.g. trustme.CA().issue_cert('localhost').configure_cert(ctx)"
                )
            if self._mode == SERVER:
                self._accept_tls = context
                return self
            self._loop.call(self._push_tls, context, True, None)
            return self
        if self._mode == IDLE:
            log.error("Unable to start TLS: the socket is not connected; call connect() first")
            return None
        if context is None:
            context = _tls.client_context(verify)
        name = peer_name or self._host or None
        if context.check_hostname and not name:
            raise ValueError(
                "start_tls() cannot check the certificate's name on a Unix socket: "
                "pass peer_name=, or verify=False"
            )
        if name is not None:
            _tls.check_peer_name(context, name, "start_tls() peer_name")
        self._loop.call(self._push_tls, context, False, name)
        return self

    startTLS = start_tls

    def _push_tls(self, context: ssl.SSLContext, server_side: bool, name: Optional[str]) -> None:
        stream = self._stream
        if (
            stream is not None
            and not stream.closed
            and not stream.start_tls(context, server_side, name)
        ):
            log.debug("TLS is already on or queued: start_tls() ignored")
