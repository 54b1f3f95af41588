"""The proxy's own HTTP/1 parsing, seen from clients and backends.

Heads arrive whole or in pieces, bodies are framed by Content-Length or
chunked coding split anywhere, and whatever a peer sends beyond what its
message framed never reaches the other side.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from tests.support import (
    RawBackend,
    aiohttp_backend,
    client_connection,
    echo_request,
    exchange_until_close,
    get,
    read_request_head,
    read_response,
    running_proxy,
    simple_config,
    split_response,
)


async def _trickle(writer: asyncio.StreamWriter, data: bytes, step: int = 1) -> None:
    # Separate writes with a pause between them arrive as separate reads.
    for i in range(0, len(data), step):
        writer.write(data[i : i + step])
        await writer.drain()
        await asyncio.sleep(0.001)


async def test_request_sent_byte_by_byte_is_proxied() -> None:
    request = (
        b"POST /up?x=1 HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;name=value\r\nhello\r\nA\r\n0123456789\r\n0\r\nX-Trailer: t\r\n\r\n"
    )
    async with (
        aiohttp_backend(echo_request) as backend,
        running_proxy(simple_config(backend.address)) as (_, port),
        client_connection(port) as (reader, writer),
    ):
        await _trickle(writer, request)
        status, _, body = await asyncio.wait_for(read_response(reader), 5)
        assert status == 200
        echoed = json.loads(body)
        assert (echoed["method"], echoed["path"], echoed["body_len"]) == ("POST", "/up?x=1", 15)
        # The connection is still good for the next request.
        writer.write(b"GET /next HTTP/1.1\r\nHost: t\r\n\r\n")
        status, _, body = await asyncio.wait_for(read_response(reader), 5)
        assert status == 200 and json.loads(body)["path"] == "/next"


async def test_empty_lines_before_a_request_line_are_skipped() -> None:
    async with (
        aiohttp_backend() as backend,
        running_proxy(simple_config(backend.address)) as (_, port),
        client_connection(port) as (reader, writer),
    ):
        writer.write(b"\r\n\r\nGET /a HTTP/1.1\r\nHost: t\r\n\r\n")
        status, _, body = await asyncio.wait_for(read_response(reader), 5)
    assert (status, body) == (200, b"b GET /a 0")


async def test_custom_method_token_is_forwarded() -> None:
    async with (
        aiohttp_backend() as backend,
        running_proxy(simple_config(backend.address)) as (_, port),
        client_connection(port) as (reader, writer),
    ):
        writer.write(b"PURGE /cache HTTP/1.1\r\nHost: t\r\n\r\n")
        status, _, body = await asyncio.wait_for(read_response(reader), 5)
    assert (status, body) == (200, b"b PURGE /cache 0")


@pytest.mark.parametrize(
    ("request_line", "status"),
    [
        (b"GET / HTTP/2.0", 505),
        (b"GET / HTTP/0.9", 505),
        (b"GET / HTTP/1", 400),
        (b"GET / http/1.1", 400),
        (b"GET /caf\xc3\xa9 HTTP/1.1", 400),
        (b"GET\t/ HTTP/1.1", 400),
    ],
)
async def test_bad_request_lines_are_refused(request_line: bytes, status: int) -> None:
    async with (
        aiohttp_backend() as backend,
        running_proxy(simple_config(backend.address)) as (_, port),
    ):
        raw, closed = await exchange_until_close(port, request_line + b"\r\nHost: t\r\n\r\n")
        assert backend.requests == 0
    got, headers, _ = split_response(raw)
    assert got == status, raw
    assert headers["connection"] == "close" and closed


async def test_higher_http1_minor_version_is_served_as_1_1() -> None:
    async with (
        aiohttp_backend() as backend,
        running_proxy(simple_config(backend.address)) as (_, port),
        client_connection(port) as (reader, writer),
    ):
        writer.write(b"GET /v HTTP/1.7\r\nHost: t\r\n\r\n")
        status, headers, body = await asyncio.wait_for(read_response(reader), 5)
    assert (status, body) == (200, b"b GET /v 0")
    assert "connection" not in headers  # kept alive, as for HTTP/1.1


async def test_bytes_after_a_connection_close_request_are_not_forwarded() -> None:
    async with (
        aiohttp_backend() as backend,
        running_proxy(simple_config(backend.address)) as (_, port),
    ):
        raw, closed = await exchange_until_close(
            port,
            b"GET /first HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
            b"GET /second HTTP/1.1\r\nHost: t\r\n\r\n",
        )
        assert backend.requests == 1
    status, headers, body = split_response(raw)
    assert (status, body) == (200, b"b GET /first 0")
    assert headers["connection"] == "close" and closed


# -- responses -------------------------------------------------------------------


def _serving(responses: list[bytes], step: int = 0) -> RawBackend:
    """A backend answering each request on a connection with the next response
    (each connection starts from the first); ``step`` > 0 trickles it out."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for response in responses:
            await read_request_head(reader)
            if step:
                await _trickle(writer, response, step)
            else:
                writer.write(response)
                await writer.drain()
        await reader.read()

    return RawBackend(serve)


