"""Health checks, outlier ejection, circuit breakers, retries, limits and panic,
end to end: real aiohttp backends that die, hang, reset and fail; real clients."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest
from aiohttp import web

from tests.support import RawBackend, free_port, running_proxy

NAME = web.AppKey("name", str)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def _ok(request: web.Request) -> web.StreamResponse:
    name = request.app[NAME]
    return web.Response(text=name, headers={"X-Backend": name})


class Backend:
    """An aiohttp backend on a fixed port that can be stopped and started again."""

    def __init__(self, name: str, handler: Handler = _ok) -> None:
        self.name = name
        self.handler = handler
        self.port = free_port()
        self.runner: web.AppRunner | None = None
        self.requests = 0

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self) -> None:
        app = web.Application()
        app[NAME] = self.name

        async def counted(request: web.Request) -> web.StreamResponse:
            self.requests += 1
            return await self.handler(request)

        app.router.add_route("*", "/{tail:.*}", counted)
        self.runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port, reuse_address=True).start()

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None


@contextlib.asynccontextmanager
async def _backends(*handlers: Handler) -> AsyncIterator[list[Backend]]:
    bs = [Backend(f"b{i}", h) for i, h in enumerate(handlers)]
    try:
        for b in bs:
            await b.start()
        yield bs
    finally:
        for b in bs:
            await b.stop()


def _config(addresses: list[str], pool_extra: str = "", balance: str = "round_robin") -> str:
    lines = "\n".join(f'      - {{address: "{a}"}}' for a in addresses)
    return f"""
listeners:
  - name: t
    bind: "127.0.0.1:0"
    routes: [{{match: {{path_prefix: /}}, pool: web}}]
