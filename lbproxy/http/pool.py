"""Runtime state of pools and backends, built from the frozen config.

A ``PoolRuntime`` owns the balancers (one over primaries, one over backups)
and, per backend, its idle keep-alive connections and counters. Picking is
``pick(tried, hash_key)``: the balancer walks its own order and the pool
rejects what is not eligible; later features (health, ejection, breakers,
draining) join the same ``accept`` filter rather than changing the balancers.

Backup backends form their own tier: they are picked only when the primary
tier has no eligible backend at all (weight 0 or refused by the filter).

Eligibility. A backend takes new requests while it is *eligible*: its active
health checks pass (``Hysteresis`` over probe results), outlier detection has
not ejected it, and its circuit breaker is not open. An ineligible backend's
balancer weight is set to 0, so the balancers skip it with no per-pick
filter; ``recompute`` re-derives every flag after any change. Only while some
breaker is half-open (its trial requests are counted) or a request has tried
backends already does a pick go through the ``accept`` filter. When the share
of eligible primaries falls below ``panic_threshold`` (and no backup can
take over) the pool *panics*: it uses every primary with weight above 0
rather than pile all traffic onto the few left (Envoy's panic routing).

Weights. The config says 0..1000; balancers get ``weight * WEIGHT_UNIT``, the
finer unit slow start needs: a backend that joins (a reload adds it, or its
weight goes from 0 back up) starts at 10% of its weight and ramps linearly to
100% over ``slow_start`` seconds, in steps of 2% (each step may rebuild a
consistent-hash ring, so not one per tick). ``tick(now)`` advances the ramps.
"""

from __future__ import annotations

import logging
import ssl
from bisect import bisect_left
from collections import deque
from collections.abc import Callable, Mapping
from time import monotonic
from typing import TYPE_CHECKING, Any

from lbproxy.balance import WEIGHT_UNIT, BalanceOptions, make_balancer
from lbproxy.balance.base import Balancer, PickContext
from lbproxy.balance.keys import Headers, key_extractor
from lbproxy.config.model import Backend, Pool
from lbproxy.cookies import CookieSigner, make_key
from lbproxy.http.upstream import IdlePool, UpstreamConnection
from lbproxy.resilience import CircuitBreaker, Hysteresis, OutlierDetector, RetryBudget

if TYPE_CHECKING:
    from lbproxy._fast.shared import Counters
    from lbproxy.health import HealthChecker, ProbeResult
    from lbproxy.routing.sticky import StickyRuntime

log = logging.getLogger("lbproxy")

# A backend's admin state: DRAINING and DISABLED take no new requests (the
# requests in flight finish); a draining backend reports "draining" until its
# last one has, then "disabled".
ENABLED = 0
DRAINING = 1
DISABLED = 2

# Latency histogram bounds (seconds) for /metrics: 100 us .. 30 s, the range a
# proxy sees, from a cached response to a slow report.
BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)  # fmt: skip

RAMP_FLOOR = 0.1  # share of its weight a slow-starting backend begins with
RAMP_STEPS = 50  # the ramp moves in 1/RAMP_STEPS of the full weight


