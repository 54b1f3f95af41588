"""Runtime state of pools and backends, built from the frozen config.

A ``PoolRuntime`` owns the balancers (one over primaries, one over backups)
and, per backend, its idle keep-alive connections and counters. Picking is
``pick(tried, hash_key)``: the balancer walks its own order and the pool
rejects what is not eligible; later features (health, ejection, breakers,
draining) join the same ``accept`` filter rather than changing the balancers.

Backup backends form their own tier: they are picked only when the primary
tier has no eligible backend at all (weight 0 or refused by the filter).

Weights. The config says 0..1000; balancers get ``weight * WEIGHT_UNIT``, the
finer unit slow start needs: a backend that joins (a reload adds it, or its
weight goes from 0 back up) starts at 10% of its weight and ramps linearly to
100% over ``slow_start`` seconds, in steps of 2% (each step may rebuild a
consistent-hash ring, so not one per tick). ``tick(now)`` advances the ramps.
"""

from __future__ import annotations

from collections.abc import Callable
from time import monotonic

from lbproxy.balance import WEIGHT_UNIT, BalanceOptions, make_balancer
from lbproxy.balance.base import Balancer, PickContext
from lbproxy.balance.keys import Headers, key_extractor
from lbproxy.config.model import Backend, Pool
from lbproxy.http.upstream import IdlePool, UpstreamConnection

RAMP_FLOOR = 0.1  # share of its weight a slow-starting backend begins with
RAMP_STEPS = 50  # the ramp moves in 1/RAMP_STEPS of the full weight


class BackendState:
    __slots__ = (
        "_balancer",
        "_slot",
        "active",
        "address",
        "backup",
        "failures_total",
        "host",
        "host_header",
        "idle",
        "label",
        "pool_name",
        "port",
        "ramp_since",
        "ramp_step",
        "requests_total",
        "weight",
    )

    def __init__(self, pool: Pool, cfg: Backend) -> None:
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
        """The weight the balancer sees, in its units (slow start applied)."""
        return self.weight * WEIGHT_UNIT * self.ramp_step // RAMP_STEPS

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

    def pick(self, tried: set[BackendState] | None, ctx: PickContext | None) -> BackendState | None:
        if not self.backends:
            return None
        backends = self.backends
        accept: Callable[[int], bool] | None = None
        if tried:

            def accept(i: int) -> bool:
                return backends[i] not in tried

        i = self.balancer.pick(ctx, accept)
        return backends[i] if i >= 0 else None


KeyOf = Callable[[Headers, bytes, bytes], "bytes | None"]


class PoolRuntime:
    __slots__ = (
        "_backup",
        "_ctx",
        "_primary",
        "_primary_backends",
        "_primary_balancer",
        "backends",
        "config",
        "connect_timeout",
        "key_of",
        "name",
        "observes",
        "ramping",
        "response_timeout",
        "slow_start",
    )

    def __init__(self, cfg: Pool, joining: frozenset[str] = frozenset()) -> None:
        """``joining``: labels of backends that slow-start (new to a reloaded pool)."""
        self.name = cfg.name
        self.config = cfg
        self.connect_timeout = cfg.timeouts.connect
        self.response_timeout = cfg.timeouts.response
        self.slow_start = cfg.slow_start
        self.backends = [BackendState(cfg, b) for b in cfg.backends]
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

    def pick(
        self, tried: set[BackendState] | None = None, hash_key: bytes | None = None
    ) -> BackendState | None:
        ctx: PickContext | None = None
        if hash_key is not None:
            ctx = self._ctx
            ctx.hash_key = hash_key
        if tried is None and self._primary_backends:
            # The common case, without the filter closure: one balancer call.
            i = self._primary_balancer.pick(ctx, None)
            if i >= 0:
                return self._primary_backends[i]
        b = self._primary.pick(tried, ctx)
        if b is None:
            b = self._backup.pick(tried, ctx)
        return b

    def observe(self, b: BackendState, seconds: float) -> None:
        """A response head arrived ``seconds`` after the backend was picked."""
        balancer = b._balancer
        if balancer is not None:
            balancer.observe(b._slot, seconds)  # type: ignore[attr-defined]

    def observe_failure(self, b: BackendState, seconds: float) -> None:
        # A refused connection fails fast; counted at face value it would make
        # a dead backend look like the fastest. At least the connect timeout.
        self.observe(b, max(seconds, self.connect_timeout))

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
        """Advance slow-start ramps; cheap when none is under way."""
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
