"""One set of session-ticket keys for all the workers of a TLS listener.

A TLS session ticket is the server's own state, encrypted with keys OpenSSL
draws at random for each SSL_CTX. With ``workers`` each worker process has
its own, so a returning client whose new connection lands on another worker
(SO_REUSEPORT spreads connections by address) cannot resume: it pays a full
handshake, about four times the CPU of a resumed one (bench/https.py's
``https-close``). The supervisor draws one key (``new_key``) and every worker
installs it (``install``), as nginx's ``ssl_session_ticket_key`` does by
file.

Python's ``ssl`` has no call for it, so ``install`` reaches OpenSSL's
``SSL_CTX_ctrl(SSL_CTRL_SET_TLSEXT_TICKET_KEYS)`` through ctypes, in the very
libssl the ``ssl`` module uses. The SSL_CTX pointer is the first field of
CPython's SSLContext object (after the object header; so since Python 3.7);
it is used only after it proves itself: OpenSSL must report the options and
verify mode Python reports for that context. Anything unexpected (another
Python, no libssl mapped, a check failing) leaves the context with its own
keys, which is what it had before: resumption then works within a worker.
"""

from __future__ import annotations

import ctypes
import logging
import os
import platform
import ssl
import sys
from functools import cache

log = logging.getLogger("lbproxy")

# 16 bytes key name, 32 HMAC secret, 32 AES key: OpenSSL's ticket key block.
KEY_BYTES = 80
_SET_TICKET_KEYS = 59  # SSL_CTRL_SET_TLSEXT_TICKET_KEYS
_GET_TICKET_KEYS = 58  # SSL_CTRL_GET_TLSEXT_TICKET_KEYS


def new_key() -> bytes:
    """A fresh random key block for ``install``."""
    return os.urandom(KEY_BYTES)


@cache
def _libssl() -> ctypes.CDLL | None:
    """The libssl the ``ssl`` module is linked with (as mapped in this process)."""
    if platform.python_implementation() != "CPython" or not sys.platform.startswith("linux"):
        return None
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if "/libssl.so" in line}
    except OSError:
        return None
    if len(paths) != 1:
        return None
    lib = ctypes.CDLL(paths.pop())
    lib.SSL_CTX_ctrl.restype = ctypes.c_long
    lib.SSL_CTX_ctrl.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_long, ctypes.c_void_p]
    lib.SSL_CTX_get_options.restype = ctypes.c_uint64
    lib.SSL_CTX_get_options.argtypes = [ctypes.c_void_p]
    lib.SSL_CTX_get_verify_mode.restype = ctypes.c_int
    lib.SSL_CTX_get_verify_mode.argtypes = [ctypes.c_void_p]
    return lib


def _ssl_ctx(lib: ctypes.CDLL, ctx: ssl.SSLContext) -> int | None:
    """The context's SSL_CTX pointer, if it checks out."""
    if sys.version_info >= (3, 15):
        return None  # a layout not checked against
    ptr = ctypes.c_void_p.from_address(id(ctx) + object.__basicsize__).value
    if not ptr:
        return None
    verify = {ssl.CERT_NONE: 0, ssl.CERT_OPTIONAL: 1, ssl.CERT_REQUIRED: 3}[ctx.verify_mode]
    if lib.SSL_CTX_get_options(ptr) != int(ctx.options) & 0xFFFFFFFFFFFFFFFF:
        return None
    if lib.SSL_CTX_get_verify_mode(ptr) & 3 != verify:
        return None
    return ptr


def install(ctx: ssl.SSLContext, key: bytes) -> bool:
    """Make ``ctx`` encrypt and accept session tickets with ``key`` (from
    ``new_key``); False, and ``ctx`` unchanged, where that cannot be done."""
    if len(key) != KEY_BYTES:
        raise ValueError(f"a ticket key is {KEY_BYTES} bytes, not {len(key)}")
    lib = _libssl()
    ptr = _ssl_ctx(lib, ctx) if lib is not None else None
    if lib is None or ptr is None:
        log.warning("tls: cannot share session-ticket keys between workers on this Python")
        return False
    block = ctypes.create_string_buffer(key, KEY_BYTES)
    if lib.SSL_CTX_ctrl(ptr, _SET_TICKET_KEYS, KEY_BYTES, block) != 1:
        return False
    back = ctypes.create_string_buffer(KEY_BYTES)
    return bool(lib.SSL_CTX_ctrl(ptr, _GET_TICKET_KEYS, KEY_BYTES, back) == 1 and back.raw == key)