class BackendState:
    __slots__ = (
        "_balancer",
        "_slot",
        "active",
        "address",
        "admin_state",
        "backup",
        "breaker",
        "checks_failed",
        "checks_ok",
        "connect_hist",
        "connect_sum",
        "drain_until",
        "ejections_total",
        "eligible",
        "failures_total",
        "health",
        "hist",
        "hist_sum",
        "host",
        "host_header",
        "idle",
        "index",
        "label",
        "others",
        "pool_name",
        "port",
        "ramp_since",
        "ramp_step",
        "requests_total",
        "shared_col",
        "usable",
        "weight",
    )

    def __init__(self, pool: Pool, cfg: Backend, index: int = 0) -> None:
        # With worker processes (lbproxy/workers): this backend's column in
        # the shared table of requests in flight, and how many of those other
        # workers hold (folded into the balancer's counts by sync_shared).
        self.shared_col = -1
        self.others = 0
        self.pool_name = pool.name
        self.address = cfg.address
        self.host = cfg.address.host
        self.port = cfg.address.port
        self.label = str(cfg.address)
        # Sent upstream only when the client sent no Host (HTTP/1.0).
        self.host_header = b"Host: " + self.label.encode() + b"\r\n"
        self.weight = cfg.weight
        self.backup = cfg.backup
        self.idle = IdlePool(pool.keepalive.max_idle_per_backend, pool.keepalive.idle_timeout)
        self.active = 0
        self.requests_total = 0
        self.failures_total = 0
        self._balancer: Balancer | None = None
        self._slot = -1
        self.ramp_since = -1.0  # monotonic start of a slow-start ramp; -1: none
        self.ramp_step = RAMP_STEPS  # current ramp step, RAMP_STEPS = full weight
        self.index = index  # position in the pool's backends (outlier detection's index)
        hc = pool.health_check
        # Backends start up, as HAProxy's do: a check must fail to take one out.
        self.health: Hysteresis | None = (
            Hysteresis(hc.healthy_threshold, hc.unhealthy_threshold) if hc is not None else None
        )
        cb = pool.circuit_breaker
        self.breaker: CircuitBreaker | None = (
            CircuitBreaker(
                cb.failure_rate,
                cb.minimum_requests,
                cb.window,
                cb.open_duration,
                cb.half_open_requests,
            )
            if cb is not None
            else None
        )
        self.eligible = True  # healthy, not ejected, breaker not open
        self.usable = True  # enabled, and eligible or the pool is in panic
        self.admin_state = ENABLED  # or DRAINING / DISABLED, set through the admin API
        # While DRAINING: until when it keeps serving its sticky sessions.
        self.drain_until = 0.0
        # For /metrics: plain counters, read at scrape time. hist[i] counts
        # requests that took at most BUCKETS[i]; the last slot is +Inf.
        self.hist = [0] * (len(BUCKETS) + 1)
        self.hist_sum = 0.0
        self.connect_hist = [0] * (len(BUCKETS) + 1)
        self.connect_sum = 0.0
        self.ejections_total = 0
        self.checks_ok = 0
        self.checks_failed = 0

    def forget(self, conn: UpstreamConnection) -> None:
        self.idle.remove(conn)

    # The exchange counts ``active`` itself; these tell the balancer (HAProxy's
    # take_conn/drop_conn) for algorithms that weigh in-flight requests.
    def balancer_take(self) -> None:
        if self._balancer is not None:
            self._balancer.take(self._slot)

    def balancer_drop(self) -> None:
        if self._balancer is not None:
            self._balancer.drop(self._slot)

    def effective_weight(self) -> int:
        """The weight the balancer sees, in its units (slow start applied;
        0 while the backend may not take new requests)."""
        if not self.usable:
            return 0
        return self.weight * WEIGHT_UNIT * self.ramp_step // RAMP_STEPS

    def observe_duration(self, seconds: float) -> None:
        self.hist[bisect_left(BUCKETS, seconds)] += 1
        self.hist_sum += seconds

    def observe_connect(self, seconds: float) -> None:
        self.connect_hist[bisect_left(BUCKETS, seconds)] += 1
        self.connect_sum += seconds

    def admit(self, now: float) -> bool:
        """The breaker's say for one new request (takes a half-open trial slot)."""
        breaker = self.breaker
        return breaker is None or breaker.allow(now)

    def apply_weight(self) -> None:
        if self._balancer is not None:
            self._balancer.set_weight(self._slot, self.effective_weight())


