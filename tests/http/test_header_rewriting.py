"""What the proxy changes in headers on the way through, seen from both ends.

Requests go to an aiohttp backend that echoes the header list it received
(duplicates kept, as JSON); responses come from raw backends that send exactly
the header bytes a test wants the proxy to clean up.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from aiohttp import web

from tests.support import (
    RawBackend,
    aiohttp_backend,
    client_connection,
    echo_request,
    exchange_until_close,
    read_eof,
    read_request_head,
    read_response,
    running_proxy,
    simple_config,
    split_response,
)

TIMEOUT = 5.0
TRUSTED = '    trusted_proxies: ["127.0.0.0/8"]'

HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "te",
    "trailer",
    "upgrade",
    "proxy-connection",
    "proxy-authorization",
    "transfer-encoding",
}


async def echoed(port: int, request: bytes) -> dict[str, Any]:
    """Send one request on a fresh connection; the backend's JSON echo of it."""
    async with client_connection(port) as (reader, writer):
        writer.write(request)
        status, _, body = await asyncio.wait_for(read_response(reader), TIMEOUT)
    assert status == 200, body
    seen: dict[str, Any] = json.loads(body)
    return seen


def values(seen: dict[str, Any], name: str) -> list[str]:
    return [v for n, v in seen["headers"] if n.lower() == name]


def names(seen: dict[str, Any]) -> set[str]:
    return {n.lower() for n, _ in seen["headers"]}


async def test_hop_by_hop_request_headers_are_removed() -> None:
    async with (
        aiohttp_backend(echo_request) as b,
        running_proxy(simple_config(b.address)) as (
            _,
            port,
        ),
    ):
        seen = await echoed(
            port,
            b"GET /p HTTP/1.1\r\nHost: t\r\n"
            b"Connection: keep-alive, X-Hop-A, x-hop-b\r\n"
            b"X-Hop-A: 1\r\nX-HOP-B: 2\r\n"
            b"Keep-Alive: timeout=5\r\n"
            b"TE: trailers\r\n"
            b"Trailer: X-Checksum\r\n"
            b"Upgrade: h2c\r\n"  # not listed in Connection: no upgrade asked
            b"Proxy-Connection: keep-alive\r\n"
            b"Proxy-Authorization: Basic Zm9vOmJhcg==\r\n"
            b"X-End: kept\r\n"
            b"Authorization: Bearer abc\r\n\r\n",
        )
        got = names(seen)
        assert not got & (HOP_BY_HOP | {"x-hop-a", "x-hop-b"}), seen["headers"]
        assert values(seen, "x-end") == ["kept"]
        assert values(seen, "authorization") == ["Bearer abc"]
        assert seen["path"] == "/p"


async def test_forwarded_headers_replace_what_an_untrusted_client_sent() -> None:
    async with (
        aiohttp_backend(echo_request) as b,
        running_proxy(simple_config(b.address)) as (
            _,
            port,
        ),
    ):
        seen = await echoed(
            port,
            b"GET / HTTP/1.1\r\nHost: shop.example:8443\r\n"
            b"X-Forwarded-For: 1.2.3.4\r\nX-Forwarded-For: 5.6.7.8\r\n"
            b"X-Forwarded-Proto: https\r\nX-Forwarded-Host: evil.example\r\n\r\n",
        )
        assert values(seen, "x-forwarded-for") == ["127.0.0.1"]
        assert values(seen, "x-forwarded-proto") == ["http"]
        assert values(seen, "x-forwarded-host") == ["shop.example:8443"]


