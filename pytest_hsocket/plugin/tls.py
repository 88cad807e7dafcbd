"""The session's TLS material for the fixtures: a trustme CA, certificates and contexts."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Optional

import pytest

if TYPE_CHECKING:  # ssl and trustme (cryptography) load when a test first uses TLS
    import ssl

    import trustme

SERVER_NAMES = ("127.0.0.1", "localhost", "::1")
"""The names the mock servers' certificate carries."""


def server_tls_context(
    ca: trustme.CA, cert: trustme.LeafCert, mutual: bool = False
) -> ssl.SSLContext:
    """A server context with ``cert``; with ``mutual``, clients need a certificate from ``ca``."""
    import ssl

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    if mutual:
        ca.configure_trust(context)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def client_tls_context(ca: trustme.CA, client_cert: bool = False) -> ssl.SSLContext:
    """A client context that trusts ``ca`` (only), with a client certificate if asked."""
    import ssl

    context = ssl.create_default_context()
    ca.configure_trust(context)
    if client_cert:
        ca.issue_cert("hsock-client@example.com").configure_cert(context)
    return context


class TlsMaterial:
    """The session's CA, server certificate and shared contexts, each made on first use.

    Thread-safe: a STARTTLS step asks for the server context on the socket loop.
    """

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._ca: Optional[trustme.CA] = None
        self._cert: Optional[trustme.LeafCert] = None
        self._server: Optional[ssl.SSLContext] = None
        self._client: Optional[ssl.SSLContext] = None

    @property
    def ca(self) -> trustme.CA:
        """The certificate authority."""
        import trustme

        with self._lock:
            if self._ca is None:
                self._ca = trustme.CA()
            return self._ca

    @property
    def server_cert(self) -> trustme.LeafCert:
        """The servers' certificate for 127.0.0.1, localhost and ::1."""
        with self._lock:
            if self._cert is None:
                self._cert = self.ca.issue_cert(*SERVER_NAMES)
            return self._cert

    def server_context(self) -> ssl.SSLContext:
        """A shared server context with the servers' certificate."""
        with self._lock:
            if self._server is None:
                self._server = server_tls_context(self.ca, self.server_cert)
            return self._server

    def client_context(self) -> ssl.SSLContext:
        """A shared client context that trusts the CA."""
        with self._lock:
            if self._client is None:
                self._client = client_tls_context(self.ca)
            return self._client


_MATERIAL = pytest.StashKey[TlsMaterial]()


def tls_material(config: pytest.Config) -> TlsMaterial:
    """Return the session's TLS material (one per config), made on first use."""
    material = config.stash.get(_MATERIAL, None)
    if material is None:
        material = config.stash[_MATERIAL] = TlsMaterial()
    return material
