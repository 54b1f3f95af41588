"""The `first`, `random` and `power_of_two` balancers end to end, with real backends."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter

import aiohttp
from aiohttp import web

from tests.support import BackendServer, named_backends, running_proxy

NAME = web.AppKey("name", str)


def _config(balance: str, addresses: list[str], weights: list[int]) -> str:
    lines = "\n".join(
        f'      - {{address: "{a}", weight: {w}}}' for a, w in zip(addresses, weights, strict=True)
    )
    return f"""
listeners:
  - name: t
    bind: "127.0.0.1:0"
    routes: [{{match: {{path_prefix: /}}, pool: web}}]
pools:
  web:
    balance: {balance}
    backends:
{lines}
access_log: {{format: "off"}}
"""


async def _names(port: int, count: int) -> list[str]:
    async with aiohttp.ClientSession() as session:
        names = []
        for _ in range(count):
            async with session.get(f"http://127.0.0.1:{port}/") as r:
                assert r.status == 200
                names.append(r.headers["X-Backend"])
        return names


async def test_first_sends_everything_to_the_first_backend() -> None:
    async with named_backends(3) as bs:
        config = _config("first", [b.address for b in bs], [1, 5, 5])
        async with running_proxy(config) as (_, port):
            names = await _names(port, 12)
    assert names == ["b0"] * 12


async def test_random_follows_the_weights() -> None:
    async with named_backends(3) as bs:
        config = _config("random", [b.address for b in bs], [1, 1, 8])
        async with running_proxy(config) as (_, port):
            counts = Counter(await _names(port, 300))
    # Expected 30/30/240; the bounds are many standard deviations wide.
    assert set(counts) == {"b0", "b1", "b2"}
    assert counts["b2"] > 190 and counts["b0"] < 70 and counts["b1"] < 70


async def test_power_of_two_sends_a_slow_backend_fewer_requests() -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        name = request.app[NAME]
        if name == "slow":
            await asyncio.sleep(0.2)
        return web.Response(text=name, headers={"X-Backend": name})

    async with contextlib.AsyncExitStack() as stack:
        servers = []
        for name in ("slow", "fast1", "fast2"):
            app = web.Application()
            app[NAME] = name
            app.router.add_get("/", handler)
            server = BackendServer(app)
            await server.start()
            stack.push_async_callback(server.stop)
            servers.append(server)
        config = _config("power_of_two", [s.address for s in servers], [1, 1, 1])
        port = (await stack.enter_async_context(running_proxy(config)))[1]
        counts: Counter[str] = Counter()
        async with aiohttp.ClientSession() as session:

            async def worker() -> None:
                for _ in range(6):
                    async with session.get(f"http://127.0.0.1:{port}/") as r:
                        counts[r.headers["X-Backend"]] += 1

            # 16 clients at once: the slow backend holds its requests, so its
            # count of requests in flight stays above the fast ones'.
            await asyncio.wait_for(asyncio.gather(*(worker() for _ in range(16))), 30)
    assert sum(counts.values()) == 96
    # Round robin would give it a third (32); two choices keep it well below.
    assert counts["slow"] < 20, counts
