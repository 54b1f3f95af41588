"""The response timeout measures a late backend, never a long upload or a slow client."""

from __future__ import annotations

import asyncio

from aiohttp import web

from tests.support import (
    RawBackend,
    aiohttp_backend,
    read_request_head,
    read_response,
    running_proxy,
    simple_config,
)

SHORT = "    timeouts: {connect: 1s, response: 300ms}"


async def test_long_upload_is_progress_not_a_late_backend() -> None:
    async def handler(request: web.Request) -> web.Response:
        body = await request.read()
        return web.Response(text=str(len(body)))

    async with aiohttp_backend(handler) as b:
        async with running_proxy(simple_config(b.address, extra_pool=SHORT)) as (_, port):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n")
            # Ten bytes over 1.5 s: five times the response timeout in all,
            # but never 300 ms without progress.
            for _ in range(10):
                writer.write(b"x")
                await writer.drain()
                await asyncio.sleep(0.15)
            status, _, body = await read_response(reader)
            writer.close()
    assert (status, body) == (200, b"10")


async def test_slow_client_is_not_cut_off_by_the_response_timeout() -> None:
    size = 32 << 20

    async def backend(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size)
        block = b"y" * (1 << 20)
        for _ in range(size >> 20):
            writer.write(block)
            await writer.drain()

    async with RawBackend(backend) as rb:
        async with running_proxy(simple_config(rb.address, extra_pool=SHORT)) as (_, port):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            await reader.readuntil(b"\r\n\r\n")
            await asyncio.sleep(1.0)  # the client reads nothing for 3x the timeout
            got = 0
            while got < size:
                chunk = await asyncio.wait_for(reader.read(1 << 20), 10)
                assert chunk, f"closed after {got} bytes"
                got += len(chunk)
            writer.close()
    assert got == size


async def test_backend_silent_after_headers_is_cut_after_the_timeout() -> None:
    async def backend(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
        await writer.drain()
        await reader.read()  # then nothing more

    async with RawBackend(backend) as rb:
        async with running_proxy(simple_config(rb.address, extra_pool=SHORT)) as (_, port):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            head = await reader.readuntil(b"\r\n\r\n")
            rest = await asyncio.wait_for(reader.read(), 5)  # ends with the close
            writer.close()
    assert head.startswith(b"HTTP/1.1 200")
    assert rest == b"partial"


async def test_stale_connection_does_not_resend_a_post() -> None:
    bodies: list[bytes] = []

    async def backend(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await read_request_head(reader)
        bodies.append(head)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        await reader.read(1)  # the next request arrives: close without answering
        writer.transport.abort()

    async with RawBackend(backend) as rb:
        async with running_proxy(simple_config(rb.address)) as (_, port):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            assert (await read_response(reader))[0] == 200
            writer.write(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nhi")
            status, _, _ = await read_response(reader)
            writer.close()
    # The POST may have reached the backend's application: it is not resent.
    assert status == 502
    assert rb.connections == 1
