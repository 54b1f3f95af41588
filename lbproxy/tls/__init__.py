"""TLS termination: certificates by SNI, secure defaults, mTLS, hot reload."""

from lbproxy.tls.context import (
    TLS12_CIPHERS,
    CertificateStore,
    TlsError,
    TlsSettings,
    client_subject,
    server_context,
)
from lbproxy.tls.upstream import client_context

__all__ = [
    "TLS12_CIPHERS",
    "CertificateStore",
    "TlsError",
    "TlsSettings",
    "client_context",
    "client_subject",
    "server_context",
]
