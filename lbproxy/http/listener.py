"""A listener at run time: its socket server, router, limits and connections.

Compiled with the rest of the data path (see ``lbproxy/http/__init__.py``):
the client side reads its limits and timeouts at every request.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from collections.abc import Callable
from time import monotonic
from typing import TYPE_CHECKING, Any, cast

from lbproxy._fast import load as _load_fast
from lbproxy._fast import load_pure as _load_pure
from lbproxy.config.model import Address
from lbproxy.cookies import CookieSigner, make_key
from lbproxy.http.client import ClientConnection
from lbproxy.routing.router import Router
from lbproxy.routing.targets import TargetEnv, build_targets

if TYPE_CHECKING:
    from lbproxy.config.model import Listener, Route
    from lbproxy.http.accesslog import AccessLogger
    from lbproxy.http.exchange import Exchange
    from lbproxy.http.pool import PoolRuntime
    from lbproxy.tls import CertificateStore

log = logging.getLogger("lbproxy")

# Acting on one expired header deadline (a 408 written, the close begun) costs
# about 15 us compiled, so a batch of 8 keeps each loop turn it takes near
# 0.1 ms, under the p99 of normal proxied requests (0.3-0.4 ms in
# bench/slowloris.py); 32 made 0.5 ms turns that showed up in that p99.
EXPIRE_BATCH = 8


_cidr = _load_fast("cidr")
_tlsconn = _load_fast("tlsconn")


def tls_front(store: CertificateStore, name: str) -> tuple[Any, Any]:
    """The TLS engine for a listener's connections, and its ``Front``: the
    compiled engine where it can reach OpenSSL (lbproxy.tls.libssl), else
    its pure-Python twin, with a warning."""
    engine = _tlsconn
    try:
        return engine, engine.Front(store, name)
    except engine.TlsFailed as err:
        log.warning("listener %s: TLS runs in pure Python: %s", name, err)
    engine = _load_pure("tlsconn")
    return engine, engine.Front(store, name)


def _trusted_table(cidrs: tuple[str, ...]) -> Any:
    """``trusted_proxies`` as a CIDR table (None when there are none)."""
    if not cidrs:
        return None
    return _cidr.CidrTable((str(ipaddress.ip_network(c, strict=False)), 0) for c in cidrs)


class ListenerRuntime:
    __slots__ = (
        "access_log",
        "body_timeout",
        "config",
        "connections",
        "counts",
        "env",
        "header_timeout",
        "hsts",
        "idle_timeout",
        "logging",
        "loop",
        "max_body_bytes",
        "max_header_bytes",
        "max_headers",
        "metrics",
        "name",
        "proto",
        "proxy_protocol",
        "redirect",
        "rid_lower",
        "rid_name",
        "router",
        "routes",
        "server",
        "subject_header",
        "targets",
        "tls_front",
        "tls_store",
        "tls_watch",
        "tracing",
        "trusted_table",
        "want_fields",
    )

    def __init__(
        self,
        config: Listener,
        pools: dict[str, PoolRuntime],
        access_log: AccessLogger,
        loop: asyncio.AbstractEventLoop,
        env: TargetEnv | None = None,
    ) -> None:
        self.config = config
        self.name = config.name
        self.loop = loop
        # What geo, shard, read/write and split routes share (the proxy's
        # cookie key and geo lookup); a random key when embedded without one.
        self.env = env if env is not None else TargetEnv(CookieSigner(make_key(None)), None)
        self.targets: dict[Route, Any] = {}
        self.router: Router[Any] = self._router(config, pools, None)
        # A TLS listener's certificates (set by the Proxy before start), and
        # what its connections share (made at start; lbproxy._fast.tlsconn).
        self.tls_store: CertificateStore | None = None
        self.tls_front: Any = None
        self.tls_watch: asyncio.Task[None] | None = None
        self.connections: set[ClientConnection] = set()
        self.access_log = access_log
        # Read per request; cached here rather than chased through config.
        self._cache_limits(config)
        self.logging = access_log.enabled
        # /metrics: finished requests by (route, backend, status // 100),
        # counted only when an admin API can serve them (Proxy sets this).
        self.metrics = False
        self.counts: dict[tuple[int, object, int], int] = {}
        # id -> Route of every route this listener has had, so the ids in
        # ``counts`` (and the access log's cache) stay meaningful and unique.
        self.routes: dict[int, Route | None] = {id(None): None}
        self._remember_routes(config)
        # tracing.T_* bits and the request-id header's name (Proxy sets them).
        self.tracing = 0
        self.rid_name = b"X-Request-ID"
        self.rid_lower = b"x-request-id"
        self.trusted_table = _trusted_table(config.trusted_proxies)
        self.server: asyncio.AbstractServer | None = None
        # Whether requests here are read into a (name, value) field list
        # rather than scanned in place (ClientConnection._parse): when a route
        # matches on headers, and once a request has needed the list after
        # its scan (a hashing or retrying pool, a route target other than
        # geo), which then costs a second pass. A new router starts over.
        self.want_fields = self.router.needs_headers

    def swap(
        self,
        config: Listener,
        pools: dict[str, PoolRuntime],
        access_log: AccessLogger,
        env: TargetEnv | None = None,
    ) -> None:
        """Adopt a reloaded config (``env``: the reloaded proxy's), or new
        pools (``env`` None: an admin change, which keeps the route targets'
        run-time state); requests already routed keep their pool."""
        self.access_log = access_log
        self.logging = access_log.enabled
        self.config = config
        self.name = config.name
        self._cache_limits(config)
        keep = None
        if env is None:
            keep = self.targets
        else:
            self.env = env
        self.router = self._router(config, pools, keep)
        self.want_fields = self.router.needs_headers
        self.trusted_table = _trusted_table(config.trusted_proxies)
        self._remember_routes(config)

    def _router(
        self, config: Listener, pools: dict[str, PoolRuntime], keep: dict[Route, Any] | None
    ) -> Router[Any]:
        """Routes to their targets: a pool, or a chooser (routing/targets.py)."""
        self.targets = build_targets(config.routes, pools, self.env, keep)
        return Router(
            [
                (r, self.targets[r] if r.target is not None else pools[r.pool])
                for r in config.routes
            ]
        )

    def _remember_routes(self, config: Listener) -> None:
        for r in config.routes:
            self.routes[id(r)] = r

    def _cache_limits(self, config: Listener) -> None:
        # Also what TLS, redirects and the PROXY protocol change per request.
        tls = config.tls
        self.proto = b"https" if tls is not None else b"http"
        self.hsts = (
            b"Strict-Transport-Security: " + config.hsts.encode() + b"\r\n" if config.hsts else b""
        )
        self.redirect = config.redirect_http_to
        self.proxy_protocol = config.proxy_protocol
        subject = tls.client_subject_header if tls is not None else None
        self.subject_header = subject.encode() if subject else b""
        self.max_headers = config.limits.max_headers
        self.max_header_bytes = config.limits.max_header_bytes
        self.max_body_bytes = config.limits.max_body_bytes
        self.header_timeout = config.timeouts.header
        self.body_timeout = config.timeouts.body
        self.idle_timeout = config.timeouts.idle

    def is_trusted(self, ip: bytes) -> bool:
        # Compiled longest-prefix table: geo routes ask this for every
        # X-Forwarded-For hop, so it is on their per-request path.
        table = self.trusted_table
        return table is not None and bool(ip) and table.lookup(ip) >= 0

    def accept(self, conn: ClientConnection) -> bool:
        if len(self.connections) >= self.config.limits.max_connections:
            return False
        self.connections.add(conn)
        return True

    def forget(self, conn: ClientConnection) -> None:
        self.connections.discard(conn)

    def log_access(self, conn: ClientConnection, ex: Exchange) -> None:
        """An exchange ended: count it for /metrics and write its log line."""
        now = monotonic()
        if self.metrics:
            # By the route's id: a Route hashes in Python (a dataclass),
            # an int in C. ``routes`` maps the ids back for /metrics.
            key = (id(ex.route), ex.backend, ex.resp_status // 100)
            counts = self.counts
            counts[key] = counts.get(key, 0) + 1
            b = ex.backend
            if b is not None:
                b.observe_duration(now - ex.started_at)
        if self.logging:
            self.access_log.record(self.name, conn, ex, now)

    async def start(self, sock: socket.socket | None = None) -> None:
        """Bind the configured address, or serve on ``sock`` (a listening
        socket a supervisor opened for this worker)."""

        factory: Callable[[], asyncio.Protocol]
        store = self.tls_store
        if store is not None:
            # TLS runs in a protocol of ours over the plain TCP connection
            # (lbproxy._fast.tlsconn), which reads the PROXY header first
            # where there is one.
            engine, front = tls_front(store, self.name)
            self.tls_front = front
            loop = self.loop

            def factory() -> asyncio.Protocol:
                # A handshake that stalls is a slow client like any other:
                # it gets the header timeout.
                return cast(
                    asyncio.Protocol,
                    engine.TlsServer(
                        front, ClientConnection(self), loop, self.header_timeout,
                        self.proxy_protocol,
                    ),
                )
        else:

            def factory() -> asyncio.Protocol:
                # ClientConnection has no asyncio.Protocol base (an extension
                # type when compiled) but is one to the event loop.
                return cast(asyncio.Protocol, ClientConnection(self))

        if sock is not None:
            self.server = await self.loop.create_server(factory, sock=sock, backlog=4096)
            return
        bind = self.config.bind
        self.server = await self.loop.create_server(
            factory, host=bind.host, port=bind.port, reuse_address=True, backlog=4096
        )

    def bound_port(self) -> int:
        # uvloop's Server has .sockets like asyncio.Server; the abstract type lacks it.
        for sock in getattr(self.server, "sockets", ()):
            port: int = sock.getsockname()[1]
            return port
        return self.config.bind.port

    def binds(self) -> tuple[Address, ...]:
        """The configured address, and the one actually bound when that was port 0."""
        bind = self.config.bind
        if bind.port == 0 and self.server is not None:
            return (bind, Address(bind.host, self.bound_port()))
        return (bind,)

    def stop_accepting(self) -> None:
        if self.server is not None:
            self.server.close()
        if self.tls_watch is not None:
            self.tls_watch.cancel()
            self.tls_watch = None

    def check_deadlines(self, now: float) -> None:
        self._check_from(list(self.connections), 0, now)

    def _check_from(self, conns: list[ClientConnection], start: int, now: float) -> None:
        # At most EXPIRE_BATCH expired deadlines are acted on per event-loop
        # turn: a crowd of slow clients that connected together expires
        # together, and answering all of them at once (408s, closes) would
        # stall every other client for that long. Between batches the loop
        # serves I/O.
        acted = 0
        n = len(conns)
        i = start
        while i < n:
            conn = conns[i]
            i += 1
            if conn.check_deadline(now):
                acted += 1
                if acted >= EXPIRE_BATCH and i < n:
                    self.loop.call_soon(self._check_from, conns, i, now)
                    return
