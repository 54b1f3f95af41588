"""End-to-end proxying through real aiohttp backends with real clients."""

from __future__ import annotations

import asyncio
import hashlib
import os

import aiohttp
from aiohttp import web

from tests.support import (
    RawBackend,
    aiohttp_backend,
    named_backends,
    read_request_head,
    read_response,
    running_proxy,
    simple_config,
)


async def _get_names(port: int, n: int) -> list[str]:
    async with aiohttp.ClientSession() as s:
        names = []
        for _ in range(n):
            async with s.get(f"http://127.0.0.1:{port}/") as r:
                assert r.status == 200
                names.append(r.headers["X-Backend"])
        return names


async def test_round_robin_over_three_backends() -> None:
    async with named_backends(3) as bs:
        async with running_proxy(simple_config(*[b.address for b in bs])) as (_, port):
            names = await _get_names(port, 9)
    assert names == ["b0", "b1", "b2"] * 3


async def test_smooth_weighted_round_robin_interleaves() -> None:
    async with named_backends(3) as bs:
        cfg = f"""
listeners:
  - name: t
    bind: "127.0.0.1:0"
    routes: [{{match: {{path_prefix: /}}, pool: web}}]
pools:
  web:
    balance: weighted_round_robin
    backends:
      - {{address: "{bs[0].address}", weight: 5}}
      - {{address: "{bs[1].address}"}}
      - {{address: "{bs[2].address}"}}
access_log: {{format: "off"}}
"""
        async with running_proxy(cfg) as (_, port):
            names = await _get_names(port, 14)
    assert names == ["b0", "b0", "b1", "b0", "b2", "b0", "b0"] * 2


async def test_upstream_keepalive_reuses_connections() -> None:
    async with aiohttp_backend() as b, running_proxy(simple_config(b.address)) as (_, port):
        async with aiohttp.ClientSession() as s:
            for i in range(50):
                async with s.get(f"http://127.0.0.1:{port}/r{i}") as r:
                    assert r.status == 200
                    await r.read()
    assert b.requests == 50
    assert b.connections <= 2


async def test_idle_pool_size_is_bounded() -> None:
    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(0.05)
        return web.Response(text="ok")

    async with aiohttp_backend(slow) as b:
        extra = "    keepalive: {max_idle_per_backend: 2, idle_timeout: 60s}"
        async with running_proxy(simple_config(b.address, extra_pool=extra)) as (proxy, port):
            async with aiohttp.ClientSession() as s:

                async def one() -> None:
                    async with s.get(f"http://127.0.0.1:{port}/") as r:
                        await r.read()

                await asyncio.gather(*(one() for _ in range(8)))

            def idle() -> int:
                n: int = proxy.status()["pools"]["web"]["backends"][0]["idle_connections"]
                return n

            # A burst may leave more idle for a moment; the surplus is closed
            # within about a second.
            assert idle() <= 8
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 3
            while idle() > 2 and loop.time() < deadline:
                await asyncio.sleep(0.05)
            assert idle() == 2


async def test_pipelined_requests_answered_in_order() -> None:
    async def handler(request: web.Request) -> web.Response:
        # Later requests answer faster: order must still hold.
        delay = {"/a": 0.1, "/b": 0.05, "/c": 0.0}[request.path]
        await asyncio.sleep(delay)
        return web.Response(text=request.path)

    async with named_backends(2, handler) as bs:
        async with running_proxy(simple_config(*[b.address for b in bs])) as (_, port):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(
                b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
                b"GET /b HTTP/1.1\r\nHost: x\r\n\r\n"
                b"POST /c HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
            )
            bodies = [(await read_response(reader))[2] for _ in range(3)]
            writer.close()
    assert bodies == [b"/a", b"/b", b"/c"]


