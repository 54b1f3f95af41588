"""Route targets other than a pool, end to end: ``shard`` (hash, range,
directory), ``read_write`` and ``split``, and the admin API calls that change
them at run time (split weights, shard directory entries).

Every pool ``pN`` has one real aiohttp backend ``bN`` that names itself in an
``X-Backend`` header, so the pool a request reached is read off its response.
Clients are real (aiohttp with cookies handled by hand, so that a test decides
exactly which cookie a request carries).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import textwrap
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

import lbproxy
from lbproxy.admin import AdminServer
from lbproxy.config import Address
from lbproxy.config.model import Admin
from tests.support import BackendServer, named_backends

TOKEN = "route-targets-token"
ENV = "LBPROXY_TEST_ROUTE_TARGETS_TOKEN"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


# --- furniture ---------------------------------------------------------------------------


def _pool_of(resp: aiohttp.ClientResponse) -> str | None:
    """The pool that served ``resp`` (backend bN serves pool pN); None: the proxy answered."""
    name = resp.headers.get("X-Backend")
    return None if name is None else "p" + name[1:]


@dataclass
class Reply:
    status: int
    pool: str | None
    set_cookies: list[str]
    body: bytes

    def cookie(self, name: str) -> str | None:
        """The value a Set-Cookie of this reply gives ``name``, or None."""
        for line in self.set_cookies:
            k, _, rest = line.partition("=")
            if k.strip() == name:
                return rest.split(";", 1)[0]
        return None

    def cookie_line(self, name: str) -> str:
        for line in self.set_cookies:
            if line.partition("=")[0].strip() == name:
                return line
        raise AssertionError(f"no Set-Cookie for {name!r} in {self.set_cookies}")


@dataclass
class Env:
    proxy: lbproxy.Proxy
    port: int
    admin: AdminServer | None
    backends: list[BackendServer]
    http: aiohttp.ClientSession
    config_path: Path
    access_log: Path

    @property
    def admin_base(self) -> str:
        assert self.admin is not None
        return f"http://127.0.0.1:{self.admin.bound_port()}"

    async def send(
        self,
        path: str,
        method: str = "GET",
        headers: dict[str, str] | None = None,
        cookie: str | None = None,
    ) -> Reply:
        hdrs = dict(headers or {})
        if cookie is not None:
            hdrs["Cookie"] = cookie
        async with self.http.request(
            method, f"http://127.0.0.1:{self.port}{path}", headers=hdrs
        ) as resp:
            body = await resp.read()
            return Reply(resp.status, _pool_of(resp), resp.headers.getall("Set-Cookie", []), body)

    async def pools(self, path: str, n: int, **kw: Any) -> Counter[str | None]:
        counts: Counter[str | None] = Counter()
        for _ in range(n):
            r = await self.send(path, **kw)
            assert r.status == 200, (r.status, r.body)
            counts[r.pool] += 1
        return counts

    async def call(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        data: bytes | None = None,
        headers: dict[str, str] | None = AUTH,
    ) -> tuple[int, Any]:
        async with self.http.request(
            method, self.admin_base + path, json=json_body, data=data, headers=headers
        ) as resp:
            if resp.content_type == "application/json":
                return resp.status, await resp.json()
            return resp.status, await resp.text()

    async def log_entries(self, n: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        """The first ``n`` JSON access log lines (the proxy flushes on its tick)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            text = self.access_log.read_text() if self.access_log.exists() else ""
            lines = text.splitlines()
            if len(lines) >= n or loop.time() > deadline:
                return [json.loads(line) for line in lines]
            await asyncio.sleep(0.05)


def _config_text(
    backends: list[BackendServer], routes: str, access_log: Path, admin: bool = True
) -> str:
    pools = "\n".join(
        f'  p{i}:\n    backends: [{{address: "{b.address}"}}]' for i, b in enumerate(backends)
    )
    return (
        "listeners:\n"
        "  - name: t\n"
        '    bind: "127.0.0.1:0"\n'
        "    routes:\n"
        + textwrap.indent(textwrap.dedent(routes).strip("\n"), "      ")
        + "\npools:\n"
        + pools
        + f'\naccess_log: {{format: json, path: "{access_log}"}}\n'
    )


