"""Request smuggling through the header rewriting, end to end.

A client (or a backend) can name framing headers in Connection, or repeat a
header with an empty first value, hoping the proxy forwards a message whose
framing differs from the one it read itself. Each case goes through a real
proxy to a raw backend that parses what it receives the way a strict HTTP/1.1
server would, and the test asserts exactly what the backend saw.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from tests.support import (
    RawBackend,
    client_connection,
    exchange_until_close,
    read_request_head,
    read_response,
    running_proxy,
    simple_config,
    split_response,
)

TIMEOUT = 5.0
TRUSTED = '    trusted_proxies: ["127.0.0.0/8"]'
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


def header_values(head: bytes, name: bytes) -> list[bytes]:
    out = []
    for line in head.split(b"\r\n")[1:]:
        n, sep, v = line.partition(b":")
        if sep and n.strip().lower() == name:
            out.append(v.strip())
    return out


class ParsingBackend(RawBackend):
    """Reads requests as their own headers frame them and answers each with 200.

    ``requests`` holds (head, body) for every request it parsed; a body is
    read only as far as the forwarded Content-Length or chunked framing says,
    so a body the proxy forwarded without its framing shows up as a request.
    """

    def __init__(self) -> None:
        self.requests: list[tuple[bytes, bytes]] = []
        self.received = bytearray()
        super().__init__(self._serve)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for _ in range(100):
            try:
                head = await read_request_head(reader)
            except asyncio.IncompleteReadError as exc:
                self.received += exc.partial
                return
            self.received += head
            body = b""
            clens = header_values(head, b"content-length")
            if header_values(head, b"transfer-encoding"):
                body = await self._chunked(reader)
            elif clens:
                body = await reader.readexactly(int(clens[0]))
                self.received += body
            self.requests.append((head, body))
            writer.write(OK)
            await writer.drain()

    async def _chunked(self, reader: asyncio.StreamReader) -> bytes:
        parts: list[bytes] = []
        while True:
            line = await reader.readuntil(b"\r\n")
            self.received += line
            size = int(line.split(b";")[0], 16)
            data = await reader.readexactly(size + 2)
            self.received += data
            if size == 0:
                return b"".join(parts)
            parts.append(data[:-2])


@contextlib.asynccontextmanager
async def proxied(extra_listener: str = "") -> AsyncIterator[tuple[ParsingBackend, int]]:
    backend = ParsingBackend()
    async with (
        backend,
        running_proxy(simple_config(backend.address, extra_listener=extra_listener)) as (_, port),
    ):
        yield backend, port


SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n"


@pytest.mark.parametrize(
    "connection",
    [b"content-length", b"Content-Length", b"keep-alive, content-length", b"host, content-length"],
)
async def test_connection_naming_content_length_cannot_strip_it(connection: bytes) -> None:
    """The body hides a second request: were Content-Length dropped while the
    body is forwarded, the backend would read that body as a request."""
    request = (
        b"POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n"
        b"Connection: %b\r\n\r\n%b" % (len(SMUGGLED), connection, SMUGGLED)
    )
    async with proxied() as (backend, port), client_connection(port) as (reader, writer):
        writer.write(request + b"GET /second HTTP/1.1\r\nHost: t\r\n\r\n")
        for _ in range(2):
            status, _, body = await asyncio.wait_for(read_response(reader), TIMEOUT)
            assert (status, body) == (200, b"ok")
        await asyncio.sleep(0.1)  # anything smuggled would have arrived by now
    assert [h.split(b"\r\n", 1)[0] for h, _ in backend.requests] == [
        b"POST /upload HTTP/1.1",
        b"GET /second HTTP/1.1",
    ]
    head, body = backend.requests[0]
    assert header_values(head, b"content-length") == [b"%d" % len(SMUGGLED)]
    assert header_values(head, b"host") == [b"t"]
    assert header_values(head, b"connection") == []
    assert body == SMUGGLED
    assert b"/smuggled" not in bytes(backend.received).replace(SMUGGLED, b"", 1)


async def test_connection_naming_transfer_encoding_keeps_the_chunked_framing() -> None:
    chunked = b"%x\r\n%b\r\n0\r\n\r\n" % (len(SMUGGLED), SMUGGLED)
    request = (
        b"POST /upload HTTP/1.1\r\nHost: t\r\nConnection: transfer-encoding, host\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n" + chunked
    )
    async with proxied() as (backend, port), client_connection(port) as (reader, writer):
        writer.write(request)
        status, _, body = await asyncio.wait_for(read_response(reader), TIMEOUT)
        assert (status, body) == (200, b"ok")
        await asyncio.sleep(0.1)
    assert len(backend.requests) == 1
    head, body = backend.requests[0]
    assert header_values(head, b"transfer-encoding") == [b"chunked"]
    assert header_values(head, b"host") == [b"t"]
    assert body == SMUGGLED


async def test_response_connection_naming_content_length_keeps_it() -> None:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for _ in range(10):
            await read_request_head(reader)
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: Content-Length\r\n\r\nhello"
            )
            await writer.drain()

    async with (
        RawBackend(serve) as backend,
        running_proxy(simple_config(backend.address)) as (_, port),
        client_connection(port) as (reader, writer),
    ):
        for _ in range(2):  # still framed: the client connection stays usable
            writer.write(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
            assert header_values(head, b"content-length") == [b"5"]
            assert header_values(head, b"transfer-encoding") == []
            assert header_values(head, b"connection") == []
            assert await asyncio.wait_for(reader.readexactly(5), TIMEOUT) == b"hello"


@pytest.mark.parametrize(
    "hosts",
    [(b"", b"evil.example"), (b"t", b""), (b"", b""), (b"t", b"t")],
    ids=["empty-then-evil", "t-then-empty", "both-empty", "same-twice"],
)
async def test_two_host_headers_are_refused_even_when_one_is_empty(
    hosts: tuple[bytes, bytes],
) -> None:
    request = b"GET / HTTP/1.1\r\nHost: %b\r\nHost: %b\r\n\r\n" % hosts
    async with proxied() as (backend, port):
        raw, closed = await exchange_until_close(port, request + SMUGGLED)
        status, headers, _ = split_response(raw)
        assert status == 400, raw
        assert headers.get("connection", "").lower() == "close"
        assert closed
    assert backend.received == b""
    assert backend.connections == 0


@pytest.mark.parametrize("trusted", [False, True])
async def test_forwarded_and_x_real_ip_only_from_a_trusted_peer(trusted: bool) -> None:
    request = b"GET / HTTP/1.1\r\nHost: t\r\nForwarded: for=10.9.9.9\r\nX-Real-IP: 10.9.9.9\r\n\r\n"
    async with (
        proxied(TRUSTED if trusted else "") as (backend, port),
        client_connection(port) as (reader, writer),
    ):
        writer.write(request)
        status, _, _ = await asyncio.wait_for(read_response(reader), TIMEOUT)
        assert status == 200
    head, _ = backend.requests[0]
    expected = [b"10.9.9.9"] if trusted else []
    assert header_values(head, b"x-real-ip") == expected
    assert header_values(head, b"forwarded") == ([b"for=10.9.9.9"] if trusted else [])
    assert header_values(head, b"x-forwarded-for") == [b"127.0.0.1"]
