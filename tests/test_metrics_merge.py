"""Metrics and status across processes: ``lbproxy.metrics.snapshot/merge/render``,
``lbproxy.status_merge.merge_status`` and the dashboard's snapshot-fed
sampler, over real proxies in one event loop and over hand-built snapshots
for the pure merge rules."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import pickle
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

import lbproxy
from lbproxy.admin.dashboard import DashboardSampler, counters_from_pools, counters_from_snapshot
from lbproxy.http.pool import BUCKETS
from lbproxy.metrics import (
    BackendSnapshot,
    MetricsSnapshot,
    PoolSnapshot,
    merge,
    metrics_text,
    render,
    snapshot,
)
from lbproxy.status_merge import merge_status
from tests.support import free_port, named_backends, poll_until, running_proxy

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
NB = len(BUCKETS) + 1


def parse(text: str) -> Samples:
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            key = (s.name, tuple(sorted(s.labels.items())))
            assert key not in samples, f"series twice: {key}"
            samples[key] = s.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


BREAKER = (
    "    circuit_breaker: {failure_rate: 50%, minimum_requests: 2, window: 10s,"
    " open_duration: 30s, half_open_requests: 1}\n"
)


def config(addresses: list[str], extra: str = BREAKER) -> str:
    lines = "\n".join(f'      - {{address: "{a}"}}' for a in addresses)
    return f"""
listeners:
  - name: pub
    bind: "127.0.0.1:0"
    routes: [{{match: {{path_prefix: /}}, pool: web}}]
