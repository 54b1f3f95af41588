"""The active health checker against real servers on 127.0.0.1.

``probe()`` is checked against aiohttp backends (statuses, bodies in every
framing, the Host header) and raw-socket backends that misbehave on purpose
(garbage, early closes, resets, silence), for its detail strings, its timeout
and its file descriptors. ``HealthChecker`` is checked for its schedule
(first probe within the jitter window, then every interval +-jitter from the
start of the previous probe, never overlapping), for ``stop()`` and for
handlers that raise.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
import struct
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest
from aiohttp import web

from lbproxy.health import MAX_BODY, HealthChecker, ProbeResult, Target, probe
from tests.support import RawBackend, aiohttp_backend, echo_request, free_port, poll_until

if TYPE_CHECKING:
    from lbproxy.http.pool import BackendState

    def _backend_state_is_a_target(b: BackendState) -> Target:
        return b  # mypy checks that the proxy's backends satisfy the protocol


RawHandler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]

REQUEST = (
    b"GET /healthz HTTP/1.1\r\nHost: %s\r\nUser-Agent: lbproxy-health-check\r\n"
    b"Accept: */*\r\nConnection: close\r\n\r\n"
)


@dataclass(frozen=True)
class T:
    host: str
    port: int
    label: str


def target(port: int) -> T:
    return T("127.0.0.1", port, f"127.0.0.1:{port}")


async def check(
    port: int,
    *,
    path: str = "/healthz",
    host_header: str = "test",
    timeout: float = 2.0,
    expect_status: tuple[int, int] = (200, 399),
    expect_body: str | None = None,
) -> ProbeResult:
    return await probe(
        "127.0.0.1",
        port,
        path=path,
        host_header=host_header,
        timeout=timeout,
        expect_status=expect_status,
        expect_body=expect_body,
    )


def replying(data: bytes, *, then_close: bool = True) -> RawHandler:
    """A raw handler that reads the request head, sends ``data`` and closes
    (or, with ``then_close=False``, waits for the client to go)."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(data)
        await writer.drain()
        if not then_close:
            await reader.read()

    return handler


@contextlib.asynccontextmanager
async def raw_backend(handler: RawHandler) -> AsyncIterator[RawBackend]:
    """A RawBackend that, on exit, first lets its handlers see the probes'
    closes (instead of cancelling them, which asyncio logs as an error)."""
    async with RawBackend(handler) as backend:
        yield backend
        await poll_until(lambda: not backend.tasks, 2, "the backend's handlers to end")


