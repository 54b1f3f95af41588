"""Prometheus metrics: read from the proxy's own counters at scrape time.

The data path only increments plain integers (per backend: requests,
failures, a latency histogram's buckets; per listener: finished requests by
route, backend and status class), so counting costs a dict update and a
bisect per request and nothing else. At scrape time three steps turn them
into the text format:

- ``snapshot(proxy)`` copies every number the exposition needs into a
  ``MetricsSnapshot``: plain dicts, lists, tuples, strings and numbers, no
  live objects, so a worker process can pickle it to its supervisor;
- ``merge(snapshots)`` folds the snapshots of several processes into one
  (the rules are in its docstring);
- ``render(snapshot)`` turns one into metric families (a prometheus-client
  collector) and the text format.

``metrics_text(proxy)`` is ``render(snapshot(proxy))``. Names are those of
CONFIG.md, all prefixed ``lbproxy_``.

Series of backends that a reload or an admin change removed are folded into
the current ones by label, so a counter never appears twice; histograms and
per-backend counters of a backend start again from zero when its pool is
rebuilt by a file reload, which Prometheus reads as a counter reset.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from time import monotonic
from typing import TYPE_CHECKING, TypedDict

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import CollectorRegistry

from lbproxy.balance import WEIGHT_UNIT
from lbproxy.http.accesslog import route_label
from lbproxy.http.pool import BUCKETS

if TYPE_CHECKING:
    from lbproxy.http.pool import BackendState
    from lbproxy.proxy import Proxy

__all__ = [
    "BREAKER_STATES",
    "CODE_CLASSES",
    "BackendSnapshot",
    "MetricsSnapshot",
    "PoolSnapshot",
    "ProxyCollector",
    "RequestKey",
    "SnapshotCollector",
    "merge",
    "metrics_text",
    "render",
    "snapshot",
]

CODE_CLASSES = {0: "none", 1: "1xx", 2: "2xx", 3: "3xx", 4: "4xx", 5: "5xx"}
BREAKER_STATES = {"closed": 0, "open": 1, "half_open": 2}
# How bad a breaker state (its metric number) is, for merge: open > half-open > closed.
_BREAKER_SEVERITY = {0: 0, 2: 1, 1: 2}

# lbproxy_requests_total's labels: (listener, route, pool, backend, code_class).
RequestKey = tuple[str, str, str, str, str]


class BackendSnapshot(TypedDict):
    """One backend's numbers (``hist`` and ``connect_hist``: per-bucket,
    non-cumulative counts, one per ``BUCKETS`` bound plus +Inf)."""

    hist: list[int]
    hist_sum: float
    connect_hist: list[int]
    connect_sum: float
    active: int  # requests in flight
    up: int  # 0/1
    weight: int
    effective_weight: float  # in config units (weight scale)
    requests: int
    failures: int
    ejections: int
    breaker: int  # BREAKER_STATES value
    checked: bool  # has active health checks (checks_* are reported)
    checks_ok: int
    checks_failed: int


class PoolSnapshot(TypedDict):
    backends: dict[str, BackendSnapshot]  # by backend label, in the pool's order
    retries: dict[str, int]  # by reason
    panic: int  # 0/1
    queued: int


class MetricsSnapshot(TypedDict):
    requests: dict[RequestKey, int]
    connections: dict[str, int]  # open client connections, by listener
    pools: dict[str, PoolSnapshot]  # by pool name
    reloads: dict[str, int]  # by result
    tls: dict[tuple[str, str], int]  # TLS handshakes by (listener, version)


def _backend(b: BackendState, now: float) -> BackendSnapshot:
    state = b.breaker.state(now) if b.breaker is not None else "closed"
    return {
        "hist": list(b.hist),
        "hist_sum": b.hist_sum,
        "connect_hist": list(b.connect_hist),
        "connect_sum": b.connect_sum,
        "active": b.active,
        "up": 1 if b.usable and b.weight > 0 else 0,
        "weight": b.weight,
        "effective_weight": b.effective_weight() / WEIGHT_UNIT,
        "requests": b.requests_total,
        "failures": b.failures_total,
        "ejections": b.ejections_total,
        "breaker": BREAKER_STATES[state],
        "checked": b.health is not None,
        "checks_ok": b.checks_ok,
        "checks_failed": b.checks_failed,
    }


def snapshot(proxy: Proxy) -> MetricsSnapshot:
    """Every number ``/metrics`` reports for ``proxy``, as plain (picklable) data."""
    requests: dict[RequestKey, int] = {}
    for lr in proxy.listeners.values():
        for (route_id, backend, cls), n in list(lr.counts.items()):
            r = lr.routes.get(route_id)
            bs: BackendState | None = backend  # type: ignore[assignment]
            key = (
                lr.name,
                route_label(r) or "",
                # A geo/shard/split route's pool is the one that served.
                bs.pool_name if bs is not None else (r.pool if r is not None else ""),
                bs.label if bs is not None else "",
                CODE_CLASSES.get(cls, "none"),
            )
            requests[key] = requests.get(key, 0) + n
    connections = {lr.name: len(lr.connections) for lr in proxy.listeners.values()}
    now = monotonic()
    pools: dict[str, PoolSnapshot] = {}
    for name, pool in list(proxy.pools.items()):
        backends: dict[str, BackendSnapshot] = {}
        for b in list(pool.backends):
            one = _backend(b, now)
            same = backends.get(b.label)
            # Two backends with one label (not expected): one series, as merge folds them.
            backends[b.label] = one if same is None else _merge_backends([same, one])
        pools[name] = {
            "backends": backends,
            "retries": dict(pool.retries_by_reason),
            "panic": 1 if pool.panic else 0,
            "queued": len(pool.pending),
        }
    return {
        "requests": requests,
        "connections": connections,
        "pools": pools,
        "reloads": dict(proxy.reloads),
        "tls": {
            (lr.name, version): n
            for lr in proxy.listeners.values()
            if lr.tls_store is not None
            for version, n in lr.tls_store.handshakes.items()
        },
    }


# -- merging ---------------------------------------------------------------------


def _sum_into(into: dict[str, int], more: dict[str, int]) -> None:
    for k, n in more.items():
        into[k] = into.get(k, 0) + n


def _bucketwise(lists: Sequence[list[int]]) -> list[int]:
    return [sum(column) for column in zip(*lists, strict=True)]


def _merge_backends(parts: Sequence[BackendSnapshot]) -> BackendSnapshot:
    return {
        "hist": _bucketwise([p["hist"] for p in parts]),
        "hist_sum": sum(p["hist_sum"] for p in parts),
        "connect_hist": _bucketwise([p["connect_hist"] for p in parts]),
        "connect_sum": sum(p["connect_sum"] for p in parts),
        "active": sum(p["active"] for p in parts),
        "up": max(p["up"] for p in parts),
        "weight": max(p["weight"] for p in parts),
        "effective_weight": max(p["effective_weight"] for p in parts),
        "requests": sum(p["requests"] for p in parts),
        "failures": sum(p["failures"] for p in parts),
        "ejections": sum(p["ejections"] for p in parts),
        "breaker": max((p["breaker"] for p in parts), key=lambda s: _BREAKER_SEVERITY.get(s, 0)),
        "checked": any(p["checked"] for p in parts),
        "checks_ok": sum(p["checks_ok"] for p in parts),
        "checks_failed": sum(p["checks_failed"] for p in parts),
    }


def merge(snaps: Sequence[MetricsSnapshot]) -> MetricsSnapshot:
    """One snapshot for several processes (a supervisor and its workers).

    Summed: request counts, active connections, every per-backend counter
    (requests, failures, ejections, health-check passes and failures), the
    histograms bucket by bucket with their sums, requests in flight, retries,
    queued requests, config reloads. The largest: ``backend_up``, pool panic,
    weight and effective weight. The breaker: the worst state, open >
    half-open > closed. A backend has health checks if any snapshot says so.
    A listener, pool or backend present in only some snapshots (processes of
    different config generations while a reload rolls out) is merged from
    those that have it. Order: first seen (the text format sorts pools, and
    requests by label, anyway). The inputs are not changed.
    """
    requests: dict[RequestKey, int] = {}
    connections: dict[str, int] = {}
    reloads: dict[str, int] = {}
    tls: dict[tuple[str, str], int] = {}
    backend_parts: dict[str, dict[str, list[BackendSnapshot]]] = {}
    pool_parts: dict[str, list[PoolSnapshot]] = {}
    for snap in snaps:
        for key, n in snap["requests"].items():
            requests[key] = requests.get(key, 0) + n
        _sum_into(connections, snap["connections"])
        _sum_into(reloads, snap["reloads"])
        for shake, n in snap["tls"].items():
            tls[shake] = tls.get(shake, 0) + n
        for name, pool in snap["pools"].items():
            pool_parts.setdefault(name, []).append(pool)
            by_label = backend_parts.setdefault(name, {})
            for label, b in pool["backends"].items():
                by_label.setdefault(label, []).append(b)
    pools: dict[str, PoolSnapshot] = {}
    for name, parts in pool_parts.items():
        retries: dict[str, int] = {}
        for p in parts:
            _sum_into(retries, p["retries"])
        pools[name] = {
            "backends": {
                label: _merge_backends(bparts) for label, bparts in backend_parts[name].items()
            },
            "retries": retries,
            "panic": max(p["panic"] for p in parts),
            "queued": sum(p["queued"] for p in parts),
        }
    return {
        "requests": requests,
        "connections": connections,
        "pools": pools,
        "reloads": reloads,
        "tls": tls,
    }


def counters_only(snap: MetricsSnapshot) -> MetricsSnapshot:
    """``snap`` with its gauges at zero: what a worker that has exited still
    adds to the totals. Merged with the live ones, its counters keep the sums
    monotonic across a reload; zeros add no requests in flight, and lose to
    any live process in the largest-value and worst-breaker rules."""
    pools: dict[str, PoolSnapshot] = {}
    for name, pool in snap["pools"].items():
        pools[name] = {
            "backends": {
                label: {**b, "active": 0, "up": 0, "weight": 0, "effective_weight": 0.0,
                        "breaker": 0}
                for label, b in pool["backends"].items()
            },
            "retries": dict(pool["retries"]),
            "panic": 0,
            "queued": 0,
        }
    return {
        "requests": dict(snap["requests"]),
        "connections": {name: 0 for name in snap["connections"]},
        "pools": pools,
        "reloads": dict(snap["reloads"]),
        "tls": dict(snap["tls"]),
    }


# -- the text format ---------------------------------------------------------------


def _histogram(
    family: HistogramMetricFamily, labels: list[str], counts: list[int], total: float
) -> None:
    cumulative = 0
    buckets: list[tuple[str, float]] = []
    for bound, count in zip((*map(str, BUCKETS), "+Inf"), counts, strict=True):
        cumulative += count
        buckets.append((bound, cumulative))
    family.add_metric(labels, buckets, total)


class SnapshotCollector:
    """A prometheus-client collector over one ``MetricsSnapshot``."""

    def __init__(self, snap: MetricsSnapshot) -> None:
        self.snap = snap

    def collect(self) -> Iterator[Metric]:
        snap = self.snap
        requests = CounterMetricFamily(
            "lbproxy_requests",
            "Requests answered, by listener, route, pool, backend and status class"
            " (code_class none: the client left before an answer)",
            labels=["listener", "route", "pool", "backend", "code_class"],
        )
        for key, n in sorted(snap["requests"].items()):
            requests.add_metric(list(key), n)
        yield requests

        active = GaugeMetricFamily(
            "lbproxy_active_connections", "Open client connections", labels=["listener"]
        )
        for listener, n in snap["connections"].items():
            active.add_metric([listener], n)
        yield active

        duration = HistogramMetricFamily(
            "lbproxy_request_duration_seconds",
            "Time from a request's head to the end of its response",
            labels=["pool", "backend"],
        )
        connect = HistogramMetricFamily(
            "lbproxy_upstream_connect_duration_seconds",
            "Time to open a connection to a backend",
            labels=["pool", "backend"],
        )
        in_flight = GaugeMetricFamily(
            "lbproxy_backend_active_requests",
            "Requests in flight to a backend",
            labels=["pool", "backend"],
        )
        up = GaugeMetricFamily(
            "lbproxy_backend_up",
            "1 while a backend takes new requests (healthy, not ejected, breaker"
            " not open, not drained or disabled; or the pool is in panic)",
            labels=["pool", "backend"],
        )
        weight = GaugeMetricFamily(
            "lbproxy_backend_weight",
            "A backend's configured weight (its share while slow start ramps:"
            " lbproxy_backend_effective_weight)",
            labels=["pool", "backend"],
        )
        effective = GaugeMetricFamily(
            "lbproxy_backend_effective_weight",
            "The weight the balancer uses now",
            labels=["pool", "backend"],
        )
        backend_requests = CounterMetricFamily(
            "lbproxy_backend_requests", "Tries sent to a backend", labels=["pool", "backend"]
        )
        backend_failures = CounterMetricFamily(
            "lbproxy_backend_failures",
            "Tries that failed: connect failure, reset, timeout, invalid response",
            labels=["pool", "backend"],
        )
        ejections = CounterMetricFamily(
            "lbproxy_backend_ejections",
            "Outlier-detection ejections",
            labels=["pool", "backend"],
        )
        breaker = GaugeMetricFamily(
            "lbproxy_circuit_breaker_state",
            "0 closed, 1 open, 2 half-open",
            labels=["pool", "backend"],
        )
        checks = CounterMetricFamily(
            "lbproxy_health_checks",
            "Active health check results",
            labels=["pool", "backend", "result"],
        )
        retries = CounterMetricFamily(
            "lbproxy_retries",
            "Tries retried on another backend, by what failed",
            labels=["pool", "reason"],
        )
        panic = GaugeMetricFamily(
            "lbproxy_pool_panic", "1 while a pool is in panic routing", labels=["pool"]
        )
        queued = GaugeMetricFamily(
            "lbproxy_pool_queued_requests",
            "Requests waiting for a max_connections slot",
            labels=["pool"],
        )
        for name, pool in sorted(snap["pools"].items()):
            for label, b in pool["backends"].items():
                labels = [name, label]
                _histogram(duration, labels, b["hist"], b["hist_sum"])
                _histogram(connect, labels, b["connect_hist"], b["connect_sum"])
                in_flight.add_metric(labels, b["active"])
                up.add_metric(labels, b["up"])
                weight.add_metric(labels, b["weight"])
                effective.add_metric(labels, b["effective_weight"])
                backend_requests.add_metric(labels, b["requests"])
                backend_failures.add_metric(labels, b["failures"])
                ejections.add_metric(labels, b["ejections"])
                breaker.add_metric(labels, b["breaker"])
                if b["checked"]:
                    checks.add_metric([*labels, "pass"], b["checks_ok"])
                    checks.add_metric([*labels, "fail"], b["checks_failed"])
            for reason, n in sorted(pool["retries"].items()):
                retries.add_metric([name, reason], n)
            panic.add_metric([name], pool["panic"])
            queued.add_metric([name], pool["queued"])
        yield from (duration, connect, in_flight, up, weight, effective)
        yield from (backend_requests, backend_failures, ejections, breaker, checks, retries)
        yield from (panic, queued)

        reloads = CounterMetricFamily(
            "lbproxy_config_reloads", "Config reloads, by result", labels=["result"]
        )
        for result, n in sorted(snap["reloads"].items()):
            reloads.add_metric([result], n)
        yield reloads

        handshakes = CounterMetricFamily(
            "lbproxy_tls_handshakes",
            "TLS handshakes completed, by listener and protocol version",
            labels=["listener", "version"],
        )
        for (listener, version), n in sorted(snap["tls"].items()):
            handshakes.add_metric([listener, version], n)
        yield handshakes


class ProxyCollector:
    """A prometheus-client collector over one running Proxy (a fresh snapshot
    at every collect)."""

    def __init__(self, proxy: Proxy) -> None:
        self.proxy = proxy

    def collect(self) -> Iterator[Metric]:
        return SnapshotCollector(snapshot(self.proxy)).collect()


def render(snap: MetricsSnapshot) -> str:
    """The Prometheus text exposition of ``snap``."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(snap))
    return generate_latest(registry).decode()


def metrics_text(proxy: Proxy) -> str:
    """The Prometheus text exposition of ``proxy``'s metrics."""
    return render(snapshot(proxy))
