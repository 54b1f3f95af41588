"""Cookie-inserted sticky sessions (``pools.*.sticky``).

The first response a client gets from a sticky pool sets a cookie naming the
backend that served it; later requests carrying the cookie go to that backend
while it can serve them. The cookie holds an opaque token for the backend (an
HMAC of the pool and address, so it reveals no address) and an expiry, both
signed with the proxy's cookie key (lbproxy/cookies.py): a client can neither
forge one for another backend nor stretch its life. Workers share the key, so
a session sticks whichever worker accepts the connection.

A cookie that is tampered with, expired, signed with another key, or names a
backend the pool no longer has, is ignored: the request is balanced as if it
had none, and the response sets a fresh cookie.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from time import time
from typing import TYPE_CHECKING

from lbproxy._fast import load as _load_fast
from lbproxy.config.model import Sticky
from lbproxy.cookies import CookieSigner, set_cookie_line

if TYPE_CHECKING:
    from lbproxy.http.pool import BackendState

__all__ = ["StickyRuntime"]

# BackendState.admin_state DRAINING (lbproxy/http/pool.py), repeated here to
# avoid importing the compiled pool module from a module it imports.
_DRAINING = 1


class StickyRuntime:
    __slots__ = (
        "by_token",
        "cookie",
        "pins",
        "purpose",
        "secure",
        "signer",
        "strict",
        "tokens",
        "ttl",
    )

    def __init__(
        self, pool: str, cfg: Sticky, signer: CookieSigner, backends: Sequence[BackendState]
    ) -> None:
        self.cookie = cfg.cookie.encode()
        # Whole seconds, rounded up (500ms is 1 s, not a session cookie); 0 = session.
        self.ttl = math.ceil(cfg.ttl)
        self.secure = cfg.secure
        self.strict = cfg.strict
        self.signer = signer
        # Tokens are per pool: a cookie made for one pool means nothing to another.
        self.purpose = b"sticky:" + pool.encode()
        self.tokens = {b: signer.backend_token(pool, b.label) for b in backends}
        self.by_token = {token: b for b, token in self.tokens.items()}
        # Cookie value -> its backend, verified once per value (compiled:
        # the data path asks ``pins.lookup(headers)`` on every request).
        self.pins = _load_fast("cookie").CookieCache(self.cookie, self._resolve)

    def _resolve(self, value: bytes) -> tuple[BackendState | None, int]:
        found = self.signer.verify(self.purpose, value)
        if found is None:
            return None, 0  # forged, or another key's: never a backend
        token, expires = found
        return self.by_token.get(token), expires

    def pinned(self, headers: Sequence[tuple[bytes, bytes]]) -> BackendState | None:
        """The backend a valid cookie in ``headers`` names, else None."""
        found: BackendState | None = self.pins.lookup(headers)
        return found

    def can_serve(self, b: BackendState, now: float) -> bool:
        """Whether a session pinned to ``b`` may go there (``now`` monotonic):
        enabled and eligible (or the pool in panic, as for any request), or
        draining but healthy, until its drain deadline."""
        if b.usable:
            return True
        return b.admin_state == _DRAINING and b.eligible and now < b.drain_until

    def line_for(self, b: BackendState) -> bytes:
        """The Set-Cookie line that pins a client to ``b``."""
        expires = int(time()) + self.ttl if self.ttl else 0
        value = self.signer.seal(self.purpose, self.tokens[b], expires)
        return set_cookie_line(self.cookie, value, self.ttl or None, self.secure)