def reset(writer: asyncio.StreamWriter) -> None:
    """Close with an RST (SO_LINGER 0) instead of a FIN."""
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Accepts, reads the request and never answers (until the client leaves)."""
    await reader.read()


def fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def status_handler(
    status: int, text: str = "fine"
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(status=status, text=text)

    return handler


# -- probe(): statuses ------------------------------------------------------------------------


async def test_healthy_backend_is_ok() -> None:
    async with aiohttp_backend() as backend:
        result = await check(backend.port)
    assert result.ok
    assert result.status == 200
    assert result.detail == "status 200"
    assert 0 <= result.elapsed < 2


async def test_status_outside_the_range_names_status_and_range() -> None:
    async with aiohttp_backend(status_handler(503)) as backend:
        result = await check(backend.port)
    assert result == ProbeResult(False, "status 503 not in 200-399", 503, result.elapsed)


@pytest.mark.parametrize(
    ("status", "expect", "detail"),
    [
        (204, (204, 204), "status 204"),
        (200, (204, 204), "status 200 not 204"),
        (302, (200, 399), "status 302"),
        (404, (200, 399), "status 404 not in 200-399"),
        (404, (200, 499), "status 404"),
    ],
)
async def test_expected_status(status: int, expect: tuple[int, int], detail: str) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        if status == 302:
            raise web.HTTPFound("/elsewhere")
        return web.Response(status=status)

    async with aiohttp_backend(handler) as backend:
        result = await check(backend.port, expect_status=expect)
    assert (result.ok, result.detail, result.status) == (
        detail == f"status {status}",
        detail,
        status,
    )


async def test_interim_responses_are_skipped() -> None:
    reply = (
        b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n"
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    )
    async with raw_backend(replying(reply)) as backend:
        result = await check(backend.port, expect_body="ok")
    assert (result.ok, result.status, result.detail) == (True, 200, "status 200")


async def test_http_1_0_and_bare_lf_heads_are_read() -> None:
    async with raw_backend(replying(b"HTTP/1.0 200\nServer: old\n\nall ok")) as backend:
        result = await check(backend.port, expect_body="all ok")
    assert (result.ok, result.status) == (True, 200)


# -- probe(): bodies --------------------------------------------------------------------------


async def test_body_match_with_content_length() -> None:
    async with aiohttp_backend(status_handler(200, "status: ok, all good")) as backend:
        assert (await check(backend.port, expect_body="ok, all")).ok
        result = await check(backend.port, expect_body="healthy")
    assert (result.ok, result.status, result.detail) == (False, 200, "body lacks 'healthy'")


async def test_body_match_in_a_chunked_body_across_chunks() -> None:
    async def chunked(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for piece in (b"status: h", b"eal", b"thy; ", b"x" * 1000):
            await resp.write(piece)
            await asyncio.sleep(0.01)  # separate chunks on the wire
        await resp.write_eof()
        return resp

    async with aiohttp_backend(chunked) as backend:
        ok = await check(backend.port, expect_body="healthy;")
        missing = await check(backend.port, expect_body="sick")
    assert (ok.ok, ok.detail) == (True, "status 200")
    assert (missing.ok, missing.detail) == (False, "body lacks 'sick'")


async def test_body_match_in_a_raw_chunked_body_with_extensions() -> None:
    reply = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3;ext=1\r\nall\r\n4\r\n ok!\r\n0\r\nTrailer: x\r\n\r\n"
    )
    async with raw_backend(replying(reply)) as backend:
        assert (await check(backend.port, expect_body="all ok")).ok
        result = await check(backend.port, expect_body="ok!!")
    assert result.detail == "body lacks 'ok!!'"


async def test_body_match_in_a_close_delimited_body() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nstatus=")
        await writer.drain()
        await asyncio.sleep(0.02)
        writer.write("grün\n".encode())

    async with raw_backend(handler) as backend:
        assert (await check(backend.port, expect_body="status=grün")).ok
        result = await check(backend.port, expect_body="rot")
    assert (result.ok, result.status, result.detail) == (False, 200, "body lacks 'rot'")


async def test_only_the_first_64_kib_of_the_body_count() -> None:
    body = b"x" * (MAX_BODY - 3) + b"healthy"

    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(body=body)

    async with aiohttp_backend(handler) as backend:
        assert (await check(backend.port, expect_body="xxxhea")).ok
        result = await check(backend.port, expect_body="xhealthy")
    assert result.detail == "body lacks 'xhealthy'"


async def test_body_is_not_read_without_expect_body_nor_when_the_status_fails() -> None:
    # Head only, then silence: without a body check the probe is done at the head.
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n"
    async with raw_backend(replying(head, then_close=False)) as backend:
        result = await check(backend.port, timeout=1)
        assert (result.ok, result.detail) == (True, "status 200")
        assert result.elapsed < 0.5
        timed_out = await check(backend.port, timeout=0.2, expect_body="ok")
    assert (timed_out.ok, timed_out.status, timed_out.detail) == (
        False,
        200,
        "timed out after 0.2s",
    )
    async with raw_backend(replying(head.replace(b"200", b"500"), then_close=False)) as backend:
        result = await check(backend.port, timeout=1, expect_body="ok")
    assert (result.ok, result.detail) == (False, "status 500 not in 200-399")


async def test_truncated_bodies() -> None:
    cut = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"
    async with raw_backend(replying(cut)) as backend:
        assert (await check(backend.port, expect_body="ab")).ok  # found before the cut
        result = await check(backend.port, expect_body="abcdef")
    assert (result.ok, result.status) == (False, 200)
    assert result.detail == "connection closed after 3 of 10 body bytes"
    async with raw_backend(
        replying(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab")
    ) as backend:
        result = await check(backend.port, expect_body="abcde")
    assert result.detail == "connection closed after 2 of 5 body bytes"


# -- probe(): the request ---------------------------------------------------------------------


async def test_request_as_a_raw_backend_sees_it() -> None:
    seen: list[bytes] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await reader.readuntil(b"\r\n\r\n"))
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        seen.append(await reader.read())  # the client sends nothing more, then closes

    async with raw_backend(handler) as backend:
        assert (await check(backend.port, host_header="health.example")).ok
        await poll_until(lambda: len(seen) == 2, 2, "the probe to close its connection")
    assert seen == [REQUEST % b"health.example", b""]


async def test_host_header_custom_or_the_target_label() -> None:
    async def headers(request: web.Request) -> web.StreamResponse:
        return await echo_request(request)

    async with aiohttp_backend(headers) as backend:
        custom = await check(backend.port, host_header="svc.internal", expect_body='"Host", "svc')
        assert custom.ok, custom.detail
        results: list[tuple[Target, ProbeResult]] = []
        checkers = [
            HealthChecker(
                [target(backend.port)],
                path="/healthz",
                host=host,
                interval=10,
                timeout=2,
                expect_status=(200, 200),
                expect_body=f'["Host", "{expected}"]',
                on_result=lambda t, r: results.append((t, r)),
                jitter=0,
            )
            for host, expected in ((None, backend.address), ("svc.example", "svc.example"))
        ]
        for checker in checkers:
            checker.start()
        await poll_until(lambda: len(results) == 2, 3, "both first probes")
        for checker in checkers:
            await checker.stop()
    assert [r.ok for _, r in results] == [True, True], results


async def test_request_parts_are_validated() -> None:
    with pytest.raises(ValueError, match="path"):
        await check(1, path="/a b")
    with pytest.raises(ValueError, match="Host"):
        await check(1, host_header="a\r\nX-Injected: 1")
    with pytest.raises(ValueError, match="Host"):
        HealthChecker(
            [T("127.0.0.1", 1, "bad label")],
            path="/",
            host=None,
            interval=1,
            timeout=1,
            expect_status=(200, 399),
            expect_body=None,
            on_result=lambda t, r: None,
        )


# -- probe(): failures ------------------------------------------------------------------------


async def test_connection_refused() -> None:
    result = await check(free_port())
    assert (result.ok, result.status, result.detail) == (False, 0, "connect refused")


async def test_silent_backend_times_out_within_the_timeout() -> None:
    async with raw_backend(silent) as backend:
        t0 = time.monotonic()
        result = await check(backend.port, timeout=0.3)
        took = time.monotonic() - t0
    assert (result.ok, result.status, result.detail) == (False, 0, "timed out after 0.3s")
    assert 0.29 <= result.elapsed <= took < 0.3 + 0.25


@pytest.mark.parametrize(
    ("reply", "detail"),
    [
        (b"garbage\r\n\r\n", "invalid response: bad status line 'garbage'"),
        (b"HTTP/2 200 OK\r\n\r\n", "invalid response: bad status line 'HTTP/2 200 OK'"),
        (b"HTTP/1.1 2x0 OK\r\n\r\n", "invalid response: bad status line 'HTTP/1.1 2x0 OK'"),
        (b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n", "invalid response: bad header line 'no colon'"),
        (
            b"HTTP/1.1 200 OK\r\nBad Name: 1\r\n\r\n",
            "invalid response: bad header line 'Bad Name: 1'",
        ),
        (
            b"HTTP/1.1 200 OK\r\nX: 1\r\n folded\r\n\r\n",
            "invalid response: obsolete line folding in the head",
        ),
        (
            b"HTTP/1.1 200 OK\r\nX: " + b"a" * MAX_BODY + b"\r\n\r\n",
            "invalid response: head larger than 64 KiB",
        ),
        (b"", "connection closed before a response"),
        (b"HTTP/1.1 200 OK\r\nContent-", "connection closed in the middle of the response head"),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 2, 3\r\n\r\nok",
            "invalid response: bad Content-Length '2, 3'",
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nok\r\n0\r\n\r\n",
            "invalid response: bad chunk size 'zz'",
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nxy\r\n0\r\n\r\n",
            "invalid response: chunk data longer than its size",
        ),
    ],
)
async def test_broken_responses(reply: bytes, detail: str) -> None:
    async with raw_backend(replying(reply)) as backend:
        result = await check(backend.port, expect_body="ok!")
    assert (result.ok, result.detail) == (False, detail)
    # The status is known once the head was read (body framing errors).
    assert result.status == (200 if "Content-Length" in detail or "chunk" in detail else 0)


async def test_close_without_reading_the_request() -> None:
    async def close_at_once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        pass  # RawBackend closes the connection

    async with raw_backend(close_at_once) as backend:
        result = await check(backend.port)
    assert not result.ok
    assert result.detail in (
        "connection closed before a response",
        "connection reset before a response",
    )


async def test_reset_before_and_during_the_response() -> None:
    async def reset_at_once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        reset(writer)

    async def reset_mid_body(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
        await writer.drain()
        await asyncio.sleep(0.05)
        reset(writer)

    async with raw_backend(reset_at_once) as backend:
        result = await check(backend.port)
    assert (result.ok, result.status, result.detail) == (
        False,
        0,
        "connection reset before a response",
    )
    async with raw_backend(reset_mid_body) as backend:
        result = await check(backend.port, expect_body="complete")
    assert (result.ok, result.status) == (False, 200)
    assert result.detail == "connection reset during the response body"


async def test_cancellation_propagates_and_closes_the_connection() -> None:
    async with raw_backend(silent) as backend:
        before = fds()
        task = asyncio.create_task(check(backend.port, timeout=10))
        await poll_until(lambda: backend.connections == 1, 2, "the probe to connect")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # The backend sees the close, its handler ends and it closes its side.
        await poll_until(lambda: not backend.tasks, 2, "the backend to see the close")
        await poll_until(lambda: fds() <= before, 2, "descriptors to be released")


async def test_no_descriptor_leak_over_many_failing_probes() -> None:
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"nonsense\r\n\r\n")

    async def reset_at_once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        reset(writer)

    refused = free_port()
    async with (
        raw_backend(silent) as quiet,
        raw_backend(garbage) as bad,
        raw_backend(reset_at_once) as rst,
    ):
        await check(bad.port)  # warm up anything allocated once (resolver, loop internals)
        await poll_until(lambda: not bad.tasks, 2, "the warm-up connection to end")
        before = fds()
        ports = [refused, quiet.port, bad.port, rst.port, bad.port] * 10
        results = await asyncio.gather(*(check(p, timeout=0.3) for p in ports))
        assert len(results) == 50
        assert not any(r.ok for r in results)
        assert {r.detail for r in results} == {
            "connect refused",
            "timed out after 0.3s",
            "invalid response: bad status line 'nonsense'",
            "connection reset before a response",
        }
        await poll_until(
            lambda: not (quiet.tasks or bad.tasks or rst.tasks), 2, "backends to see the closes"
        )
        await poll_until(lambda: fds() <= before, 2, f"descriptors back to {before}")


# -- HealthChecker ----------------------------------------------------------------------------


class Recorder:
    """on_result that records (loop time, target label, result)."""

    def __init__(self) -> None:
        self.calls: list[tuple[float, str, ProbeResult]] = []

    def __call__(self, t: Target, result: ProbeResult) -> None:
        self.calls.append((asyncio.get_running_loop().time(), t.label, result))


def checker(
    targets: list[T],
    on_result: Callable[[Target, ProbeResult], None],
    *,
    interval: float = 0.1,
    timeout: float = 1.0,
    jitter: float = 0.1,
    rng: random.Random | None = None,
) -> HealthChecker:
    return HealthChecker(
        targets,
        path="/healthz",
        host=None,
        interval=interval,
        timeout=timeout,
        expect_status=(200, 399),
        expect_body=None,
        on_result=on_result,
        jitter=jitter,
        rng=rng,
    )


class StartTimes:
    """A raw backend handler recording when each probe connected, and how
    many were awaiting their response at once; answers 200 after ``delay``."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.starts: list[float] = []
        self.in_flight = 0
        self.max_in_flight = 0

    async def __call__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.starts.append(asyncio.get_running_loop().time())
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await reader.readuntil(b"\r\n\r\n")
            await asyncio.sleep(self.delay)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()
        finally:
            # A probe is in flight from its connect to its response: the next
            # one may connect before this handler sees the previous close.
            self.in_flight -= 1
        await reader.read()  # until the probe closes

    def gaps(self) -> list[float]:
        return [b - a for a, b in zip(self.starts, self.starts[1:], strict=False)]