pools:
  web:
    balance: first
{extra}    backends:
{lines}
access_log: {{format: "off"}}
admin: {{bind: "127.0.0.1:0"}}
"""


async def handler(request: web.Request) -> web.StreamResponse:
    return web.Response(status=404 if request.path == "/missing" else 200)


async def send(session: aiohttp.ClientSession, port: int, path: str, n: int) -> None:
    for _ in range(n):
        async with session.get(f"http://127.0.0.1:{port}{path}") as r:
            await r.read()


@contextlib.asynccontextmanager
async def two_proxies() -> AsyncIterator[tuple[str, str, lbproxy.Proxy, int, lbproxy.Proxy, int]]:
    """Two proxies over [a refused address, a good backend], balance `first`
    (so every request first fails on the refused one until its breaker
    opens), each with its own listener."""
    refused = f"127.0.0.1:{free_port()}"
    async with named_backends(1, handler) as (good,):
        text = config([refused, good.address])
        async with running_proxy(text) as (a, pa), running_proxy(text) as (b, pb):
            yield refused, good.address, a, pa, b, pb


# --- snapshot / merge / render over two real proxies ------------------------------------


async def test_merged_metrics_of_two_proxies_are_their_sums() -> None:
    async with two_proxies() as (refused, good, a, pa, b, pb):
        async with aiohttp.ClientSession() as session:
            await send(session, pa, "/", 4)
            await send(session, pa, "/missing", 1)
            # b tries `refused` once: under minimum_requests, its breaker stays closed.
            await send(session, pb, "/missing", 1)
        # One open client connection on each proxy.
        conns = [await asyncio.open_connection("127.0.0.1", p) for p in (pa, pb)]
        try:
            await poll_until(
                lambda: all(len(p.listeners["pub"].connections) == 1 for p in (a, b)),
                5,
                "a connection on each proxy",
            )
            sa, sb = snapshot(a), snapshot(b)
        finally:
            for _, w in conns:
                w.close()
        ma, mb = parse(render(sa)), parse(render(sb))
        m = parse(render(merge([sa, sb])))
    web_ = {"pool": "web"}
    route = {"listener": "pub", "route": "/", "pool": "web", "backend": good}
    # Requests by code class: 4 + 1 and 0 + 1.
    assert value(m, "lbproxy_requests_total", code_class="2xx", **route) == 4
    assert value(m, "lbproxy_requests_total", code_class="4xx", **route) == 2
    # The histogram, bucket-wise, and its count and sum.
    assert value(m, "lbproxy_request_duration_seconds_count", backend=good, **web_) == 6
    inf = {"le": "+Inf", "backend": good, **web_}
    assert value(m, "lbproxy_request_duration_seconds_bucket", **inf) == 6
    for le in ("0.001", "0.01", "0.1"):
        labels = {"le": le, "backend": good, **web_}
        assert value(m, "lbproxy_request_duration_seconds_bucket", **labels) == value(
            ma, "lbproxy_request_duration_seconds_bucket", **labels
        ) + value(mb, "lbproxy_request_duration_seconds_bucket", **labels)
    assert value(m, "lbproxy_request_duration_seconds_sum", backend=good, **web_) == pytest.approx(
        value(ma, "lbproxy_request_duration_seconds_sum", backend=good, **web_)
        + value(mb, "lbproxy_request_duration_seconds_sum", backend=good, **web_)
    )
    # Per-backend counters: every request reached `good` once.
    assert value(m, "lbproxy_backend_requests_total", backend=good, **web_) == 6
    for name in ("lbproxy_backend_failures_total", "lbproxy_retries_total"):
        labels = {"backend": refused} if "backend" in name else {"reason": "connect_failure"}
        got = value(m, name, **labels, **web_)
        assert got == value(ma, name, **labels, **web_) + value(mb, name, **labels, **web_)
        assert got >= 3  # a: at least 2 (then its breaker opens), b: 1
    # Breaker: open in a, closed in b; the merge says open, up by max.
    breaker = {"backend": refused, **web_}
    assert value(ma, "lbproxy_circuit_breaker_state", **breaker) == 1
    assert value(mb, "lbproxy_circuit_breaker_state", **breaker) == 0
    assert value(m, "lbproxy_circuit_breaker_state", **breaker) == 1
    assert value(ma, "lbproxy_backend_up", **breaker) == 0
    assert value(mb, "lbproxy_backend_up", **breaker) == 1
    assert value(m, "lbproxy_backend_up", **breaker) == 1
    assert value(m, "lbproxy_backend_weight", **breaker) == 1
    # Open client connections: one on each.
    assert value(m, "lbproxy_active_connections", listener="pub") == 2


async def test_snapshots_pickle_and_one_merged_is_the_same_text() -> None:
    async with two_proxies() as (_, _good, a, pa, _b, _pb):
        async with aiohttp.ClientSession() as session:
            await send(session, pa, "/", 3)
            await send(session, pa, "/missing", 1)
        with pytest.raises(lbproxy.ConfigError):
            await a.reload()  # not started from a file: one failed reload
        s = snapshot(a)
        back = pickle.loads(pickle.dumps(s))
        assert back == s
        assert render(back) == render(s)
        # The same text as metrics_text (the proxy is idle: nothing moves in between).
        assert render(merge([s])) == render(s) == metrics_text(a)
        # Plain data only.
        assert _plain(s)
        m = parse(render(merge([s, back])))
        assert value(m, "lbproxy_config_reloads_total", result="failure") == 2
        assert value(m, "lbproxy_config_reloads_total", result="success") == 0


def _plain(x: object) -> bool:
    if isinstance(x, dict):
        return all(_plain(k) and _plain(v) for k, v in x.items())
    if isinstance(x, list | tuple):
        return all(_plain(v) for v in x)
    return isinstance(x, str | int | float | bool)


# --- pure merge rules over hand-built snapshots -------------------------------------------


def backend(**over: Any) -> BackendSnapshot:
    b: BackendSnapshot = {
        "hist": [0] * NB,
        "hist_sum": 0.0,
        "connect_hist": [0] * NB,
        "connect_sum": 0.0,
        "active": 0,
        "up": 1,
        "weight": 1,
        "effective_weight": 1.0,
        "requests": 0,
        "failures": 0,
        "ejections": 0,
        "breaker": 0,
        "checked": False,
        "checks_ok": 0,
        "checks_failed": 0,
    }
    b.update(over)  # type: ignore[typeddict-item]
    return b


def pool(backends: dict[str, BackendSnapshot], **over: Any) -> PoolSnapshot:
    p: PoolSnapshot = {"backends": backends, "retries": {}, "panic": 0, "queued": 0}
    p.update(over)  # type: ignore[typeddict-item]
    return p


def snap(pools: dict[str, PoolSnapshot], **over: Any) -> MetricsSnapshot:
    s: MetricsSnapshot = {
        "requests": {},
        "connections": {},
        "pools": pools,
        "reloads": {"success": 0, "failure": 0},
        "tls": {},
    }
    s.update(over)  # type: ignore[typeddict-item]
    return s


@pytest.mark.parametrize(
    ("states", "worst"),
    [
        ((0, 0), 0),
        ((0, 2), 2),
        ((2, 1), 1),
        ((1, 0, 2), 1),
        ((2, 2, 0), 2),
    ],
)
def test_breaker_is_the_worst_state(states: tuple[int, ...], worst: int) -> None:
    merged = merge([snap({"p": pool({"x": backend(breaker=s)})}) for s in states])
    assert merged["pools"]["p"]["backends"]["x"]["breaker"] == worst


def test_sums_maxes_and_partial_presence() -> None:
    h1 = [1] + [0] * (NB - 1)
    h2 = [2, 3] + [0] * (NB - 2)
    one = snap(
        {
            "p": pool(
                {
                    "x": backend(
                        hist=h1, hist_sum=0.5, requests=3, failures=1, up=0, active=2,
                        weight=2, effective_weight=0.2, checked=True, checks_ok=4,
                    ),
                    "old": backend(requests=7),
                },
                retries={"connect_failure": 2},
                panic=1,
                queued=1,
            ),
            "gone": pool({"g": backend(requests=1)}),
        },
        requests={("pub", "/", "p", "x", "2xx"): 3},
        connections={"pub": 1},
        reloads={"success": 1, "failure": 0},
    )  # fmt: skip
    two = snap(
        {
            "p": pool(
                {
                    "x": backend(
                        hist=h2, hist_sum=1.5, requests=5, failures=2, up=1, active=1,
                        weight=3, effective_weight=3.0, ejections=1, checks_failed=1,
                    ),
                    "new": backend(requests=2),
                },
                retries={"connect_failure": 1, "timeout": 4},
                queued=2,
            ),
        },
        requests={("pub", "/", "p", "x", "2xx"): 4, ("pub", "/", "p", "x", "5xx"): 1},
        connections={"pub": 2, "admin": 1},
        reloads={"success": 1, "failure": 2},
    )  # fmt: skip
    before = copy.deepcopy((one, two))
    m = merge([one, two])
    assert (one, two) == before  # inputs untouched
    x = m["pools"]["p"]["backends"]["x"]
    assert x["hist"] == [3, 3] + [0] * (NB - 2)
    assert x["hist_sum"] == 2.0
    assert (x["requests"], x["failures"], x["active"], x["ejections"]) == (8, 3, 3, 1)
    assert (x["up"], x["weight"], x["effective_weight"]) == (1, 3, 3.0)
    assert (x["checked"], x["checks_ok"], x["checks_failed"]) == (True, 4, 1)
    p = m["pools"]["p"]
    assert list(p["backends"]) == ["x", "old", "new"]
    assert p["backends"]["old"]["requests"] == 7 and p["backends"]["new"]["requests"] == 2
    assert p["retries"] == {"connect_failure": 3, "timeout": 4}
    assert (p["panic"], p["queued"]) == (1, 3)
    assert m["pools"]["gone"]["backends"]["g"]["requests"] == 1
    assert m["requests"] == {("pub", "/", "p", "x", "2xx"): 7, ("pub", "/", "p", "x", "5xx"): 1}
    assert m["connections"] == {"pub": 3, "admin": 1}
    assert m["reloads"] == {"success": 2, "failure": 2}
    assert merge([]) == snap({}, reloads={})
    # And the text format of the merge.
    t = parse(render(m))
    assert value(t, "lbproxy_health_checks_total", pool="p", backend="x", result="pass") == 4
    assert value(t, "lbproxy_pool_queued_requests", pool="p") == 3
    assert (
        value(t, "lbproxy_request_duration_seconds_bucket", pool="p", backend="x", le="0.0001") == 3
    )
    assert value(t, "lbproxy_request_duration_seconds_count", pool="p", backend="x") == 6


# --- merge_status -----------------------------------------------------------------------


def st_backend(address: str, **over: Any) -> dict[str, Any]:
    b = {
        "address": address,
        "weight": 1,
        "effective_weight": 1.0,
        "backup": False,
        "active_connections": 0,
        "idle_connections": 0,
        "requests_total": 0,
        "failures_total": 0,
        "state": "healthy",
        "breaker": "closed",
    }
    b.update(over)
    return b


def status(backends: list[dict[str, Any]], **pool_over: Any) -> dict[str, Any]:
    p = {"balance": "round_robin", "panic": False, "in_flight": 0, "queued": 0}
    p.update(pool_over)
    return {
        "listeners": [{"name": "pub", "bind": "127.0.0.1:8080", "active_connections": 0}],
        "pools": {"web": {**p, "backends": backends}},
    }


def merged_backend(control: dict[str, Any], workers: list[dict[str, Any]], addr: str) -> Any:
    out = merge_status(control, workers)
    return next(b for b in out["pools"]["web"]["backends"] if b["address"] == addr)


@pytest.mark.parametrize(
    ("control", "workers", "active", "expected"),
    [
        ("healthy", ["healthy", "healthy"], (0, 0), "healthy"),
        ("healthy", ["healthy", "ejected"], (0, 0), "ejected"),
        ("unhealthy", ["ejected", "healthy"], (0, 0), "unhealthy"),
        ("disabled", ["healthy", "ejected"], (1, 0), "disabled"),
        # The control serves nothing: a drained backend reads "disabled" there.
        ("disabled", ["draining", "disabled"], (2, 0), "draining"),
        ("draining", ["healthy", "healthy"], (0, 1), "draining"),
        ("draining", ["draining", "draining"], (0, 0), "disabled"),
        ("disabled", ["disabled", "disabled"], (0, 0), "disabled"),
        ("healthy", ["draining", "disabled"], (1, 0), "healthy"),  # admin state: the control's
    ],
)
def test_status_state_rules(
    control: str, workers: list[str], active: tuple[int, int], expected: str
) -> None:
    c = status([st_backend("a", state=control)])
    ws = [
        status([st_backend("a", state=s, active_connections=n)])
        for s, n in zip(workers, active, strict=True)
    ]
    assert merged_backend(c, ws, "a")["state"] == expected


def test_status_sums_breakers_and_layout() -> None:
    control = status(
        [
            st_backend("a", weight=3, effective_weight=1.5),
            st_backend("b", backup=True),
            st_backend("new"),
        ],
        panic=False,
        balance="least_connections",
    )
    control["listeners"][0]["active_connections"] = 0
    w1 = status(
        [
            st_backend("a", active_connections=2, idle_connections=1, requests_total=10,
                       failures_total=1, breaker="half_open", weight=9, effective_weight=9.0),
            st_backend("b", requests_total=1),
            st_backend("stale", requests_total=100),
        ],
        panic=True,
        in_flight=2,
        queued=1,
    )  # fmt: skip
    w2 = status(
        [
            st_backend("a", active_connections=1, requests_total=5, failures_total=2,
                       breaker="open"),
            st_backend("b", requests_total=2, breaker="half_open"),
        ],
        in_flight=1,
        queued=4,
    )  # fmt: skip
    w1["listeners"][0]["active_connections"] = 3
    w2["listeners"][0]["active_connections"] = 4
    w2["pools"]["only_in_worker"] = w2["pools"]["web"]
    before = copy.deepcopy((control, w1, w2))
    out = merge_status(control, [w1, w2])
    assert (control, w1, w2) == before
    assert out["workers"] == 2
    assert out["listeners"] == [{"name": "pub", "bind": "127.0.0.1:8080", "active_connections": 7}]
    assert list(out["pools"]) == ["web"]
    p = out["pools"]["web"]
    assert (p["balance"], p["panic"], p["in_flight"], p["queued"]) == (
        "least_connections",
        True,
        3,
        5,
    )
    a, b, new = p["backends"]
    assert a == st_backend(
        "a",
        weight=3,
        effective_weight=1.5,
        active_connections=3,
        idle_connections=1,
        requests_total=15,
        failures_total=3,
        breaker="open",
    )
    assert (b["backup"], b["requests_total"], b["breaker"]) == (True, 3, "half_open")
    assert new == st_backend("new")  # in no worker yet: zeros
    # No workers: the control's own numbers become zeros, its breaker stays.
    alone = merge_status(status([st_backend("a", breaker="open")]), [])
    assert alone["workers"] == 0
    assert alone["pools"]["web"]["backends"][0]["breaker"] == "open"


async def test_status_of_a_control_and_two_real_workers() -> None:
    refused = f"127.0.0.1:{free_port()}"
    async with named_backends(1, handler) as (good,):
        text = config([refused, good.address], extra="")
        async with (
            running_proxy(text) as (control, _),
            running_proxy(text) as (a, pa),
            running_proxy(text) as (b, pb),
        ):
            async with aiohttp.ClientSession() as session:
                await send(session, pa, "/", 2)
                await send(session, pb, "/", 3)
            control.disable("web", refused)
            out = merge_status(control.status(), [a.status(), b.status()])
    assert out["workers"] == 2
    bad, ok = out["pools"]["web"]["backends"]
    assert (ok["address"], ok["requests_total"], ok["state"]) == (good.address, 5, "healthy")
    assert (bad["address"], bad["failures_total"], bad["state"]) == (refused, 5, "disabled")
    assert out["listeners"][0]["active_connections"] == 0


# --- the dashboard over merged snapshots --------------------------------------------------


async def test_sampler_over_merged_snapshots() -> None:
    async with two_proxies() as (_, good, a, pa, b, pb):
        sampler = DashboardSampler(
            lambda: counters_from_snapshot(merge([snapshot(a), snapshot(b)]))
        )
        assert sampler.sample(now=0.0) is None
        async with aiohttp.ClientSession() as session:
            await send(session, pa, "/", 3)
            await send(session, pb, "/", 2)
        s = sampler.sample(now=1.0)
        assert s is not None
        d = s.deltas[("web", good)]
        assert d.requests == 5 and sum(d.hist) == 5 and d.failures == 0
        # The same counters as the pools-based source, summed.
        merged = counters_from_snapshot(merge([snapshot(a), snapshot(b)]))
        pa_c, pb_c = counters_from_pools(a.pools), counters_from_pools(b.pools)
        for key, (req, fail, hist) in merged.items():
            assert req == pa_c[key][0] + pb_c[key][0]
            assert fail == pa_c[key][1] + pb_c[key][1]
            assert list(hist) == [x + y for x, y in zip(pa_c[key][2], pb_c[key][2], strict=True)]
