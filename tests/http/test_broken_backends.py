"""Backends that break HTTP on purpose, and what a client must see through the proxy.

Every backend here is a raw TCP server (``ScriptedBackend``) that answers a
scripted path with a scripted misbehaviour and any other path with a correct
``200 real <path>``. It records each request line it reads, with the number of
the connection it came on, and which connections the proxy closed, so a test
can tell whether an upstream connection was reused after it went wrong.

The rules checked (docs/config.md: "What the proxy does to requests and
responses", "The proxy's own responses", "Upstream keep-alive"):

* a response that ends early reaches the client truncated, never with a clean
  end, and the client connection closes;
* whatever a backend sends beyond the response it framed never reaches a
  client, in particular never as the answer to the client's next request, and
  that upstream connection is not used again;
* an invalid response head is a ``502`` (the client connection survives a
  bodiless GET), and its upstream connection is not used again;
* HEAD, 204 and 304 responses have no body, whatever their headers say, and
  the next response on the client connection is framed right;
* interim 1xx responses reach HTTP/1.1 clients, in order, and not HTTP/1.0 ones;
* resets, closes and half-closes by the backend at every stage end the
  exchange as documented, an idempotent request racing with a keep-alive close
  is resent once and a POST never is;
* chunked responses are decoded whatever the read boundaries, extensions
  dropped and trailers relayed;
* no file descriptor is left behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

import lbproxy
from tests.support import (
    RawBackend,
    client_connection,
    poll_until,
    read_request_head,
    running_proxy,
    simple_config,
)

TIMEOUT = 5.0
POOL = "    timeouts: {connect: 1s, response: 2s}"
METHODS = frozenset((b"GET", b"HEAD", b"POST", b"PUT", b"PATCH", b"DELETE", b"OPTIONS"))
# 100000 bytes that do not repeat on any short period: a misplaced slice shows.
BODY = bytes(i % 251 for i in range(100_000))
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
SPLIT = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Split: yes\r\n\r\nSPLIT"

# A scripted misbehaviour: gets the request head just read; True when the
# connection is finished with (the backend closes it), else the backend goes
# on reading requests from it.
Behaviour = Callable[[asyncio.StreamReader, asyncio.StreamWriter, bytes], Awaitable[bool]]
Fields = list[tuple[str, str]]


# -- the backend -------------------------------------------------------------------


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value.strip())
    return 0


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with an RST (SO_LINGER 0) instead of a FIN.

    Clients use it too, when they leave a connection on which pipelined
    requests went unanswered: the proxy holds such a connection open for its
    lingering-close period (2 s) even after the client's FIN, which would only
    slow these tests down."""
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


def _real(method: bytes, path: bytes) -> bytes:
    body = b"real " + path
    head = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body)
    return head if method == b"HEAD" else head + body


class ScriptedBackend(RawBackend):
    """Answers the paths in ``script`` with their behaviour, every other path
    with ``200 real <path>`` (after reading a Content-Length body). A request
    line that is not HTTP gets a 400 and the connection closes, as from any
    real server."""

    def __init__(self, script: dict[str, Behaviour] | None = None) -> None:
        self.script = script or {}
        self.lines: list[tuple[int, bytes]] = []  # (connection number, request line)
        self.ended: set[int] = set()  # connections the proxy closed or reset
        super().__init__(self._serve)

    def paths(self) -> list[bytes]:
        return [[*line.split(b" "), b""][1] for _, line in self.lines]

    def bogus_lines(self) -> list[bytes]:
        return [line for _, line in self.lines if line.split(b" ", 1)[0] not in METHODS]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = self.connections
        try:
            for _ in range(1000):
                head = await read_request_head(reader)
                line = head.split(b"\r\n", 1)[0]
                self.lines.append((conn, line))
                parts = line.split(b" ")
                if len(parts) != 3 or parts[0] not in METHODS:
                    writer.write(
                        b"HTTP/1.1 400 Bad Request\r\nContent-Length: 3\r\n"
                        b"Connection: close\r\n\r\nbad"
                    )
                    await writer.drain()
                    return
                behaviour = self.script.get(parts[1].decode())
                if behaviour is not None:
                    if await behaviour(reader, writer, head):
                        return
                    continue
                await reader.readexactly(_content_length(head))
                writer.write(_real(parts[0], parts[1]))
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            self.ended.add(conn)


def answer(
    *pieces: bytes, pause: float = 0.0, then: str = "stay", read_body: bool = True
) -> Behaviour:
    """Send ``pieces`` (``pause`` seconds apart, so they arrive as separate
    reads), then: ``stay`` (go on serving the connection), ``close`` (FIN),
    ``half-close`` (FIN, then read until the proxy closes), ``reset`` (RST)."""

    async def behave(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, head: bytes
    ) -> bool:
        if read_body:
            await reader.readexactly(_content_length(head))
        for i, piece in enumerate(pieces):
            if i and pause:
                await asyncio.sleep(pause)
            writer.write(piece)
            await writer.drain()
        if then == "close":
            writer.close()
            return True
        if then == "reset":
            await asyncio.sleep(0.02)  # let the proxy read what was sent first
            _reset(writer)
            return True
        if then == "half-close":
            writer.write_eof()
            # Keep reading (and dropping) until the proxy closes its end too.
            for _ in range(10_000):
                if not await reader.read(65536):
                    break
            raise asyncio.IncompleteReadError(b"", None)  # recorded as ended by the proxy
        return False

    return behave


