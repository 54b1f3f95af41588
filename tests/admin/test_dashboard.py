"""The admin dashboard: the sampler's arithmetic on real BackendState counters,
``GET /api/dashboard`` of a running proxy, and the page itself in headless
Chromium (Debian's /usr/bin/chromium, driven by Playwright).

The proxies here have an ``admin`` section in their config: only then does
the data path observe latencies (``ListenerRuntime.metrics``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from playwright.async_api import Browser, Locator, Page, async_playwright

import lbproxy
from lbproxy.admin.dashboard import (
    DashboardSampler,
    Delta,
    counters_from_pools,
    dashboard,
    dashboard_page,
    quantile,
    summarize,
)
from lbproxy.config import parse_config
from lbproxy.http.pool import BUCKETS, PoolRuntime
from tests.support import BackendServer, named_backends, poll_until, running_proxy, simple_config

pytestmark = pytest.mark.timeout(60)

TOKEN = "dashboard-test-token"
ENV = "LBPROXY_TEST_DASHBOARD_TOKEN"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
UI_TIMEOUT_MS = 10_000  # any one wait for the page

NO_HIST = (0,) * (len(BUCKETS) + 1)


def bucket_of(seconds: float) -> int:
    return next((i for i, bound in enumerate(BUCKETS) if seconds <= bound), len(BUCKETS))


# --- quantiles from bucket counts ------------------------------------------------------


def counts(**by_index: int) -> list[int]:
    out = [0] * (len(BUCKETS) + 1)
    for key, n in by_index.items():
        out[int(key.lstrip("b"))] = n
    return out


def test_quantile_interpolates_inside_the_bucket() -> None:
    # 100 requests, all in (0.001, 0.0025]: the rank's share of the bucket's width.
    assert quantile(0.5, counts(b4=100)) == pytest.approx(0.001 + 0.0015 * 0.5)
    assert quantile(0.99, counts(b4=100)) == pytest.approx(0.001 + 0.0015 * 0.99)
    # The first bucket's lower edge is 0.
    assert quantile(0.5, counts(b0=10)) == pytest.approx(0.0001 * 0.5)


def test_quantile_walks_the_buckets() -> None:
    # 90 fast ones in (0.0005, 0.001] and 10 slow ones in (0.05, 0.1].
    c = counts(b3=90, b9=10)
    assert quantile(0.5, c) == pytest.approx(0.0005 + 0.0005 * 50 / 90)
    assert quantile(0.9, c) == pytest.approx(0.001)  # the top of the fast bucket
    assert quantile(0.99, c) == pytest.approx(0.05 + 0.05 * 9 / 10)


def test_quantile_of_nothing_and_of_the_inf_bucket() -> None:
    assert quantile(0.5, NO_HIST) is None
    # Beyond the last bound: the highest finite bound, as histogram_quantile does.
    assert quantile(0.99, counts(b17=3)) == BUCKETS[-1]
    assert quantile(0.5, counts(b0=1, b17=1)) == pytest.approx(0.0001)


# --- the sampler over real BackendState objects --------------------------------------


def pool_of(*addresses: str) -> dict[str, PoolRuntime]:
    cfg = parse_config(simple_config(*addresses))
    return {"web": PoolRuntime(cfg.pools["web"])}


def test_rates_errors_and_latency_from_counter_deltas() -> None:
    pools = pool_of("127.0.0.1:9001", "127.0.0.1:9002")
    b0, b1 = pools["web"].backends
    sampler = DashboardSampler(lambda: counters_from_pools(pools))
    b0.requests_total = 500  # counted before the sampler started: not in any rate
    assert sampler.sample(now=100.0) is None  # the baseline

    b0.requests_total += 30
    b0.failures_total += 3
    for _ in range(27):
        b0.observe_duration(0.003)  # (0.0025, 0.005]
    sampler.sample(now=102.0)  # two seconds later

    s0 = summarize(sampler.deltas(("web", b0.label)), sampler.seconds())
    assert s0["rps"] == 15.0
    assert s0["series"]["rps"] == [15.0]
    assert s0["series"]["errors"] == [1.5]
    assert s0["requests_1m"] == 30 and s0["failures_1m"] == 3
    assert s0["error_rate_1m"] == pytest.approx(0.1)
    assert s0["latency_count_1m"] == 27
    assert s0["p50_1m"] == pytest.approx(0.0025 + 0.0025 * 0.5)
    assert s0["p99_1m"] == pytest.approx(0.0025 + 0.0025 * 0.99)
    assert s0["series"]["p99"] == [s0["p99_1m"]]

    s1 = summarize(sampler.deltas(("web", b1.label)), sampler.seconds())
    assert s1["rps"] == 0.0 and s1["series"]["p99"] == [None]
    assert s1["p50_1m"] is None and s1["error_rate_1m"] is None


def test_minute_quantiles_come_from_summed_bucket_deltas() -> None:
    pools = pool_of("127.0.0.1:9001")
    (b,) = pools["web"].backends
    sampler = DashboardSampler(lambda: counters_from_pools(pools))
    sampler.sample(now=0.0)
    # Second 1: 98 fast requests; second 2: 2 slow ones.
    for _ in range(98):
        b.observe_duration(0.0007)
    b.requests_total += 98
    sampler.sample(now=1.0)
    for _ in range(2):
        b.observe_duration(0.3)
    b.requests_total += 2
    sampler.sample(now=2.0)

    stats = summarize(sampler.deltas(("web", b.label)), sampler.seconds())
    minute = [0] * (len(BUCKETS) + 1)
    minute[bucket_of(0.0007)] = 98
    minute[bucket_of(0.3)] = 2
    assert stats["p50_1m"] == quantile(0.5, minute)
    assert stats["p99_1m"] == quantile(0.99, minute)
    assert 0.25 < stats["p99_1m"] <= 0.5  # the rank 99 of 100 is a slow one
    # Per second: p99 of that second alone.
    assert stats["series"]["p99"][0] is not None and stats["series"]["p99"][0] <= 0.001
    assert 0.25 < stats["series"]["p99"][1] <= 0.5


def test_the_window_keeps_the_last_60_samples() -> None:
    pools = pool_of("127.0.0.1:9001")
    (b,) = pools["web"].backends
    sampler = DashboardSampler(lambda: counters_from_pools(pools))
    sampler.sample(now=0.0, wall=1000.0)
    for i in range(1, 71):
        b.requests_total += i
        sampler.sample(now=float(i), wall=1000.0 + i)
    assert len(sampler.samples) == 60
    stats = summarize(sampler.deltas(("web", b.label)), sampler.seconds())
    assert stats["series"]["rps"] == [float(i) for i in range(11, 71)]
    assert stats["requests_1m"] == sum(range(11, 71))
    assert stats["rps"] == 70.0
    assert stats["rps_1m"] == pytest.approx(sum(range(11, 71)) / 60)
    assert sampler.times() == [1000.0 + i for i in range(11, 71)]


def test_a_counter_that_went_down_started_again_from_zero() -> None:
    pools = pool_of("127.0.0.1:9001")
    sampler = DashboardSampler(lambda: counters_from_pools(pools))
    old = pools["web"].backends[0]
    old.requests_total = 10
    for _ in range(10):
        old.observe_duration(0.02)
    sampler.sample(now=0.0)
    # A new pool object (what a reload builds): counters from zero.
    pools["web"] = PoolRuntime(pools["web"].config)
    new = pools["web"].backends[0]
    new.requests_total = 4
    for _ in range(4):
        new.observe_duration(0.02)
    sampler.sample(now=1.0)
    (d,) = sampler.deltas(("web", new.label))
    assert d == Delta(4, 0, tuple(4 if i == bucket_of(0.02) else 0 for i in range(len(NO_HIST))))


# --- a running proxy: backends added, removed, pools reloaded ------------------------------


def two_pool_config(web: list[str], api: list[str] | None = None, token_env: str = ENV) -> str:
    def lines(addresses: list[str]) -> str:
        return "\n".join(f'      - {{address: "{a}"}}' for a in addresses)

    api_route = "      - match: {path_prefix: /api/}\n        pool: api\n" if api else ""
    api_pool = f"  api:\n    backends:\n{lines(api)}\n" if api else ""
    return f"""
