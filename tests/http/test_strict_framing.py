"""Requests whose framing is ambiguous or invalid never reach a backend.

Each malformed request goes to a real proxy over a raw socket; the proxy must
answer 400 itself, close the connection, and the backend (a raw TCP server
that records every byte it receives) must see nothing at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator

import pytest

from tests.support import (
    RawBackend,
    aiohttp_backend,
    client_connection,
    echo_request,
    exchange_until_close,
    get,
    read_eof,
    read_response,
    running_proxy,
    simple_config,
    split_response,
)

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


class RecordingBackend(RawBackend):
    """Records every byte received; answers 200 to each header block it sees."""

    def __init__(self) -> None:
        self.received = bytearray()
        super().__init__(self._serve)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        answered = 0
        mine = bytearray()
        for _ in range(10_000):
            chunk = await reader.read(65536)
            if not chunk:
                return
            self.received += chunk
            mine += chunk
            heads = mine.count(b"\r\n\r\n")
            if heads > answered:
                writer.write(OK * (heads - answered))
                answered = heads
                await writer.drain()


@contextlib.asynccontextmanager
async def proxied() -> AsyncIterator[tuple[RecordingBackend, int]]:
    async with (
        RecordingBackend() as backend,
        running_proxy(simple_config(backend.address)) as (
            _,
            port,
        ),
    ):
        yield backend, port


async def assert_rejected(
    port: int, backend: RecordingBackend, request: bytes, may_connect: bool = False
) -> None:
    raw, closed = await exchange_until_close(port, request)
    assert raw, "the proxy sent nothing"
    status, headers, body = split_response(raw)
    assert status == 400, raw
    assert headers.get("connection", "").lower() == "close", raw
    assert body.startswith(b"400"), raw
    assert int(headers["content-length"]) == len(body), "more than one response was sent"
    assert closed, "the proxy left the connection open after a 400"
    assert backend.received == b"", f"forwarded to the backend: {bytes(backend.received)!r}"
    if not may_connect:
        # Refused on its headers: not even a connection to the backend.
        assert backend.connections == 0
    # The proxy itself is unharmed.
    status, _, body = await get(port)
    assert (status, body) == (200, b"ok")


MALFORMED = {
    "content-length-and-transfer-encoding": (
        b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    ),
    "transfer-encoding-and-content-length": (
        b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
        b"Content-Length: 5\r\n\r\n0\r\n\r\n"
    ),
    "two-different-content-lengths": (
        b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!"
    ),
    "duplicate-identical-content-length": (
        b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello"
    ),
    "content-length-plus-sign": b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: +5\r\n\r\nhello",
    "content-length-list": b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5, 5\r\n\r\nhello",
    "content-length-letters": b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: abc\r\n\r\n",
    "content-length-negative": b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: -1\r\n\r\n",
    "transfer-encoding-gzip": (
        b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\nhello"
    ),
    "transfer-encoding-chunked-gzip": (
        b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n"
    ),
    "transfer-encoding-gzip-chunked": (
        b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"
    ),
    "two-transfer-encoding-headers": (
        b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    ),
    "transfer-encoding-chunked-twice": (
        b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    ),
    "invalid-chunk-size": (
        b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n"
    ),
    "whitespace-before-colon": b"GET / HTTP/1.1\r\nHost: t\r\nX-Foo : bar\r\n\r\n",
    "whitespace-before-colon-content-length": (
        b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length : 5\r\n\r\nhello"
    ),
    "obs-fold": b"GET / HTTP/1.1\r\nHost: t\r\nX-Foo: a\r\n b\r\n\r\n",
    "control-char-01-in-value": b"GET / HTTP/1.1\r\nHost: t\r\nX-Foo: a\x01b\r\n\r\n",
    "control-char-7f-in-value": b"GET / HTTP/1.1\r\nHost: t\r\nX-Foo: a\x7fb\r\n\r\n",
    "nul-in-name": b"GET / HTTP/1.1\r\nHost: t\r\nX-F\x00oo: b\r\n\r\n",
    "bare-lf-request-line": b"GET / HTTP/1.1\nHost: t\r\n\r\n",
    "http11-without-host": b"GET / HTTP/1.1\r\nAccept: */*\r\n\r\n",
    "two-host-headers": b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    "absolute-form-for-unrouted-host": (
        b"GET http://evil.example.net/x HTTP/1.1\r\nHost: evil.example.net\r\n\r\n"
    ),
}


# Valid headers, invalid body: the proxy may start connecting before it sees the body.
BODY_ERRORS = {"invalid-chunk-size"}


@pytest.mark.parametrize("case", MALFORMED)
async def test_malformed_request_is_refused_and_never_forwarded(case: str) -> None:
    async with proxied() as (backend, port):
        await assert_rejected(port, backend, MALFORMED[case], may_connect=case in BODY_ERRORS)


SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n"


@pytest.mark.parametrize(
    "malformed",
    [
        b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: +5\r\n\r\nhello",
        # The classic CL.TE smuggling shape: the "body" hides the next request.
        b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: t\r\nX-Foo : bar\r\n\r\n",
    ],
    ids=["bad-content-length", "cl-te", "space-before-colon"],
)
async def test_request_pipelined_after_a_malformed_one_is_never_forwarded(
    malformed: bytes,
) -> None:
    async with proxied() as (backend, port):
        await assert_rejected(port, backend, malformed + SMUGGLED)


async def test_valid_request_then_malformed_one_on_the_same_connection() -> None:
    async with proxied() as (backend, port), client_connection(port) as (reader, writer):
        writer.write(b"GET /first HTTP/1.1\r\nHost: t\r\n\r\n")
        status, _, body = await asyncio.wait_for(read_response(reader), 5)
        assert (status, body) == (200, b"ok")
        assert b"GET /first " in backend.received
        seen = bytes(backend.received)
        writer.write(b"GET /second HTTP/1.1\r\nHost: t\r\nX-Foo: a\x01b\r\n\r\n" + SMUGGLED)
        status, headers, body = await asyncio.wait_for(read_response(reader), 5)
        assert status == 400
        assert headers.get("connection") == "close"
        assert await read_eof(reader) == b""
        assert bytes(backend.received) == seen, "the malformed request reached the backend"


ROUTED_HOSTS = """
listeners:
  - name: test
    bind: "127.0.0.1:0"
    routes:
      - match: {{host: api.example.com}}
        pool: api
      - match: {{path_prefix: /}}
        pool: web