@contextlib.asynccontextmanager
async def proxied(
    script: dict[str, Behaviour] | None = None,
) -> AsyncIterator[tuple[ScriptedBackend, lbproxy.Proxy, int]]:
    backend = ScriptedBackend(script)
    async with backend:
        async with running_proxy(simple_config(backend.address, extra_pool=POOL)) as (proxy, port):
            yield backend, proxy, port
        # Let the backend's handlers see the proxy's closes before they are
        # cancelled (a cancelled stream handler only adds noise to the log).
        for _ in range(100):
            if not backend.tasks:
                break
            await asyncio.sleep(0.01)


def idle(proxy: lbproxy.Proxy) -> int:
    n: int = proxy.status()["pools"]["web"]["backends"][0]["idle_connections"]
    return n


def req(path: str, method: str = "GET", extra: str = "", version: str = "1.1") -> bytes:
    return f"{method} {path} HTTP/{version}\r\nHost: t\r\n{extra}\r\n".encode()


# -- the client ----------------------------------------------------------------------


def header(fields: Fields, name: str) -> str | None:
    values = [v for n, v in fields if n.lower() == name]
    return values[0] if values else None


def _fields(lines: list[str]) -> Fields:
    out: Fields = []
    for line in lines:
        name, colon, value = line.partition(":")
        assert colon and name == name.strip(), f"malformed field {line!r}"
        out.append((name, value.strip()))
    return out


async def read_head(reader: asyncio.StreamReader) -> tuple[int, Fields]:
    raw = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
    lines = raw[:-4].decode("latin-1").split("\r\n")
    version, status, _ = (lines[0] + " ").split(" ", 2)
    assert version == "HTTP/1.1", raw
    return int(status), _fields(lines[1:])


async def read_message(
    reader: asyncio.StreamReader, head_request: bool = False
) -> tuple[int, Fields, bytes, Fields]:
    """One final response, framed as a client must read it: no body for HEAD,
    1xx, 204 and 304; else chunked, Content-Length, or until the close.
    Returns ``(status, fields, body, trailer fields)``."""
    status, fields = await read_head(reader)
    assert status >= 200, f"unexpected interim {status}"
    te = header(fields, "transfer-encoding")
    clen = header(fields, "content-length")
    if head_request or status in (204, 304):
        return status, fields, b"", []
    if te is not None:
        assert te == "chunked" and clen is None, fields
        body, trailers = await _read_chunked(reader)
        return status, fields, body, trailers
    if clen is not None:
        return status, fields, await reader.readexactly(int(clen)), []
    return status, fields, await read_to_close(reader), []


async def _read_chunked(reader: asyncio.StreamReader) -> tuple[bytes, Fields]:
    parts: list[bytes] = []
    for _ in range(100_000):
        line = await asyncio.wait_for(reader.readuntil(b"\r\n"), TIMEOUT)
        size = int(line[:-2], 16)  # the proxy writes no chunk extensions
        if size == 0:
            lines: list[str] = []
            for _ in range(1000):
                trailer = await asyncio.wait_for(reader.readuntil(b"\r\n"), TIMEOUT)
                if trailer == b"\r\n":
                    return b"".join(parts), _fields(lines)
                lines.append(trailer[:-2].decode("latin-1"))
            raise AssertionError("endless trailer section")
        parts.append(await asyncio.wait_for(reader.readexactly(size), TIMEOUT))
        assert await reader.readexactly(2) == b"\r\n"
    raise AssertionError("endless chunked body")


def decode_chunks(raw: bytes) -> tuple[bytes, bool, bytes]:
    """Decode as much of a chunked body as ``raw`` holds (the proxy writes no
    extensions): ``(data, complete, bytes left over after the end)``."""
    data: list[bytes] = []
    pos = 0
    for _ in range(100_000):
        eol = raw.find(b"\r\n", pos)
        if eol == -1:
            break
        size = int(raw[pos:eol], 16)
        if size == 0:
            end = raw.find(b"\r\n\r\n", eol)
            if end == -1:
                break
            return b"".join(data), True, raw[end + 4 :]
        start = eol + 2
        if len(raw) < start + size + 2:
            break
        data.append(raw[start : start + size])
        assert raw[start + size : start + size + 2] == b"\r\n", "broken chunk framing"
        pos = start + size + 2
    return b"".join(data), False, raw[pos:]


