"""TLS to the backends (``pools.*.upstream_tls``): the client side.

One context per pool, made once (when the config is loaded, which checks the
files, and again when the pool is built): connections to the pool's backends
share it, and so its session cache, so a reconnect to a backend resumes.
Verification is on by default: the backend's chain must lead to ``ca`` (or
the system's trust store) and its certificate must name ``sni`` (or the
backend's host, an IP address included). The same secure defaults as the
listeners: TLS 1.2 at least, forward-secret AEAD suites for 1.2.
"""

from __future__ import annotations

import ssl

from lbproxy.tls.certfiles import read_ca_bundle, read_pair
from lbproxy.tls.context import TLS12_CIPHERS
from lbproxy.tls.errors import TlsError

__all__ = ["client_context"]


def client_context(
    verify: bool, ca: str | None, cert: str | None, key: str | None
) -> ssl.SSLContext:
    """The client context for a pool's backends; TlsError names a bad file."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(TLS12_CIPHERS)
    ctx.options |= ssl.OP_NO_COMPRESSION
    ctx.set_alpn_protocols(["http/1.1"])
    if verify:
        ctx.check_hostname = True
        ctx.verify_mode = ssl.CERT_REQUIRED
        if ca is not None:
            ctx.load_verify_locations(cadata=read_ca_bundle(ca))
        else:
            ctx.load_default_certs(ssl.Purpose.SERVER_AUTH)
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if cert is not None and key is not None:
        read_pair(cert, key)  # a key that does not match, named
        try:
            ctx.load_cert_chain(cert, key)
        except ssl.SSLError as exc:
            raise TlsError(f"{cert}: rejected by OpenSSL: {exc.reason or exc}") from None
    return ctx
