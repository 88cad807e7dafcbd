"""TLS without handing the socket to OpenSSL: an ``ssl.SSLObject`` over two memory BIOs.

A stdlib ``SSLSocket`` handshake would block the loop's thread (and a TLS client and server on
the same loop would freeze each other), so the stream feeds received bytes in, takes the bytes
OpenSSL wants sent out, and never lets OpenSSL touch the socket. Also: the context builders.
Nothing here knows trustme; the fixtures do.
"""

from __future__ import annotations

import contextlib
import ssl
from typing import Optional, Union


def client_context(verify: bool = True, cafile: Optional[str] = None) -> ssl.SSLContext:
    """Build a fresh client context (so ``SSL_CERT_FILE`` and the like are read each time).

    Args:
        verify: False accepts any certificate and name (self-signed peers).
        cafile: A PEM file of CA certificates to trust instead of the system store.
    Returns:
        The context.
    """
    context = ssl.create_default_context(cafile=cafile)
    if not verify:
        # check_hostname must go off before verify_mode, or the stdlib refuses.
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def describe_error(exc: BaseException) -> str:
    """A one-line reason for a failed TLS negotiation."""
    if isinstance(exc, ssl.SSLCertVerificationError) and exc.verify_message:
        return f"TLS negotiation failed: certificate verify failed: {exc.verify_message}"
    reason = getattr(exc, "reason", None)  # set by OpenSSL, not on one built by hand
    if isinstance(exc, ssl.SSLError) and reason:
        return f"TLS negotiation failed: {reason}"
    return f"TLS negotiation failed: {exc}"


def check_peer_name(context: ssl.SSLContext, name: str, what: str) -> None:
    """Refuse, at the call, a name TLS could not be started with.

    The stdlib checks a name only when a session is built, which happens later on the loop;
    building one here (no I/O) raises what it would, so a bad name never reaches the loop.

    Raises:
        ValueError: If ``name`` is empty, holds a NUL byte or is not a valid host name.
    """
    try:
        context.wrap_bio(ssl.MemoryBIO(), ssl.MemoryBIO(), server_hostname=name)
    except (TypeError, ValueError) as exc:  # UnicodeError is a ValueError
        raise ValueError(f"{what} must be a valid host name, not {name!r} ({exc})") from None


class TlsSession:
    """One side of a TLS connection, driven by bytes (sans-IO).

    Attributes:
        handshake_done: True once the handshake completed.
    """

    def __init__(
        self, context: ssl.SSLContext, *, server_side: bool, server_hostname: Optional[str]
    ) -> None:
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._obj = context.wrap_bio(
            self._incoming,
            self._outgoing,
            server_side=server_side,
            server_hostname=None if server_side else server_hostname,
        )
        self.handshake_done = False
        self._notified = False

    def receive(self, data: Union[bytes, bytearray, memoryview]) -> None:
        """Hand over bytes received from the peer."""
        self._incoming.write(data)

    def receive_eof(self) -> None:
        """Tell the session the peer closed the transport."""
        self._incoming.write_eof()

    def step(self) -> tuple[bytes, bool, bool]:
        """Advance the handshake, then decrypt what can be.

        Returns:
            ``(plaintext, handshake_just_completed, closed)``; ``closed`` is True when the
            peer ended TLS (close_notify or a bare EOF).
        Raises:
            ssl.SSLError: If the negotiation or the record layer fails.
        """
        just_completed = False
        if not self.handshake_done:
            try:
                self._obj.do_handshake()
            except ssl.SSLWantReadError:
                return b"", False, False
            except ssl.SSLEOFError:
                raise
            self.handshake_done = just_completed = True
        chunks = []
        closed = False
        while True:
            try:
                chunk = self._obj.read(262144)
            except ssl.SSLWantReadError:
                break
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                closed = True
                break
            if not chunk:
                closed = True
                break
            chunks.append(chunk)
        return b"".join(chunks), just_completed, closed

    def encrypt(self, data: Union[bytes, memoryview]) -> None:
        """Encrypt application data; the records wait in the outgoing buffer."""
        view = memoryview(data)
        while view.nbytes:
            written = self._obj.write(view[:262144])
            view = view[written:]

    def close_notify(self) -> None:
        """Queue TLS's close_notify alert (the peer then sees a clean end, not a bare EOF)."""
        if self.handshake_done and not self._notified:
            self._notified = True
            # Want-read: the peer's own close_notify is not awaited.
            with contextlib.suppress(ssl.SSLError):
                self._obj.unwrap()

    @property
    def has_outgoing(self) -> bool:
        """Whether OpenSSL has bytes to send (handshake records, alerts, data)."""
        return self._outgoing.pending > 0

    def take_outgoing(self) -> bytes:
        """Remove and return the bytes OpenSSL wants sent."""
        return self._outgoing.read()

    @property
    def version(self) -> Optional[str]:
        """The negotiated protocol version, once known."""
        return self._obj.version()
