"""Key-exchange groups of the listeners' TLS contexts: X25519, P-256, P-384.

OpenSSL 3's default list also offers X448 and P-521, which Mozilla's
"intermediate" configuration (what ``sslyze --mozilla_config=intermediate``
checks) leaves out: they cost more and add nothing. Python 3.11's ``ssl`` can
set one curve (``set_ecdh_curve``) but not a list, so the list is set with
OpenSSL's own call on the context's ``SSL_CTX`` (lbproxy.tls.libssl, which
checks the pointer before giving it out). Should that not be possible,
nothing is written through it, and the context falls back to P-256 alone
(compliant, without X25519's speed), with a warning.
"""

from __future__ import annotations

import logging
import ssl

from lbproxy.tls import libssl

log = logging.getLogger("lbproxy")

GROUPS = b"X25519:P-256:P-384"
_SSL_CTRL_SET_GROUPS_LIST = 92  # openssl/ssl.h

def restrict_groups(ctx: ssl.SSLContext) -> None:
    """Offer only X25519, P-256 and P-384 for key exchange on ``ctx``."""
    lib = libssl.library()
    ptr = libssl.ctx_pointer(ctx)
    if lib is not None and ptr is not None and lib.SSL_CTX_ctrl(
        ptr, _SSL_CTRL_SET_GROUPS_LIST, 0, GROUPS
    ) == 1:
        return
    log.warning("TLS: cannot set the key-exchange groups through OpenSSL; using P-256 only")
    ctx.set_ecdh_curve("prime256v1")
