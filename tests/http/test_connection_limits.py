"""Listener max_connections and upstream idle_timeout, with real sockets."""

from __future__ import annotations

import asyncio

from tests.support import aiohttp_backend, read_response, running_proxy, simple_config


async def test_connections_over_max_connections_get_503_and_close() -> None:
    async with aiohttp_backend() as b:
        extra = "    limits: {max_connections: 2}"
        async with running_proxy(simple_config(b.address, extra_listener=extra)) as (_, port):
            held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(2)]
            for r, w in held:  # both are real, served connections
                w.write(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
                assert (await read_response(r))[0] == 200
            r3, w3 = await asyncio.open_connection("127.0.0.1", port)
            status, headers, _ = await read_response(r3)
            assert status == 503 and headers["connection"] == "close"
            assert await asyncio.wait_for(r3.read(), 5) == b""
            w3.close()
            # Freeing a slot lets the next client in.
            held[0][1].close()
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 5
            while True:
                r4, w4 = await asyncio.open_connection("127.0.0.1", port)
                w4.write(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
                status, _, _ = await read_response(r4)
                w4.close()
                if status == 200:
                    break
                assert loop.time() < deadline, "slot never freed"
                await asyncio.sleep(0.05)
            held[1][1].close()


async def test_idle_upstream_connections_close_after_idle_timeout() -> None:
    async with aiohttp_backend() as b:
        extra = "    keepalive: {max_idle_per_backend: 8, idle_timeout: 200ms}"
        async with running_proxy(simple_config(b.address, extra_pool=extra)) as (proxy, port):
            r, w = await asyncio.open_connection("127.0.0.1", port)
            w.write(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            assert (await read_response(r))[0] == 200
            w.close()

            def idle() -> int:
                n: int = proxy.status()["pools"]["web"]["backends"][0]["idle_connections"]
                return n

            assert idle() == 1
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 3
            while idle() and loop.time() < deadline:
                await asyncio.sleep(0.05)
            assert idle() == 0
            # The next request opens a fresh connection and still succeeds.
            r, w = await asyncio.open_connection("127.0.0.1", port)
            w.write(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            assert (await read_response(r))[0] == 200
            w.close()
    assert b.connections == 2
