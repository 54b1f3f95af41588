"""Geo routing end to end: the region from a trusted header, the networks
table and a MaxMind database (IPv4 and IPv6), clients placed by
X-Forwarded-For from a trusted proxy and by real 127.x.y.z source addresses,
and regional failover when a region's backends are all down."""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp
import pytest

import lbproxy
from tests.geo_db import TEST_NETWORKS, write_db
from tests.support import named_backends, poll_until, running_proxy

REGIONS = ("eu", "us", "asia")


def _config(db: Path, eu: str, us: str, asia: str, log: Path, health: str = "") -> str:
    pools = "".join(
        f'  web-{name}:\n{health}    backends: [{{address: "{addr}"}}]\n'
        for name, addr in (("eu", eu), ("us", us), ("asia", asia))
    )
    return f"""
listeners:
  - name: t
    bind: "127.0.0.1:0"
    trusted_proxies: ["127.0.0.1/32"]
    routes:
      - match: {{path_prefix: /}}
        geo:
          regions:
            eu:   {{pool: web-eu,   failover: [us, asia]}}
            us:   {{pool: web-us,   failover: [eu, asia]}}
            asia: {{pool: web-asia, failover: [us, eu]}}
          default: us
geo:
  trust_header: X-Client-Region
  networks: {{"127.0.0.2/32": asia, "127.0.0.3/32": eu, "10.1.0.0/16": eu, "fd00:1::/32": asia}}
  database: {db}
  countries: {{eu: [DE, FR, GB], us: [US, CA], asia: [JP, SG]}}
  continents: {{eu: [EU, AF], us: [NA, SA], asia: [AS, OC]}}
pools:
{pools}
access_log: {{format: json, path: "{log}"}}
"""


async def _region(
    port: int, source: str = "127.0.0.1", headers: dict[str, str] | None = None
) -> tuple[str, dict[str, str]]:
    """The backend that answered (b0 = eu, b1 = us, b2 = asia) for a client
    connecting from ``source``; and the response headers."""
    connector = aiohttp.TCPConnector(local_addr=(source, 0), force_close=True)
    async with aiohttp.ClientSession(connector=connector) as session:
        async with session.get(f"http://127.0.0.1:{port}/", headers=headers or {}) as r:
            assert r.status == 200
            await r.read()
            name = {"b0": "eu", "b1": "us", "b2": "asia"}[r.headers["X-Backend"]]
            return name, dict(r.headers)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return write_db(tmp_path / "country.mmdb", TEST_NETWORKS)


