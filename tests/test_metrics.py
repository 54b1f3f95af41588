"""/metrics: values after a known number of requests, errors, retries and
state changes, read back with prometheus-client's own parser."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

import lbproxy
from tests.support import free_port, named_backends, running_proxy

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(proxy: lbproxy.Proxy) -> Samples:
    samples: Samples = {}
    for family in text_string_to_metric_families(proxy.metrics_text()):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def _config(addresses: list[str], extra: str = "", admin: bool = True) -> str:
    lines = "\n".join(f'      - {{address: "{a}"}}' for a in addresses)
    admin_line = 'admin: {bind: "127.0.0.1:0"}\n' if admin else ""
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
{admin_line}"""


async def _get(port: int, path: str = "/") -> int:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{port}{path}") as r:
            await r.read()
            return r.status


async def test_requests_by_class_durations_and_retries() -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(status=404 if request.path == "/missing" else 200)

    refused = f"127.0.0.1:{free_port()}"
    async with named_backends(1, handler) as (good,):
        # `first`: every request tries the refusing backend, then retries on the good one.
        async with running_proxy(_config([refused, good.address])) as (proxy, port):
            for _ in range(5):
                assert await _get(port) == 200
            for _ in range(2):
                assert await _get(port, "/missing") == 404
            m = scrape(proxy)
    labels = {"listener": "pub", "route": "/", "pool": "web", "backend": good.address}
    assert value(m, "lbproxy_requests_total", code_class="2xx", **labels) == 5
    assert value(m, "lbproxy_requests_total", code_class="4xx", **labels) == 2
    assert value(m, "lbproxy_retries_total", pool="web", reason="connect_failure") == 7
    assert value(m, "lbproxy_backend_failures_total", pool="web", backend=refused) == 7
    assert value(m, "lbproxy_backend_requests_total", pool="web", backend=good.address) == 7
    count = value(m, "lbproxy_request_duration_seconds_count", pool="web", backend=good.address)
    assert count == 7
    assert (
        value(
            m,
            "lbproxy_request_duration_seconds_bucket",
            pool="web",
            backend=good.address,
            le="+Inf",
        )
        == 7
    )
    assert (
        0 < value(m, "lbproxy_request_duration_seconds_sum", pool="web", backend=good.address) < 7
    )
    assert (
        value(
            m, "lbproxy_upstream_connect_duration_seconds_count", pool="web", backend=good.address
        )
        >= 1
    )


async def test_backend_state_gauges_and_reload_counts() -> None:
    async with named_backends(2) as bs:
        addresses = [b.address for b in bs]
        extra = (
            "    circuit_breaker: {failure_rate: 50%, minimum_requests: 2, window: 10s,"
            " open_duration: 30s, half_open_requests: 1}\n"
        )
        text = _config(addresses, extra)
        async with running_proxy(text) as (proxy, _):
            proxy.drain("web", addresses[0])
            m = scrape(proxy)
            assert value(m, "lbproxy_backend_up", pool="web", backend=addresses[0]) == 0
            assert value(m, "lbproxy_backend_up", pool="web", backend=addresses[1]) == 1
            assert value(m, "lbproxy_circuit_breaker_state", pool="web", backend=addresses[1]) == 0
            assert value(m, "lbproxy_active_connections", listener="pub") == 0
            await proxy.reload(lbproxy.parse_config(text))
            with pytest.raises(lbproxy.ConfigError):
                await proxy.reload()  # not started from a file
            m = scrape(proxy)
            assert value(m, "lbproxy_config_reloads_total", result="success") == 1
            assert value(m, "lbproxy_config_reloads_total", result="failure") == 1


async def test_health_check_results_are_counted() -> None:
    async def sick(request: web.Request) -> web.StreamResponse:
        return web.Response(status=500 if request.path == "/healthz" else 200)

    async with named_backends(1, sick) as (bad,), named_backends(1) as (good,):
        extra = "    health_check: {path: /healthz, interval: 100ms, timeout: 80ms}\n"
        async with running_proxy(_config([bad.address, good.address], extra)) as (proxy, _):
            await asyncio.sleep(0.45)
            m = scrape(proxy)
    assert (
        value(m, "lbproxy_health_checks_total", pool="web", backend=bad.address, result="fail") >= 3
    )
    assert (
        value(m, "lbproxy_health_checks_total", pool="web", backend=good.address, result="pass")
        >= 3
    )
    assert value(m, "lbproxy_backend_up", pool="web", backend=bad.address) == 0


async def test_without_an_admin_api_the_data_path_counts_nothing() -> None:
    async with named_backends(1) as (b,):
        async with running_proxy(_config([b.address], admin=False)) as (proxy, port):
            assert await _get(port) == 200
            assert all(not lr.counts for lr in proxy.listeners.values())
            assert sum(proxy.pools["web"].backends[0].hist) == 0
