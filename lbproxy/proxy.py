"""``Proxy``: the running balancer, for the CLI and for embedding.

It turns a frozen ``Config`` into runtime objects (pools, listeners), binds
the listeners, runs one ticker that enforces every deadline and expires idle
upstream connections, and drains gracefully on ``stop``. ``reload`` swaps in
a new config without dropping connections: new requests use the new routes
and pools, requests in flight finish on the old ones.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from dataclasses import replace as dc_replace
from time import monotonic
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

from lbproxy import heap
from lbproxy.balance import WEIGHT_UNIT
from lbproxy.config import ConfigError, load_config
from lbproxy.config.addresses import AddressError, parse_address
from lbproxy.config.loader import MAX_CONFIG_WEIGHT, tls_settings
from lbproxy.config.model import Backend, Config, GeoTarget, Listener, Pool
from lbproxy.cookies import CookieSigner, make_key
from lbproxy.http.accesslog import AccessLogger
from lbproxy.http.exchange import wake_queue
from lbproxy.http.listener import ListenerRuntime
from lbproxy.http.pool import DISABLED, DRAINING, ENABLED, BackendState, PoolRuntime
from lbproxy.routing.targets import ShardChooserRuntime, SplitChooser, TargetEnv
from lbproxy.tls import CertificateStore, TlsError
from lbproxy.tracing import T_REQUEST_ID, T_TRACEPARENT

if TYPE_CHECKING:
    from lbproxy._fast.shared import Counters
    from lbproxy.admin import AdminServer
    from lbproxy.routing.geo import GeoResolver
    from lbproxy.samples import SampleBackends

log = logging.getLogger("lbproxy")


# How often a worker folds the other workers' requests in flight in.
SHARED_SYNC = 0.02
# How often TLS listeners look for changed certificate files.
TLS_WATCH = 2.0


@dataclass
class SharedCounts:
    """A worker's part of the table all workers count requests in flight in."""

    counters: Counters
    row: int
    columns: dict[str, int]  # shared_key(pool, backend) -> column


class BindError(OSError):
    """A listener's address could not be bound; the message names it."""


class Conflict(Exception):
    """A change that clashes with the running state (a backend already there)."""


def _geo_resolver(config: Config) -> GeoResolver | None:
    """The geo lookup geo routes share; None when no route uses it."""
    regions: set[str] = set()
    for lc in config.listeners:
        for r in lc.routes:
            if isinstance(r.target, GeoTarget):
                regions.update(x.name for x in r.target.regions)
    if config.geo is None or not regions:
        return None
    from lbproxy.routing.geo import GeoResolver  # maxminddb loads only for geo routes

    return GeoResolver(config.geo, regions)


def _tick_interval(config: Config) -> float:
    # Deadlines are checked by one periodic tick instead of a timer per
    # request; a quarter of the shortest timeout keeps them accurate enough.
    shortest = min(
        [
            t
            for lst in config.listeners
            for t in (lst.timeouts.header, lst.timeouts.body, lst.timeouts.idle)
        ]
        + [t for p in config.pools.values() for t in (p.timeouts.connect, p.timeouts.response)]
        + [1.0]
    )
    return max(0.005, min(0.25, shortest / 4))