async def test_each_source_of_a_region_in_order(db: Path, tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    async with named_backends(3) as bs:
        config = _config(db, *(b.address for b in bs), log)
        async with running_proxy(config) as (_, port):
            xff = "X-Forwarded-For"
            cases = [
                # The trusted proxy's header names the region outright...
                ("127.0.0.1", {"X-Client-Region": "asia", xff: "81.1.1.1"}, "asia"),
                # ...but an unknown name is ignored: the next source decides.
                ("127.0.0.1", {"X-Client-Region": "mars", xff: "81.1.1.1"}, "eu"),
                # The networks table beats the database.
                ("127.0.0.1", {xff: "10.1.2.3"}, "eu"),
                # The database: countries, then continents, IPv4 and IPv6.
                ("127.0.0.1", {xff: "81.2.3.4"}, "eu"),  # FR
                ("127.0.0.1", {xff: "8.8.8.8"}, "us"),  # US
                ("127.0.0.1", {xff: "1.2.3.4"}, "asia"),  # JP
                ("127.0.0.1", {xff: "41.1.1.1"}, "eu"),  # ZA: continent AF
                ("127.0.0.1", {xff: "200.1.1.1"}, "us"),  # BR: continent SA
                ("127.0.0.1", {xff: "2001:db8:de::1"}, "eu"),
                ("127.0.0.1", {xff: "2001:db8:5::1"}, "us"),
                ("127.0.0.1", {xff: "2001:db8:a5::1"}, "asia"),  # KR: continent AS
                ("127.0.0.1", {xff: "fd00:1::9"}, "asia"),  # IPv6 networks table
                # The nearest untrusted hop of a chain counts, not a forged first one.
                ("127.0.0.1", {xff: "8.8.8.8, 1.2.3.4"}, "asia"),
                # Nothing places the client: the default.
                ("127.0.0.1", {xff: "100.64.0.1"}, "us"),
                ("127.0.0.1", {}, "us"),
                # Real source addresses on the loopback network.
                ("127.0.0.2", {}, "asia"),
                ("127.0.0.3", {}, "eu"),
                # An untrusted peer's header and X-Forwarded-For mean nothing.
                ("127.0.0.2", {"X-Client-Region": "eu", xff: "8.8.8.8"}, "asia"),
            ]
            for source, headers, expected in cases:
                served, response = await _region(port, source, headers)
                assert served == expected, (source, headers)
                assert not any(k.lower() == "x-served-region" for k in response)
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(lines) == len(cases)
    first = lines[0]
    assert (first["region"], first["served_region"], first["pool"]) == ("asia", "asia", "web-asia")


async def test_a_region_without_eligible_backends_fails_over_in_order(
    db: Path, tmp_path: Path
) -> None:
    log = tmp_path / "access.log"
    health = "    health_check: {path: /, interval: 100ms, timeout: 50ms, unhealthy_threshold: 1}\n"
    async with named_backends(3) as bs:
        eu, us, asia = bs
        config = _config(db, eu.address, us.address, asia.address, log, health)
        async with running_proxy(config) as (proxy, port):
            german = {"X-Forwarded-For": "81.1.1.1"}
            assert (await _region(port, headers=german))[0] == "eu"
            # eu's only backend dies: health checks take it out, eu's
            # clients go to the first region of its failover list.
            await eu.stop()
            pool = proxy.pools["web-eu"]
            await poll_until(lambda: not pool.serving, 5.0, "eu's backend marked down")
            assert (await _region(port, headers=german))[0] == "us"
            # us is taken out too (by the admin API): next in line, asia.
            proxy.disable("web-us", us.address)
            assert (await _region(port, headers=german))[0] == "asia"
            # us's own clients follow their list: eu is down, so asia.
            assert (await _region(port, headers={"X-Forwarded-For": "8.8.8.8"}))[0] == "asia"
            # us back: eu's clients return to the first choice of its list.
            proxy.enable("web-us", us.address)
            assert (await _region(port, headers=german))[0] == "us"
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    failed_over = [e for e in entries if e["region"] == "eu" and e["served_region"] != "eu"]
    assert [e["served_region"] for e in failed_over] == ["us", "asia", "us"]


async def test_every_region_down_answers_from_the_home_pool(db: Path, tmp_path: Path) -> None:
    async with named_backends(3) as bs:
        config = _config(db, *(b.address for b in bs), tmp_path / "a.log")
        async with running_proxy(config) as (proxy, port):
            for name, b in zip(REGIONS, bs, strict=True):
                proxy.disable(f"web-{name}", b.address)
            async with aiohttp.ClientSession() as session:
                url = f"http://127.0.0.1:{port}/"
                headers = {"X-Forwarded-For": "1.2.3.4"}
                async with session.get(url, headers=headers) as r:
                    assert r.status == 503
    log = (tmp_path / "a.log").read_text().splitlines()
    last = json.loads(log[-1])
    assert (last["region"], last["served_region"], last["pool"]) == ("asia", "asia", "web-asia")


async def test_reload_picks_up_a_new_networks_table(db: Path, tmp_path: Path) -> None:
    async with named_backends(3) as bs:
        config = _config(db, *(b.address for b in bs), tmp_path / "a.log")
        async with running_proxy(config) as (proxy, port):
            assert (await _region(port, "127.0.0.2"))[0] == "asia"
            new = lbproxy.parse_config(
                config.replace('"127.0.0.2/32": asia', '"127.0.0.2/32": us')
            )
            await proxy.reload(new)
            assert (await _region(port, "127.0.0.2"))[0] == "us"