listeners:
  - name: public
    bind: "127.0.0.1:0"
    routes:
{api_route}      - match: {{path_prefix: /}}
        pool: web
pools:
  web:
    balance: round_robin
    backends:
{lines(web)}
{api_pool}admin:
  bind: "127.0.0.1:0"
  token_env: {token_env}
access_log: {{format: "off"}}
"""


async def get_n(http: aiohttp.ClientSession, port: int, n: int, path: str = "/x") -> None:
    for _ in range(n):
        async with http.get(f"http://127.0.0.1:{port}{path}") as resp:
            assert resp.status == 200
            await resp.read()


def no_negative(answer: dict[str, Any]) -> None:
    for pool in answer["pools"].values():
        for entry in [pool, *pool["backends"]]:
            for series in entry["series"].values():
                assert all(v is None or v >= 0 for v in series), series


async def test_backends_added_removed_and_reloaded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV, TOKEN)
    async with named_backends(3) as bs, aiohttp.ClientSession() as http:
        a0, a1, a2 = (b.address for b in bs)
        async with running_proxy(two_pool_config([a0, a1])) as (proxy, port):
            sampler = DashboardSampler(lambda: counters_from_pools(proxy.pools))
            sampler.sample(now=0.0)
            await get_n(http, port, 4)  # round robin: 2 each
            await poll_until(
                lambda: sum(sum(b.hist) for b in proxy.pools["web"].backends) == 4,
                5,
                "4 latencies observed",
            )
            sampler.sample(now=1.0)
            assert [d.requests for d in sampler.deltas(("web", a0)) if d] == [2]

            # An admin add rebuilds the pool: latencies restart from zero, the
            # request counts carry over.
            proxy.add_backend("web", a2)
            await get_n(http, port, 3)
            await poll_until(
                lambda: sum(sum(b.hist) for b in proxy.pools["web"].backends) == 3,
                5,
                "3 more latencies observed",
            )
            sampler.sample(now=2.0)
            for address in (a0, a1, a2):
                last = sampler.deltas(("web", address))[-1]
                assert last is not None
                assert (last.requests, sum(last.hist)) == (1, 1), address
            added = summarize(sampler.deltas(("web", a2)), sampler.seconds())
            assert added["series"]["rps"] == [None, 1.0]

            proxy.remove_backend("web", a0)
            await poll_until(
                lambda: all(b.label != a0 for b in proxy.pools["web"].backends),
                5,
                "the removed backend to leave",
            )
            sampler.sample(now=3.0)
            answer = dashboard(sampler, proxy.status(), True)
            assert [b["address"] for b in answer["pools"]["web"]["backends"]] == [a1, a2]
            assert answer["pools"]["web"]["requests_1m"] == 2 + 1 + 1
            no_negative(answer)

            # A reload: web keeps a1 and a2, a new pool api gets a0.
            await proxy.reload(parse_config(two_pool_config([a1, a2], [a0])))
            await get_n(http, port, 2, "/api/y")
            sampler.sample(now=4.0)
            answer = dashboard(sampler, proxy.status(), True)
            assert list(answer["pools"]) == ["web", "api"]
            api = answer["pools"]["api"]["backends"][0]
            assert api["address"] == a0
            assert api["series"]["rps"] == [None, None, None, 2.0]
            assert api["requests_1m"] == 2
            assert answer["samples"] == 4
            no_negative(answer)

            # The minute's numbers move with the samples, not between them.
            await get_n(http, port, 3, "/api/y")
            assert dashboard(sampler, proxy.status(), True)["pools"]["api"]["requests_1m"] == 2
            sampler.sample(now=5.0)
            answer = dashboard(sampler, proxy.status(), True)
            assert answer["pools"]["api"]["requests_1m"] == 5
            assert answer["pools"]["api"]["backends"][0]["requests_total"] == 5


# --- GET /api/dashboard -------------------------------------------------------------------


@dataclass
class Env:
    proxy: lbproxy.Proxy
    port: int
    backends: list[BackendServer]
    http: aiohttp.ClientSession
    traffic_tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @property
    def admin(self) -> str:
        assert self.proxy.admin is not None
        return f"http://127.0.0.1:{self.proxy.admin.bound_port()}"

    def addr(self, i: int) -> str:
        return self.backends[i].address

    def state(self, pool: str, address: str) -> str:
        for entry in self.proxy.status()["pools"][pool]["backends"]:
            if entry["address"] == address:
                state: str = entry["state"]
                return state
        raise AssertionError(f"{pool}/{address} not in the status")

    def start_traffic(self, paths: tuple[str, ...] = ("/x",)) -> None:
        """Requests through the proxy, one at a time per path, until the env ends."""

        async def loop(path: str) -> None:
            while True:
                with contextlib.suppress(aiohttp.ClientError):
                    async with self.http.get(f"http://127.0.0.1:{self.port}{path}") as resp:
                        await resp.read()
                await asyncio.sleep(0.01)

        self.traffic_tasks += [asyncio.create_task(loop(p)) for p in paths]


@contextlib.asynccontextmanager
async def dashboard_env(
    monkeypatch: pytest.MonkeyPatch, *, token: str | None = TOKEN
) -> AsyncIterator[Env]:
    """Backends b0, b1 in pool web and b2 in pool api, behind a proxy with an admin API."""
    if token is None:
        monkeypatch.delenv(ENV, raising=False)
    else:
        monkeypatch.setenv(ENV, token)
    async with named_backends(3) as bs, aiohttp.ClientSession() as http:
        text = two_pool_config([bs[0].address, bs[1].address], [bs[2].address])
        async with running_proxy(text) as (proxy, port):
            env = Env(proxy, port, bs, http)
            try:
                yield env
            finally:
                for task in env.traffic_tasks:
                    task.cancel()
                await asyncio.gather(*env.traffic_tasks, return_exceptions=True)


async def test_api_dashboard_reports_the_last_minute(monkeypatch: pytest.MonkeyPatch) -> None:
    async with dashboard_env(monkeypatch) as env:
        env.start_traffic(("/x", "/api/y"))

        async def fetch() -> dict[str, Any]:
            async with env.http.get(env.admin + "/api/dashboard") as resp:
                assert resp.status == 200
                assert resp.content_type == "application/json"
                body: dict[str, Any] = await resp.json()
                return body

        loop = asyncio.get_running_loop()
        deadline = loop.time() + 8
        while True:
            body = await fetch()
            b0 = body["pools"]["web"]["backends"][0]
            if (b0["rps"] or 0) > 0 and b0["p50_1m"] is not None and body["samples"] >= 2:
                break
            assert loop.time() < deadline, f"no rates after 8 s: {b0}"
            await asyncio.sleep(0.2)

    assert body["interval"] == 1.0 and body["window"] == 60
    assert body["latency_counted"] is True
    assert body["read_only"] is False and body["token_env"] == ENV
    assert len(body["times"]) == body["samples"]
    assert list(body["pools"]) == ["web", "api"]
    web = body["pools"]["web"]
    assert web["balance"] == "round_robin"
    # Everything /api/status says, plus the minute's numbers.
    assert {"address", "state", "breaker", "weight", "active_connections", "requests_total"} <= set(
        b0
    )
    assert b0["state"] == "healthy" and b0["breaker"] == "closed"
    assert len(b0["series"]["rps"]) == body["samples"]
    assert 0 < b0["p50_1m"] <= b0["p99_1m"] < 1.0
    assert b0["error_rate_1m"] == 0.0
    assert web["requests_1m"] == sum(b["requests_1m"] for b in web["backends"])


async def test_page_is_self_contained_and_locked_down(monkeypatch: pytest.MonkeyPatch) -> None:
    page = dashboard_page().decode()
    # Every string from the server goes in through textContent.
    for unsafe in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert unsafe not in page
    # No outside assets: no src= or href= to another place.
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    async with dashboard_env(monkeypatch) as env:
        async with env.http.get(env.admin + "/") as resp:
            assert resp.status == 200
            assert resp.content_type == "text/html"
            assert (await resp.read()) == dashboard_page()
            csp = resp.headers["Content-Security-Policy"]
            assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
            assert "script-src 'sha256-" in csp and "unsafe-inline" not in csp


# --- the page in headless Chromium -----------------------------------------------------


@dataclass
class Browsing:
    page: Page
    console_errors: list[str]
    urls: list[str]


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: run scripts/install-test-tools.sh")
    async with async_playwright() as pw:
        b = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            await b.close()


async def open_dashboard(browser: Browser, env: Env) -> Browsing:
    context = await browser.new_context()
    page = await context.new_page()
    page.set_default_timeout(UI_TIMEOUT_MS)
    seen = Browsing(page, [], [])
    page.on("console", lambda m: seen.console_errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: seen.console_errors.append(str(e)))
    page.on("request", lambda r: seen.urls.append(r.url))
    await page.goto(env.admin + "/")
    return seen


def row(page: Page, pool: str, address: str) -> Locator:
    return page.locator(f'tr.backend[data-pool="{pool}"][data-address="{address}"]')


async def wait_for(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 10) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.1)


def as_number(text: str | None) -> float:
    text = (text or "").replace(",", "").strip()
    return float(text) if re.fullmatch(r"[0-9.]+", text) else -1.0


async def test_page_shows_the_backends_and_updates_with_traffic(
    monkeypatch: pytest.MonkeyPatch, browser: Browser
) -> None:
    async with dashboard_env(monkeypatch) as env:
        seen = await open_dashboard(browser, env)
        page = seen.page
        for pool, i in (("web", 0), ("web", 1), ("api", 2)):
            r = row(page, pool, env.addr(i))
            await r.wait_for()
            assert (await r.locator("td.state").text_content()) == "healthy"
            assert (await r.locator("td.breaker").text_content()) == "closed"
            assert (await r.locator("td.weight").text_content()) == "1"
        assert await page.locator("section.pool h2").all_text_contents() == ["web", "api"]
        summary = await page.locator("#summary").text_content()
        assert summary is not None and summary.startswith("2 pools, 3 backends")

        r0 = row(page, "web", env.addr(0))
        before = as_number(await r0.locator("td.requests").text_content())
        assert before == 0
        env.start_traffic(("/x", "/api/y"))

        async def busy() -> bool:
            requests = as_number(await r0.locator("td.requests").text_content())
            rps = as_number(await r0.locator("td.rps").text_content())
            p50 = await r0.locator("td.p50").text_content()
            # A line of two samples or more in the req/s chart, too.
            line = await r0.locator("td.rps-chart path.line").get_attribute("d") or ""
            return requests > before and rps > 0 and bool(p50 and p50.endswith("s")) and "L" in line

        await wait_for(busy, "web's first backend to show requests, req/s, p50 and a chart")
        assert as_number(await row(page, "api", env.addr(2)).locator("td.requests").text_content())
        # All of it from the admin API itself: no other host, no browser complaints
        # (a CSP violation would be one).
        assert all(u.startswith(env.admin + "/") for u in seen.urls), seen.urls
        assert any(u.endswith("/api/dashboard") for u in seen.urls)
        assert seen.console_errors == []


async def test_drain_and_enable_with_the_token(
    monkeypatch: pytest.MonkeyPatch, browser: Browser
) -> None:
    async with dashboard_env(monkeypatch) as env:
        page = (await open_dashboard(browser, env)).page
        address = env.addr(1)
        r = row(page, "web", address)
        await r.wait_for()
        drain = r.locator("button[data-action=drain]")
        enable = r.locator("button[data-action=enable]")
        assert await drain.is_disabled()

        await page.fill("#token", TOKEN)
        await page.click("#token-save")
        stored = await page.evaluate("sessionStorage.getItem('lbproxy.admin.token')")
        assert stored == TOKEN
        assert await page.locator("#token").input_value() == ""  # not left in the field
        await drain.click()  # waits until enabled

        async def drained() -> bool:
            shown = await r.locator("td.state").text_content()
            return shown in ("draining", "disabled") and shown == env.state("web", address)

        await wait_for(drained, "the page and the proxy to agree the backend is drained")
        message = await page.locator("#message").text_content()
        assert message == f"drain web/{address}: done, now disabled."
        assert env.state("web", env.addr(0)) == "healthy"  # only that one

        await enable.click()

        async def enabled() -> bool:
            shown = await r.locator("td.state").text_content()
            return shown == "healthy" == env.state("web", address)

        await wait_for(enabled, "the backend back to healthy")
        assert await drain.is_enabled() and await enable.is_disabled()

        # The token is kept for the tab: a reload of the page still has it.
        await page.reload()
        await row(page, "web", address).locator("button[data-action=drain]").wait_for()
        await wait_for(
            lambda: row(page, "web", address).locator("button[data-action=drain]").is_enabled(),
            "the buttons enabled after a page reload",
        )


async def test_without_the_right_token_nothing_changes(
    monkeypatch: pytest.MonkeyPatch, browser: Browser
) -> None:
    async with dashboard_env(monkeypatch) as env:
        page = (await open_dashboard(browser, env)).page
        address = env.addr(0)
        r = row(page, "web", address)
        await r.wait_for()
        for action in ("drain", "disable", "enable"):
            assert await r.locator(f"button[data-action={action}]").is_disabled()
        hint = await page.locator("#auth-hint").text_content()
        assert hint is not None and ENV in hint and "token" in hint
        # A click on a disabled button sends nothing.
        await r.locator("button[data-action=drain]").click(force=True)
        # The API itself refuses a change without the header.
        answer = await page.evaluate(
            """async (url) => {
                const r = await fetch(url, {method: "POST"});
                return [r.status, await r.json()];
            }""",
            f"/api/pools/web/backends/{address}/drain",
        )
        assert answer[0] == 401 and "Bearer" in answer[1]["error"]

        # A wrong token: the button sends it, and the page shows the API's error.
        await page.fill("#token", "not-the-token")
        await page.click("#token-save")
        await r.locator("button[data-action=drain]").click()
        message = page.locator("#message")
        await wait_for(lambda: _has(message, "403 wrong token"), "the 403 shown")
        assert await message.get_attribute("class") == "error"
        assert env.state("web", address) == "healthy"
        assert env.state("web", env.addr(1)) == env.state("api", env.addr(2)) == "healthy"


async def _has(locator: Locator, text: str) -> bool:
    return text in (await locator.text_content() or "")


async def test_a_read_only_api_keeps_the_buttons_off(
    monkeypatch: pytest.MonkeyPatch, browser: Browser
) -> None:
    async with dashboard_env(monkeypatch, token=None) as env:
        page = (await open_dashboard(browser, env)).page
        r = row(page, "web", env.addr(0))
        await r.wait_for()
        await page.fill("#token", "anything")
        await page.click("#token-save")
        hint = page.locator("#auth-hint")
        await wait_for(lambda: _has(hint, "read-only"), "the read-only hint")
        assert ENV in (await hint.text_content() or "")
        for action in ("drain", "disable", "enable"):
            assert await r.locator(f"button[data-action={action}]").is_disabled()
        assert env.state("web", env.addr(0)) == "healthy"