async def test_response_sent_byte_by_byte_is_relayed_and_reused() -> None:
    chunked = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-A: 1\r\n\r\n"
        b"3;ext\r\nabc\r\n2\r\nde\r\n0\r\nX-Sum: 5\r\n\r\n"
    )
    fixed = b"HTTP/1.1 201 Created\r\nContent-Length: 3\r\n\r\nxyz"
    async with (
        _serving([chunked, fixed], step=1) as backend,
        running_proxy(simple_config(backend.address)) as (_, port),
        client_connection(port) as (reader, writer),
    ):
        writer.write(b"GET /1 HTTP/1.1\r\nHost: t\r\n\r\n")
        status, headers, body = await asyncio.wait_for(read_response(reader), 10)
        assert (status, headers["x-a"], body) == (200, "1", b"abcde")
        writer.write(b"GET /2 HTTP/1.1\r\nHost: t\r\n\r\n")
        status, _, body = await asyncio.wait_for(read_response(reader), 10)
        assert (status, body) == (201, b"xyz")
        assert backend.connections == 1  # the same upstream connection served both


async def test_bytes_beyond_content_length_are_dropped_with_the_connection() -> None:
    overlong = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA-BYTES"
    async with (
        _serving([overlong, overlong]) as backend,
        running_proxy(simple_config(backend.address)) as (_, port),
        client_connection(port) as (reader, writer),
    ):
        for _ in range(2):
            writer.write(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            status, _, body = await asyncio.wait_for(read_response(reader), 5)
            assert (status, body) == (200, b"ok")
        # The connection that sent too much was not used again.
        assert backend.connections == 2
        writer.write(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        status, _, body = await asyncio.wait_for(read_response(reader), 5)
        assert (status, body) == (200, b"ok")
        assert b"EXTRA" not in await asyncio.wait_for(_pending(reader), 1)


async def _pending(reader: asyncio.StreamReader) -> bytes:
    try:
        return await asyncio.wait_for(reader.read(100), 0.2)
    except TimeoutError:
        return b""


@pytest.mark.parametrize(
    ("connection", "reused"), [(b"Connection: keep-alive\r\n", True), (b"", False)]
)
async def test_http10_backend_connection_reused_only_when_kept_alive(
    connection: bytes, reused: bool
) -> None:
    response = b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n" + connection + b"\r\nok"

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for _ in range(3):
            await read_request_head(reader)
            writer.write(response)
            await writer.drain()
            if not connection:
                return  # an HTTP/1.0 server closes after its response

    async with (
        RawBackend(serve) as backend,
        running_proxy(simple_config(backend.address)) as (_, port),
    ):
        for _ in range(2):
            status, _, body = await get(port)
            assert (status, body) == (200, b"ok")
        assert backend.connections == (1 if reused else 2)


async def test_oversized_response_head_is_a_502() -> None:
    huge = b"HTTP/1.1 200 OK\r\n" + b"X-Pad: " + b"a" * 70_000 + b"\r\nContent-Length: 0\r\n\r\n"
    async with (
        _serving([huge]) as backend,
        running_proxy(simple_config(backend.address)) as (_, port),
    ):
        status, _, _ = await get(port)
    assert status == 502


@pytest.mark.parametrize(
    "response",
    [
        pytest.param(b"HTTP/1.1 200 OK\nContent-Length: 2\r\n\r\nok", id="bare-lf"),
        pytest.param(b"HTTP/1.1 20 OK\r\nContent-Length: 2\r\n\r\nok", id="two-digit-status"),
        pytest.param(b"HTTP/1.1 200 OK\r\nX : y\r\nContent-Length: 2\r\n\r\nok", id="space-colon"),
        pytest.param(b"HTTP/1.1 200 OK\r\nA: b\r\n c\r\nContent-Length: 2\r\n\r\nok", id="fold"),
        pytest.param(b"HTTP/2 200 OK\r\nContent-Length: 2\r\n\r\nok", id="version"),
    ],
)
async def test_malformed_response_heads_become_502(response: bytes) -> None:
    async with (
        _serving([response]) as backend,
        running_proxy(simple_config(backend.address)) as (_, port),
    ):
        raw, _ = await exchange_until_close(port, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n", 2)
    assert split_response(raw)[0] == 502, raw


async def test_malformed_chunked_response_body_cuts_the_response_short() -> None:
    response = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\nzz\r\n"
    async with (
        _serving([response]) as backend,
        running_proxy(simple_config(backend.address)) as (_, port),
    ):
        raw, closed = await exchange_until_close(port, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n", 3)
    # The head was already relayed: the client sees the response end without
    # its last chunk (never a clean end), and the connection closes.
    status, headers, body = split_response(raw)
    assert status == 200 and headers["transfer-encoding"] == "chunked"
    assert not body.endswith(b"0\r\n\r\n") and closed


async def test_a_smuggled_second_response_never_answers_a_pipelined_request() -> None:
    # The backend answers the first request and, in the same write, a second
    # response nobody asked for. The client has already pipelined its next
    # request: that request must get its own answer, never the smuggled one.
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await read_request_head(reader)
        if b"GET /1 " in head:
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
                b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nEVIL"
            )
        else:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok2")
        await writer.drain()
        await reader.read()

    async with (
        RawBackend(serve) as backend,
        running_proxy(simple_config(backend.address)) as (_, port),
        client_connection(port) as (reader, writer),
    ):
        writer.write(b"GET /1 HTTP/1.1\r\nHost: t\r\n\r\nGET /2 HTTP/1.1\r\nHost: t\r\n\r\n")
        first = await asyncio.wait_for(read_response(reader), 5)
        second = await asyncio.wait_for(read_response(reader), 5)
        assert backend.connections == 2
    assert (first[0], first[2]) == (200, b"ok")
    assert (second[0], second[2]) == (200, b"ok2")