async def test_chunked_request_and_response_with_trailers() -> None:
    seen: dict[str, object] = {}

    async def backend(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await read_request_head(reader)
        seen["head"] = head
        body = b""
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                trailer = await reader.readuntil(b"\r\n\r\n") if True else b""
                seen["trailer"] = trailer
                break
            body += await reader.readexactly(size)
            await reader.readexactly(2)
        seen["body"] = body
        writer.write(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Checksum: abc\r\n\r\n"
        )
        await writer.drain()
        await reader.read()  # keep open until the proxy closes

    async with RawBackend(backend) as rb, running_proxy(simple_config(rb.address)) as (_, port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            b"POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"3\r\nabc\r\n4;name=v\r\ndefg\r\n0\r\nX-Req-Trailer: 1\r\n\r\n"
        )
        head = await reader.readuntil(b"\r\n\r\n")
        rest = b""
        while not rest.endswith(b"\r\n\r\n") or b"0\r\n" not in rest:
            rest += await asyncio.wait_for(reader.read(4096), 5)
        writer.close()
    assert seen["body"] == b"abcdefg"
    assert b"X-Req-Trailer: 1" in seen["trailer"]  # type: ignore[operator]
    assert b"transfer-encoding: chunked" in head.lower()
    assert b"hello" in rest and b" world" in rest
    assert b"X-Checksum: abc" in rest


async def test_read_until_close_response_is_rechunked_for_http11() -> None:
    async def backend(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nstreamed until close")
        await writer.drain()
        writer.close()

    async with RawBackend(backend) as rb, running_proxy(simple_config(rb.address)) as (_, port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        status, headers, body = await read_response(reader)
        assert status == 200
        assert headers.get("transfer-encoding") == "chunked"
        assert body == b"streamed until close"
        # The client connection survives for another request.
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        status, _, body = await read_response(reader)
        assert body == b"streamed until close"
        writer.close()
    assert rb.connections == 2


async def test_large_bodies_stream_both_ways_with_checksums() -> None:
    size = 64 * 1024 * 1024

    async def handler(request: web.Request) -> web.StreamResponse:
        if request.method == "POST":
            h = hashlib.sha256()
            n = 0
            async for chunk in request.content.iter_chunked(1 << 16):
                h.update(chunk)
                n += len(chunk)
            return web.Response(text=f"{n} {h.hexdigest()}")
        resp = web.StreamResponse()
        resp.content_length = size
        await resp.prepare(request)
        block = b"x" * (1 << 20)
        for _ in range(size >> 20):
            await resp.write(block)
        await resp.write_eof()
        return resp

    async with aiohttp_backend(handler) as b:
        extra = "    limits: {max_body_bytes: 1GiB}"
        async with running_proxy(simple_config(b.address, extra_listener=extra)) as (_, port):
            async with aiohttp.ClientSession() as s:
                async with s.get(f"http://127.0.0.1:{port}/big") as r:
                    n = 0
                    async for chunk in r.content.iter_chunked(1 << 16):
                        n += len(chunk)
                assert n == size

                data = os.urandom(1 << 20)

                async def gen():  # type: ignore[no-untyped-def]
                    for _ in range(32):
                        yield data

                async with s.post(f"http://127.0.0.1:{port}/up", data=gen()) as r:
                    text = await r.text()
            expect = hashlib.sha256(data * 32).hexdigest()
    assert text == f"{32 << 20} {expect}"


async def test_expect_100_continue_is_relayed() -> None:
    async with aiohttp_backend() as b, running_proxy(simple_config(b.address)) as (_, port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            b"POST /e HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"
        )
        interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert interim.startswith(b"HTTP/1.1 100")
        writer.write(b"hello")
        status, _, body = await read_response(reader)
        writer.close()
    assert status == 200
    assert body == b"b POST /e 5"


async def test_websocket_echo_through_proxy() -> None:
    async def ws_handler(request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.TEXT:
                await ws.send_str("echo:" + msg.data)
            elif msg.type == aiohttp.WSMsgType.BINARY:
                await ws.send_bytes(msg.data[::-1])
        return ws

    async with aiohttp_backend(ws_handler) as b:
        async with running_proxy(simple_config(b.address)) as (_, port):
            async with aiohttp.ClientSession() as s:
                async with s.ws_connect(f"http://127.0.0.1:{port}/ws") as ws:
                    for i in range(20):
                        await ws.send_str(f"m{i}")
                        msg = await ws.receive(timeout=5)
                        assert msg.data == f"echo:m{i}"
                    big = os.urandom(1 << 20)
                    await ws.send_bytes(big)
                    msg = await ws.receive(timeout=10)
                    assert msg.data == big[::-1]


async def test_stale_pooled_connection_is_retried_transparently() -> None:
    served = 0

    async def backend(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal served
        # Answer one request with keep-alive, then close the connection the
        # moment the next request arrives, without answering it.
        await read_request_head(reader)
        served += 1
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        await reader.read(1)
        writer.transport.abort()

    async with RawBackend(backend) as rb, running_proxy(simple_config(rb.address)) as (_, port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for _ in range(3):
            writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            status, _, body = await read_response(reader)
            assert (status, body) == (200, b"ok")
        writer.close()
    assert served == 3
    assert rb.connections >= 3


async def test_head_response_with_content_length_keeps_framing() -> None:
    async def backend(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            head = await read_request_head(reader)
            if head.startswith(b"HEAD"):
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
            else:
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nget")
            await writer.drain()

    async with RawBackend(backend) as rb, running_proxy(simple_config(rb.address)) as (_, port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n")
        head = await reader.readuntil(b"\r\n\r\n")
        assert b"Content-Length: 1000" in head
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        status, _, body = await read_response(reader)
        writer.close()
    assert (status, body) == (200, b"get")
    assert rb.connections == 1


async def test_idle_websocket_tunnel_is_closed_after_the_idle_timeout() -> None:
    async def ws_handler(request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(autoping=False)
        await ws.prepare(request)
        async for msg in ws:
            await ws.send_str(msg.data)
        return ws

    async with aiohttp_backend(ws_handler) as b:
        extra = "    timeouts: {idle: 400ms}"
        async with running_proxy(simple_config(b.address, extra_listener=extra)) as (_, port):
            async with aiohttp.ClientSession() as s:
                async with s.ws_connect(f"http://127.0.0.1:{port}/ws", autoping=False) as ws:
                    loop = asyncio.get_running_loop()
                    # Traffic keeps it open past the idle timeout...
                    for i in range(6):
                        if i:
                            await asyncio.sleep(0.15)
                        await ws.send_str(f"m{i}")
                        assert (await ws.receive(timeout=5)).data == f"m{i}"
                    # ...silence closes it.
                    started = loop.time()
                    msg = await ws.receive(timeout=5)
                    waited = loop.time() - started
    assert msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.ERROR)
    assert 0.3 < waited < 2.0


async def test_client_half_close_still_gets_the_response_then_a_close() -> None:
    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(0.1)
        return web.Response(text="late")

    async with aiohttp_backend(slow) as b:
        async with running_proxy(simple_config(b.address)) as (_, port):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            writer.write_eof()
            data = await asyncio.wait_for(reader.read(), 5)  # returns at the close
            writer.close()
    assert data.startswith(b"HTTP/1.1 200")
    assert data.endswith(b"late")
