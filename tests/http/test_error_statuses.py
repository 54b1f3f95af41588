"""The proxy's own error responses, each provoked for real.

Every case checks the status, a short plain-text body, whether the client
connection survives (closed when the request's framing is in doubt: 400, 408,
413, 431; kept for a bodiless GET answered 404, 502, 503 or 504), and that the
proxy still serves afterwards.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import Awaitable, Callable

import pytest
from aiohttp import web

from tests.support import (
    RawBackend,
    aiohttp_backend,
    client_connection,
    exchange_until_close,
    get,
    read_eof,
    read_request_head,
    read_response,
    running_proxy,
    simple_config,
    split_response,
)

TIMEOUT = 5.0


def two_pools(bad: str, good: str, listener: str = "", bad_pool: str = "") -> str:
    """/bad goes to pool "bad", everything else to pool "good"."""
    return f"""
listeners:
  - name: test
    bind: "127.0.0.1:0"
{listener}
    routes:
      - match: {{path_prefix: /bad}}
        pool: bad
      - match: {{path_prefix: /}}
        pool: good
pools:
  bad:
{bad_pool}
    backends: [{{address: "{bad}"}}]
  good:
    backends: [{{address: "{good}"}}]
access_log: {{format: "off"}}
"""


def assert_error(status: int, headers: dict[str, str], body: bytes, expected: int) -> None:
    assert status == expected, body
    assert headers["content-type"].startswith("text/plain")
    assert body.startswith(str(expected).encode()), body
    assert len(body) < 200
    assert int(headers["content-length"]) == len(body)


async def get_raw(port: int, request: str | bytes) -> tuple[int, dict[str, str], bytes]:
    """One request on a fresh connection; the first response."""
    data = request.encode() if isinstance(request, str) else request
    async with client_connection(port) as (reader, writer):
        writer.write(data)
        return await asyncio.wait_for(read_response(reader), TIMEOUT)


async def assert_serves(port: int) -> None:
    status, _, body = await get(port, "/ok")
    assert status == 200, body


async def assert_keep_alive_error(port: int, path: str, expected: int) -> None:
    """A bodiless GET gets ``expected``, and the same connection serves the next request."""
    async with client_connection(port) as (reader, writer):
        writer.write(f"GET {path} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
        status, headers, body = await asyncio.wait_for(read_response(reader), TIMEOUT)
        assert_error(status, headers, body, expected)
        assert headers.get("connection", "").lower() != "close"
        writer.write(b"GET /ok HTTP/1.1\r\nHost: t\r\n\r\n")
        status, _, body = await asyncio.wait_for(read_response(reader), TIMEOUT)
        assert status == 200, body
    await assert_serves(port)


async def assert_closing_error(port: int, request: bytes, expected: int) -> None:
    raw, closed = await exchange_until_close(port, request)
    status, headers, body = split_response(raw)
    assert_error(status, headers, body, expected)
    assert headers.get("connection", "").lower() == "close"
    assert closed, f"connection left open after {expected}"
    await assert_serves(port)


# -- 404 ---------------------------------------------------------------------------


async def test_404_when_no_route_matches() -> None:
    async with aiohttp_backend() as b:
        cfg = f"""
listeners:
  - name: test
    bind: "127.0.0.1:0"
    routes:
      - match: {{host: known.test}}
        pool: web
pools:
  web:
    backends: [{{address: "{b.address}"}}]