@contextlib.asynccontextmanager
async def target_env(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    routes: str,
    *,
    n: int = 4,
    token: str | None = TOKEN,
    admin: bool = True,
) -> AsyncIterator[Env]:
    """A proxy loaded from a file in ``tmp_path`` (so that reloads work), ``n``
    pools p0.. of one backend each, optionally an admin server on port 0."""
    if token is None:
        monkeypatch.delenv(ENV, raising=False)
    else:
        monkeypatch.setenv(ENV, token)
    access_log = tmp_path / "access.log"
    async with named_backends(n) as backends:
        path = tmp_path / "lb.yaml"
        path.write_text(_config_text(backends, routes, access_log))
        proxy = lbproxy.Proxy(lbproxy.load_config(path))
        await proxy.start()
        server: AdminServer | None = None
        try:
            port = next(iter(proxy.addresses().values()))[1]
            if admin:
                server = AdminServer(proxy, Admin(Address("127.0.0.1", 0), ENV))
                await server.start()
            jar = aiohttp.DummyCookieJar()  # cookies are sent by hand, per request
            async with aiohttp.ClientSession(cookie_jar=jar) as http:
                yield Env(proxy, port, server, backends, http, path, access_log)
        finally:
            if server is not None:
                await server.stop()
            await proxy.stop(timeout=2)