async def read_to_close(reader: asyncio.StreamReader, timeout: float = TIMEOUT) -> bytes:
    """Everything until the peer closes (a reset counts as a close, keeping
    what came before it); AssertionError if it stays open."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    chunks: list[bytes] = []
    for _ in range(100_000):
        left = deadline - loop.time()
        if left <= 0:
            break
        try:
            chunk = await asyncio.wait_for(reader.read(65536), left)
        except TimeoutError:
            break
        except ConnectionError:
            return b"".join(chunks)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
    raise AssertionError(f"connection still open after {timeout}s: {b''.join(chunks)[:200]!r}")


async def pending(reader: asyncio.StreamReader, wait: float = 0.05) -> bytes:
    """Bytes that arrive unasked for within ``wait`` seconds."""
    try:
        return await asyncio.wait_for(reader.read(65536), wait)
    except TimeoutError:
        return b""


async def fresh_get(port: int, path: str) -> tuple[int, bytes]:
    """One GET on a new client connection: ``(status, body)``."""
    async with client_connection(port) as (reader, writer):
        writer.write(req(path))
        status, _, body, _ = await read_message(reader)
        return status, body


async def expect_real(reader: asyncio.StreamReader, path: str) -> None:
    status, _, body, _ = await read_message(reader)
    assert (status, body) == (200, b"real " + path.encode())


def assert_proxy_error(status: int, fields: Fields, body: bytes, expected: int) -> None:
    assert status == expected, (status, body)
    assert (header(fields, "content-type") or "").startswith("text/plain")
    assert body.startswith(str(expected).encode()), body


# -- 1: truncated responses ---------------------------------------------------------

TRUNCATED = {
    "content-length": b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + BODY[:40_000],
    # One whole chunk of 40000 bytes, then 10000 bytes of a 20000-byte chunk.
    "chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n9c40\r\n"
    + BODY[:40_000]
    + b"\r\n4e20\r\n"
    + BODY[40_000:50_000],
}


@pytest.mark.parametrize("ending", ["close", "half-close"])
@pytest.mark.parametrize("framing", ["content-length", "chunked"])
async def test_truncated_response_reaches_the_client_cut_short_then_closes(
    framing: str, ending: str
) -> None:
    async with proxied({"/cut": answer(TRUNCATED[framing], then=ending)}) as (backend, _, port):
        async with client_connection(port) as (reader, writer):
            # A second request pipelined behind: it must never be answered.
            writer.write(req("/cut") + req("/second"))
            status, fields = await read_head(reader)
            rest = await read_to_close(reader)
            _reset(writer)
        assert status == 200
        if framing == "content-length":
            assert header(fields, "content-length") == "100000"
            assert rest == BODY[:40_000]  # exactly what was sent, then the close
        else:
            assert header(fields, "transfer-encoding") == "chunked"
            data, complete, left_over = decode_chunks(rest)
            assert data == BODY[:50_000]
            assert not complete, "a truncated chunked response was given a clean end"
            assert left_over == b"", left_over[:200]
        assert backend.paths() == [b"/cut"]  # /second never went anywhere
        # The next request opens a new upstream connection.
        assert await fresh_get(port, "/next") == (200, b"real /next")
        assert backend.connections == 2


# -- 2: more bytes than the response framed -------------------------------------------


@pytest.mark.parametrize("extra", [b"EXTRA-BYTES", SPLIT], ids=["junk", "whole-response"])
async def test_extra_bytes_arriving_later_on_a_pooled_connection_close_it(extra: bytes) -> None:
    go = asyncio.Event()

    async def behave(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: bytes) -> bool:
        writer.write(OK)
        await writer.drain()
        await asyncio.wait_for(go.wait(), TIMEOUT)
        writer.write(extra)  # a separate segment, long after the response ended
        await writer.drain()
        return False

    async with proxied({"/first": behave}) as (backend, proxy, port):
        async with client_connection(port) as (reader, writer):
            writer.write(req("/first"))
            status, _, body, _ = await read_message(reader)
            assert (status, body) == (200, b"ok")
            await poll_until(lambda: idle(proxy) == 1, TIMEOUT, "the connection to be pooled")
            go.set()
            await poll_until(lambda: 1 in backend.ended, TIMEOUT, "the proxy to drop it")
            assert idle(proxy) == 0
            writer.write(req("/next"))
            await expect_real(reader, "/next")
            assert await pending(reader) == b""
        assert backend.connections == 2


FRAMED_OK = {
    "content-length": OK,
    "chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
}


@pytest.mark.parametrize("pipelined", [False, True], ids=["sequential", "pipelined"])
@pytest.mark.parametrize("framing", ["content-length", "chunked"])
async def test_response_smuggled_after_the_framed_one_is_never_an_answer(
    framing: str, pipelined: bool
) -> None:
    """Response splitting: a backend appends a whole second response to its
    first one, in the same segment. It must not become the answer to the
    client's next request, even when that request is already waiting."""
    script = {"/first": answer(FRAMED_OK[framing] + SPLIT)}
    async with proxied(script) as (backend, _, port):
        async with client_connection(port) as (reader, writer):
            if pipelined:
                writer.write(req("/first") + req("/second"))
            else:
                writer.write(req("/first"))
            status, _, body, _ = await read_message(reader)
            assert (status, body) == (200, b"ok")
            if not pipelined:
                writer.write(req("/second"))
            status, fields, body, _ = await read_message(reader)
            assert header(fields, "x-split") is None, "the smuggled response was delivered"
            assert (status, body) == (200, b"real /second")
            assert await pending(reader) == b""
        # The connection that sent too much was not used again.
        assert (1, b"GET /second HTTP/1.1") not in backend.lines
        assert backend.connections == 2