@contextlib.asynccontextmanager
async def running(hc: HealthChecker) -> AsyncIterator[HealthChecker]:
    hc.start()
    try:
        yield hc
    finally:
        await hc.stop()


class RecordingRandom(random.Random):
    """A seeded generator that records the bounds of every uniform() draw."""

    def __init__(self, seed: int) -> None:
        super().__init__(seed)
        self.draws: list[tuple[float, float]] = []

    def uniform(self, a: float, b: float) -> float:
        self.draws.append((a, b))
        return super().uniform(a, b)


def checker_tasks() -> list[asyncio.Task[object]]:
    return [
        t
        for t in asyncio.all_tasks()
        if t.get_name().startswith("lbproxy health check") and not t.done()
    ]


async def test_checker_probes_periodically() -> None:
    rec = Recorder()
    async with aiohttp_backend() as backend:
        async with running(checker([target(backend.port)], rec, interval=0.1)) as hc:
            assert hc.running
            await asyncio.sleep(0.55)
        assert not hc.running
    # First probe within 10 ms, then about every 100 ms: 6, give or take one.
    assert 4 <= len(rec.calls) <= 7, rec.calls
    assert all(r.ok and r.detail == "status 200" for _, _, r in rec.calls)
    assert {label for _, label, _ in rec.calls} == {backend.address}


