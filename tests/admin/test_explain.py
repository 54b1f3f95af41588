"""GET /api/explain: where a request would go and why the other backends would not."""

from __future__ import annotations

from typing import Any

import aiohttp

from tests.support import named_backends, running_proxy


def _config(addresses: list[str], balance: str = "round_robin", extra: str = "") -> str:
    lines = "\n".join(f'      - {{address: "{a}"}}' for a in addresses)
    return f"""
listeners:
  - name: pub
    bind: "127.0.0.1:0"
    routes:
      - {{match: {{path_prefix: /api, headers: {{x-canary: "1"}}}}, pool: canary}}
      - {{match: {{path_prefix: /api}}, pool: web}}
pools:
  web:
    balance: {balance}
{extra}    backends:
{lines}
      - {{address: "127.0.0.1:1", backup: true}}
  canary:
    backends: [{{address: "127.0.0.1:2"}}]
access_log: {{format: "off"}}
admin: {{bind: "127.0.0.1:0"}}
"""


async def _explain(port: int, **params: Any) -> tuple[int, dict[str, Any]]:
    query: list[tuple[str, str]] = []
    for k, v in params.items():
        for item in v if isinstance(v, list) else [v]:
            query.append((k, item))
    async with aiohttp.ClientSession() as s:
        async with s.get(f"http://127.0.0.1:{port}/api/explain", params=query) as r:
            return r.status, await r.json()


async def test_explains_route_candidates_and_reasons() -> None:
    async with named_backends(3) as bs:
        addresses = [b.address for b in bs]
        async with running_proxy(_config(addresses)) as (proxy, _):
            assert proxy.admin is not None
            port = proxy.admin.bound_port()
            proxy.drain("web", addresses[1])
            proxy.set_weight("web", addresses[2], 0)
            status, answer = await _explain(port, path="/api/users", host="example.com")
    assert status == 200
    assert answer["route"] == "/api" and answer["pool"] == "web"
    assert answer["candidates"] == [addresses[0]]
    why = {b["address"]: b.get("why_not") for b in answer["backends"]}
    assert why[addresses[0]] is None
    assert why[addresses[1]] == "draining"
    assert why[addresses[2]] == "weight 0"
    assert why["127.0.0.1:1"] == "backup: used only while no primary can be picked"
    assert answer["decision"] == "round_robin picks among the candidates"


async def test_header_routes_no_route_and_bad_calls() -> None:
    async with named_backends(1) as bs:
        async with running_proxy(_config([bs[0].address])) as (proxy, _):
            assert proxy.admin is not None
            port = proxy.admin.bound_port()
            _, canary = await _explain(port, path="/api/x", header="X-Canary: 1")
            _, none = await _explain(port, path="/other")
            bad_path = await _explain(port, path="nope")
            bad_header = await _explain(port, path="/api", header="no-colon")
            bad_listener = await _explain(port, path="/api", listener="nope")
    assert canary["pool"] == "canary"
    assert none["route"] is None and none["decision"].startswith("404")
    assert bad_path[0] == 422 and bad_header[0] == 422 and bad_listener[0] == 404


async def test_consistent_hash_names_the_key_owner_and_matches_traffic() -> None:
    async with named_backends(3) as bs:
        addresses = [b.address for b in bs]
        config = _config(addresses, "consistent_hash", "    hash_key: header:X-User\n")
        async with running_proxy(config) as (proxy, proxy_port):
            assert proxy.admin is not None
            port = proxy.admin.bound_port()
            async with aiohttp.ClientSession() as s:
                for user in ("alice", "bob", "carol"):
                    _, answer = await _explain(port, path="/api", header=f"X-User: {user}")
                    assert answer["hash_key"] == user
                    async with s.get(
                        f"http://127.0.0.1:{proxy_port}/api", headers={"X-User": user}
                    ) as r:
                        served_by = r.headers["X-Backend"]
                    owner = answer["key_owner"]
                    assert served_by == f"b{addresses.index(owner)}"
            _, keyless = await _explain(port, path="/api")
    assert keyless["hash_key"] is None
    assert keyless["decision"] == "no header:x-user in the request: round robin"
