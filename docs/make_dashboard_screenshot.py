"""Take docs/dashboard.png: the admin dashboard of a real lbproxy with traffic
flowing to 3 backends in 2 pools, one of them drained.

    .venv/bin/python docs/make_dashboard_screenshot.py [--seconds 62] [--out docs/dashboard.png]

Everything runs in this process on 127.0.0.1: three aiohttp backends (with
made-up latencies), an in-process ``lbproxy.Proxy`` with an admin API, a few
aiohttp clients, and headless Chromium (Debian's /usr/bin/chromium, through
Playwright). Nothing is downloaded.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import random
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support import aiohttp_backend, running_proxy  # noqa: E402

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
ENV = "LBPROXY_SCREENSHOT_TOKEN"

CONFIG = """
listeners:
  - name: public
    bind: "127.0.0.1:0"
    routes:
      - match: {path_prefix: /api/}
        pool: api
      - match: {path_prefix: /}
        pool: web
pools:
  web:
    balance: least_connections
    backends:
      - {address: "{w0}", weight: 2}
      - {address: "{w1}"}
  api:
    balance: round_robin
    backends:
      - {address: "{a0}"}
admin:
  bind: "127.0.0.1:0"
  token_env: LBPROXY_SCREENSHOT_TOKEN
access_log: {format: "off"}
"""


RELEASE = asyncio.Event()  # set at the end: lets the held "/slow" requests finish
HELD: dict[str, int] = {}  # backend name -> "/slow" requests it holds


def latency_handler(
    name: str, low: float, high: float
) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handle(request: web.Request) -> web.Response:
        if request.path == "/slow":
            HELD[name] = HELD.get(name, 0) + 1
            await RELEASE.wait()  # held open: keeps a drained backend "draining"
        # Mostly fast, with a long tail.
        delay = random.uniform(low, high) * (4 if random.random() < 0.03 else 1)
        await asyncio.sleep(delay)
        return web.Response(text="ok")

    return handle


async def traffic(port: int, stop: asyncio.Event, started: float) -> None:
    async with aiohttp.ClientSession() as http:

        async def client(i: int) -> None:
            while not stop.is_set():
                # The rate swells and ebbs, so the charts have a shape.
                phase = math.sin((time.monotonic() - started) / 6 + i)
                await asyncio.sleep(0.01 + 0.03 * (1 + phase))
                path = "/api/users" if random.random() < 0.35 else "/index.html"
                with contextlib.suppress(aiohttp.ClientError):
                    async with http.get(f"http://127.0.0.1:{port}{path}") as resp:
                        await resp.read()

        await asyncio.gather(*(client(i) for i in range(8)))


async def main(out: Path, seconds: float) -> None:
    from playwright.async_api import async_playwright

    os.environ[ENV] = "screenshot-token"
    async with contextlib.AsyncExitStack() as stack:
        w0, w1, a0 = [
            await stack.enter_async_context(aiohttp_backend(latency_handler(name, low, high), name))
            for name, low, high in (("w0", 0.002, 0.012), ("w1", 0.004, 0.020), ("a0", 0.01, 0.06))
        ]
        proxy, port = await stack.enter_async_context(
            running_proxy(CONFIG, w0=w0.address, w1=w1.address, a0=a0.address)
        )
        assert proxy.admin is not None
        admin = f"http://127.0.0.1:{proxy.admin.bound_port()}/"

        stop = asyncio.Event()
        load = asyncio.create_task(traffic(port, stop, time.monotonic()))
        http = await stack.enter_async_context(aiohttp.ClientSession())

        async def held() -> None:
            async with http.get(f"http://127.0.0.1:{port}/slow") as resp:
                await resp.read()

        slow: list[asyncio.Task[None]] = []
        await asyncio.sleep(seconds * 0.6)
        # Drain w1 with a request still in flight there: it shows "draining".
        for _ in range(10):
            slow.append(asyncio.create_task(held()))
            await asyncio.sleep(0.2)
            if HELD.get("w1"):
                break
        proxy.drain("web", w1.address)
        await asyncio.sleep(seconds * 0.4)

        pw = await stack.enter_async_context(async_playwright())
        browser = await pw.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        page = await browser.new_page(viewport={"width": 1500, "height": 480})
        await page.goto(admin)
        await page.fill("#token", "screenshot-token")
        await page.press("#token", "Enter")
        await page.evaluate("document.activeElement && document.activeElement.blur()")
        await page.locator("tr.backend").nth(2).wait_for(timeout=10_000)
        await page.wait_for_timeout(2500)  # two more polls: the charts filled in
        await page.screenshot(path=str(out), full_page=True)
        await browser.close()

        stop.set()
        RELEASE.set()
        await load
        await asyncio.gather(*slow, return_exceptions=True)
    print(f"wrote {out}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "dashboard.png")
    parser.add_argument("--seconds", type=float, default=62.0, help="traffic before the shot")
    args = parser.parse_args()
    import uvloop

    uvloop.run(main(args.out, args.seconds))
