"""The proxy's own cookies: sealed values, finding a cookie in a request, and
the ``Set-Cookie`` line of a response.

Sticky sessions, read-after-write stickiness and canary splits remember a
client's choice in a cookie. The client must not be able to forge one (and so
pick a backend of its choosing, or keep a cookie past its expiry), nor learn
from it which backend serves it. Hence sealed values.

Theory of operation
-------------------
A sealed value is the unpadded base64url text of::

    version (1 byte, 1) | expires (4 bytes, big-endian unix seconds; 0 = never)
    | payload | tag (16 bytes)

``tag`` is HMAC-SHA256 over everything before it, truncated to 128 bits, under
a key of the cookie's *purpose* (e.g. ``b"sticky:web"``): ``HMAC(key,
"lbproxy cookie purpose" 0x00 purpose)``. A value sealed for one purpose thus
never unseals for another, so a sticky cookie of one pool cannot be replayed
against another pool or as a split cookie. The payload is signed, not
encrypted: callers put only opaque tokens in it (``backend_token``), never an
address.

Only values this module could have produced unseal: the text must be
canonical base64url (no padding, no stray characters, unused trailing bits
zero), so one sealed value has exactly one spelling and changing any of its
characters makes it invalid. Everything that fails, whatever the reason,
yields ``None``; the caller then chooses afresh and sets a new cookie.

The per-purpose HMAC objects are keyed once and ``copy()``-ed per call, so a
seal or a first unseal costs two SHA-256 compressions plus the base64 work: a
few microseconds. A client sends the same cookie on every request, so
``unseal`` remembers the values it has verified: the exact text, mapped to its
purpose, payload and expiry. A remembered value is not decoded or verified
again, but its expiry is still checked against ``now`` on every call, and it
unseals only for the purpose it was verified for (for another purpose it is
verified afresh, and fails). Only values whose tag verified are remembered,
so a client cannot fill the cache with forgeries; it holds at most
``2 * VERIFIED_CACHE_SIZE`` values in two generations (when the current one
fills up it becomes the old one and the one before is dropped; a value found
in the old one moves back), so memory stays bounded whatever the clients
send. The cache belongs to the signer: a new key is a new signer, with an
empty cache.
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
import os
import struct
from collections.abc import Callable, Sequence

from lbproxy._fast import load as _load_fast

__all__ = [
    "VERIFIED_CACHE_SIZE",
    "CookieSigner",
    "find_cookie",
    "make_key",
    "set_cookie_line",
]

_VERSION = 1
_HEAD = struct.Struct(">BI")  # version, expires
_TAG_BYTES = 16
_TOKEN_BYTES = 9  # 72 bits: collisions among a pool's backends are out of reach
_MIN_RAW = _HEAD.size + _TAG_BYTES
_MAX_EXPIRES = 0xFFFFFFFF
# A request's cookie is attacker-sized; refuse big ones before decoding them.
_MAX_VALUE = 4096
# Purposes come from the config, so the cache stays tiny; the cap only keeps a
# caller that derives purposes from requests from growing it without bound.
_MAX_PURPOSES = 1024
# Verified values per generation of the unseal cache: two generations of this
# many values (about 200 bytes each) are under 2 MiB.
VERIFIED_CACHE_SIZE = 4096

_B64_URL = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_TO_URL = bytes.maketrans(b"+/", b"-_")
_TO_STD = bytes.maketrans(b"-_", b"+/")
# The 6-bit value of each base64url character, for the canonical-form check.
_SEXTET = {c: i for i, c in enumerate(_B64_URL)}
# Unused low bits of the last character, by length mod 4 (1 is never valid).
_SPARE_BITS = {0: 0, 2: 0x0F, 3: 0x03}


def _b64(raw: bytes) -> bytes:
    return binascii.b2a_base64(raw, newline=False).translate(_TO_URL).rstrip(b"=")


def _unb64(text: bytes) -> bytes | None:
    spare = _SPARE_BITS.get(len(text) & 3)
    if spare is None or text.translate(None, _B64_URL):
        return None
    if spare and _SEXTET[text[-1]] & spare:
        return None
    try:
        return binascii.a2b_base64(text.translate(_TO_STD) + b"=" * (-len(text) & 3))
    except binascii.Error:  # pragma: no cover - the checks above leave nothing to refuse
        return None


class CookieSigner:
    """Seals and unseals cookie values under one key (see the module docstring)."""

    __slots__ = ("_cache_size", "_key", "_macs", "_old", "_seen", "_token_mac")

    def __init__(self, key: bytes, cache_size: int = VERIFIED_CACHE_SIZE) -> None:
        """``cache_size``: verified values per generation of the unseal
        cache (0: none; every unseal verifies)."""
        if not key:
            raise ValueError("cookie key must not be empty")
        if cache_size < 0:
            raise ValueError(f"cache_size must be >= 0, got {cache_size}")
        self._key = key
        self._macs: dict[bytes, hmac.HMAC] = {}
        self._token_mac = hmac.new(key, b"lbproxy backend token\x00", hashlib.sha256)
        self._cache_size = cache_size
        # Verified value -> (purpose, payload, expires); the current generation
        # and the one before it.
        self._seen: dict[bytes, tuple[bytes, bytes, int]] = {}
        self._old: dict[bytes, tuple[bytes, bytes, int]] = {}

    def _mac(self, purpose: bytes) -> hmac.HMAC:
        mac = self._macs.get(purpose)
        if mac is None:
            sub = hmac.digest(self._key, b"lbproxy cookie purpose\x00" + purpose, "sha256")
            mac = hmac.new(sub, digestmod=hashlib.sha256)
            if len(self._macs) >= _MAX_PURPOSES:
                self._macs.clear()
            self._macs[purpose] = mac
        return mac.copy()

    def seal(self, purpose: bytes, payload: bytes, expires: int) -> bytes:
        """A cookie-safe value carrying ``payload`` until ``expires`` (unix
        seconds; 0 = no expiry) for ``purpose`` alone."""
        if not 0 <= expires <= _MAX_EXPIRES:
            raise ValueError(f"expires must be 0 or unix seconds before 2106, got {expires}")
        body = _HEAD.pack(_VERSION, expires) + payload
        mac = self._mac(purpose)
        mac.update(body)
        return _b64(body + mac.digest()[:_TAG_BYTES])

    def unseal(self, purpose: bytes, value: bytes, now: float) -> bytes | None:
        """The payload of ``value`` sealed for ``purpose``; ``None`` when it was
        tampered with, is malformed, has expired by ``now`` or was sealed for
        another purpose or under another key."""
        if len(value) > _MAX_VALUE:  # before hashing it for the cache
            return None
        seen = self._seen.get(value)
        if seen is None:
            seen = self._old.get(value)
            if seen is None or seen[0] != purpose:
                seen = self._verify(purpose, value)
                if seen is None:
                    return None
            if self._cache_size:
                if len(self._seen) >= self._cache_size:
                    self._old, self._seen = self._seen, {}
                self._seen[value] = seen
        elif seen[0] != purpose:
            # Verified for another purpose: it cannot verify for this one
            # (short of a tag collision); checked all the same, not cached.
            seen = self._verify(purpose, value)
            if seen is None:
                return None
        expires = seen[2]
        if expires and now >= expires:
            return None
        return seen[1]

    def verify(self, purpose: bytes, value: bytes) -> tuple[bytes, int] | None:
        """``(payload, expires)`` of ``value`` sealed for ``purpose``, expired
        or not (the caller compares ``expires``, 0 = never, with its clock);
        None when it does not verify. Not cached: for callers that remember
        the answer themselves (lbproxy/_fast/cookie_py.py's CookieCache)."""
        if len(value) > _MAX_VALUE:
            return None
        found = self._verify(purpose, value)
        return None if found is None else (found[1], found[2])

    def _verify(self, purpose: bytes, value: bytes) -> tuple[bytes, bytes, int] | None:
        """``(purpose, payload, expires)`` when ``value``'s tag verifies for
        ``purpose``, expired or not; else None."""
        raw = _unb64(value)
        if raw is None or len(raw) < _MIN_RAW or raw[0] != _VERSION:
            return None
        body = raw[:-_TAG_BYTES]
        mac = self._mac(purpose)
        mac.update(body)
        if not hmac.compare_digest(mac.digest()[:_TAG_BYTES], raw[-_TAG_BYTES:]):
            return None
        return purpose, body[_HEAD.size :], _HEAD.unpack_from(body)[1]

    def backend_token(self, pool: str, address: str) -> bytes:
        """A short opaque id for a pool's backend (12 base64url characters).

        The same for every worker and restart that share the key, and without
        the key nothing about the address can be learnt from it.
        """
        p = pool.encode()
        mac = self._token_mac.copy()
        # The length prefix keeps ("ab", "c") and ("a", "bc") apart.
        mac.update(len(p).to_bytes(4, "big") + p + address.encode())
        return _b64(mac.digest()[:_TOKEN_BYTES])


def make_key(configured: str | None) -> bytes:
    """The signing key: derived from the config's ``cookie_key`` text, or 32
    random bytes when there is none (cookies then die with the process, so
    the caller makes it once and hands it to every worker)."""
    if configured is None:
        return os.urandom(32)
    if not configured:
        raise ValueError("cookie_key must not be empty")
    # Hashed rather than used as is: any length of text becomes a full-size
    # key, and the same text used as a secret elsewhere gives a different one.
    return hashlib.sha256(b"lbproxy cookie_key\x00" + configured.encode()).digest()


# The value of one cookie in the request's Cookie fields (None when absent):
# compiled, as sticky, read/write and split routes read it per request; see
# lbproxy/_fast/cookie_py.py for what matches.
find_cookie: Callable[[Sequence[tuple[bytes, bytes]], bytes], bytes | None] = _load_fast(
    "cookie"
).find_cookie


# RFC 6265 section 4.1.1: token characters for the name, cookie-octets for the
# value; ``path`` may hold anything printable but ';'. Checked because a CR or
# LF in any of them would let a config typo (or worse) split the response.
_TOKEN = bytes(c for c in range(0x21, 0x7F) if c not in b'()<>@,;:\\"/[]?={}')
_COOKIE_OCTETS = bytes(c for c in range(0x21, 0x7F) if c not in b'",;\\')
_PATH_OCTETS = bytes(c for c in range(0x20, 0x7F) if c != 0x3B)
_SAME_SITE = frozenset((b"Strict", b"Lax", b"None", b""))


def set_cookie_line(
    name: bytes,
    value: bytes,
    max_age: int | None,
    secure: bool,
    path: bytes = b"/",
    http_only: bool = True,
    same_site: bytes = b"Lax",
) -> bytes:
    """A complete ``Set-Cookie: ...\\r\\n`` header line.

    ``max_age`` None makes a session cookie; 0 deletes the cookie (send it
    with ``value`` b""). ``same_site`` b"" leaves the attribute out.
    """
    if not name or name.translate(None, _TOKEN):
        raise ValueError(f"cookie name {name!r} is not an RFC 6265 token")
    if value.translate(None, _COOKIE_OCTETS):
        raise ValueError(f"cookie value {value!r} has characters a cookie cannot carry")
    if not path or path.translate(None, _PATH_OCTETS):
        raise ValueError(f"cookie path {path!r} is empty or has ';' or control characters")
    if same_site not in _SAME_SITE:
        raise ValueError(f"SameSite must be Strict, Lax or None, got {same_site!r}")
    if same_site == b"None" and not secure:
        raise ValueError("SameSite=None needs Secure: browsers drop such a cookie without it")
    parts = [b"Set-Cookie: ", name, b"=", value, b"; Path=", path]
    if max_age is not None:
        if max_age < 0:
            raise ValueError(f"max_age must be >= 0, got {max_age}")
        parts.append(b"; Max-Age=%d" % max_age)
    if secure:
        parts.append(b"; Secure")
    if http_only:
        parts.append(b"; HttpOnly")
    if same_site:
        parts.append(b"; SameSite=" + same_site)
    parts.append(b"\r\n")
    return b"".join(parts)