async def test_intervals_between_probe_starts_stay_within_the_jitter() -> None:
    times = StartTimes()
    rng = RecordingRandom(7)
    interval = 0.1
    async with raw_backend(times) as backend:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        async with running(checker([target(backend.port)], Recorder(), interval=interval, rng=rng)):
            await poll_until(lambda: len(times.starts) >= 7, 3, "seven probes")
    assert times.starts[0] - t0 <= 0.1 * interval + 0.05  # first probe: right away (jittered)
    gaps = times.gaps()
    assert all(0.9 * interval - 0.005 <= g <= 1.1 * interval + 0.04 for g in gaps), gaps
    # The draws: a first delay in [0, jitter * interval], then interval factors.
    low, high = rng.draws[0]
    assert low == 0
    assert high == pytest.approx(0.1 * interval)
    assert set(rng.draws[1:]) == {(0.9, 1.1)}
    assert len(rng.draws) >= len(times.starts)


async def test_first_probes_of_many_targets_are_spread() -> None:
    rec = Recorder()
    rng = random.Random(3)
    replay = random.Random(3)
    expected = [replay.uniform(0, 0.3) for _ in range(5)]
    async with aiohttp_backend() as backend:
        targets = [T("127.0.0.1", backend.port, f"127.0.0.1:{backend.port}") for _ in range(5)]
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        async with running(checker(targets, rec, interval=1.0, jitter=0.3, rng=rng)):
            await poll_until(lambda: len(rec.calls) >= 5, 2, "five first probes")
    starts = sorted(t - r.elapsed - t0 for t, _, r in rec.calls[:5])
    assert all(-0.005 <= s <= 0.3 + 0.05 for s in starts), starts
    for got, want in zip(starts, sorted(expected), strict=True):
        assert got == pytest.approx(want, abs=0.03)


