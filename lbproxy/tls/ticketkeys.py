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
libssl the ``ssl`` module uses (lbproxy.tls.libssl). Anything unexpected
(another Python, no libssl mapped, the context's pointer failing its checks)
leaves the context with its own keys, which is what it had before:
resumption then works within a worker.
"""

from __future__ import annotations

import ctypes
import logging
import os
import ssl

from lbproxy.tls import libssl

log = logging.getLogger("lbproxy")

# 16 bytes key name, 32 HMAC secret, 32 AES key: OpenSSL's ticket key block.
KEY_BYTES = 80
_SET_TICKET_KEYS = 59  # SSL_CTRL_SET_TLSEXT_TICKET_KEYS
_GET_TICKET_KEYS = 58  # SSL_CTRL_GET_TLSEXT_TICKET_KEYS


def new_key() -> bytes:
    """A fresh random key block for ``install``."""
    return os.urandom(KEY_BYTES)


def install(ctx: ssl.SSLContext, key: bytes) -> bool:
    """Make ``ctx`` encrypt and accept session tickets with ``key`` (from
    ``new_key``); False, and ``ctx`` unchanged, where that cannot be done."""
    if len(key) != KEY_BYTES:
        raise ValueError(f"a ticket key is {KEY_BYTES} bytes, not {len(key)}")
    lib = libssl.library()
    ptr = libssl.ctx_pointer(ctx)
    if lib is None or ptr is None:
        log.warning("tls: cannot share session-ticket keys between workers on this Python")
        return False
    block = ctypes.create_string_buffer(key, KEY_BYTES)
    if lib.SSL_CTX_ctrl(ptr, _SET_TICKET_KEYS, KEY_BYTES, block) != 1:
        return False
    back = ctypes.create_string_buffer(KEY_BYTES)
    return bool(lib.SSL_CTX_ctrl(ptr, _GET_TICKET_KEYS, KEY_BYTES, back) == 1 and back.raw == key)
