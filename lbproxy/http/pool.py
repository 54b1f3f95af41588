"""Runtime state of pools and backends, built from the frozen config.

A ``PoolRuntime`` owns the balancers (one over primaries, one over backups)
and, per backend, its idle keep-alive connections and counters. Picking is
``pick(tried)``: the balancer walks its own order and the pool rejects what
is not eligible; later features (health, ejection, breakers, draining) join
the same ``accept`` filter rather than changing the balancers.
"""

from __future__ import annotations

from collections.abc import Callable

from lbproxy.balance import make_balancer
from lbproxy.balance.base import Balancer
from lbproxy.config.model import Backend, Pool
from lbproxy.http.upstream import IdlePool, UpstreamConnection


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


class _Tier:
    """One balancer over a subset of the pool's backends (primaries or backups)."""

    __slots__ = ("backends", "balancer")

    def __init__(self, algorithm: str, backends: list[BackendState]) -> None:
        self.backends = backends
        self.balancer = make_balancer(algorithm, [b.weight for b in backends])
        for i, b in enumerate(backends):
            b._balancer = self.balancer
            b._slot = i

    def pick(self, tried: set[BackendState] | None) -> BackendState | None:
        if not self.backends:
            return None
        backends = self.backends
        accept: Callable[[int], bool] | None = None
        if tried:

            def accept(i: int) -> bool:
                return backends[i] not in tried

        i = self.balancer.pick(None, accept)
        return backends[i] if i >= 0 else None


class PoolRuntime:
    __slots__ = (
        "_backup",
        "_primary",
        "_primary_backends",
        "_primary_balancer",
        "backends",
        "config",
        "connect_timeout",
        "name",
        "response_timeout",
    )

    def __init__(self, cfg: Pool) -> None:
        self.name = cfg.name
        self.config = cfg
        self.connect_timeout = cfg.timeouts.connect
        self.response_timeout = cfg.timeouts.response
        self.backends = [BackendState(cfg, b) for b in cfg.backends]
        self._primary = _Tier(cfg.balance, [b for b in self.backends if not b.backup])
        self._backup = _Tier(cfg.balance, [b for b in self.backends if b.backup])
        self._primary_backends = self._primary.backends
        self._primary_balancer = self._primary.balancer

    def pick(self, tried: set[BackendState] | None = None) -> BackendState | None:
        if tried is None and self._primary_backends:
            # The common case, without the filter closure: one balancer call.
            i = self._primary_balancer.pick(None, None)
            if i >= 0:
                return self._primary_backends[i]
        b = self._primary.pick(tried)
        if b is None:
            b = self._backup.pick(tried)
        return b

    def set_weight(self, address: str, weight: int) -> None:
        for b in self.backends:
            if b.label == address:
                b.weight = weight
                if b._balancer is not None:
                    b._balancer.set_weight(b._slot, weight)
                return
        raise KeyError(f"pool {self.name!r} has no backend {address!r}")

    def expire_idle(self, now: float) -> None:
        for b in self.backends:
            if b.idle.conns:
                b.idle.expire(now)

    def close_idle(self) -> None:
        for b in self.backends:
            b.idle.close_all()
