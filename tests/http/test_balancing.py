"""The `first` and `random` balancers end to end, with real backends."""

from __future__ import annotations

from collections import Counter

import aiohttp

from tests.support import named_backends, running_proxy


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
