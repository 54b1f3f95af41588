"""Prometheus metrics: read from the proxy's own counters at scrape time.

The data path only increments plain integers (per backend: requests,
failures, a latency histogram's buckets; per listener: finished requests by
route, backend and status class), so counting costs a dict update and a
bisect per request and nothing else. This collector turns them into metric
families when ``/metrics`` is asked for; prometheus-client does the text
format. Names are those of CONFIG.md, all prefixed ``lbproxy_``.

Series of backends that a reload or an admin change removed are folded into
the current ones by label, so a counter never appears twice; histograms and
per-backend counters of a backend start again from zero when its pool is
rebuilt by a file reload, which Prometheus reads as a counter reset.
"""

from __future__ import annotations

from collections.abc import Iterator
from time import monotonic
from typing import TYPE_CHECKING

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
    from lbproxy.config.model import Route
    from lbproxy.http.pool import BackendState
    from lbproxy.proxy import Proxy

CODE_CLASSES = {0: "none", 1: "1xx", 2: "2xx", 3: "3xx", 4: "4xx", 5: "5xx"}
BREAKER_STATES = {"closed": 0, "open": 1, "half_open": 2}


def _histogram(
    family: HistogramMetricFamily, labels: list[str], counts: list[int], total: float
) -> None:
    cumulative = 0
    buckets: list[tuple[str, float]] = []
    for bound, count in zip((*map(str, BUCKETS), "+Inf"), counts, strict=True):
        cumulative += count
        buckets.append((bound, cumulative))
    family.add_metric(labels, buckets, total)


class ProxyCollector:
    """A prometheus-client collector over one running Proxy."""

    def __init__(self, proxy: Proxy) -> None:
        self.proxy = proxy

    def collect(self) -> Iterator[Metric]:
        proxy = self.proxy
        now_pools = proxy.pools
        requests = CounterMetricFamily(
            "lbproxy_requests",
            "Requests answered, by listener, route, pool, backend and status class"
            " (code_class none: the client left before an answer)",
            labels=["listener", "route", "pool", "backend", "code_class"],
        )
        totals: dict[tuple[str, str, str, str, str], int] = {}
        for lr in proxy.listeners.values():
            for (route, backend, cls), n in list(lr.counts.items()):
                b: BackendState | None = backend  # type: ignore[assignment]
                r: Route | None = route  # type: ignore[assignment]
                key = (
                    lr.name,
                    route_label(r) or "",
                    r.pool if r is not None else "",
                    b.label if b is not None else "",
                    CODE_CLASSES.get(cls, "none"),
                )
                totals[key] = totals.get(key, 0) + n
        for key, n in sorted(totals.items()):
            requests.add_metric(list(key), n)
        yield requests

        active = GaugeMetricFamily(
            "lbproxy_active_connections", "Open client connections", labels=["listener"]
        )
        for lr in proxy.listeners.values():
            active.add_metric([lr.name], len(lr.connections))
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
        now = monotonic()
        for name, pool in sorted(now_pools.items()):
            for b in pool.backends:
                labels = [name, b.label]
                _histogram(duration, labels, b.hist, b.hist_sum)
                _histogram(connect, labels, b.connect_hist, b.connect_sum)
                in_flight.add_metric(labels, b.active)
                up.add_metric(labels, 1 if b.usable and b.weight > 0 else 0)
                weight.add_metric(labels, b.weight)
                effective.add_metric(labels, b.effective_weight() / WEIGHT_UNIT)
                backend_requests.add_metric(labels, b.requests_total)
                backend_failures.add_metric(labels, b.failures_total)
                ejections.add_metric(labels, b.ejections_total)
                state = b.breaker.state(now) if b.breaker is not None else "closed"
                breaker.add_metric(labels, BREAKER_STATES[state])
                if b.health is not None:
                    checks.add_metric([*labels, "pass"], b.checks_ok)
                    checks.add_metric([*labels, "fail"], b.checks_failed)
            for reason, n in sorted(pool.retries_by_reason.items()):
                retries.add_metric([name, reason], n)
            panic.add_metric([name], 1 if pool.panic else 0)
            queued.add_metric([name], len(pool.pending))
        yield from (duration, connect, in_flight, up, weight, effective)
        yield from (backend_requests, backend_failures, ejections, breaker, checks, retries)
        yield from (panic, queued)

        reloads = CounterMetricFamily(
            "lbproxy_config_reloads", "Config reloads, by result", labels=["result"]
        )
        for result, n in sorted(proxy.reloads.items()):
            reloads.add_metric([result], n)
        yield reloads


def metrics_text(proxy: Proxy) -> str:
    """The Prometheus text exposition of ``proxy``'s metrics."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ProxyCollector(proxy))
    return generate_latest(registry).decode()