access_log: {{format: "off"}}
"""
        async with running_proxy(cfg) as (_, port), client_connection(port) as (reader, writer):
            writer.write(b"GET / HTTP/1.1\r\nHost: unknown.test\r\n\r\n")
            status, headers, body = await asyncio.wait_for(read_response(reader), TIMEOUT)
            assert_error(status, headers, body, 404)
            assert headers.get("connection", "").lower() != "close"
            # Same connection, a host the route names: served.
            writer.write(b"GET /x HTTP/1.1\r\nHost: Known.Test:8080\r\n\r\n")
            status, _, body = await asyncio.wait_for(read_response(reader), TIMEOUT)
            assert status == 200, body
            assert b.requests == 1


# -- 431 and 413: listener limits --------------------------------------------------

LIMITS = """    limits: {max_headers: 10, max_header_bytes: 1KiB, max_body_bytes: 1KiB}"""


async def test_431_too_many_headers() -> None:
    async with (
        aiohttp_backend() as b,
        running_proxy(simple_config(b.address, extra_listener=LIMITS)) as (_, port),
    ):
        fields = "".join(f"X-H{i}: {i}\r\n" for i in range(12))
        await assert_closing_error(port, f"GET / HTTP/1.1\r\nHost: t\r\n{fields}\r\n".encode(), 431)
        assert b.requests == 1  # only assert_serves' request
        # Exactly at the limit is fine (Host + 9 more).
        fields = "".join(f"X-H{i}: {i}\r\n" for i in range(9))
        status, _, body = await get_raw(port, f"GET / HTTP/1.1\r\nHost: t\r\n{fields}\r\n")
        assert status == 200, body


async def test_431_header_block_too_large() -> None:
    async with (
        aiohttp_backend() as b,
        running_proxy(simple_config(b.address, extra_listener=LIMITS)) as (_, port),
    ):
        request = b"GET / HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * 1500 + b"\r\n\r\n"
        await assert_closing_error(port, request, 431)
        assert b.requests == 1  # only assert_serves' request


async def test_431_for_a_header_block_that_never_ends() -> None:
    async with (
        aiohttp_backend() as b,
        running_proxy(simple_config(b.address, extra_listener=LIMITS)) as (_, port),
    ):
        # One endless header value: no field ever completes, yet the proxy stops it.
        request = b"GET / HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * 64 * 1024
        raw, closed = await exchange_until_close(port, request)
        status, headers, body = split_response(raw)
        assert_error(status, headers, body, 431)
        assert closed
        await assert_serves(port)


async def test_headers_under_the_limit_arriving_in_pieces_are_accepted() -> None:
    """A ~640-byte header block under a 1 KiB limit, sent in several segments."""
    async with (
        aiohttp_backend() as b,
        running_proxy(simple_config(b.address, extra_listener=LIMITS)) as (_, port),
        client_connection(port) as (reader, writer),
    ):
        block = (
            b"GET / HTTP/1.1\r\nHost: t\r\n"
            + b"".join(b"X-F%d: %s\r\n" % (i, b"v" * 60) for i in range(9))
            + b"\r\n"
        )
        assert 600 < len(block) < 800
        status, _, body = await get_raw(port, block)  # in one write: accepted
        assert status == 200, body
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i in range(0, len(block), 100):
            writer.write(block[i : i + 100])
            await writer.drain()
            # Pacing only, so the proxy sees separate reads; not a synchronisation:
            # the outcome must be 200 whatever the segmentation.
            await asyncio.sleep(0.02)
        status, _, body = await asyncio.wait_for(read_response(reader), TIMEOUT)
        assert status == 200, body


async def test_413_content_length_over_the_limit() -> None:
    async with (
        aiohttp_backend() as b,
        running_proxy(simple_config(b.address, extra_listener=LIMITS)) as (_, port),
    ):
        request = b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 2048\r\n\r\n" + b"x" * 2048
        await assert_closing_error(port, request, 413)
        assert b.requests == 1  # only assert_serves' request
        # At the limit: forwarded.
        status, _, body = await get_raw(
            port, b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 1024\r\n\r\n" + b"x" * 1024
        )
        assert (status, body) == (200, b"b POST / 1024")


async def test_413_chunked_body_growing_over_the_limit() -> None:
    async with (
        aiohttp_backend() as b,
        running_proxy(simple_config(b.address, extra_listener=LIMITS)) as (_, port),
    ):
        chunk = b"200\r\n" + b"x" * 0x200 + b"\r\n"
        request = (
            b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
            + chunk * 4
            + b"0\r\n\r\n"
        )
        await assert_closing_error(port, request, 413)


# -- 408: client too slow -----------------------------------------------------------


async def test_408_header_timeout_while_other_clients_are_served() -> None:
    async with (
        aiohttp_backend() as b,
        running_proxy(simple_config(b.address, extra_listener="    timeouts: {header: 300ms}")) as (
            _,
            port,
        ),
        client_connection(port) as (reader, writer),
    ):
        loop = asyncio.get_running_loop()
        started = loop.time()
        writer.write(b"GET / HTTP/1.1\r\nHost: t\r\nX-Half: ")
        await writer.drain()
        # Meanwhile another client is served normally.
        status, _, body = await get(port, "/other")
        assert (status, body) == (200, b"b GET /other 0")
        rest = await read_eof(reader, TIMEOUT)
        elapsed = loop.time() - started
        status, headers, body = split_response(rest)
        assert_error(status, headers, body, 408)
        assert headers.get("connection") == "close"
        assert 0.25 <= elapsed < 3.0, elapsed
        assert b.requests == 1
        await assert_serves(port)


async def test_408_for_a_client_dripping_header_lines() -> None:
    """The header timeout covers the whole block, not the gap between reads."""
    async with (
        aiohttp_backend() as b,
        running_proxy(simple_config(b.address, extra_listener="    timeouts: {header: 300ms}")) as (
            _,
            port,
        ),
        client_connection(port) as (reader, writer),
    ):
        loop = asyncio.get_running_loop()
        started = loop.time()
        received = b""
        for i in range(60):  # one header line per 50 ms: at most 3 s
            writer.write(b"X-Drip-%d: 1\r\n" % i if i else b"GET / HTTP/1.1\r\nHost: t\r\n")
            try:
                received = await asyncio.wait_for(reader.read(65536), 0.05)
            except TimeoutError:
                continue
            except ConnectionError:
                pass
            break
        assert received, "still reading headers after 3 s of dripping"
        assert loop.time() - started < 2.0
        received += await read_eof(reader)
        status, headers, body = split_response(received)
        assert_error(status, headers, body, 408)
        assert b.requests == 0


async def test_connection_that_never_sends_is_closed_after_the_header_timeout() -> None:
    async with (
        aiohttp_backend() as b,
        running_proxy(simple_config(b.address, extra_listener="    timeouts: {header: 300ms}")) as (
            _,
            port,
        ),
        client_connection(port) as (reader, _),
    ):
        assert await read_eof(reader, TIMEOUT) == b""


async def test_408_body_timeout() -> None:
    async with (
        aiohttp_backend() as b,
        running_proxy(simple_config(b.address, extra_listener="    timeouts: {body: 300ms}")) as (
            _,
            port,
        ),
        client_connection(port) as (reader, writer),
    ):
        writer.write(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n" + b"x" * 10)
        await writer.drain()
        rest = await read_eof(reader, TIMEOUT)
        status, headers, body = split_response(rest)
        assert_error(status, headers, body, 408)
        assert headers.get("connection") == "close"
        await assert_serves(port)


# -- 502 / 504: backend failures ------------------------------------------------------

RawHandler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def reset_after_request(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await read_request_head(reader)
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def garbage_status_line(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await read_request_head(reader)
    writer.write(b"SSH-2.0-OpenSSH_9.6\r\nthis is not HTTP\r\n\r\n")
    await writer.drain()
    await reader.read()


async def close_without_response(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    await read_request_head(reader)


async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await read_request_head(reader)
    await reader.read()  # until the proxy gives up and closes


@pytest.mark.parametrize(
    ("handler", "expected"),
    [
        (reset_after_request, 502),
        (garbage_status_line, 502),
        (close_without_response, 502),
        (never_answer, 504),
    ],
    ids=["reset", "garbage", "closed", "no-answer"],
)
async def test_backend_failure_status(handler: RawHandler, expected: int) -> None:
    async with (
        RawBackend(handler) as bad,
        aiohttp_backend() as good,
        running_proxy(
            two_pools(bad.address, good.address, bad_pool="    timeouts: {response: 300ms}")
        ) as (proxy, port),
    ):
        await assert_keep_alive_error(port, "/bad", expected)
        assert bad.connections == 1
        [backend] = proxy.status()["pools"]["bad"]["backends"]
        assert backend["failures_total"] == 1
        assert backend["active_connections"] == 0


async def test_502_when_the_backend_refuses_connections() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        refused = f"127.0.0.1:{s.getsockname()[1]}"
    async with (
        aiohttp_backend() as good,
        running_proxy(two_pools(refused, good.address)) as (
            _,
            port,
        ),
    ):
        await assert_keep_alive_error(port, "/bad", 502)


async def test_504_is_not_sent_before_the_response_timeout() -> None:
    async with (
        RawBackend(never_answer) as bad,
        aiohttp_backend() as good,
        running_proxy(
            two_pools(bad.address, good.address, bad_pool="    timeouts: {response: 300ms}")
        ) as (_, port),
    ):
        loop = asyncio.get_running_loop()
        started = loop.time()
        status, _, _ = await get(port, "/bad")
        assert status == 504
        assert 0.25 <= loop.time() - started < 3.0


# -- 503: nothing eligible ---------------------------------------------------------------


async def test_503_when_no_backend_is_eligible() -> None:
    """Weight 0 (through the embedding API) takes the pool's only backend out."""

    async def ok(request: web.Request) -> web.StreamResponse:
        return web.Response(text="bad-pool")

    async with (
        aiohttp_backend(ok) as bad,
        aiohttp_backend() as good,
        running_proxy(two_pools(bad.address, good.address)) as (proxy, port),
    ):
        proxy.set_weight("bad", bad.address, 0)
        status, headers, body = await get(port, "/bad")
        assert_error(status, headers, body, 503)
        await assert_serves(port)
        assert bad.requests == 0
        proxy.set_weight("bad", bad.address, 1)
        status, _, body = await get(port, "/bad")
        assert (status, body) == (200, b"bad-pool")


async def test_503_keeps_the_connection_of_a_bodiless_get() -> None:
    async with (
        aiohttp_backend() as bad,
        aiohttp_backend() as good,
        running_proxy(two_pools(bad.address, good.address)) as (proxy, port),
    ):
        proxy.set_weight("bad", bad.address, 0)
        await assert_keep_alive_error(port, "/bad", 503)