class _Tier:
    """One balancer over a subset of the pool's backends (primaries or backups)."""

    __slots__ = ("backends", "balancer")

    def __init__(self, cfg: Pool, backends: list[BackendState]) -> None:
        self.backends = backends
        options = BalanceOptions(
            names=[b.label for b in backends],
            hash_balance_factor=cfg.hash_balance_factor,
            ewma_half_life=cfg.ewma_half_life,
        )
        algorithm = cfg.balance
        if algorithm == "round_robin" and cfg.slow_start > 0:
            # Plain round robin ignores weights, so it could not ramp; with
            # equal weights the smooth weighted one walks the same order.
            algorithm = "weighted_round_robin"
        self.balancer = make_balancer(algorithm, [b.effective_weight() for b in backends], options)
        for i, b in enumerate(backends):
            b._balancer = self.balancer
            b._slot = i

    def pick(
        self, tried: set[BackendState] | None, ctx: PickContext | None, trials: bool
    ) -> BackendState | None:
        """``trials``: some breaker is half-open, so ask each candidate's."""
        if not self.backends:
            return None
        backends = self.backends
        accept: Callable[[int], bool] | None = None
        if trials:
            now = monotonic()

            def accept(i: int) -> bool:
                b = backends[i]
                return (not tried or b not in tried) and b.admit(now)

        elif tried:

            def accept(i: int) -> bool:
                return backends[i] not in tried

        i = self.balancer.pick(ctx, accept)
        return backends[i] if i >= 0 else None


KeyOf = Callable[[Headers, bytes, bytes], "bytes | None"]


def shared_key(pool: str, backend: str | None) -> str:
    """A shared-table column's name: a pool's (``backend`` None) or a backend's."""
    return f"{pool}\t{backend}" if backend is not None else f"{pool}\t"