async def test_forwarded_for_is_added_when_the_client_sent_none() -> None:
    async with (
        aiohttp_backend(echo_request) as b,
        running_proxy(simple_config(b.address)) as (
            _,
            port,
        ),
    ):
        seen = await echoed(port, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        assert values(seen, "x-forwarded-for") == ["127.0.0.1"]
        assert values(seen, "x-forwarded-proto") == ["http"]
        assert values(seen, "x-forwarded-host") == ["t"]


@pytest.mark.parametrize(
    ("sent", "expected"),
    [
        (b"X-Forwarded-For: 1.2.3.4\r\n", "1.2.3.4, 127.0.0.1"),
        (
            b"X-Forwarded-For: 1.2.3.4\r\nX-Forwarded-For: 5.6.7.8\r\n",
            "1.2.3.4, 5.6.7.8, 127.0.0.1",
        ),
        (b"", "127.0.0.1"),
    ],
    ids=["one", "two-headers", "none"],
)
async def test_forwarded_for_from_a_trusted_proxy_is_extended(sent: bytes, expected: str) -> None:
    async with (
        aiohttp_backend(echo_request) as b,
        running_proxy(simple_config(b.address, extra_listener=TRUSTED)) as (_, port),
    ):
        seen = await echoed(port, b"GET / HTTP/1.1\r\nHost: t\r\n" + sent + b"\r\n")
        assert values(seen, "x-forwarded-for") == [expected]


@pytest.mark.parametrize(
    ("sent", "expected"),
    [
        (b"", "1.1 lbproxy"),
        (b"Via: 1.0 fred\r\n", "1.0 fred, 1.1 lbproxy"),
        (
            b"Via: 1.0 fred\r\nVia: 1.1 nowhere.example\r\n",
            "1.0 fred, 1.1 nowhere.example, 1.1 lbproxy",
        ),
    ],
    ids=["none", "one", "two"],
)
async def test_via_is_appended(sent: bytes, expected: str) -> None:
    async with (
        aiohttp_backend(echo_request) as b,
        running_proxy(simple_config(b.address)) as (
            _,
            port,
        ),
    ):
        seen = await echoed(port, b"GET / HTTP/1.1\r\nHost: t\r\n" + sent + b"\r\n")
        assert ", ".join(values(seen, "via")) == expected


@pytest.mark.parametrize("host", ["Example.COM:8123", "example.com", "[::1]:9000", "10.0.0.7:80"])
async def test_host_is_passed_exactly_as_the_client_sent_it(host: str) -> None:
    async with (
        aiohttp_backend(echo_request) as b,
        running_proxy(simple_config(b.address)) as (
            _,
            port,
        ),
    ):
        seen = await echoed(port, f"GET /h HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        assert values(seen, "host") == [host]
        assert values(seen, "x-forwarded-host") == [host]


def raw_responder(response: bytes) -> RawBackend:
    """A backend answering every request on a connection with ``response``."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for _ in range(100):
            await read_request_head(reader)
            writer.write(response)
            await writer.drain()

    return RawBackend(serve)


async def test_hop_by_hop_response_headers_are_stripped() -> None:
    response = (
        b"HTTP/1.1 200 OK\r\n"
        b"Connection: x-foo, keep-alive\r\n"
        b"X-Foo: secret\r\n"
        b"Keep-Alive: timeout=5, max=100\r\n"
        b"Proxy-Connection: keep-alive\r\n"
        b"Upgrade: h2c\r\n"
        b"X-Kept: yes\r\n"
        b"Content-Length: 2\r\n\r\nok"
    )
    async with (
        raw_responder(response) as b,
        running_proxy(simple_config(b.address)) as (
            _,
            port,
        ),
        client_connection(port) as (reader, writer),
    ):
        writer.write(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        status, headers, body = await asyncio.wait_for(read_response(reader), TIMEOUT)
        assert (status, body) == (200, b"ok")
        assert headers["x-kept"] == "yes"
        for name in ("x-foo", "keep-alive", "proxy-connection", "upgrade"):
            assert name not in headers, headers
        assert "x-foo" not in headers.get("connection", "").lower()


async def test_backend_closing_does_not_close_the_client_connection() -> None:
    """``Connection: close`` from the backend is about the backend's hop only."""
    response = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"

    async def once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request_head(reader)
        writer.write(response)
        await writer.drain()

    async with (
        RawBackend(once) as b,
        running_proxy(simple_config(b.address)) as (
            _,
            port,
        ),
        client_connection(port) as (reader, writer),
    ):
        for _ in range(2):
            writer.write(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            status, headers, body = await asyncio.wait_for(read_response(reader), TIMEOUT)
            assert (status, body) == (200, b"ok")
            assert headers.get("connection", "").lower() != "close"
        assert b.connections == 2


async def test_client_connection_close_gets_the_response_then_a_close() -> None:
    async with (
        aiohttp_backend(echo_request) as b,
        running_proxy(simple_config(b.address)) as (
            _,
            port,
        ),
    ):
        raw, closed = await exchange_until_close(
            port, b"GET /bye HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
        )
        status, headers, body = split_response(raw)
        assert status == 200, raw
        assert headers.get("connection", "").lower() == "close"
        assert json.loads(body)["path"] == "/bye"
        assert closed


# -- HTTP/1.0 clients ---------------------------------------------------------------


async def test_http10_client_gets_a_close_delimited_exchange() -> None:
    async with (
        aiohttp_backend(echo_request) as b,
        running_proxy(simple_config(b.address)) as (
            _,
            port,
        ),
    ):
        raw, closed = await exchange_until_close(port, b"GET /old HTTP/1.0\r\n\r\n")
        assert raw.startswith((b"HTTP/1.1 200 ", b"HTTP/1.0 200 ")), raw
        status, headers, body = split_response(raw)
        assert status == 200
        assert "chunked" not in headers.get("transfer-encoding", "")
        assert headers.get("connection", "close").lower() == "close"
        assert int(headers["content-length"]) == len(body)
        seen = json.loads(body)
        assert seen["path"] == "/old"
        # No Host from the client: the backend still gets one.
        assert values(seen, "host") == [b.address]
        assert closed


async def test_http10_keep_alive_is_honoured_when_asked() -> None:
    async with (
        aiohttp_backend(echo_request) as b,
        running_proxy(simple_config(b.address)) as (
            _,
            port,
        ),
        client_connection(port) as (reader, writer),
    ):
        for path in ("/one", "/two"):
            writer.write(f"GET {path} HTTP/1.0\r\nConnection: keep-alive\r\n\r\n".encode())
            status, headers, body = await asyncio.wait_for(read_response(reader), TIMEOUT)
            assert status == 200
            assert headers.get("connection", "").lower() == "keep-alive"
            assert "transfer-encoding" not in headers
            assert json.loads(body)["path"] == path
        # Without keep-alive the next one ends the connection.
        writer.write(b"GET /three HTTP/1.0\r\n\r\n")
        status, headers, body = await asyncio.wait_for(read_response(reader), TIMEOUT)
        assert status == 200
        assert json.loads(body)["path"] == "/three"
        assert await read_eof(reader) == b""


async def test_http10_client_gets_a_chunked_backend_response_unchunked() -> None:
    async def chunked(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for part in (b"alpha-", b"beta-", b"gamma"):
            await resp.write(part)
        await resp.write_eof()
        return resp

    async with (
        aiohttp_backend(chunked) as b,
        running_proxy(simple_config(b.address)) as (
            _,
            port,
        ),
    ):
        raw, closed = await exchange_until_close(
            port, b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
        )
        status, headers, body = split_response(raw)
        assert status == 200
        assert "transfer-encoding" not in headers
        assert body == b"alpha-beta-gamma"
        assert closed, "a body without length must end with the connection"