pools:
  web:
    balance: {balance}
{pool_extra}    timeouts: {{connect: 1s, response: 5s}}
    backends:
{lines}
access_log: {{format: "off"}}
"""


async def _get(session: aiohttp.ClientSession, port: int, path: str = "/") -> tuple[int, str]:
    async with session.get(f"http://127.0.0.1:{port}{path}") as r:
        await r.read()
        return r.status, r.headers.get("X-Backend", "")


def _states(proxy: object) -> list[tuple[str, str]]:
    backends = proxy.status()["pools"]["web"]["backends"]  # type: ignore[attr-defined]
    return [(b["state"], b["breaker"]) for b in backends]


# -- a backend dies under load --------------------------------------------------


async def test_killing_a_backend_under_load_loses_no_request() -> None:
    async with _backends(_ok, _ok, _ok) as bs:
        extra = (
            "    health_check: {path: /healthz, interval: 200ms, timeout: 150ms,"
            " healthy_threshold: 2, unhealthy_threshold: 2}\n"
            "    slow_start: 1s\n"
        )
        async with running_proxy(_config([b.address for b in bs], extra)) as (proxy, port):
            results: list[int] = []
            stopped_at = 0.0
            async with aiohttp.ClientSession() as session:

                async def worker() -> None:
                    for _ in range(60):
                        results.append((await _get(session, port))[0])

                async def killer() -> None:
                    nonlocal stopped_at
                    await asyncio.sleep(0.3)
                    await bs[1].stop()
                    stopped_at = time.monotonic()

                await asyncio.wait_for(asyncio.gather(killer(), *(worker() for _ in range(10))), 60)
                assert results.count(200) == 600, Counter(results)
                # Down within interval x unhealthy_threshold (plus jitter and a tick).
                while _states(proxy)[1][0] != "unhealthy":
                    assert time.monotonic() - stopped_at < 2.0
                    await asyncio.sleep(0.02)
                down_after = time.monotonic() - stopped_at
                before = bs[1].requests
                names = [(await _get(session, port))[1] for _ in range(12)]
                assert "b1" not in names and bs[1].requests == before
                # Back: it rejoins after healthy_threshold passes, slow-starting.
                await bs[1].start()
                back_at = time.monotonic()
                while _states(proxy)[1][0] != "healthy":
                    assert time.monotonic() - back_at < 2.0
                    await asyncio.sleep(0.02)
                assert proxy.pools["web"].backends[1].ramp_since > 0
                for _ in range(40):
                    if "b1" in {(await _get(session, port))[1] for _ in range(10)}:
                        break
                    await asyncio.sleep(0.05)
                else:
                    pytest.fail("b1 never served again")
    assert down_after < 1.0


# -- retries ---------------------------------------------------------------------


async def _reset_after_reading(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    # Reads a request head (and whatever body came with it), then resets.
    await reader.readuntil(b"\r\n\r\n")
    await asyncio.sleep(0.02)
    # SO_LINGER 0: close sends RST, not FIN.
    writer.get_extra_info("socket").setsockopt(
        socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
    )
    writer.close()


async def _post(
    session: aiohttp.ClientSession, port: int, headers: dict[str, str] | None = None
) -> tuple[int, str]:
    async with session.post(f"http://127.0.0.1:{port}/", data=b"x" * 100, headers=headers) as r:
        await r.read()
        return r.status, r.headers.get("X-Backend", "")


async def test_sent_post_is_not_retried_but_get_and_keyed_post_are() -> None:
    async with RawBackend(_reset_after_reading) as bad, _backends(_ok) as (good,):
        # first: every request tries the resetting backend first.
        config = _config([bad.address, good.address], balance="first")
        async with running_proxy(config) as (_, port):
            async with aiohttp.ClientSession() as session:
                assert await _get(session, port) == (200, "b0")
                assert (await _post(session, port))[0] == 502
                assert await _post(session, port, {"Idempotency-Key": "k1"}) == (200, "b0")
    assert good.requests == 2


async def test_post_is_retried_after_a_connect_refusal() -> None:
    refused = f"127.0.0.1:{free_port()}"
    async with _backends(_ok) as (good,):
        async with running_proxy(_config([refused, good.address], balance="first")) as (_, port):
            async with aiohttp.ClientSession() as session:
                assert await _post(session, port) == (200, "b0")


async def test_per_try_timeout_moves_a_hung_request_on() -> None:
    async def hang(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(10)
        return web.Response()

    async with _backends(hang, _ok) as bs:
        extra = "    retries: {attempts: 2, per_try_timeout: 200ms}\n"
        config = _config([b.address for b in bs], extra, balance="first")
        async with running_proxy(config) as (_, port):
            async with aiohttp.ClientSession() as session:
                started = time.monotonic()
                assert await _get(session, port) == (200, "b1")
                assert time.monotonic() - started < 2.0


async def test_attempts_one_means_no_retry() -> None:
    refused = f"127.0.0.1:{free_port()}"
    async with _backends(_ok) as (good,):
        extra = "    retries: {attempts: 1}\n"
        config = _config([refused, good.address], extra, balance="first")
        async with running_proxy(config) as (_, port):
            async with aiohttp.ClientSession() as session:
                assert (await _get(session, port))[0] == 502


# -- circuit breaker and outlier detection ------------------------------------------


async def test_breaker_opens_on_503s_then_half_open_trial_closes_it() -> None:
    failing = True

    async def flaky(request: web.Request) -> web.StreamResponse:
        if failing:
            return web.Response(status=503, headers={"X-Backend": "b0"})
        return await _ok(request)

    async with _backends(flaky, _ok) as bs:
        extra = (
            "    circuit_breaker: {failure_rate: 50%, minimum_requests: 4, window: 10s,"
            " open_duration: 500ms, half_open_requests: 1}\n"
        )
        async with running_proxy(_config([b.address for b in bs], extra)) as (proxy, port):
            async with aiohttp.ClientSession() as session:
                # Retries hide the 503s from the clients while the breaker counts them.
                results = [await _get(session, port) for _ in range(12)]
                assert all(status == 200 for status, _ in results), results
                assert _states(proxy)[0][1] == "open"
                seen_before = bs[0].requests
                assert {name for _, name in [await _get(session, port) for _ in range(6)]} == {"b1"}
                assert bs[0].requests == seen_before  # open: no traffic at all
                failing = False
                # open_duration, then the proxy's next tick (every 250 ms) lets trials in.
                await asyncio.sleep(0.8)
                assert _states(proxy)[0][1] == "half_open"
                names = [(await _get(session, port))[1] for _ in range(6)]
                assert "b0" in names
                assert _states(proxy)[0][1] == "closed"


async def test_outlier_detection_ejects_and_caps_ejections() -> None:
    async def broken(request: web.Request) -> web.StreamResponse:
        return web.Response(status=500, headers={"X-Backend": request.app[NAME]})

    async with _backends(broken, broken, broken, _ok) as bs:
        extra = (
            "    outlier_detection: {consecutive_failures: 2, base_ejection_time: 5s,"
            " max_ejection_percent: 50}\n"
            "    retries: {attempts: 1}\n"
        )
        async with running_proxy(_config([b.address for b in bs], extra)) as (proxy, port):
            async with aiohttp.ClientSession() as session:
                for _ in range(40):
                    await _get(session, port)
                states = [s for s, _ in _states(proxy)]
    # 3 backends fail every request, but at most half the pool (2 of 4) is out.
    assert states.count("ejected") == 2, states
    assert states[3] == "healthy"


# -- limits --------------------------------------------------------------------------


async def test_more_than_max_connections_plus_pending_get_503_quickly() -> None:
    async def slow(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(0.5)
        return await _ok(request)

    async with _backends(slow) as bs:
        extra = "    limits: {max_connections: 2, max_pending: 2, queue_timeout: 5s}\n"
        async with running_proxy(_config([b.address for b in bs], extra)) as (_, port):
            async with aiohttp.ClientSession() as session:

                async def timed() -> tuple[int, float, str | None]:
                    started = time.monotonic()
                    async with session.get(f"http://127.0.0.1:{port}/") as r:
                        await r.read()
                        return r.status, time.monotonic() - started, r.headers.get("Retry-After")

                results = await asyncio.gather(*(timed() for _ in range(8)))
    ok = [r for r in results if r[0] == 200]
    refused = [r for r in results if r[0] == 503]
    assert len(ok) == 4 and len(refused) == 4, results
    assert all(elapsed < 0.3 and retry == "1" for _, elapsed, retry in refused)
    # Two at a time: the queued pair finishes a round later.
    assert sorted(e for _, e, _ in ok)[-1] > 0.9


async def test_queue_timeout_answers_503_with_retry_after() -> None:
    async def slow(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(1.0)
        return await _ok(request)

    async with _backends(slow) as bs:
        extra = "    limits: {max_connections: 1, max_pending: 10, queue_timeout: 200ms}\n"
        async with running_proxy(_config([b.address for b in bs], extra)) as (proxy, port):
            async with aiohttp.ClientSession() as session:
                first = asyncio.create_task(_get(session, port))
                await asyncio.sleep(0.1)
                started = time.monotonic()
                async with session.get(f"http://127.0.0.1:{port}/") as r:
                    assert r.status == 503 and r.headers["Retry-After"] == "1"
                assert 0.15 < time.monotonic() - started < 0.8
                assert (await first)[0] == 200
                assert len(proxy.pools["web"].pending) == 0


async def test_a_client_that_leaves_the_queue_frees_its_place() -> None:
    async def slow(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(0.5)
        return await _ok(request)

    async with _backends(slow) as bs:
        extra = "    limits: {max_connections: 1, max_pending: 1, queue_timeout: 5s}\n"
        async with running_proxy(_config([b.address for b in bs], extra)) as (proxy, port):
            async with aiohttp.ClientSession() as session:
                first = asyncio.create_task(_get(session, port))
                await asyncio.sleep(0.1)
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                await asyncio.sleep(0.1)
                assert len(proxy.pools["web"].pending) == 1
                writer.close()
                await asyncio.sleep(0.1)
                assert len(proxy.pools["web"].pending) == 0
                # The place is free again: a new request queues instead of a 503.
                assert (await _get(session, port))[0] == 200
                assert (await first)[0] == 200
    assert bs[0].requests == 2


# -- panic -----------------------------------------------------------------------------


@pytest.mark.parametrize(("threshold", "expect_all"), [("50%", True), ("0%", False)])
async def test_panic_spreads_over_all_backends_when_too_few_are_healthy(
    threshold: str, expect_all: bool
) -> None:
    async def sick(request: web.Request) -> web.StreamResponse:
        if request.path == "/healthz":
            return web.Response(status=500)
        return await _ok(request)

    async with _backends(sick, sick, sick, _ok) as bs:
        extra = (
            "    health_check: {path: /healthz, interval: 100ms, timeout: 80ms,"
            " unhealthy_threshold: 1}\n"
            f"    panic_threshold: {threshold}\n"
        )
        async with running_proxy(_config([b.address for b in bs], extra)) as (proxy, port):
            for _ in range(100):
                if [s for s, _ in _states(proxy)].count("unhealthy") == 3:
                    break
                await asyncio.sleep(0.02)
            async with aiohttp.ClientSession() as session:
                names = {(await _get(session, port))[1] for _ in range(12)}
            assert proxy.status()["pools"]["web"]["panic"] is expect_all
    assert names == ({"b0", "b1", "b2", "b3"} if expect_all else {"b3"})


async def _hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")
    await asyncio.sleep(5)
    writer.close()


@pytest.mark.parametrize("misbehaviour", [_reset_after_reading, _hang], ids=["reset", "hang"])
async def test_resetting_or_hanging_backend_opens_its_breaker_and_traffic_shifts(
    misbehaviour: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
) -> None:
    async with RawBackend(misbehaviour) as bad, _backends(_ok) as (good,):
        extra = (
            "    circuit_breaker: {failure_rate: 50%, minimum_requests: 3, window: 10s,"
            " open_duration: 10s, half_open_requests: 1}\n"
            "    retries: {attempts: 2, per_try_timeout: 150ms}\n"
        )
        config = _config([bad.address, good.address], extra)
        async with running_proxy(config) as (proxy, port):
            async with aiohttp.ClientSession() as session:
                results = [await _get(session, port) for _ in range(12)]
            assert _states(proxy)[0][1] == "open"
    # Every GET was answered by the good backend: the failed tries were retried.
    assert results == [(200, "b0")] * 12
    # Round robin would have sent half of them to the bad one; the breaker
    # stopped that after minimum_requests failures.
    assert bad.connections <= 4
