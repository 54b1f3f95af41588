"""Key-exchange groups of the listeners' TLS contexts: X25519, P-256, P-384.

OpenSSL 3's default list also offers X448 and P-521, which Mozilla's
"intermediate" configuration (what ``sslyze --mozilla_config=intermediate``
checks) leaves out: they cost more and add nothing. Python 3.11's ``ssl`` can
set one curve (``set_ecdh_curve``) but not a list, so the list is set with
OpenSSL's own call on the context's ``SSL_CTX``, found through ctypes.

That pointer is the first field after the object header of CPython's
``PySSLContext`` (unchanged from 3.7 to 3.13). Before using it, the pointer
is checked: OpenSSL must read back the same options and verify mode that
Python reports for the context. Should the layout ever differ, nothing is
written through it, and the context falls back to P-256 alone (compliant,
without X25519's speed), with a warning.
"""

from __future__ import annotations

import ctypes
import logging
import ssl
from typing import Any

log = logging.getLogger("lbproxy")

GROUPS = b"X25519:P-256:P-384"
_SSL_CTRL_SET_GROUPS_LIST = 92  # openssl/ssl.h

_calls: dict[str, Any] | None = None


def _openssl() -> dict[str, Any]:
    """SSL_CTX_ctrl, SSL_CTX_get_options and SSL_CTX_get_verify_mode from the
    libssl that Python's _ssl module is linked with (empty if unavailable)."""
    global _calls
    if _calls is None:
        _calls = {}
        try:
            import _ssl

            lib = ctypes.CDLL(_ssl.__file__)
            ctrl = lib.SSL_CTX_ctrl
            ctrl.restype = ctypes.c_long
            ctrl.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_long, ctypes.c_void_p]
            options = lib.SSL_CTX_get_options
            options.restype = ctypes.c_uint64
            options.argtypes = [ctypes.c_void_p]
            verify = lib.SSL_CTX_get_verify_mode
            verify.restype = ctypes.c_int
            verify.argtypes = [ctypes.c_void_p]
            _calls = {"ctrl": ctrl, "options": options, "verify": verify}
        except (OSError, AttributeError):
            pass
    return _calls


def _ssl_ctx(ctx: ssl.SSLContext, calls: dict[str, Any]) -> int | None:
    ptr = ctypes.c_void_p.from_address(id(ctx) + object.__basicsize__).value
    if not ptr:
        return None
    if calls["options"](ptr) != int(ctx.options):
        return None
    if calls["verify"](ptr) != int(ctx.verify_mode):
        return None
    return int(ptr)


def restrict_groups(ctx: ssl.SSLContext) -> None:
    """Offer only X25519, P-256 and P-384 for key exchange on ``ctx``."""
    calls = _openssl()
    ptr = _ssl_ctx(ctx, calls) if calls else None
    if ptr is not None and calls["ctrl"](ptr, _SSL_CTRL_SET_GROUPS_LIST, 0, GROUPS) == 1:
        return
    log.warning("TLS: cannot set the key-exchange groups through OpenSSL; using P-256 only")
    ctx.set_ecdh_curve("prime256v1")
