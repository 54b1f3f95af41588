"""Run-time changes through the Proxy (what the admin API calls): drain,
disable, enable, add and remove backends; state that survives a reload."""

from __future__ import annotations

import asyncio
from collections import Counter

import aiohttp
import pytest
from aiohttp import web

import lbproxy
from lbproxy.proxy import Conflict
from tests.support import named_backends, running_proxy, simple_config


async def _name(session: aiohttp.ClientSession, port: int) -> str:
    async with session.get(f"http://127.0.0.1:{port}/") as r:
        assert r.status == 200
        return r.headers["X-Backend"]


def _backend(proxy: lbproxy.Proxy, address: str) -> dict[str, object]:
    backends = proxy.status()["pools"]["web"]["backends"]
    return next(b for b in backends if b["address"] == address)


async def test_drain_with_nothing_in_flight_is_disabled_and_enable_brings_it_back() -> None:
    async with named_backends(2) as bs:
        async with running_proxy(simple_config(*[b.address for b in bs])) as (proxy, port):
            async with aiohttp.ClientSession() as session:
                assert [await _name(session, port) for _ in range(2)] == ["b0", "b1"]
                proxy.drain("web", bs[0].address)
                assert _backend(proxy, bs[0].address)["state"] == "disabled"  # nothing in flight
                names = Counter([await _name(session, port) for _ in range(6)])
                assert names == {"b1": 6}
                proxy.enable("web", bs[0].address)
                names = Counter([await _name(session, port) for _ in range(6)])
                assert names == {"b0": 3, "b1": 3}
                assert _backend(proxy, bs[0].address)["state"] == "healthy"


async def test_draining_is_reported_while_requests_are_in_flight() -> None:
    release = asyncio.Event()

    async def hold(request: web.Request) -> web.StreamResponse:
        await release.wait()
        return web.Response(headers={"X-Backend": "b"})

    async with named_backends(1, hold) as bs, named_backends(1) as others:
        addresses = [bs[0].address, others[0].address]
        async with running_proxy(simple_config(*addresses)) as (proxy, port):
            async with aiohttp.ClientSession() as session:
                held = asyncio.create_task(_name(session, port))  # round robin: the holder
                for _ in range(100):
                    if _backend(proxy, addresses[0])["active_connections"] == 1:
                        break
                    await asyncio.sleep(0.01)
                proxy.drain("web", addresses[0])
                assert _backend(proxy, addresses[0])["state"] == "draining"
                assert await _name(session, port) == "b0"  # the other backend's name
                release.set()
                assert await held == "b"
                assert _backend(proxy, addresses[0])["state"] == "disabled"


async def test_disable_and_unknown_names() -> None:
    async with named_backends(2) as bs:
        async with running_proxy(simple_config(*[b.address for b in bs])) as (proxy, port):
            proxy.disable("web", bs[1].address)
            assert _backend(proxy, bs[1].address)["state"] == "disabled"
            async with aiohttp.ClientSession() as session:
                assert {await _name(session, port) for _ in range(4)} == {"b0"}
            with pytest.raises(KeyError, match="no pool"):
                proxy.drain("nope", bs[0].address)
            with pytest.raises(KeyError, match="no backend"):
                proxy.enable("web", "127.0.0.1:1")


async def test_add_and_remove_backends_at_run_time() -> None:
    async with named_backends(3) as bs:
        async with running_proxy(simple_config(bs[0].address)) as (proxy, port):
            async with aiohttp.ClientSession() as session:
                proxy.add_backend("web", bs[1].address, 1)
                proxy.add_backend("web", bs[2].address, 2)
                names = Counter([await _name(session, port) for _ in range(8)])
                assert set(names) == {"b0", "b1", "b2"}
                with pytest.raises(Conflict):
                    proxy.add_backend("web", bs[1].address)
                with pytest.raises(ValueError, match="not host:port"):
                    proxy.add_backend("web", "localhost")
                with pytest.raises(ValueError, match="weight"):
                    proxy.add_backend("web", "127.0.0.1:9", 1001)
                with pytest.raises(KeyError):
                    proxy.add_backend("nope", "127.0.0.1:9")
                proxy.remove_backend("web", bs[0].address)
                for _ in range(100):
                    if len(proxy.status()["pools"]["web"]["backends"]) == 2:
                        break
                    await asyncio.sleep(0.02)
                left = [b["address"] for b in proxy.status()["pools"]["web"]["backends"]]
                assert left == [bs[1].address, bs[2].address]
                assert {await _name(session, port) for _ in range(6)} == {"b1", "b2"}
                proxy.remove_backend("web", bs[1].address)
                await asyncio.sleep(0.2)
                with pytest.raises(Conflict, match="last backend"):
                    proxy.remove_backend("web", bs[2].address)


async def test_health_carries_over_a_reload() -> None:
    async def sick(request: web.Request) -> web.StreamResponse:
        if request.path == "/healthz":
            return web.Response(status=503)
        return web.Response(headers={"X-Backend": "sick"})

    async with named_backends(1, sick) as bad, named_backends(1) as good:
        extra = (
            "    health_check: {path: /healthz, interval: 100ms, timeout: 80ms,"
            " unhealthy_threshold: 1, healthy_threshold: 3}\n"
            "    panic_threshold: 0\n"
        )
        text = simple_config(bad[0].address, good[0].address, extra_pool=extra)
        async with running_proxy(text) as (proxy, _):
            for _ in range(100):
                if _backend(proxy, bad[0].address)["state"] == "unhealthy":
                    break
                await asyncio.sleep(0.02)
            await proxy.reload(lbproxy.parse_config(text))
            # Still down right after the reload: it must pass 3 checks to come back.
            assert _backend(proxy, bad[0].address)["state"] == "unhealthy"