# -- 3: invalid response heads ---------------------------------------------------------


@pytest.mark.parametrize(
    "response",
    [
        pytest.param(b"HTTP/1.1 2O0 OK\r\nContent-Length: 2\r\n\r\nok", id="letter-in-status"),
        pytest.param(b"HTTP/1.1 200OK\r\nContent-Length: 2\r\n\r\nok", id="no-space-after-code"),
        pytest.param(b"HTTP/1.1 1000 OK\r\nContent-Length: 2\r\n\r\nok", id="four-digit-status"),
        pytest.param(b"ICY 200 OK\r\nContent-Length: 2\r\n\r\nok", id="not-http"),
        pytest.param(b"HTTP/1.1 200 O\x01K\r\nContent-Length: 2\r\n\r\nok", id="ctl-in-reason"),
        pytest.param(b"HTTP/1.1 200 OK\r\nX-A: a\x00b\r\nContent-Length: 2\r\n\r\nok", id="nul"),
        pytest.param(
            b"HTTP/1.1 200 OK\r\nX-No-Colon\r\nContent-Length: 2\r\n\r\nok", id="no-colon"
        ),
        pytest.param(
            b"HTTP/1.1 200 OK\r\nX A: b\r\nContent-Length: 2\r\n\r\nok", id="space-in-name"
        ),
        pytest.param(b"HTTP/1.1 200 OK\r\n: b\r\nContent-Length: 2\r\n\r\nok", id="empty-name"),
        pytest.param(
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok",
            id="two-content-lengths",
        ),
        pytest.param(
            b"HTTP/1.1 200 OK\r\nContent-Length: 2, 3\r\n\r\nok", id="content-length-list"
        ),
        pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: -2\r\n\r\nok", id="negative-length"),
        pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: 0x2\r\n\r\nok", id="hex-length"),
    ],
)
async def test_invalid_response_is_a_502_and_its_connection_is_dropped(response: bytes) -> None:
    async with proxied({"/bad": answer(response)}) as (backend, _, port):
        async with client_connection(port) as (reader, writer):
            writer.write(req("/bad"))
            status, fields, body, _ = await read_message(reader)
            assert_proxy_error(status, fields, body, 502)
            # A bodiless GET: the client connection stays open and serves on.
            assert header(fields, "connection") is None
            writer.write(req("/next"))
            await expect_real(reader, "/next")
            assert await pending(reader) == b""
        await poll_until(lambda: 1 in backend.ended, TIMEOUT, "the proxy to drop it")
        assert backend.connections == 2
        assert backend.paths() == [b"/bad", b"/next"]


CL_AND_TE = (
    b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"5\r\nhello\r\n0\r\n\r\n"
)


async def test_content_length_with_chunked_response_is_framed_by_the_chunks() -> None:
    """docs: in a response Transfer-Encoding overrides Content-Length, which is
    not forwarded; the client sees one response, framed one way only."""
    async with proxied({"/both": answer(CL_AND_TE)}) as (_, _, port):
        async with client_connection(port) as (reader, writer):
            writer.write(req("/both"))
            status, fields, body, _ = await read_message(reader)
            assert (status, body) == (200, b"hello")
            assert header(fields, "transfer-encoding") == "chunked"
            assert header(fields, "content-length") is None
            writer.write(req("/next"))
            await expect_real(reader, "/next")
            assert await pending(reader) == b""


async def test_content_length_with_chunked_response_does_not_reuse_the_connection() -> None:
    """A response framed two ways is a smuggling or splitting attempt (RFC 9112
    6.3): whatever the proxy relays, it must not trust that connection again."""
    async with proxied({"/both": answer(CL_AND_TE)}) as (backend, _, port):
        async with client_connection(port) as (reader, writer):
            writer.write(req("/both"))
            status, _, body, _ = await read_message(reader)
            assert (status, body) == (200, b"hello")
            writer.write(req("/next"))
            await expect_real(reader, "/next")
        assert backend.lines == [(1, b"GET /both HTTP/1.1"), (2, b"GET /next HTTP/1.1")]


async def test_equal_duplicate_content_lengths_are_forwarded_as_one() -> None:
    response = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok"
    async with proxied({"/dup": answer(response)}) as (_, _, port):
        async with client_connection(port) as (reader, writer):
            writer.write(req("/dup"))
            status, fields, body, _ = await read_message(reader)
            assert (status, body) == (200, b"ok")
            assert [v for n, v in fields if n.lower() == "content-length"] == ["2"]
            writer.write(req("/next"))
            await expect_real(reader, "/next")


# -- 4: responses without a body: HEAD, 204, 304 -----------------------------------------

