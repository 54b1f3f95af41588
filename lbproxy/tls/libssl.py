"""The libssl that Python's ``ssl`` module uses, reached directly.

Three things Python's ``ssl`` has no call for need OpenSSL itself: a list of
key-exchange groups (lbproxy.tls.groups), shared session-ticket keys
(lbproxy.tls.ticketkeys) and the compiled TLS
connection engine (lbproxy._fast.tlsconn), which drives OpenSSL's SSL objects
without ``ssl.SSLObject`` in between. Both must use the very library the
``ssl`` module has mapped, so that the SSL_CTX of an ``ssl.SSLContext`` can be
handed to it: this module reaches it through the ``_ssl`` extension module
and gives out the SSL_CTX pointer of a context and the addresses of OpenSSL
functions.

The SSL_CTX pointer is the first field of CPython's SSLContext object (after
the object header; so since Python 3.7). It is given out only after it proves
itself: OpenSSL must report the options and verify mode Python reports for
that context. Anything unexpected (another Python, an ``_ssl`` built into
the interpreter, a check failing) yields None, and callers keep to what
``ssl`` offers.
"""

from __future__ import annotations

import ctypes
import platform
import ssl
import sys
from functools import cache

__all__ = ["addresses", "ctx_pointer", "library"]


@cache
def library() -> ctypes.CDLL | None:
    """The libssl the ``ssl`` module is linked with (as mapped in this process)."""
    if platform.python_implementation() != "CPython":
        return None
    try:
        import _ssl

        # Symbols are looked up in _ssl's own module and then in the
        # libraries it was linked with: its libssl and libcrypto.
        lib = ctypes.CDLL(_ssl.__file__)
        lib.SSL_CTX_ctrl  # noqa: B018 (a libssl symbol must be reachable)
    except (OSError, AttributeError):
        return None
    lib.SSL_CTX_ctrl.restype = ctypes.c_long
    lib.SSL_CTX_ctrl.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_long, ctypes.c_void_p]
    lib.SSL_CTX_get_options.restype = ctypes.c_uint64
    lib.SSL_CTX_get_options.argtypes = [ctypes.c_void_p]
    lib.SSL_CTX_get_verify_mode.restype = ctypes.c_int
    lib.SSL_CTX_get_verify_mode.argtypes = [ctypes.c_void_p]
    return lib


def ctx_pointer(ctx: ssl.SSLContext) -> int | None:
    """The context's SSL_CTX pointer, if it checks out (None otherwise)."""
    lib = library()
    if lib is None or sys.version_info >= (3, 15):  # a layout not checked against
        return None
    ptr = ctypes.c_void_p.from_address(id(ctx) + object.__basicsize__).value
    if not ptr:
        return None
    verify = {ssl.CERT_NONE: 0, ssl.CERT_OPTIONAL: 1, ssl.CERT_REQUIRED: 3}[ctx.verify_mode]
    if lib.SSL_CTX_get_options(ptr) != int(ctx.options) & 0xFFFFFFFFFFFFFFFF:
        return None
    if lib.SSL_CTX_get_verify_mode(ptr) & 3 != verify:
        return None
    return ptr


def addresses(names: tuple[str, ...]) -> dict[str, int] | None:
    """The addresses of these OpenSSL functions (libssl's, and libcrypto's
    through it); None if the library or any one of them is not there. A
    tuple entry ``"a|b"`` takes ``a``, else ``b`` (renamed across versions)."""
    lib = library()
    if lib is None:
        return None
    found: dict[str, int] = {}
    for entry in names:
        for name in entry.split("|"):
            try:
                fn = getattr(lib, name)
            except AttributeError:
                continue
            addr = ctypes.cast(fn, ctypes.c_void_p).value
            if addr:
                found[entry] = addr
                break
        else:
            return None
    return found
