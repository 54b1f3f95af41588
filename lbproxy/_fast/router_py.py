"""First-match routing by host, path prefix, method and header values.

The router is built once from a listener's routes and replaced whole on
reload; ``match`` is pure and allocation-free on the common path (no header
dictionary is built unless some route matches on headers, and each route's
answer, the ``(route, target)`` pair, is made once when the router is).

This is the pure twin and the reference; ``router.pyx`` is the compiled
module (``lbproxy.routing.router`` serves whichever ``lbproxy._fast.load``
picks). Both must answer alike for any routes and any request: the test
suite checks that with hypothesis.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Generic, TypeVar

from lbproxy.config.model import Route

__all__ = ["Router", "normalise_host"]

T = TypeVar("T")


def normalise_host(host: bytes) -> bytes:
    """Lower-case host without port: b"API.example.com:8080" -> b"api.example.com"."""
    if host.startswith(b"["):  # IPv6 literal
        end = host.find(b"]")
        return host[: end + 1].lower() if end > 0 else host.lower()
    colon = host.rfind(b":")
    if colon >= 0:
        host = host[:colon]
    return host.lower().rstrip(b".")


class _Compiled(Generic[T]):
    __slots__ = ("answer", "exact_host", "headers", "methods", "prefix", "suffix")

    def __init__(self, route: Route, target: T) -> None:
        m = route.match
        self.exact_host: bytes | None = None
        self.suffix: bytes | None = None
        if m.host is not None:
            h = m.host.lower().encode()
            if h.startswith(b"*."):
                self.suffix = h[1:]  # ".example.com"
            else:
                self.exact_host = h
        self.prefix = m.path_prefix.encode() if m.path_prefix and m.path_prefix != "/" else None
        self.methods = frozenset(x.encode() for x in m.methods) if m.methods else None
        self.headers = tuple((n.lower().encode(), v.encode()) for n, v in m.headers)
        self.answer = (route, target)


class Router(Generic[T]):
    """Maps a request to the target (e.g. a pool runtime) of the first matching route."""

    def __init__(self, routes: Sequence[tuple[Route, T]]) -> None:
        self._routes = [_Compiled(r, t) for r, t in routes]
        # Whether ``match`` reads the headers: a caller may pass None otherwise.
        self.needs_headers = any(c.headers for c in self._routes)
        self._needs_host = any(c.exact_host or c.suffix for c in self._routes)
        # Hosts named by some route: absolute-form targets are only accepted
        # for these, so the proxy can never be used as an open forward proxy.
        self._exact = frozenset(c.exact_host for c in self._routes if c.exact_host)
        self._suffixes = tuple(c.suffix for c in self._routes if c.suffix)

    def serves_host(self, host: bytes) -> bool:
        if host in self._exact:
            return True
        return any(host.endswith(s) and len(host) > len(s) for s in self._suffixes)

    def match(
        self,
        host: bytes,
        path: bytes,
        method: bytes,
        headers: list[tuple[bytes, bytes]] | None,
    ) -> tuple[Route, T] | None:
        """``host`` as the client sent it (normalised here, when a route needs
        it); ``headers`` may be None unless ``needs_headers``."""
        if self._needs_host:
            host = normalise_host(host)
        hdrs: dict[bytes, bytes] | None = None
        if self.needs_headers:
            if headers is None:
                raise TypeError("this router matches on headers: pass them")
            hdrs = {}
            for n, v in headers:
                hdrs.setdefault(n.lower(), v)
        for c in self._routes:
            if c.exact_host is not None and host != c.exact_host:
                continue
            if c.suffix is not None and not (host.endswith(c.suffix) and len(host) > len(c.suffix)):
                continue
            if c.prefix is not None and not path.startswith(c.prefix):
                continue
            if c.methods is not None and method not in c.methods:
                continue
            if c.headers:
                assert hdrs is not None
                if any(hdrs.get(n) != v for n, v in c.headers):
                    continue
            return c.answer
        return None
