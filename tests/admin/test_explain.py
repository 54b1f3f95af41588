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


def _targets_config(addresses: list[str]) -> str:
    a, b, c = addresses
    return f"""
listeners:
  - name: pub
    bind: "127.0.0.1:0"
    trusted_proxies: ["127.0.0.1/32"]
    routes:
      - match: {{path_prefix: /geo}}
        geo:
          regions: {{eu: {{pool: eu, failover: [us]}}, us: {{pool: us, failover: [eu]}}}}
          default: us
      - match: {{path_prefix: /acct}}
        shard:
          key: "header:X-User"
          strategy: range
          ranges: [{{upto: 100, pool: eu}}, {{pool: us}}]
      - match: {{path_prefix: /rw}}
        read_write: {{read: eu, write: us}}
      - match: {{path_prefix: /split}}
        split: [{{pool: eu, weight: 3}}, {{pool: us, weight: 1}}]
      - match: {{path_prefix: /}}
        pool: sticky
geo:
  networks: {{"10.1.0.0/16": eu}}
pools:
  eu: {{backends: [{{address: "{a}"}}]}}
  us: {{backends: [{{address: "{b}"}}]}}
  sticky:
    sticky: {{cookie: srv, secure: false}}
    backends: [{{address: "{a}"}}, {{address: "{b}"}}, {{address: "{c}"}}]
access_log: {{format: "off"}}
admin: {{bind: "127.0.0.1:0"}}
"""


async def test_explains_geo_shard_read_write_split_and_sticky_decisions() -> None:
    async with named_backends(3) as bs:
        addresses = [b.address for b in bs]
        async with running_proxy(_targets_config(addresses)) as (proxy, proxy_port):
            assert proxy.admin is not None
            port = proxy.admin.bound_port()
            _, geo = await _explain(port, path="/geo", header="X-Forwarded-For: 10.1.2.3")
            proxy.disable("eu", addresses[0])
            _, failover = await _explain(port, path="/geo", header="X-Forwarded-For: 10.1.2.3")
            proxy.enable("eu", addresses[0])
            _, shard = await _explain(port, path="/acct", header="X-User: 150")
            _, keyless = await _explain(port, path="/acct")
            _, write = await _explain(port, path="/rw", method="POST")
            _, split = await _explain(port, path="/split")
            # A real request gets a sticky cookie; explain reads it back.
            async with aiohttp.ClientSession() as s:
                async with s.get(f"http://127.0.0.1:{proxy_port}/") as r:
                    pinned_to = r.headers["X-Backend"]
                    cookie = r.headers["Set-Cookie"].split(";")[0]
                async with s.get(
                    f"http://127.0.0.1:{proxy_port}/geo", headers={"X-Forwarded-For": "10.1.0.9"}
                ) as r:
                    assert r.status == 200
                async with s.get(f"http://127.0.0.1:{port}/metrics") as r:
                    metrics = await r.text()
            _, sticky = await _explain(port, path="/", header=f"Cookie: {cookie}")
    assert geo["pool"] == "eu"
    assert geo["target"]["region"] == "eu" and geo["target"]["region_from"] == "network"
    assert geo["target"]["client_address"] == "10.1.2.3"
    assert failover["pool"] == "us" and failover["target"]["served_region"] == "us"
    assert "failed over past eu" in failover["target"]["decision"]
    assert shard["pool"] == "us" and shard["target"]["key"] == "150"
    assert keyless["pool"] is None and keyless["decision"] == "400: no shard key (header x-user)"
    assert write["pool"] == "us"
    assert split["pool"] is None and split["target"]["weights"] == {"eu": 3, "us": 1}
    pinned = addresses[int(pinned_to[1:])]
    assert sticky["sticky"] == {"cookie": "srv", "pinned": pinned}
    assert sticky["decision"] == f"the sticky cookie pins {pinned}"
    # /metrics names the pool that served a geo route's request.
    assert any(
        line.startswith("lbproxy_requests_total{")
        and 'route="/geo"' in line
        and 'pool="eu"' in line
        for line in metrics.splitlines()
    )