async def test_a_slow_probe_does_not_add_to_the_interval() -> None:
    times = StartTimes(delay=0.1)
    interval = 0.2
    async with raw_backend(times) as backend:
        async with running(
            checker([target(backend.port)], Recorder(), interval=interval, rng=random.Random(1))
        ):
            await poll_until(lambda: len(times.starts) >= 4, 3, "four probes")
    gaps = times.gaps()
    # Measured from the start of the previous probe: not interval + 0.1.
    assert all(0.9 * interval - 0.005 <= g <= 1.1 * interval + 0.04 for g in gaps), gaps


async def test_probes_of_a_slow_target_never_overlap() -> None:
    times = StartTimes(delay=0.25)
    rec = Recorder()
    async with raw_backend(times) as backend:
        async with running(checker([target(backend.port)], rec, interval=0.05)):
            await poll_until(lambda: len(rec.calls) >= 3, 3, "three probes")
    assert times.max_in_flight == 1
    assert all(r.ok for _, _, r in rec.calls)
    # Each probe starts once the previous one has ended (0.25 s), at once.
    assert all(0.25 - 0.005 <= g <= 0.25 + 0.1 for g in times.gaps()), times.gaps()


async def test_stop_cancels_promptly_and_leaves_no_tasks() -> None:
    rec = Recorder()
    async with raw_backend(silent) as backend:
        before = fds()
        hc = checker([target(backend.port), target(backend.port)], rec, interval=1, timeout=10)
        hc.start()
        assert hc.running
        assert len(checker_tasks()) == 2
        await poll_until(lambda: backend.connections == 2, 2, "both probes to connect")
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        await hc.stop()
        assert loop.time() - t0 < 0.1
        assert not hc.running
        assert checker_tasks() == []
        assert rec.calls == []  # cancelled probes report nothing
        await hc.stop()  # idempotent
        await poll_until(lambda: not backend.tasks, 2, "the backend to see the closes")
        await poll_until(lambda: fds() <= before, 2, "descriptors to be released")
    # and it can be started again
    async with aiohttp_backend() as backend:
        hc2 = checker([target(backend.port)], rec, interval=10, jitter=0)
        await hc2.stop()  # before start: nothing to do
        async with running(hc2):
            with pytest.raises(RuntimeError, match="already started"):
                hc2.start()
            await poll_until(lambda: len(rec.calls) == 1, 2, "a probe")
        async with running(hc2):
            await poll_until(lambda: len(rec.calls) == 2, 2, "a probe after restart")