pools:
  api:
    backends: [{{address: "{api}"}}]
  web:
    backends: [{{address: "{web}"}}]
access_log: {{format: "off"}}
"""


@pytest.mark.parametrize(
    ("target", "path"),
    [
        (b"http://api.example.com/users?id=7", "/users?id=7"),
        (b"http://api.example.com", "/"),
        (b"http://API.Example.com/x", "/x"),
    ],
)
async def test_absolute_form_for_a_routed_host_is_forwarded_in_origin_form(
    target: bytes, path: str
) -> None:
    async with (
        aiohttp_backend(echo_request, name="api") as api,
        aiohttp_backend(echo_request, name="web") as web,
        running_proxy(ROUTED_HOSTS.format(api=api.address, web=web.address)) as (_, port),
        client_connection(port) as (reader, writer),
    ):
        # The authority in the target wins over the Host header (RFC 9112 3.2.2).
        writer.write(b"GET " + target + b" HTTP/1.1\r\nHost: www.other.test\r\n\r\n")
        status, _, body = await asyncio.wait_for(read_response(reader), 5)
        assert status == 200, body
        seen = json.loads(body)
        assert (api.requests, web.requests) == (1, 0), "routed by Host instead of the target"
        assert seen["path"] == path
        hosts = [v for n, v in seen["headers"] if n.lower() == "host"]
        assert hosts == [target.split(b"/")[2].decode()]


async def test_absolute_form_for_an_unrouted_host_is_not_an_open_proxy() -> None:
    async with (
        aiohttp_backend(echo_request, name="api") as api,
        aiohttp_backend(echo_request, name="web") as web,
        running_proxy(ROUTED_HOSTS.format(api=api.address, web=web.address)) as (_, port),
    ):
        # Host names a routed host, the target another one: still refused.
        raw, closed = await exchange_until_close(
            port, b"GET http://evil.example.net/ HTTP/1.1\r\nHost: api.example.com\r\n\r\n"
        )
        assert split_response(raw)[0] == 400
        assert closed
        assert (api.requests, web.requests, api.connections, web.connections) == (0, 0, 0, 0)


async def test_pipelined_valid_then_malformed_are_answered_in_order() -> None:
    """Both arrive in one segment: the valid one is forwarded and answered, then
    the malformed one gets its 400, then the connection closes."""
    async with proxied() as (backend, port), client_connection(port) as (reader, writer):
        writer.write(
            b"GET /first HTTP/1.1\r\nHost: t\r\n\r\n"
            b"GET /second HTTP/1.1\r\nHost: t\r\nX-Foo: a\x01b\r\n\r\n" + SMUGGLED
        )
        status, _, body = await asyncio.wait_for(read_response(reader), 5)
        assert (status, body) == (200, b"ok")
        status, headers, _ = await asyncio.wait_for(read_response(reader), 5)
        assert status == 400
        assert headers.get("connection") == "close"
        assert await read_eof(reader) == b""
        assert b"/second" not in backend.received
        assert b"/smuggled" not in backend.received


@pytest.mark.parametrize(
    "target",
    [b"http://user@api.example.com/", b"http://api.example.com@evil.example.net/", b"http:///x"],
    ids=["userinfo", "userinfo-other-host", "empty-authority"],
)
async def test_absolute_form_with_a_bad_authority_is_refused(target: bytes) -> None:
    async with (
        aiohttp_backend(echo_request, name="api") as api,
        aiohttp_backend(echo_request, name="web") as web,
        running_proxy(ROUTED_HOSTS.format(api=api.address, web=web.address)) as (_, port),
    ):
        raw, closed = await exchange_until_close(
            port, b"GET " + target + b" HTTP/1.1\r\nHost: api.example.com\r\n\r\n"
        )
        assert split_response(raw)[0] == 400, raw
        assert closed
        assert (api.connections, web.connections) == (0, 0)