def _write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` the way a careful operator (or a deploy tool) does."""
    tmp = path.with_name(path.name + ".new")
    tmp.write_text(text)
    os.replace(tmp, path)


async def _until(env: Env, path: str, headers: dict[str, str], pool: str, timeout: float) -> float:
    """Send requests until one reaches ``pool``; the seconds that took."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    for _ in range(400):
        r = await env.send(path, headers=headers)
        if r.pool == pool:
            return loop.time() - start
        if loop.time() - start > timeout:
            break
        await asyncio.sleep(0.02)
    raise AssertionError(f"{path} {headers} did not reach {pool} within {timeout}s")


def _tamper(value: str) -> str:
    """``value`` with one character in its middle changed (still base64url)."""
    i = len(value) // 2
    return value[:i] + ("A" if value[i] != "A" else "B") + value[i + 1 :]


# The documented, frozen mapping of the hash strategy (lbproxy/routing/shard.py):
# jump consistent hash of the key's 64-bit little-endian BLAKE2b over the pools.
def _jump_hash(key: int, buckets: int) -> int:
    b, j = -1, 0
    while j < buckets:
        b = j
        key = (key * 2862933555777941757 + 1) % (1 << 64)
        j = int((b + 1) * (float(1 << 31) / float((key >> 33) + 1)))
    return b


def _documented_shard(key: str, pools: list[str]) -> str:
    h = int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "little")
    return pools[_jump_hash(h, len(pools))]


# --- shard: hash -------------------------------------------------------------------------

HASH_ROUTE = """
- match: {path_prefix: /}
  shard: {key: "header:X-User-Id", strategy: hash, pools: [p0, p1, p2]}
"""


async def test_shard_hash_same_key_same_pool_and_keys_spread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with target_env(tmp_path, monkeypatch, HASH_ROUTE, n=3, admin=False) as env:
        first: dict[str, str | None] = {}
        for i in range(200):
            key = f"user-{i}"
            r = await env.send("/accounts", headers={"X-User-Id": key})
            assert r.status == 200
            first[key] = r.pool
        # Asked again (in another order): every key lands where it did.
        for key in reversed(list(first)):
            r = await env.send(f"/other/{key}", headers={"X-User-Id": key})
            assert r.pool == first[key], key
        # No key, or an empty one: no shard can be named.
        for headers in ({}, {"X-User-Id": ""}):
            r = await env.send("/accounts", headers=headers)
            assert (r.status, r.pool) == (400, None)
        entries = await env.log_entries(402)
    assert [e.get("reason") for e in entries[400:]] == ["no shard key (header x-user-id)"] * 2
    counts = Counter(first.values())
    assert set(counts) == {"p0", "p1", "p2"}
    # About 67 each; a hash that favoured a shard would fall well outside.
    assert all(40 <= c <= 95 for c in counts.values()), counts
    # The mapping is the documented one, which migration scripts compute too.
    assert all(pool == _documented_shard(key, ["p0", "p1", "p2"]) for key, pool in first.items())


async def test_shard_hash_adding_a_pool_moves_only_its_share_of_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    four = HASH_ROUTE.replace("[p0, p1, p2]", "[p0, p1, p2, p3]")
    keys = [f"acct-{i:04d}" for i in range(200)]

    async def route_all(routes: str, where: Path) -> dict[str, str | None]:
        where.mkdir()
        async with target_env(where, monkeypatch, routes, n=4, admin=False) as env:
            out = {}
            for key in keys:
                r = await env.send("/", headers={"X-User-Id": key})
                assert r.status == 200
                out[key] = r.pool
            return out

    before = await route_all(HASH_ROUTE, tmp_path / "three")
    after = await route_all(four, tmp_path / "four")
    assert set(before.values()) == {"p0", "p1", "p2"}
    moved = [k for k in keys if before[k] != after[k]]
    # Only keys that now belong to the new pool move; none between old pools.
    assert all(after[k] == "p3" for k in moved), [(k, before[k], after[k]) for k in moved]
    assert set(moved) == {k for k in keys if after[k] == "p3"}
    # About 1/4 of the keys (50; a reshuffle would move about 150).
    assert 25 <= len(moved) <= 80, len(moved)


# --- shard: range ------------------------------------------------------------------------

RANGE_ROUTES = """
- match: {path_prefix: /closed}
  shard:
    key: "query:id"
    strategy: range
    ranges: [{upto: 10, pool: p0}, {upto: 20, pool: p1}]
- match: {path_prefix: /}
  shard:
    key: "query:id"
    strategy: range
    ranges: [{upto: 100, pool: p0}, {upto: 200, pool: p1}, {pool: p2}]
"""


@pytest.mark.parametrize(
    ("key", "pool"),
    [
        ("0", "p0"),
        ("99", "p0"),
        ("0099", "p0"),  # leading zeros are the same number
        ("100", "p1"),  # upto is exclusive: the bound belongs to the next range
        ("199", "p1"),
        ("200", "p2"),
        ("9" * 19, "p2"),  # the last range is open-ended
    ],
)
async def test_shard_range_edges(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, key: str, pool: str
) -> None:
    async with target_env(tmp_path, monkeypatch, RANGE_ROUTES, n=3, admin=False) as env:
        r = await env.send(f"/items?id={key}")
        assert (r.status, r.pool) == (200, pool)


async def test_shard_range_keys_that_map_nowhere_are_400_with_a_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cases = [
        ("/items?id=abc", "is not an integer"),
        ("/items?id=-5", "is not an integer"),
        ("/items?id=1.5", "is not an integer"),
        ("/items?id=%2B5", "is not an integer"),
        ("/items?id=" + "9" * 20, "is not an integer"),  # beyond what an int64 holds
        ("/items?other=1", "no shard key (query id)"),
        ("/items?id=", "no shard key (query id)"),
        ("/closed?id=20", "is in no range"),  # a closed last range: 20 is past it
        ("/closed?id=19", None),
    ]
    async with target_env(tmp_path, monkeypatch, RANGE_ROUTES, n=3, admin=False) as env:
        for path, _ in cases:
            r = await env.send(path)
            if path == "/closed?id=19":
                assert (r.status, r.pool) == (200, "p1")
            else:
                # The proxy answers itself: no backend saw these.
                assert (r.status, r.pool) == (400, None), path
        entries = await env.log_entries(len(cases))
    assert len(entries) == len(cases)
    for (path, why), entry in zip(cases, entries, strict=True):
        assert entry["path"] == path
        if why is None:
            assert "reason" not in entry
        else:
            assert entry["status"] == 400
            assert why in entry["reason"], (path, entry)
            assert "pool" not in entry or not entry["pool"], entry


# --- shard: directory --------------------------------------------------------------------

DIRECTORY = "# tenant,pool\nacme,p0\nglobex,p1\n\ninitech,p2\n"


def _directory_routes(csv: Path) -> str:
    return f"""
- match: {{path_prefix: /seg/}}
  shard: {{key: "path_segment:1", strategy: directory, directory: "{csv}"}}
- match: {{path_prefix: /hdr}}
  shard: {{key: "header:X-Tenant", strategy: directory, directory: "{csv}"}}
- match: {{path_prefix: /ck}}
  shard: {{key: "cookie:tenant", strategy: directory, directory: "{csv}"}}
- match: {{path_prefix: /q}}
  shard: {{key: "query:tenant", strategy: directory, directory: "{csv}"}}
- match: {{path_prefix: /hash}}
  shard: {{key: "header:X-Tenant", strategy: hash, pools: [p0, p1]}}
- match: {{path_prefix: /split}}
  split: [{{pool: p0, weight: 1}}, {{pool: p1, weight: 1}}]
- match: {{path_prefix: /}}
  pool: p3
"""


@pytest.fixture
def csv_file(tmp_path: Path) -> Path:
    path = tmp_path / "shards.csv"
    path.write_text(DIRECTORY)
    return path


async def test_shard_directory_key_from_each_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, csv_file: Path
) -> None:
    routes = _directory_routes(csv_file)
    async with target_env(tmp_path, monkeypatch, routes, admin=False) as env:
        for tenant, pool in (("acme", "p0"), ("globex", "p1"), ("initech", "p2")):
            got = [
                (await env.send(f"/seg/{tenant}/orders/7")).pool,
                (await env.send(f"/seg//{tenant}")).pool,  # empty segments are skipped
                (await env.send("/hdr/x", headers={"X-Tenant": tenant})).pool,
                (await env.send("/ck", cookie=f"a=1; tenant={tenant}; b=2")).pool,
                (await env.send(f"/q/list?x=1&tenant={tenant}")).pool,
            ]
            assert got == [pool] * 5, (tenant, got)
        unknown = [
            await env.send("/seg/hooli/orders"),
            await env.send("/hdr", headers={"X-Tenant": "hooli"}),
            await env.send("/hdr", headers={"X-Tenant": "ACME"}),  # keys are exact
            await env.send("/ck", cookie="tenant=hooli"),
            await env.send("/q?tenant=hooli"),
        ]
        assert [(r.status, r.pool) for r in unknown] == [(400, None)] * 5
        missing = [
            await env.send("/seg/"),
            await env.send("/hdr"),
            await env.send("/ck", cookie="other=acme"),
            await env.send("/q?tenants=acme"),
        ]
        assert [(r.status, r.pool) for r in missing] == [(400, None)] * 4
        entries = await env.log_entries(15 + 5 + 4)
    reasons = [e.get("reason", "") for e in entries[15:]]
    assert all("not in the directory" in why for why in reasons[:5]), reasons
    assert "'hooli'" in reasons[1]
    assert [why.split(" (")[0] for why in reasons[5:]] == ["no shard key"] * 4, reasons
    assert "header x-tenant" in reasons[6].lower()
    assert "cookie tenant" in reasons[7]


async def test_shard_directory_file_changes_are_picked_up_and_broken_ones_ignored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, csv_file: Path
) -> None:
    routes = _directory_routes(csv_file)
    async with target_env(tmp_path, monkeypatch, routes, admin=False) as env:
        assert (await env.send("/hdr", headers={"X-Tenant": "globex"})).pool == "p1"
        assert (await env.send("/hdr", headers={"X-Tenant": "hooli"})).status == 400
        # globex moves to p2, hooli is added.
        _write_atomically(csv_file, "acme,p0\nglobex,p2\ninitech,p2\nhooli,p3\n")
        took = await _until(env, "/hdr", {"X-Tenant": "globex"}, "p2", timeout=3.0)
        assert took < 2.5, took
        assert (await env.send("/hdr", headers={"X-Tenant": "hooli"})).pool == "p3"
        assert (await env.send("/hdr", headers={"X-Tenant": "acme"})).pool == "p0"

        # A broken file (a line without a comma; then a pool the config lacks)
        # leaves the last good mapping serving.
        for broken in (
            "acme,p1\nglobex p0\nhooli,p3\n",
            "acme,p1\nglobex,p0\nhooli,nowhere\n",
        ):
            _write_atomically(csv_file, broken)
            loop = asyncio.get_running_loop()
            end = loop.time() + 1.4  # past the 1 s poll
            while loop.time() < end:
                got = [
                    (await env.send("/hdr", headers={"X-Tenant": t})).pool
                    for t in ("acme", "globex", "hooli")
                ]
                assert got == ["p0", "p2", "p3"], (broken, got)
                await asyncio.sleep(0.05)

        # Fixed: the new mapping is taken.
        _write_atomically(csv_file, "acme,p1\nglobex,p0\n")
        await _until(env, "/hdr", {"X-Tenant": "acme"}, "p1", timeout=3.0)
        assert (await env.send("/hdr", headers={"X-Tenant": "globex"})).pool == "p0"
        assert (await env.send("/hdr", headers={"X-Tenant": "hooli"})).status == 400


# --- read_write --------------------------------------------------------------------------

RW_ROUTES = """
- match: {path_prefix: /sticky}
  read_write: {read: p0, write: p1, stick_after_write: 1s}
- match: {path_prefix: /plain}
  read_write: {read: p0, write: p1}
- match: {path_prefix: /split}
  split: {pools: [{pool: p2, weight: 1}, {pool: p3, weight: 1}], sticky: true}
"""


async def test_read_write_sends_safe_methods_to_read_and_others_to_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with target_env(tmp_path, monkeypatch, RW_ROUTES, admin=False) as env:
        got = {}
        for method in ("GET", "HEAD", "OPTIONS", "POST", "PUT", "DELETE", "PATCH"):
            r = await env.send("/plain/item", method=method)
            assert r.status == 200, method
            got[method] = r.pool
            # Without stick_after_write a write sets no cookie.
            assert r.set_cookies == [], (method, r.set_cookies)
    assert got == {
        "GET": "p0",
        "HEAD": "p0",
        "OPTIONS": "p0",
        "POST": "p1",
        "PUT": "p1",
        "DELETE": "p1",
        "PATCH": "p1",
    }


async def test_read_write_reads_follow_a_write_until_the_cookie_expires(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with target_env(tmp_path, monkeypatch, RW_ROUTES, admin=False) as env:
        assert (await env.send("/sticky/a")).pool == "p0"
        # Written early in a wall-clock second (the cookie's expiry is in whole
        # seconds; the test below covers writes late in one).
        await asyncio.sleep((1.05 - time.time() % 1.0) % 1.0)
        written = time.time()
        w = await env.send("/sticky/a", method="POST")
        assert w.pool == "p1"
        line = w.cookie_line("lbp_rw")
        attrs = [a.strip() for a in line.split(";")]
        assert "Max-Age=1" in attrs and "Path=/" in attrs and "HttpOnly" in attrs
        assert "Secure" not in attrs  # a plain-HTTP listener
        value = w.cookie("lbp_rw")
        assert value
        cookie = f"theme=dark; lbp_rw={value}"
        # Right after the write, the writer reads from the write pool ...
        for method in ("GET", "HEAD", "OPTIONS"):
            assert (await env.send("/sticky/a", method=method, cookie=cookie)).pool == "p1"
        # ... another client (no cookie) still reads from the read pool ...
        assert (await env.send("/sticky/a")).pool == "p0"
        # ... and once stick_after_write is over, so does the writer. (Expiry is
        # in whole seconds: allow it to end as late as the second after next.)
        await asyncio.sleep(int(written) + 2.05 - time.time())
        assert (await env.send("/sticky/a", cookie=cookie)).pool == "p0"
        # Writes always go to the write pool, cookie or not, and renew it.
        again = await env.send("/sticky/a", method="PUT", cookie=cookie)
        assert again.pool == "p1" and again.cookie("lbp_rw")


async def test_read_write_stickiness_lasts_the_whole_stick_after_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write late in a wall-clock second still makes the writer's reads go to
    the write pool for stick_after_write (1 s) after it, not only until the
    next whole second."""
    async with target_env(tmp_path, monkeypatch, RW_ROUTES, admin=False) as env:
        # Write at about .85 into a second, read 0.4 s later: well inside 1 s.
        frac = time.time() % 1.0
        await asyncio.sleep((0.85 - frac) % 1.0)
        w = await env.send("/sticky/a", method="POST")
        value = w.cookie("lbp_rw")
        assert w.pool == "p1" and value
        await asyncio.sleep(0.4)
        r = await env.send("/sticky/a", cookie=f"lbp_rw={value}")
        assert r.pool == "p1", (
            "read 0.4 s after a write with stick_after_write: 1s left the write pool"
        )


async def test_read_write_forged_or_foreign_cookies_are_ignored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with target_env(tmp_path, monkeypatch, RW_ROUTES, admin=False) as env:
        w = await env.send("/sticky/a", method="POST")
        value = w.cookie("lbp_rw")
        assert value
        assert (await env.send("/sticky/a", cookie=f"lbp_rw={value}")).pool == "p1"
        split_value = (await env.send("/split")).cookie("lbp_split")
        assert split_value
        forged = [
            "lbp_rw=1",
            "lbp_rw=w",
            "lbp_rw=",
            f"lbp_rw={_tamper(value)}",
            f"lbp_rw={value[:-1]}",  # cut short
            f"lbp_rw={value}A",  # lengthened
            f"lbp_rw={split_value}",  # a valid cookie of this proxy, for another purpose
            f"LBP_RW={value}",  # cookie names are case-sensitive
        ]
        for cookie in forged:
            r = await env.send("/sticky/a", cookie=cookie)
            assert (r.status, r.pool) == (200, "p0"), cookie
            assert r.set_cookies == [], cookie  # a read sets nothing


# --- split -------------------------------------------------------------------------------

SPLIT_ROUTES = """
- match: {path_prefix: /canary}
  split: [{pool: p0, weight: 80}, {pool: p1, weight: 20}]
- match: {path_prefix: /zero}
  split: [{pool: p0, weight: 1}, {pool: p1, weight: 0}, {pool: p2, weight: 1}]
- match: {path_prefix: /sticky}
  split: {pools: [{pool: p0, weight: 1}, {pool: p1, weight: 1}], sticky: true}
- match: {path_prefix: /pool}
  pool: p3
- match: {path_prefix: /shard}
  shard: {key: "header:X-Id", strategy: hash, pools: [p0, p1]}
"""


async def test_split_shares_follow_the_weights(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with target_env(tmp_path, monkeypatch, SPLIT_ROUTES, admin=False) as env:
        canary = await env.pools("/canary", 400)
        zero = await env.pools("/zero", 200)
    # 80/20 of 400: mean 320, sd 8; the bounds are 5 sd wide.
    assert set(canary) == {"p0", "p1"}, canary
    assert 280 <= canary["p0"] <= 360, canary
    # A weight-0 pool is never chosen; the others share evenly (mean 100, sd 7).
    assert zero["p1"] == 0, zero
    assert set(zero) == {"p0", "p2"} and 60 <= zero["p0"] <= 140, zero


async def test_sticky_split_keeps_a_client_on_its_pool(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with target_env(tmp_path, monkeypatch, SPLIT_ROUTES, admin=False) as env:
        first = await env.send("/sticky")
        line = first.cookie_line("lbp_split")
        assert "Max-Age" not in line and "HttpOnly" in line  # a session cookie
        cookie = f"lbp_split={first.cookie('lbp_split')}"
        pools: Counter[str | None] = Counter()
        for _ in range(50):
            r = await env.send("/sticky/page", cookie=cookie)
            pools[r.pool] += 1
            assert r.cookie("lbp_split") in (None, first.cookie("lbp_split"))
        assert pools == Counter({first.pool: 50})
        # New clients (no cookie) are spread over both pools.
        fresh = Counter([(await env.send("/sticky")).pool for _ in range(40)])
        assert set(fresh) == {"p0", "p1"}, fresh
        # A tampered cookie is not believed: the request gets a fresh pick and
        # a new, valid cookie.
        bad = _tamper(first.cookie("lbp_split") or "")
        picks: Counter[str | None] = Counter()
        for _ in range(40):
            r = await env.send("/sticky", cookie=f"lbp_split={bad}")
            new = r.cookie("lbp_split")
            assert new and new != bad
            picks[r.pool] += 1
            # The new cookie holds the new pick.
            again = await env.send("/sticky", cookie=f"lbp_split={new}")
            assert again.pool == r.pool
        assert set(picks) == {"p0", "p1"}, picks


def _split_url(listener: str = "t", index: int | str = 0) -> str:
    return f"/api/listeners/{listener}/routes/{index}/split"


async def test_admin_split_weights_change_the_shares(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with target_env(tmp_path, monkeypatch, SPLIT_ROUTES) as env:
        code, body = await env.call(
            "PUT", _split_url(), json_body={"weights": {"p0": 0, "p1": 100}}
        )
        assert code == 200, body
        assert body["weights"] == {"p0": 0, "p1": 100}
        assert await env.pools("/canary", 60) == Counter({"p1": 60})
        # Only the named pools change; the others keep their weight.
        code, body = await env.call("PUT", _split_url(), json_body={"weights": {"p1": 0, "p0": 5}})
        assert code == 200, body
        assert await env.pools("/canary", 30) == Counter({"p0": 30})
        code, _ = await env.call("PUT", _split_url(), json_body={"weights": {"p1": 5}})
        assert code == 200
        both = await env.pools("/canary", 100)
        assert set(both) == {"p0", "p1"}, both
        # Other routes are untouched.
        assert (await env.pools("/zero", 40))["p1"] == 0


async def test_admin_split_weight_zero_moves_sticky_clients_off_that_pool(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with target_env(tmp_path, monkeypatch, SPLIT_ROUTES) as env:
        cookies: dict[str | None, str | None] = {}
        for _ in range(40):
            r = await env.send("/sticky")
            cookies.setdefault(r.pool, r.cookie("lbp_split"))
        assert set(cookies) == {"p0", "p1"}
        code, _ = await env.call("PUT", _split_url(index=2), json_body={"weights": {"p1": 0}})
        assert code == 200
        # The p0 client stays; the p1 client is moved to p0 with a new cookie.
        assert (await env.send("/sticky", cookie=f"lbp_split={cookies['p0']}")).pool == "p0"
        moved = await env.send("/sticky", cookie=f"lbp_split={cookies['p1']}")
        assert moved.pool == "p0" and moved.cookie("lbp_split")


async def test_admin_split_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    good = {"weights": {"p0": 1, "p1": 0}}
    async with target_env(tmp_path, monkeypatch, SPLIT_ROUTES) as env:
        # A token is needed.
        code, _ = await env.call("PUT", _split_url(), json_body=good, headers={})
        assert code == 401
        code, _ = await env.call(
            "PUT", _split_url(), json_body=good, headers={"Authorization": "Bearer nope"}
        )
        assert code == 403
        # No such listener or route.
        for url in (
            _split_url("nope"),
            _split_url(index=5),
            _split_url(index=99),
            _split_url(index="x"),
            _split_url(index=-1),
        ):
            code, body = await env.call("PUT", url, json_body=good)
            assert code == 404, (url, code, body)
        # A route that is not a split.
        for index in (3, 4):
            code, body = await env.call("PUT", _split_url(index=index), json_body=good)
            assert code == 409, (index, code, body)
        # Bad weights.
        bad: dict[str, Any]
        for bad in (
            {"weights": {"p0": 0, "p1": 0}},  # all zero
            {"weights": {"p1": 0, "p0": 0}},
            {"weights": {"p0": -1}},
            {"weights": {"p0": "ten"}},
            {"weights": {"p0": 1.5}},
            {"weights": {"p0": None}},
            {"weights": {"p0": 1001}},  # above the config's maximum weight
            {"weights": {}},
            {"weights": [1, 2]},
            {"weights": "p0"},
            {"weight": {"p0": 1}},
            {},
        ):
            code, body = await env.call("PUT", _split_url(), json_body=bad)
            assert code == 422, (bad, code, body)
        code, _ = await env.call("PUT", _split_url(), data=b"{not json")
        assert code in (400, 422)
        # None of that changed anything: still 80/20.
        counts = await env.pools("/canary", 100)
        assert set(counts) == {"p0", "p1"} and counts["p0"] > 55, counts


async def test_admin_split_weights_for_a_pool_not_in_the_split_are_422(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The route exists; the body names a pool it does not split to: the
    request's content is wrong (422, like all-zero or negative weights), not
    the URL (404)."""
    async with target_env(tmp_path, monkeypatch, SPLIT_ROUTES) as env:
        for weights in ({"p9": 1}, {"p2": 5}, {"p0": 0, "p3": 1}):
            code, body = await env.call("PUT", _split_url(), json_body={"weights": weights})
            assert code == 422, (weights, code, body)
            assert "p9" in body["error"] or "p2" in body["error"] or "p3" in body["error"]
        counts = await env.pools("/canary", 100)
        assert set(counts) == {"p0", "p1"}, counts


async def test_admin_split_is_refused_on_a_read_only_admin_api(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with target_env(tmp_path, monkeypatch, SPLIT_ROUTES, token=None) as env:
        code, body = await env.call("PUT", _split_url(), json_body={"weights": {"p0": 0, "p1": 1}})
        assert code == 403, body
        counts = await env.pools("/canary", 60)
        assert counts["p0"] > 25, counts


async def test_reload_from_the_file_resets_split_weights(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with target_env(tmp_path, monkeypatch, SPLIT_ROUTES) as env:
        code, _ = await env.call("PUT", _split_url(), json_body={"weights": {"p0": 0}})
        assert code == 200
        assert await env.pools("/canary", 40) == Counter({"p1": 40})
        code, body = await env.call("POST", "/api/reload")
        assert (code, body) == (200, {"reloaded": True})
        counts = await env.pools("/canary", 100)
        # Back to the file's 80/20 (mean 80, sd 4).
        assert set(counts) == {"p0", "p1"} and counts["p0"] >= 60, counts
        # And the route can be changed again after the reload.
        code, _ = await env.call("PUT", _split_url(), json_body={"weights": {"p1": 0}})
        assert code == 200
        assert await env.pools("/canary", 30) == Counter({"p0": 30})


# --- shard directory through the admin API -----------------------------------------------


def _shards_url(index: int | str = 1, key: str | None = None, listener: str = "t") -> str:
    url = f"/api/listeners/{listener}/routes/{index}/shards"
    return url if key is None else f"{url}/{key}"


async def test_admin_shard_directory_list_set_and_delete(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, csv_file: Path
) -> None:
    routes = _directory_routes(csv_file)
    async with target_env(tmp_path, monkeypatch, routes) as env:
        # Listing is a read: no token needed.
        code, body = await env.call("GET", _shards_url(), headers={})
        assert code == 200, body
        assert body["shards"] == {"acme": "p0", "globex": "p1", "initech": "p2"}

        # Moving a key takes effect at once and is written to the file, in place.
        code, body = await env.call("PUT", _shards_url(key="globex"), json_body={"pool": "p3"})
        assert code == 200, body
        assert body == {"key": "globex", "pool": "p3"}
        assert (await env.send("/hdr", headers={"X-Tenant": "globex"})).pool == "p3"
        assert csv_file.read_text() == "# tenant,pool\nacme,p0\nglobex,p3\n\ninitech,p2\n"

        # A new key is appended.
        code, _ = await env.call("PUT", _shards_url(key="hooli"), json_body={"pool": "p1"})
        assert code == 200
        assert (await env.send("/hdr", headers={"X-Tenant": "hooli"})).pool == "p1"
        assert csv_file.read_text().splitlines()[-1] == "hooli,p1"
        code, body = await env.call("GET", _shards_url())
        assert body["shards"] == {"acme": "p0", "globex": "p3", "initech": "p2", "hooli": "p1"}

        # Deleting unmaps the key (its requests are 400 now) and drops its line.
        code, body = await env.call("DELETE", _shards_url(key="acme"))
        assert code == 200, body
        assert (await env.send("/hdr", headers={"X-Tenant": "acme"})).status == 400
        assert "acme" not in csv_file.read_text()
        code, _ = await env.call("DELETE", _shards_url(key="acme"))
        assert code == 404

        # The other directory routes read the same file: they follow within a poll.
        await _until(env, "/q?tenant=globex", {}, "p3", timeout=3.0)
        assert (await env.send("/seg/hooli")).pool == "p1"


async def test_admin_shard_edit_keeps_a_change_made_to_the_file_meanwhile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, csv_file: Path
) -> None:
    routes = _directory_routes(csv_file)
    async with target_env(tmp_path, monkeypatch, routes) as env:
        assert (await env.send("/hdr", headers={"X-Tenant": "initech"})).pool == "p2"
        # Someone edits the file; before the proxy polls it, an admin call
        # changes another key. The edit is kept, and served.
        _write_atomically(csv_file, DIRECTORY + "umbrella,p3\n")
        code, _ = await env.call("PUT", _shards_url(key="acme"), json_body={"pool": "p1"})
        assert code == 200
        text = csv_file.read_text()
        assert "umbrella,p3" in text and "acme,p1" in text and "acme,p0" not in text
        assert (await env.send("/hdr", headers={"X-Tenant": "umbrella"})).pool == "p3"
        assert (await env.send("/hdr", headers={"X-Tenant": "acme"})).pool == "p1"


async def test_admin_shard_directory_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, csv_file: Path
) -> None:
    routes = _directory_routes(csv_file)
    async with target_env(tmp_path, monkeypatch, routes) as env:
        before = csv_file.read_text()
        # Changes need the token.
        code, _ = await env.call(
            "PUT", _shards_url(key="acme"), json_body={"pool": "p1"}, headers={}
        )
        assert code == 401
        code, _ = await env.call("DELETE", _shards_url(key="acme"), headers={})
        assert code == 401
        # An unknown pool, or a body without a pool name.
        for bad in ({"pool": "p9"}, {"pool": 1}, {"pool": ""}, {"poll": "p1"}, {}):
            code, body = await env.call("PUT", _shards_url(key="acme"), json_body=bad)
            assert code == 422, (bad, code, body)
        # A key that cannot be a line of the file.
        code, body = await env.call("PUT", _shards_url(key="a%2Cb"), json_body={"pool": "p1"})
        assert code == 422, body
        # Routes that have no directory: a hash shard, a split, a pool.
        for index in (4, 5, 6):
            for method, key, payload in (
                ("GET", None, None),
                ("PUT", "acme", {"pool": "p1"}),
                ("DELETE", "acme", None),
            ):
                code, body = await env.call(method, _shards_url(index, key), json_body=payload)
                assert code == 409, (index, method, code, body)
        # No such listener or route.
        for url in (_shards_url(99), _shards_url(listener="nope"), _shards_url("x")):
            code, _ = await env.call("GET", url)
            assert code == 404, url
        # Nothing was written, nothing changed.
        assert csv_file.read_text() == before
        assert (await env.send("/hdr", headers={"X-Tenant": "acme"})).pool == "p0"