def test_start_needs_a_running_loop() -> None:
    hc = checker([target(1)], Recorder())
    with pytest.raises(RuntimeError):
        hc.start()
    assert not hc.running


@pytest.mark.parametrize(
    "bad",
    [{"interval": 0}, {"timeout": -1}, {"jitter": 1.0}, {"expect_status": (400, 200)}],
)
def test_invalid_settings_are_refused(bad: dict[str, object]) -> None:
    settings: dict[str, object] = {
        "path": "/",
        "host": None,
        "interval": 1,
        "timeout": 1,
        "expect_status": (200, 399),
        "expect_body": None,
        "on_result": Recorder(),
    }
    settings.update(bad)
    with pytest.raises(ValueError):
        HealthChecker([target(1)], **settings)  # type: ignore[arg-type]


async def test_on_result_errors_are_logged_and_checking_continues(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="lbproxy")
    seen: list[ProbeResult] = []

    def explode(t: Target, result: ProbeResult) -> None:
        seen.append(result)
        raise ValueError(f"boom {len(seen)}")

    async with aiohttp_backend() as backend:
        async with running(checker([target(backend.port)], explode, interval=0.05)):
            await poll_until(lambda: len(seen) >= 3, 2, "three results despite the errors")
    assert all(r.ok for r in seen)
    errors = [r for r in caplog.records if r.name == "lbproxy" and r.exc_info]
    assert len(errors) >= 3
    assert backend.address in errors[0].getMessage()
    exc = errors[0].exc_info
    assert exc is not None and isinstance(exc[1], ValueError) and str(exc[1]) == "boom 1"