class Proxy:
    """An lbproxy instance. Use as ``async with Proxy(config) as proxy: ...``."""

    def __init__(
        self,
        config: Config,
        *,
        role: Literal["standalone", "worker", "control"] = "standalone",
        sockets: Mapping[str, socket.socket] | None = None,
        shared: SharedCounts | None = None,
        cookie_key: bytes | None = None,
        settle_heap: bool = False,
        ticket_key: bytes | None = None,
    ) -> None:
        """``role`` is for ``lbproxy.workers``: a ``worker`` serves its
        listeners on the ``sockets`` the supervisor opened (by listener name)
        and runs no health checks, admin API or sample backends (the
        supervisor does); the supervisor's ``control`` proxy serves no
        traffic: it holds the pools (health checks, admin state) and the
        routes, which its admin API reports and explains. ``shared`` is a
        worker's view of the table of requests in flight that all workers
        count in (lbproxy/_fast/shared_py.py). ``cookie_key`` signs the
        proxy's cookies when the config names no ``cookie_key`` (the
        supervisor makes one for all its workers; else a random one).
        ``settle_heap``: once started, and after each reload, move the
        objects built so far out of the garbage collector's way
        (lbproxy.heap; the command line's processes set it). ``ticket_key``:
        the TLS session-ticket key every worker shares (lbproxy.tls.ticketkeys;
        None: this process's own)."""
        self.config = config
        self.settle_heap = settle_heap
        self.ticket_key = ticket_key
        self.cookie_key = make_key(config.cookie_key) if cookie_key is None else cookie_key
        self.signer = CookieSigner(self.cookie_key)
        self.env = TargetEnv(self.signer, None)
        self.role = role
        self._sockets = dict(sockets or {})
        self.shared = shared
        # Called with (pool, backend) on every health flip of any pool's
        # backend, pools made later included (the supervisor relays them).
        self.on_health: Callable[[PoolRuntime, BackendState], None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.pools: dict[str, PoolRuntime] = {}
        self.listeners: dict[str, ListenerRuntime] = {}
        self.access_log = AccessLogger(config.access_log)
        self.samples: SampleBackends | None = None
        self._ticker: asyncio.TimerHandle | None = None
        self._syncer: asyncio.TimerHandle | None = None
        self._tick = 0.25
        self._last_expire = 0.0
        self._stopped = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()  # background admin work
        self.admin: AdminServer | None = None
        self.reloads: dict[str, int] = {"success": 0, "failure": 0}  # for /metrics
        # Listeners a reload removed: no longer accepting, still draining.
        self._retired: list[ListenerRuntime] = []
        self._started = False

    # -- lifecycle ------------------------------------------------------------
    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._loop = loop
        cfg = self.config
        if cfg.sample_backends and self.role != "worker":
            # Imported here: the samples are aiohttp servers, and aiohttp is about
            # 12 MiB of RSS a proxy without them (or an admin API) never needs.
            from lbproxy.samples import SampleBackends

            self.samples = SampleBackends(cfg.sample_backends)
            try:
                await self.samples.start()
            except OSError as err:
                await self.samples.stop()
                raise BindError(f"cannot start sample backends on 127.0.0.1:9101..: {err}") from err
        self.env = TargetEnv(self.signer, _geo_resolver(cfg))
        self.pools = {name: PoolRuntime(p, signer=self.signer) for name, p in cfg.pools.items()}
        try:
            for lc in cfg.listeners:
                lr = ListenerRuntime(lc, self.pools, self.access_log, loop, self.env)
                try:
                    if self.role != "control":
                        self._terminate_tls(lr)
                        await lr.start(self._sockets.get(lc.name))
                except OSError as err:
                    raise BindError(
                        f"cannot bind {lc.bind} (listener {lc.name}): {err.strerror or err}"
                    ) from err
                self.listeners[lc.name] = lr
            self._configure_listeners()
            if cfg.admin is not None and self.role == "standalone":
                from lbproxy.admin import AdminServer  # aiohttp's server only when used

                admin = AdminServer(self, cfg.admin)
                try:
                    await admin.start()
                except OSError as err:
                    raise BindError(
                        f"cannot bind {cfg.admin.bind} (admin API): {err.strerror or err}"
                    ) from err
                self.admin = admin
        except BaseException:
            await self._close_everything()
            raise
        self._tick = _tick_interval(cfg)
        self._ticker = loop.call_later(self._tick, self._on_tick)
        if self.shared is not None:
            self._syncer = loop.call_later(SHARED_SYNC, self._on_sync)
        self._start_checks()
        self._started = True
        if self.settle_heap:
            heap.settle()

    def _terminate_tls(self, lr: ListenerRuntime) -> None:
        """Give a TLS listener its certificates (lbproxy.tls), watched on disk."""
        tls = lr.config.tls
        if tls is None:
            return
        try:
            store = CertificateStore(tls_settings(tls), self.ticket_key)
        except TlsError as err:
            # The loader loaded them; a file changed since.
            raise BindError(f"listener {lr.name}: {err}") from err
        lr.tls_store = store
        task = asyncio.get_running_loop().create_task(store.watch(TLS_WATCH))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        lr.tls_watch = task

    def _reload_tls(self, lr: ListenerRuntime, new: Listener) -> None:
        """SIGHUP: re-read a kept TLS listener's certificate files. A broken
        file keeps the old certificates serving (CertificateStore.reload)."""
        store = lr.tls_store
        if store is None or new.tls is None:
            if (store is None) != (new.tls is None):
                log.warning(
                    "listener %s: turning TLS on or off needs a new address or a restart", lr.name
                )
            return
        if tls_settings(new.tls) != store.settings:
            log.warning(
                "listener %s: new tls settings (certificate list, versions, ALPN, client CA)"
                " apply after a restart; reloading the certificate files only",
                lr.name,
            )
        try:
            store.reload()
            log.info("listener %s: certificates reloaded", lr.name)
        except TlsError as err:
            log.error("listener %s: certificates not reloaded, old ones serve: %s", lr.name, err)

    def _start_checks(self, pools: Mapping[str, PoolRuntime] | None = None) -> None:
        # A worker's pools learn health from the supervisor (set_health).
        shared = self.shared
        for pool in (self.pools if pools is None else pools).values():
            pool.on_health = self.on_health
            if shared is not None:
                pool.share(shared.counters, shared.row, shared.columns)
            if self.role != "worker":
                pool.start_checks()

    def add_columns(self, columns: Mapping[str, int]) -> None:
        """New shared-table columns (backends added at run time): pools made
        from now on count in them."""
        if self.shared is not None:
            self.shared.columns.update(columns)

    def set_health(self, pool: str, address: str, healthy: bool) -> None:
        """Health decided by another process's checks (see ``lbproxy.workers``)."""
        self._pool(pool).set_health(address, healthy)

    def passive_state(self) -> dict[str, dict[str, Any]]:
        """Each pool's breakers and ejections (``PoolRuntime.passive_state``)."""
        return {name: pool.passive_state() for name, pool in self.pools.items()}

    def adopt_passive(self, states: Mapping[str, dict[str, Any]]) -> None:
        """Take over breakers and ejections another process learned, for the
        pools and backends this one has too."""
        for name, state in states.items():
            pool = self.pools.get(name)
            if pool is not None:
                pool.adopt_passive(state)

    def health(self) -> dict[str, dict[str, bool]]:
        """Each checked backend's health, by pool and address."""
        return {
            name: {b.label: b.health.healthy for b in pool.backends if b.health is not None}
            for name, pool in self.pools.items()
        }

    async def __aenter__(self) -> Proxy:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def stop(self, timeout: float | None = None, close_idle: bool = True) -> None:
        """Stop accepting, let in-flight requests finish (up to ``timeout``,
        default ``shutdown_timeout``), then close.

        ``close_idle`` closes idle keep-alive connections at once. A worker
        retired by a reload passes False: a client may be sending its next
        request on an idle connection right now, and a close under it would
        fail that request. Each connection instead answers its next request
        with ``Connection: close``, and an idle one closes at its idle
        timeout or at the deadline."""
        if not self._started:
            return
        self._started = False
        if timeout is None:
            timeout = self.config.shutdown_timeout
        for lr in self.listeners.values():
            lr.stop_accepting()
        everyone = [*self.listeners.values(), *self._retired]
        for lr in everyone:
            for conn in list(lr.connections):
                conn.start_drain(close_idle)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline and any(lr.connections for lr in everyone):
            await asyncio.sleep(min(0.05, self._tick))
        for lr in everyone:
            for conn in list(lr.connections):
                conn.abort()
        await self._close_everything()
        self._stopped.set()

    async def _close_everything(self) -> None:
        if self.admin is not None:
            await self.admin.stop()
            self.admin = None
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._ticker is not None:
            self._ticker.cancel()
            self._ticker = None
        if self._syncer is not None:
            self._syncer.cancel()
            self._syncer = None
        for lr in self.listeners.values():
            lr.stop_accepting()
            if lr.server is not None:
                await lr.server.wait_closed()
        for pool in self.pools.values():
            pool.close_idle()
            await pool.stop_checks()
        if self.samples is not None:
            await self.samples.stop()
        self.access_log.close()

    async def wait_stopped(self) -> None:
        await self._stopped.wait()

    def _on_tick(self) -> None:
        loop = self._loop
        assert loop is not None
        now = monotonic()  # the data path's clock (lbproxy/http/shared.py)
        for lr in self.listeners.values():
            lr.check_deadlines(now)
        if self._retired:
            for lr in self._retired:
                lr.check_deadlines(now)
            self._retired = [lr for lr in self._retired if lr.connections]
        for pool in self.pools.values():
            pool.tick(now)
        if now - self._last_expire >= 1.0:
            self._last_expire = now
            for pool in self.pools.values():
                pool.expire_idle(now)
        self.access_log.flush()
        self._ticker = loop.call_later(self._tick, self._on_tick)

    def _on_sync(self) -> None:
        # Worker processes: the other workers' requests in flight into the
        # balancers' counts, and slots they freed to this worker's queues.
        for pool in self.pools.values():
            pool.sync_shared()
            if pool.pending:
                wake_queue(pool)
        assert self._loop is not None
        self._syncer = self._loop.call_later(SHARED_SYNC, self._on_sync)

    # -- reload -----------------------------------------------------------------
    async def reload(self, config: Config | None = None) -> None:
        try:
            await self._reload(config)
        except BaseException:
            self.reloads["failure"] += 1
            raise
        self.reloads["success"] += 1
        if self.settle_heap:
            heap.settle()

    async def _reload(self, config: Config | None = None) -> None:
        """Swap in a new config (read from the original file when not given).

        Raises ``ConfigError`` and changes nothing when the new config is
        invalid or a new listener cannot be bound. A listener keeps its socket
        and connections when its name and address are unchanged; requests in
        flight finish on the pools they started with.
        """
        if config is None:
            if self.config.source is None:
                raise ConfigError(["reload: this proxy was not started from a file"])
            config = load_config(self.config.source)
        if config.sample_backends != self.config.sample_backends:
            raise ConfigError(["sample_backends: cannot change on reload; restart instead"])
        loop = asyncio.get_running_loop()
        access_log = self.access_log
        if config.access_log != self.config.access_log:
            try:
                access_log = AccessLogger(config.access_log)
            except OSError as err:
                raise ConfigError([f"access_log.path: cannot open: {err}"]) from err
        # The cookie key changes only when the file names a new one: a random
        # key lives as long as the proxy, so a reload keeps sessions sticky.
        signer, cookie_key = self.signer, self.cookie_key
        if config.cookie_key is not None and config.cookie_key != self.config.cookie_key:
            cookie_key = make_key(config.cookie_key)
            signer = CookieSigner(cookie_key)
        try:
            env = TargetEnv(signer, _geo_resolver(config))
        except (OSError, ValueError) as err:
            raise ConfigError([f"geo: {err}"]) from err
        new_pools = {
            name: PoolRuntime(p, joining=self._joining(name, p), signer=signer)
            for name, p in config.pools.items()
        }
        for name, pool in new_pools.items():
            if name in self.pools:
                # Health and breakers of backends that stay carry over: a backend
                # known to be down must not be sent traffic again until it passes.
                pool.adopt(self.pools[name], keep_admin=False)
        old = dict(self.listeners)
        kept: dict[str, ListenerRuntime] = {}
        for lc in config.listeners:
            lr = old.get(lc.name)
            if lr is not None and lc.bind in lr.binds():
                kept[lc.name] = lr
        for name in kept:
            del old[name]
        # Bind every new listener before touching anything, so that a failure
        # leaves the running config as it was.
        started: dict[str, ListenerRuntime] = {}
        for lc in config.listeners:
            if lc.name in kept:
                continue
            moving = next((lr for lr in old.values() if lc.bind in lr.binds()), None)
            if moving is not None and lc.bind.port != 0:
                # Same address under a new name: keep the socket.
                kept[lc.name] = moving
                del old[moving.name]
                continue
            lr = ListenerRuntime(lc, new_pools, access_log, loop, env)
            try:
                if self.role != "control":
                    self._terminate_tls(lr)
                    await lr.start(self._sockets.get(lc.name))
            except OSError as err:
                for s in started.values():
                    s.stop_accepting()
                if access_log is not self.access_log:
                    access_log.close()
                raise ConfigError([f"listeners: cannot bind {lc.bind}: {err}"]) from err
            started[lc.name] = lr
        by_name = {lc.name: lc for lc in config.listeners}
        for name, lr in kept.items():
            self._reload_tls(lr, by_name[name])
            lr.swap(by_name[name], new_pools, access_log, env)
        for gone in old.values():
            gone.stop_accepting()
            for conn in list(gone.connections):
                conn.start_drain()
            self._retired.append(gone)
        self.listeners = {lc.name: kept.get(lc.name) or started[lc.name] for lc in config.listeners}
        for pool in self.pools.values():
            pool.close_idle()
            await pool.stop_checks()
        self.pools = new_pools
        self._start_checks(new_pools)
        if access_log is not self.access_log:
            self.access_log.close()
            self.access_log = access_log
        self.config = config
        old_env, self.env, self.signer, self.cookie_key = self.env, env, signer, cookie_key
        if old_env.geo is not None:
            old_env.geo.close()
        self._configure_listeners()
        self._tick = _tick_interval(config)
        log.info("config reloaded from %s", config.source)

    def _joining(self, name: str, pool: Pool) -> frozenset[str]:
        # Backends a reload adds to a pool that was already serving slow-start;
        # a pool that is new altogether starts all at once, as at startup.
        old = self.pools.get(name)
        if old is None:
            return frozenset()
        before = {b.label for b in old.backends if b.weight > 0}
        return frozenset(str(b.address) for b in pool.backends) - before

    # -- introspection ------------------------------------------------------------
    def addresses(self) -> dict[str, tuple[str, int]]:
        """Listener name -> (host, port) actually bound (port 0 resolved)."""
        return {name: (lr.config.bind.host, lr.bound_port()) for name, lr in self.listeners.items()}

    def status(self) -> dict[str, Any]:
        now = monotonic()
        return {
            "listeners": [
                {
                    "name": name,
                    "bind": f"{host}:{port}",
                    "active_connections": len(self.listeners[name].connections),
                }
                for name, (host, port) in self.addresses().items()
            ],
            "pools": {
                name: {
                    "balance": pool.config.balance,
                    "panic": pool.panic,
                    "in_flight": pool.in_flight,
                    "queued": len(pool.pending),
                    "backends": [
                        {
                            "address": b.label,
                            "weight": b.weight,
                            # Below weight x WEIGHT_UNIT while slow start ramps.
                            "effective_weight": b.effective_weight() / WEIGHT_UNIT,
                            "backup": b.backup,
                            "active_connections": b.active,
                            "idle_connections": len(b.idle.conns),
                            "requests_total": b.requests_total,
                            "failures_total": b.failures_total,
                            "state": pool.state_of(b, now),
                            "breaker": b.breaker.state(now) if b.breaker is not None else "closed",
                        }
                        for b in pool.backends
                    ],
                }
                for name, pool in self.pools.items()
            },
        }

    def metrics_text(self) -> str:
        """``/metrics``: the Prometheus text exposition (needs ``admin``, which
        switches the data path's counting on)."""
        from lbproxy.metrics import metrics_text

        return metrics_text(self)

    def _configure_listeners(self) -> None:
        # The data path counts finished requests only when something can read
        # them: an admin API.
        tracing = self.config.tracing
        bits = (T_REQUEST_ID if tracing.request_id else 0) | (
            T_TRACEPARENT if tracing.traceparent else 0
        )
        for lr in self.listeners.values():
            lr.metrics = self.config.admin is not None
            lr.tracing = bits
            lr.rid_name = tracing.request_id_header.encode()
            lr.rid_lower = lr.rid_name.lower()

    # -- run-time changes (the admin API) -------------------------------------------
    def _pool(self, pool: str) -> PoolRuntime:
        p = self.pools.get(pool)
        if p is None:
            raise KeyError(f"no pool named {pool!r}")
        return p

    def drain(self, pool: str, address: str, timeout: float | None = None) -> None:
        """No new requests for the backend; it reports ``draining`` until its
        requests in flight are done, then ``disabled``. In a sticky pool its
        sessions keep coming for ``timeout`` seconds (default: the cookie's
        ttl), and it reports ``draining`` until then."""
        self._pool(pool).set_admin_state(address, DRAINING, timeout)

    def disable(self, pool: str, address: str) -> None:
        """No new requests for the backend, reported ``disabled`` at once."""
        self._pool(pool).set_admin_state(address, DISABLED)

    def enable(self, pool: str, address: str) -> None:
        """Back into rotation (slow-starting when the pool has ``slow_start``)."""
        self._pool(pool).set_admin_state(address, ENABLED)

    def add_backend(self, pool: str, address: str, weight: int = 1) -> None:
        """Add a backend to a running pool (until the next reload from the file)."""
        p = self._pool(pool)
        try:
            addr = parse_address(address)
        except AddressError as err:
            raise ValueError(f"{address!r}: {err.reason}") from None
        if not 0 <= weight <= MAX_CONFIG_WEIGHT:
            raise ValueError(f"weight must be between 0 and {MAX_CONFIG_WEIGHT}, got {weight}")
        if any(b.address == addr for b in p.config.backends):
            raise Conflict(f"pool {pool!r} already has backend {addr}")
        cfg = dc_replace(p.config, backends=(*p.config.backends, Backend(addr, weight)))
        self._replace_pool(cfg, joining=frozenset({str(addr)}))

    def remove_backend(self, pool: str, address: str) -> None:
        """Drain the backend, then take it out of the pool once its requests
        in flight are done (or after ``shutdown_timeout``)."""
        p = self._pool(pool)
        b = p.find(address)
        if len(p.backends) == 1:
            raise Conflict(f"{address} is the last backend of pool {pool!r}")
        p.set_admin_state(address, DRAINING)
        loop = asyncio.get_running_loop()
        task = loop.create_task(self._remove_when_drained(pool, b))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _remove_when_drained(self, pool: str, b: BackendState) -> None:
        deadline = monotonic() + self.config.shutdown_timeout
        while b.active > 0 and monotonic() < deadline:
            await asyncio.sleep(0.05)
        p = self.pools.get(pool)
        if p is None or b not in p.backends:
            return  # reloaded meanwhile: the file decides
        cfg = dc_replace(
            p.config, backends=tuple(x for x in p.config.backends if str(x.address) != b.label)
        )
        self._replace_pool(cfg, joining=frozenset())
        log.warning("pool %s: backend %s removed", pool, b.label)

    def _replace_pool(self, cfg: Pool, joining: frozenset[str]) -> None:
        old = self.pools[cfg.name]
        new = PoolRuntime(cfg, joining=joining, signer=self.signer)
        new.adopt(old, keep_admin=True)
        pools = dict(self.pools)
        pools[cfg.name] = new
        config = dc_replace(self.config, pools={**self.config.pools, cfg.name: cfg})
        for lr in self.listeners.values():
            lr.swap(lr.config, pools, self.access_log)
        self.pools = pools
        self.config = config
        old.close_idle()
        if old.checker is not None:
            task = asyncio.get_running_loop().create_task(old.stop_checks())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        self._start_checks({cfg.name: new})

    def _chooser(self, listener: str, index: int) -> object:
        lr = self.listeners.get(listener)
        if lr is None:
            raise KeyError(f"no listener named {listener!r}")
        routes = lr.config.routes
        if not 0 <= index < len(routes):
            raise KeyError(f"listener {listener!r} has no route {index} (it has {len(routes)})")
        return lr.targets.get(routes[index])

    def set_split(self, listener: str, index: int, weights: Mapping[str, int]) -> None:
        """Change a split route's weights (until the next reload from the file)."""
        chooser = self._chooser(listener, index)
        if not isinstance(chooser, SplitChooser):
            raise Conflict(f"route {index} of listener {listener!r} is not a split route")
        for name, weight in weights.items():
            if not 0 <= weight <= MAX_CONFIG_WEIGHT:
                raise ValueError(f"{name}: weight must be between 0 and {MAX_CONFIG_WEIGHT}")
        chooser.set_weights(weights)
        log.warning("listener %s route %d: split weights now %s", listener, index, chooser.weights)

    def _directory(self, listener: str, index: int) -> ShardChooserRuntime:
        chooser = self._chooser(listener, index)
        if not isinstance(chooser, ShardChooserRuntime) or chooser.directory is None:
            raise Conflict(f"route {index} of listener {listener!r} has no shard directory")
        return chooser

    def set_shard(self, listener: str, index: int, key: str, pool: str) -> None:
        """Map a shard key to a pool in a directory route, and write the file."""
        directory = self._directory(listener, index).directory
        assert directory is not None
        directory.set(key, pool)

    def delete_shard(self, listener: str, index: int, key: str) -> None:
        """Remove a shard key from a directory route, and write the file."""
        directory = self._directory(listener, index).directory
        assert directory is not None
        if not directory.delete(key):
            raise KeyError(f"no shard key {key!r} in the directory")

    def shard_entries(self, listener: str, index: int) -> dict[str, str]:
        directory = self._directory(listener, index).directory
        assert directory is not None
        directory.maybe_reload(monotonic())  # a hand edit shows without a request first
        return dict(directory.entries())

    def set_weight(self, pool: str, address: str, weight: int) -> None:
        """Change a backend's weight; takes effect at the next pick."""
        if not 0 <= weight <= MAX_CONFIG_WEIGHT:
            raise ValueError(f"weight must be between 0 and {MAX_CONFIG_WEIGHT}, got {weight}")
        p = self.pools.get(pool)
        if p is None:
            raise KeyError(f"no pool named {pool!r}")
        p.set_weight(address, weight)