NO_BODY = {
    # (method, response); the correct ones first, then backends that send a
    # body where none may be (bytes beyond the response: not relayed, and the
    # connection dropped).
    "head-content-length": ("HEAD", b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"),
    "head-chunked": ("HEAD", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"),
    "304-plain": ("GET", b'HTTP/1.1 304 Not Modified\r\nETag: "e"\r\n\r\n'),
    "head-with-body": ("HEAD", b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"),
    "204-with-body": ("GET", b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\nhello"),
    "304-with-body": (
        "GET",
        b'HTTP/1.1 304 Not Modified\r\nETag: "e"\r\nContent-Length: 5\r\n\r\nhello',
    ),
    "204-chunked-body": (
        "GET",
        b"HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    ),
}


@pytest.mark.parametrize("pipelined", [False, True], ids=["sequential", "pipelined"])
@pytest.mark.parametrize("case", list(NO_BODY))
async def test_bodiless_responses_keep_the_client_framing(case: str, pipelined: bool) -> None:
    method, response = NO_BODY[case]
    requests = [
        (method, "/nobody"),
        ("GET", "/after-1"),
        (method, "/nobody"),
        ("GET", "/after-2"),
    ]
    async with proxied({"/nobody": answer(response)}) as (backend, _, port):
        async with client_connection(port) as (reader, writer):
            if pipelined:
                writer.write(b"".join(req(path, m) for m, path in requests))
            for m, path in requests:
                if not pipelined:
                    writer.write(req(path, m))
                status, fields, body, _ = await read_message(reader, head_request=m == "HEAD")
                if path == "/nobody":
                    assert status == int(response[9:12]), (path, status, body)
                    if "content-length" in case:
                        assert header(fields, "content-length") == "1000"
                else:
                    assert (status, body) == (200, b"real " + path.encode()), case
            assert await pending(reader) == b"", "bytes beyond the last response"
        assert backend.bogus_lines() == []


# -- 5: interim 1xx responses --------------------------------------------------------------

INTERIM = [
    b"HTTP/1.1 100 Continue\r\n\r\n",
    b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n"
    b"Link: </b.js>; rel=preload; as=script\r\n\r\n",
    b"HTTP/1.1 103 Early Hints\r\nLink: </c.css>; rel=preload\r\n\r\n",
]
FINAL = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Final: 1\r\n\r\nfinal"


def _hints(delivery: str) -> Behaviour:
    if delivery == "one-write":
        return answer(b"".join([*INTERIM, FINAL]))
    # Each message alone, and the 103s cut in the middle of a field.
    pieces = [INTERIM[0], INTERIM[1][:40], INTERIM[1][40:], INTERIM[2], FINAL[:20], FINAL[20:]]
    return answer(*pieces, pause=0.02)


@pytest.mark.parametrize("delivery", ["one-write", "separate-reads"])
async def test_interim_responses_reach_an_http11_client_in_order(delivery: str) -> None:
    async with proxied({"/hints": _hints(delivery)}) as (_, _, port):
        async with client_connection(port) as (reader, writer):
            writer.write(req("/hints"))
            interim = [await read_head(reader) for _ in range(3)]
            assert interim == [
                (100, []),
                (
                    103,
                    [
                        ("Link", "</a.css>; rel=preload"),
                        ("Link", "</b.js>; rel=preload; as=script"),
                    ],
                ),
                (103, [("Link", "</c.css>; rel=preload")]),
            ]
            status, fields, body, _ = await read_message(reader)
            assert (status, header(fields, "x-final"), body) == (200, "1", b"final")
            writer.write(req("/next"))
            await expect_real(reader, "/next")
            assert await pending(reader) == b""


@pytest.mark.parametrize("keep_alive", [False, True], ids=["close", "keep-alive"])
async def test_interim_responses_are_dropped_for_an_http10_client(keep_alive: bool) -> None:
    extra = "Connection: keep-alive\r\n" if keep_alive else ""
    async with proxied({"/hints": _hints("separate-reads")}) as (_, _, port):
        async with client_connection(port) as (reader, writer):
            writer.write(req("/hints", extra=extra, version="1.0"))
            # read_message fails on any 1xx: the first head must be the final one.
            status, fields, body, _ = await read_message(reader)
            assert (status, header(fields, "x-final"), body) == (200, "1", b"final")
            if keep_alive:
                writer.write(req("/next", extra=extra, version="1.0"))
                await expect_real(reader, "/next")
                assert await pending(reader) == b""
            else:
                assert await read_to_close(reader) == b""


# -- 6: Expect: 100-continue answered with a final status ------------------------------------

EXPECT_ANSWERS = {
    417: b"HTTP/1.1 417 Expectation Failed\r\nContent-Length: 4\r\n\r\nnope",
    200: b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nsure",
}
EXPECT = "Content-Length: 5\r\nExpect: 100-continue\r\n"


@pytest.mark.parametrize("final", [417, 200])
async def test_expect_continue_answered_without_reading_the_body(final: int) -> None:
    """The client waits for 100 Continue as it should; the backend answers at
    once with a final status and never reads the body (keeping its connection)."""
    script = {"/upload": answer(EXPECT_ANSWERS[final], read_body=False)}
    async with proxied(script) as (backend, _, port):
        async with client_connection(port) as (reader, writer):
            writer.write(req("/upload", "POST", EXPECT))
            status, fields, body, _ = await read_message(reader)
            assert (status, body) == (final, EXPECT_ANSWERS[final][-4:])
            same_connection = header(fields, "connection") != "close"
            if same_connection:
                # Kept alive: the body the request announced comes first.
                writer.write(b"hello" + req("/next"))
                await expect_real(reader, "/next")
            else:
                # The proxy gave up on the body not sent yet: this connection ends.
                assert await read_to_close(reader) == b""
        if not same_connection:
            assert await fresh_get(port, "/next") == (200, b"real /next")
        assert backend.bogus_lines() == []
        assert backend.paths() == [b"/upload", b"/next"]


@pytest.mark.parametrize("final", [417, 200])
async def test_expect_continue_body_sent_anyway_is_never_read_as_a_request(final: int) -> None:
    """The client does not wait (RFC 9110 10.1.1 allows it): its body reaches
    the backend, which answers without reading it. The unread body must never
    be taken for the start of the next request on that upstream connection."""
    script = {"/upload": answer(EXPECT_ANSWERS[final], read_body=False)}
    async with proxied(script) as (backend, _, port):
        async with client_connection(port) as (reader, writer):
            writer.write(req("/upload", "POST", EXPECT) + b"hello")
            status, fields, body, _ = await read_message(reader)
            assert (status, body) == (final, EXPECT_ANSWERS[final][-4:])
            if header(fields, "connection") == "close":
                assert await read_to_close(reader) == b""
                status, body = await fresh_get(port, "/next")
            else:
                writer.write(req("/next"))
                status, _, body, _ = await read_message(reader)
        assert backend.bogus_lines() == [], "the unread body was read as a request"
        assert (status, body) == (200, b"real /next")


# -- 7: resets, closes and half-closes -----------------------------------------------------


@pytest.mark.parametrize("backend_then", ["keeps-reading", "half-closes"])
async def test_early_response_to_an_upload(backend_then: str) -> None:
    """The backend answers a large upload before it is complete, then either
    keeps its connection (reading and dropping the body) or says it closes and
    half-closes (a lingering close, as careful servers do)."""
    close = b"Connection: close\r\n" if backend_then == "half-closes" else b""

    async def behave(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, head: bytes
    ) -> bool:
        writer.write(
            b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 8\r\n" + close + b"\r\ntoo much"
        )
        await writer.drain()
        if close:
            writer.write_eof()
        for _ in range(10_000):  # read and drop the body until the proxy closes
            if not await reader.read(65536):
                break
        return True

    async with proxied({"/upload": behave}) as (backend, _, port):
        async with client_connection(port) as (reader, writer):
            writer.write(req("/upload", "POST", "Content-Length: 1000000\r\n") + BODY[:20_000])
            status, fields, body, _ = await read_message(reader)
            assert (status, body) == (413, b"too much")
            # The rest of the body cannot be told from a next request: the proxy
            # closes the client connection after this response.
            assert header(fields, "connection") == "close"
            with contextlib.suppress(ConnectionError):
                writer.write(BODY[20_000:60_000] + req("/smuggled"))
            assert await read_to_close(reader) == b""
        assert await fresh_get(port, "/next") == (200, b"real /next")
        assert backend.paths() == [b"/upload", b"/next"]
        assert backend.connections == 2


async def test_backend_reset_while_receiving_the_request_body() -> None:
    async def behave(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: bytes) -> bool:
        await reader.readexactly(10_000)
        _reset(writer)
        return True

    async with proxied({"/upload": behave}) as (backend, proxy, port):
        async with client_connection(port) as (reader, writer):
            writer.write(req("/upload", "POST", "Content-Length: 200000\r\n") + BODY[:50_000])
            status, fields, body, _ = await read_message(reader)
            assert_proxy_error(status, fields, body, 502)
            # The body was still arriving: the connection closes after the 502.
            assert header(fields, "connection") == "close"
            assert await read_to_close(reader) == b""
        assert await fresh_get(port, "/next") == (200, b"real /next")
        assert backend.paths() == [b"/upload", b"/next"]  # the POST was not resent
        [state] = proxy.status()["pools"]["web"]["backends"]
        assert state["failures_total"] == 1


async def test_backend_reset_while_sending_the_response_body() -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n"
    script = {"/download": answer(head + BODY[:30_000], then="reset")}
    async with proxied(script) as (backend, _, port):
        async with client_connection(port) as (reader, writer):
            writer.write(req("/download") + req("/second"))
            status, fields = await read_head(reader)
            rest = await read_to_close(reader)
            _reset(writer)
        assert (status, header(fields, "content-length")) == (200, "100000")
        assert rest == BODY[: len(rest)] and len(rest) <= 30_000  # cut short, nothing spliced
        assert await fresh_get(port, "/next") == (200, b"real /next")
        assert backend.paths() == [b"/download", b"/next"]


@pytest.mark.parametrize("how", ["fin", "rst"])
async def test_backend_closing_an_idle_pooled_connection_is_noticed(how: str) -> None:
    close = asyncio.Event()

    async def behave(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: bytes) -> bool:
        writer.write(OK)
        await writer.drain()
        await asyncio.wait_for(close.wait(), TIMEOUT)
        if how == "rst":
            _reset(writer)
        else:
            writer.close()
        return True

    async with proxied({"/first": behave}) as (backend, proxy, port):
        async with client_connection(port) as (reader, writer):
            writer.write(req("/first"))
            status, _, body, _ = await read_message(reader)
            assert (status, body) == (200, b"ok")
            await poll_until(lambda: idle(proxy) == 1, TIMEOUT, "the connection to be pooled")
            close.set()
            await poll_until(lambda: idle(proxy) == 0, TIMEOUT, "the proxy to drop it")
            writer.write(req("/next", "POST", "Content-Length: 2\r\n") + b"hi")
            await expect_real(reader, "/next")  # not a retry: a fresh connection at once
        assert backend.lines == [(1, b"GET /first HTTP/1.1"), (2, b"POST /next HTTP/1.1")]


@pytest.mark.parametrize(
    ("method", "resent"),
    [
        ("GET", True),
        ("HEAD", True),
        ("PUT", True),
        ("DELETE", True),
        ("POST", False),
        ("PATCH", False),
    ],
)
async def test_keep_alive_close_racing_with_a_request(method: str, resent: bool) -> None:
    """The backend reads the next request on a reused connection, then closes it
    (FIN) without a byte of answer: idempotent methods are resent once on a
    fresh connection, unnoticed; others get 502 and are never resent."""
    bodies: list[tuple[int, bytes]] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = rb.connections
        for served in range(100):
            head = await read_request_head(reader)
            body = await reader.readexactly(_content_length(head))
            bodies.append((conn, head.split(b"\r\n", 1)[0] + b" " + body))
            if conn == 1 and served == 1:
                writer.close()  # the keep-alive timer fired as the request came in
                return
            writer.write(_real(head.split(b" ", 1)[0], b"/"))
            await writer.drain()

    extra = "Content-Length: 4\r\n" if method in ("PUT", "POST", "PATCH") else ""
    payload = b"data" if extra else b""
    async with (
        RawBackend(serve) as rb,
        running_proxy(simple_config(rb.address, extra_pool=POOL)) as (_, port),
        client_connection(port) as (reader, writer),
    ):
        writer.write(req("/"))
        await expect_real(reader, "/")
        writer.write(req("/", method, extra) + payload)
        status, fields, body, _ = await read_message(reader, head_request=method == "HEAD")
        sent = f"{method} / HTTP/1.1 ".encode() + payload
        if resent:
            assert status == 200, body
            assert body == (b"" if method == "HEAD" else b"real /")
            assert bodies == [(1, b"GET / HTTP/1.1 "), (1, sent), (2, sent)]
        else:
            assert_proxy_error(status, fields, body, 502)
            assert bodies == [(1, b"GET / HTTP/1.1 "), (1, sent)]
        # Either way the client connection serves on.
        writer.write(req("/"))
        await expect_real(reader, "/")


@pytest.mark.parametrize(
    "framing",
    ["content-length", "content-length-pipelined", "until-close"],
)
async def test_backend_half_close_after_a_complete_response(framing: str) -> None:
    if framing == "until-close":
        response = b"HTTP/1.1 200 OK\r\n\r\nstreamed until the half-close"
        expected = b"streamed until the half-close"
    else:
        response, expected = OK, b"ok"
    async with proxied({"/first": answer(response, then="half-close")}) as (backend, _, port):
        async with client_connection(port) as (reader, writer):
            pipelined = framing.endswith("pipelined")
            writer.write(req("/first") + (req("/second") if pipelined else b""))
            status, fields, body, _ = await read_message(reader)
            assert (status, body) == (200, expected)
            assert header(fields, "connection") is None  # the client keeps its connection
            if not pipelined:
                await poll_until(lambda: 1 in backend.ended, TIMEOUT, "the proxy to close it")
                writer.write(req("/second"))
            await expect_real(reader, "/second")
            assert await pending(reader) == b""
        assert backend.connections == 2
        assert (2, b"GET /second HTTP/1.1") in backend.lines


# -- 8: chunked responses in pieces ---------------------------------------------------------

CHUNKED_HEAD = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n"
CHUNKED = {
    "trailers-and-extensions": [
        CHUNKED_HEAD + b'5;a=1;b="q v"\r\nhello\r\n6;x\r\n world\r\n'
        b"0;end=1\r\nX-Sum: 11\r\nX-Other: y\r\n\r\n"
    ],
    "last-chunk-split-after-cr": [CHUNKED_HEAD + b"5\r\nhello\r\n6\r\n world\r\n0\r", b"\n\r\n"],
    "last-chunk-split-in-final-crlf": [
        CHUNKED_HEAD + b"5\r\nhello\r\n6\r\n world\r\n0\r\n",
        b"\r",
        b"\n",
    ],
    "size-line-split-before-crlf": [CHUNKED_HEAD + b"5\r\nhello\r\n6", b"\r\n world\r\n0\r\n\r\n"],
    "size-line-split-inside-crlf": [
        CHUNKED_HEAD + b"5\r\nhello\r\n6\r",
        b"\n world\r\n0\r\n\r\n",
    ],
    "size-digits-split": [
        CHUNKED_HEAD + b"1",
        b"0\r\n0123456789abcdef\r\n5\r\nhello\r\n0\r\n\r\n",
    ],
    "extension-split": [CHUNKED_HEAD + b"5;na", b'me="v', b'"\r\nhello\r\n0\r\n\r\n'],
    "data-crlf-split": [CHUNKED_HEAD + b"5\r\nhello\r", b"\n6\r\n world\r\n0\r\n\r\n"],
    "trailer-split": [
        CHUNKED_HEAD + b"5\r\nhello\r\n6\r\n world\r\n0\r\nX-S",
        b"um: 1",
        b"1\r\n",
        b"\r\n",
    ],
    "byte-by-byte": [
        CHUNKED_HEAD,
        *(bytes([b]) for b in b"5;e=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Sum: 11\r\n\r\n"),
    ],
}
EXPECTED_BODY = {
    "size-digits-split": b"0123456789abcdefhello",
    "extension-split": b"hello",
}
WITH_TRAILERS = {"trailers-and-extensions", "trailer-split", "byte-by-byte"}


@pytest.mark.parametrize("case", list(CHUNKED))
async def test_chunked_response_in_pieces_is_relayed_whole(case: str) -> None:
    pause = 0.003 if case == "byte-by-byte" else 0.02
    async with proxied({"/chunks": answer(*CHUNKED[case], pause=pause)}) as (backend, _, port):
        async with client_connection(port) as (reader, writer):
            writer.write(req("/chunks"))
            status, fields, body, trailers = await read_message(reader)
            assert status == 200
            assert header(fields, "transfer-encoding") == "chunked"
            assert body == EXPECTED_BODY.get(case, b"hello world")
            if case in WITH_TRAILERS:
                assert ("X-Sum", "11") in trailers
            if case == "trailers-and-extensions":
                assert ("X-Other", "y") in trailers
            # The response ended cleanly: both connections serve on.
            writer.write(req("/next"))
            await expect_real(reader, "/next")
            assert await pending(reader) == b""
        assert backend.connections == 1


# -- file descriptors ------------------------------------------------------------------------


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def _broken_round(port: int) -> None:
    """One of each way to break an exchange, on fresh client connections."""
    async with client_connection(port) as (reader, writer):
        writer.write(req("/cut") + req("/second"))
        await read_head(reader)
        await read_to_close(reader)
        _reset(writer)
    async with client_connection(port) as (reader, writer):
        writer.write(req("/reset"))
        await read_head(reader)
        await read_to_close(reader)
    async with client_connection(port) as (reader, writer):
        writer.write(req("/bad") + req("/split"))
        assert (await read_message(reader))[0] == 502
        assert (await read_message(reader))[0] == 200
        writer.write(req("/upload", "POST", "Content-Length: 100000\r\n") + BODY[:1000])
        assert (await read_message(reader))[0] == 502
        await read_to_close(reader)
    async with client_connection(port) as (_, writer):
        writer.write(req("/first"))  # the client leaves without reading the answer


async def test_no_descriptor_leaks_after_broken_exchanges() -> None:
    async def reset_mid_body(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: bytes
    ) -> bool:
        await reader.readexactly(500)
        _reset(writer)
        return True

    script: dict[str, Behaviour] = {
        "/cut": answer(TRUNCATED["content-length"], then="close"),
        "/reset": answer(b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\npartial", then="reset"),
        "/bad": answer(b"HTTP/1.1 200 OK\r\nX A: b\r\n\r\n"),
        "/split": answer(OK + SPLIT),
        "/upload": reset_mid_body,
        "/first": answer(OK, then="half-close"),
    }
    async with proxied():
        pass  # the loop's first servers open a descriptor the loop keeps for its life
    before = _fds()
    async with proxied(script) as (_, proxy, port):
        running = _fds()
        for _ in range(5):
            await _broken_round(port)

        def settled() -> bool:
            status: dict[str, Any] = proxy.status()
            [backend] = status["pools"]["web"]["backends"]
            # Each idle upstream connection holds two descriptors here: the
            # proxy's end and the backend's.
            return bool(
                status["listeners"][0]["active_connections"] == 0
                and backend["active_connections"] == 0
                and _fds() <= running + 2 * backend["idle_connections"]
            )

        await poll_until(settled, TIMEOUT, "every broken connection to be closed")
    await poll_until(lambda: _fds() <= before, TIMEOUT, f"descriptors back to {before}")