class PoolRuntime:
    __slots__ = (
        "_backup",
        "_ctx",
        "_open_breakers",
        "_primary",
        "_primary_backends",
        "_primary_balancer",
        "backends",
        "budget",
        "checker",
        "config",
        "connect_timeout",
        "in_flight",
        "key_of",
        "max_in_flight",
        "max_pending",
        "name",
        "observes",
        "on_health",
        "outlier",
        "panic",
        "pending",
        "queue_timeout",
        "ramping",
        "reports",
        "response_timeout",
        "retries",
        "retries_by_reason",
        "retry_statuses",
        "serving",
        "shared",
        "shared_col",
        "shared_row",
        "slow_start",
        "sticky",
        "trials",
        "try_timeout",
        "upstream_sni",
        "upstream_ssl",
    )

    def __init__(
        self,
        cfg: Pool,
        joining: frozenset[str] = frozenset(),
        signer: CookieSigner | None = None,
    ) -> None:
        """``joining``: labels of backends that slow-start (new to a reloaded
        pool); ``signer``: signs sticky cookies (the proxy's, shared by its
        workers; a random one when None)."""
        self.name = cfg.name
        self.config = cfg
        self.connect_timeout = cfg.timeouts.connect
        self.response_timeout = cfg.timeouts.response
        self.slow_start = cfg.slow_start
        self.backends = [BackendState(cfg, b, i) for i, b in enumerate(cfg.backends)]
        self.ramping: list[BackendState] = []
        if self.slow_start > 0 and joining:
            now = monotonic()
            for b in self.backends:
                if b.label in joining and b.weight > 0:
                    self._ramp_from(b, now)
        self._primary = _Tier(cfg, [b for b in self.backends if not b.backup])
        self._backup = _Tier(cfg, [b for b in self.backends if b.backup])
        self._primary_backends = self._primary.backends
        self._primary_balancer = self._primary.balancer
        # Only hashing pools read a key from the request; the others get None.
        self.key_of: KeyOf | None = (
            key_extractor(cfg.hash_key) if cfg.balance == "consistent_hash" else None
        )
        self._ctx = PickContext()  # reused: a pick never outlives its call
        # Latency-aware balancing wants every response time reported.
        self.observes = cfg.balance == "peak_ewma"
        od = cfg.outlier_detection
        self.outlier: OutlierDetector | None = (
            OutlierDetector(
                len(self.backends),
                od.consecutive_failures,
                od.base_ejection_time,
                od.max_ejection_time,
                od.max_ejection_percent,
            )
            if od is not None
            else None
        )
        self._open_breakers: list[BackendState] = []
        self.trials = False  # some breaker is half-open: picks ask it
        self.panic = False
        # Some backend is eligible, panic aside: geo routing fails over
        # to another region's pool while this is False.
        self.serving = True
        self.sticky: StickyRuntime | None = None
        if cfg.sticky is not None:
            from lbproxy.routing.sticky import StickyRuntime

            self.sticky = StickyRuntime(
                cfg.name, cfg.sticky, signer or CookieSigner(make_key(None)), self.backends
            )
        self.retries = cfg.retries
        self.budget = RetryBudget(cfg.retries.budget_ratio)
        self.retries_by_reason: dict[str, int] = {}  # for /metrics
        # Backend statuses that make a try fail over (none when never retried).
        self.retry_statuses = frozenset(
            int(x) for x in cfg.retries.on if x.isdigit() and cfg.retries.attempts > 1
        )
        per_try = cfg.retries.per_try_timeout
        self.try_timeout = min(per_try, self.response_timeout) if per_try else self.response_timeout
        # Outcomes matter only to outlier detection and breakers.
        self.reports = od is not None or cfg.circuit_breaker is not None
        # Requests in flight to this pool's backends, and those waiting for
        # one of max_in_flight slots (limits.max_connections).
        self.in_flight = 0
        limits = cfg.limits
        self.max_in_flight = limits.max_connections if limits is not None else 0  # 0: no limit
        self.max_pending = limits.max_pending if limits is not None else 0
        self.queue_timeout = limits.queue_timeout if limits is not None else 0.0
        self.pending: deque[object] = deque()  # Exchanges, FIFO
        self.checker: HealthChecker | None = None
        # Told of every health flip (the supervisor relays them to workers).
        self.on_health: Callable[[PoolRuntime, BackendState], None] | None = None
        # Worker processes count requests in flight in a shared table (see
        # share): this worker's row, the pool's column.
        self.shared: Counters | None = None
        self.shared_row = -1
        self.shared_col = -1
        # upstream_tls: one client context for the pool's connections (and
        # its session cache), and the name to send and verify (None: each
        # backend's host).
        ut = cfg.upstream_tls
        self.upstream_ssl: ssl.SSLContext | None = None
        self.upstream_sni: str | None = None
        if ut is not None:
            from lbproxy.tls import client_context

            self.upstream_ssl = client_context(ut.verify, ut.ca, ut.cert, ut.key)
            self.upstream_sni = ut.sni

    # -- picking -------------------------------------------------------------------
    def pick(
        self, tried: set[BackendState] | None = None, hash_key: bytes | None = None
    ) -> BackendState | None:
        ctx: PickContext | None = None
        if hash_key is not None:
            ctx = self._ctx
            ctx.hash_key = hash_key
        trials = self.trials
        if tried is None and not trials and self._primary_backends:
            # The common case, without the filter closure: one balancer call.
            i = self._primary_balancer.pick(ctx, None)
            if i >= 0:
                return self._primary_backends[i]
        b = self._primary.pick(tried, ctx, trials)
        if b is None:
            b = self._backup.pick(tried, ctx, trials)
        return b

    # -- outcomes, health and eligibility -------------------------------------------
    def report(self, b: BackendState, ok: bool, now: float) -> None:
        """The outcome of one try on ``b``: a response (ok unless 5xx), or a
        failure to connect, a reset or a timeout."""
        changed = False
        outlier = self.outlier
        if outlier is not None and outlier.record(b.index, ok, now):
            b.ejections_total += 1
            log.warning(
                "pool %s: backend %s ejected (ejection %d) after consecutive failures",
                self.name,
                b.label,
                outlier.ejections(b.index),
            )
            changed = True
        breaker = b.breaker
        if breaker is not None:
            transition = breaker.record(ok, now)
            if transition is not None:
                log.warning(
                    "pool %s: backend %s circuit breaker %s", self.name, b.label, transition
                )
                changed = True
        if changed:
            self.recompute(now)

    def release(self, b: BackendState, now: float) -> None:
        """A try on ``b`` ended with no outcome (the client left)."""
        if b.breaker is not None:
            b.breaker.release(now)

    def on_probe(self, b: BackendState, result: ProbeResult) -> None:
        """An active health check's result (the checker's callback)."""
        if result.ok:
            b.checks_ok += 1
        else:
            b.checks_failed += 1
        health = b.health
        if health is None or not health.record(result.ok):
            return
        if health.healthy:
            log.warning("pool %s: backend %s is up (%s)", self.name, b.label, result.detail)
        else:
            log.warning("pool %s: backend %s is down: %s", self.name, b.label, result.detail)
        self._health_changed(b)

    def share(self, counters: Counters, row: int, columns: Mapping[str, int]) -> None:
        """Count this pool's requests in flight in ``counters`` (row ``row``,
        columns by ``shared_key``), so that ``limits.max_connections`` and the
        balancers' in-flight counts hold across worker processes. A pool or
        backend without a column counts locally only."""
        col = columns.get(shared_key(self.name, None))
        if col is None:
            return
        self.shared = counters
        self.shared_row = row
        self.shared_col = col
        for b in self.backends:
            b.shared_col = columns.get(shared_key(self.name, b.label), -1)

    def busy(self) -> int:
        """Requests in flight in this pool, across every worker when shared."""
        shared = self.shared
        if shared is None:
            return self.in_flight
        return int(shared.total(self.shared_col))

    def sync_shared(self) -> None:
        """Fold the other workers' requests in flight into each backend's
        balancer count (least-connections, power of two, peak EWMA compare
        them). Called every tick: the others' share is at most a tick old."""
        shared = self.shared
        if shared is None:
            return
        row = self.shared_row
        for b in self.backends:
            col = b.shared_col
            if col < 0:
                continue
            others = int(shared.total(col) - shared.get(row, col))
            if others < 0:
                others = 0
            delta = others - b.others
            if not delta:
                continue
            b.others = others
            while delta > 0:
                b.balancer_take()
                delta -= 1
            while delta < 0:
                b.balancer_drop()
                delta += 1

    def set_health(self, address: str, healthy: bool) -> None:
        """Health decided elsewhere: a worker process is told by its
        supervisor, which runs the checks once for all workers."""
        b = self.find(address)
        if b.health is not None and b.health.set(healthy):
            self._health_changed(b)

    def _health_changed(self, b: BackendState) -> None:
        if b.health is not None and b.health.healthy and self.slow_start > 0:
            self._ramp_from(b, monotonic())
        self.recompute(monotonic())
        if self.on_health is not None:
            self.on_health(self, b)

    def recompute(self, now: float) -> None:
        """Re-derive every backend's eligibility, panic, and the balancers' weights."""
        outlier = self.outlier
        open_breakers: list[BackendState] = []
        trials = False
        for b in self.backends:
            eligible = b.health is None or b.health.healthy
            if eligible and outlier is not None and outlier.ejected(b.index, now):
                eligible = False
            breaker = b.breaker
            if breaker is not None:
                state = breaker.state(now)
                if state == "open":
                    open_breakers.append(b)
                    eligible = False
                elif state == "half_open":
                    trials = True
            b.eligible = eligible
        self._open_breakers = open_breakers
        self.trials = trials
        primaries = [b for b in self._primary_backends if b.weight > 0 and b.admin_state == ENABLED]
        up = sum(1 for b in primaries if b.eligible)
        backup_up = any(
            b.eligible and b.weight > 0 and b.admin_state == ENABLED for b in self._backup.backends
        )
        self.serving = up > 0 or backup_up
        threshold = self.config.panic_threshold
        panic = (
            threshold > 0 and bool(primaries) and not backup_up and up < threshold * len(primaries)
        )
        if panic != self.panic:
            self.panic = panic
            if panic:
                log.error(
                    "pool %s: panic: %d of %d backends eligible (under %g%%); using all of them",
                    self.name,
                    up,
                    len(primaries),
                    threshold * 100,
                )
            else:
                log.warning(
                    "pool %s: panic over: %d of %d backends eligible", self.name, up, len(primaries)
                )
        for b in self.backends:
            usable = b.admin_state == ENABLED and (b.eligible or (panic and not b.backup))
            if usable != b.usable:
                b.usable = usable
                b.apply_weight()

    def state_of(self, b: BackendState, now: float) -> str:
        """``healthy``, ``unhealthy``, ``ejected``, ``draining`` or ``disabled``,
        as /api/status reports it."""
        if b.admin_state == DRAINING:
            if b.active > 0 or (self.sticky is not None and now < b.drain_until):
                return "draining"
            return "disabled"
        if b.admin_state == DISABLED:
            return "disabled"
        if b.health is not None and not b.health.healthy:
            return "unhealthy"
        if self.outlier is not None and self.outlier.ejected(b.index, now):
            return "ejected"
        return "healthy"

    def start_checks(self) -> None:
        """Start active health checks (needs a running loop); no-op without them."""
        hc = self.config.health_check
        if hc is None or self.checker is not None:
            return
        from lbproxy.health import HealthChecker

        self.checker = HealthChecker(
            self.backends,
            path=hc.path,
            host=hc.host,
            interval=hc.interval,
            timeout=hc.timeout,
            expect_status=hc.expect_status,
            expect_body=hc.expect_body,
            on_result=self.on_probe,  # type: ignore[arg-type]
            tls=self.upstream_ssl,
            tls_name=self.upstream_sni,
        )
        self.checker.start()

    async def stop_checks(self) -> None:
        if self.checker is not None:
            await self.checker.stop()
            self.checker = None

    def observe(self, b: BackendState, seconds: float) -> None:
        """A response head arrived ``seconds`` after the backend was picked."""
        balancer = b._balancer
        if balancer is not None:
            balancer.observe(b._slot, seconds)  # type: ignore[attr-defined]

    def observe_failure(self, b: BackendState, seconds: float) -> None:
        # A refused connection fails fast; counted at face value it would make
        # a dead backend look like the fastest. At least the connect timeout.
        self.observe(b, max(seconds, self.connect_timeout))

    def find(self, address: str) -> BackendState:
        for b in self.backends:
            if b.label == address:
                return b
        raise KeyError(f"pool {self.name!r} has no backend {address!r}")

    def set_admin_state(
        self, address: str, state: int, drain_timeout: float | None = None
    ) -> BackendState:
        """Drain, disable or enable a backend; takes effect at the next pick.
        ``drain_timeout``: how long a draining backend keeps sticky sessions."""
        b = self.find(address)
        now = monotonic()
        if state == ENABLED and b.admin_state != ENABLED and self.slow_start > 0:
            self._ramp_from(b, now)
        if state == DRAINING and (b.admin_state != DRAINING or drain_timeout is not None):
            # Sticky sessions stay on a draining backend until they end: no
            # cookie outlives its ttl (a session cookie: an hour at most).
            sticky = self.config.sticky
            if drain_timeout is None:
                drain_timeout = (sticky.ttl or 3600.0) if sticky is not None else 0.0
            b.drain_until = now + drain_timeout
        b.admin_state = state
        self.recompute(monotonic())
        return b

    def adopt(self, old: PoolRuntime, keep_admin: bool) -> None:
        """Carry backend state over from the pool this one replaces (a reload,
        or a backend added or removed): health, breakers, ejections and
        counters of the backends both have, and with ``keep_admin`` their
        admin state (a file reload resets it, as it resets weights)."""
        by_label = {b.label: b for b in old.backends}
        # A state carries over only under the same settings: new thresholds
        # or windows start afresh rather than judge old counts by new rules.
        same_checks = self.config.health_check == old.config.health_check
        self.adopt_passive(old.passive_state())
        for b in self.backends:
            before = by_label.get(b.label)
            if before is None:
                continue
            if same_checks and b.health is not None and before.health is not None:
                b.health = before.health
            if keep_admin:
                b.admin_state = before.admin_state
                b.drain_until = before.drain_until
            b.requests_total = before.requests_total
            b.failures_total = before.failures_total
            b.ejections_total = before.ejections_total
            b.checks_ok = before.checks_ok
            b.checks_failed = before.checks_failed
        self.recompute(monotonic())

    def passive_state(self) -> dict[str, Any]:
        """What the pool learned from traffic, per backend address: circuit
        breakers and outlier-detection state, with the settings they were
        learned under. Plain picklable data, for ``adopt_passive`` in a
        replacement pool, here or in a new worker process."""
        outlier = self.outlier
        return {
            "breaker_config": self.config.circuit_breaker,
            "outlier_config": self.config.outlier_detection,
            "backends": {
                b.label: (b.breaker, outlier.state(b.index) if outlier is not None else None)
                for b in self.backends
            },
        }

    def adopt_passive(self, state: dict[str, Any]) -> None:
        """Take over breakers and ejections from ``passive_state()`` for the
        backends both have, when the settings are the same."""
        same_breaker = state["breaker_config"] == self.config.circuit_breaker
        same_outlier = state["outlier_config"] == self.config.outlier_detection
        known = state["backends"]
        outlier = self.outlier
        for b in self.backends:
            carried = known.get(b.label)
            if carried is None:
                continue
            breaker, ejection = carried
            if same_breaker and b.breaker is not None and breaker is not None:
                b.breaker = breaker
            if same_outlier and outlier is not None and ejection is not None:
                outlier.restore(b.index, ejection)
        self.recompute(monotonic())

    def set_weight(self, address: str, weight: int) -> None:
        for b in self.backends:
            if b.label == address:
                rejoins = b.weight == 0 and weight > 0
                b.weight = weight
                if rejoins and self.slow_start > 0:
                    self._ramp_from(b, monotonic())
                b.apply_weight()
                return
        raise KeyError(f"pool {self.name!r} has no backend {address!r}")

    def start_ramp(self, b: BackendState, now: float) -> None:
        """Slow-start ``b`` from now (it joined, or became eligible again)."""
        if self.slow_start > 0:
            self._ramp_from(b, now)
            b.apply_weight()

    def _ramp_from(self, b: BackendState, now: float) -> None:
        b.ramp_since = now
        b.ramp_step = int(RAMP_FLOOR * RAMP_STEPS)
        if b not in self.ramping:
            self.ramping.append(b)

    def tick(self, now: float) -> None:
        """Time-driven changes: ejections that end, open breakers turning
        half-open, slow-start ramps. Cheap when none is under way."""
        outlier = self.outlier
        back = outlier.expire(now) if outlier is not None else []
        if back or any(
            b.breaker is not None and b.breaker.state(now) != "open" for b in self._open_breakers
        ):
            if self.slow_start > 0:
                for i in back:
                    self._ramp_from(self.backends[i], now)
            self.recompute(now)
        if not self.ramping:
            return
        still: list[BackendState] = []
        for b in self.ramping:
            elapsed = now - b.ramp_since
            share = RAMP_FLOOR + (1.0 - RAMP_FLOOR) * elapsed / self.slow_start
            step = RAMP_STEPS if share >= 1.0 else max(b.ramp_step, int(share * RAMP_STEPS))
            if step != b.ramp_step:
                b.ramp_step = step
                b.apply_weight()
            if step < RAMP_STEPS:
                still.append(b)
            else:
                b.ramp_since = -1.0
        self.ramping = still

    def expire_idle(self, now: float) -> None:
        for b in self.backends:
            if b.idle.conns:
                b.idle.expire(now)

    def close_idle(self) -> None:
        for b in self.backends:
            b.idle.close_all()
