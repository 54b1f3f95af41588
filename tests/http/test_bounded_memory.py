"""A 1 GiB body through a slow reader keeps the proxy's memory bounded.

The proxy runs as its own process so its resident set size can be read from
/proc; the backend and the client are raw sockets in this process. Each test
stalls the reading side for a while (the proxy must stop reading from the
writer instead of buffering), then drains everything and checks the byte
count.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.support import RawBackend, lbproxy_process, read_request_head

GIB = 1 << 30
BLOCK = b"z" * (1 << 20)
# What the proxy may grow by while relaying: two transport buffers and a
# read chunk per direction come to well under 1 MiB; the rest is allocator
# slack (measured: under 1 MiB). Buffering the body would blow far past this.
RSS_GROWTH_LIMIT = 8 << 20
STALL = 1.5


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


CONFIG = """
listeners:
  - name: t
    bind: "127.0.0.1:{port}"
    limits: {max_body_bytes: 2GiB}
    routes: [{match: {path_prefix: /}, pool: p}]
pools:
  p:
    backends: [{address: "BACKEND"}]
    timeouts: {response: 60s}
access_log: {format: "off"}
"""


def _config(backend: str) -> str:
    return CONFIG.replace("BACKEND", backend)


async def test_slow_client_reading_1gib_response(tmp_path: Path) -> None:
    async def backend(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % GIB)
        for _ in range(GIB // len(BLOCK)):
            writer.write(BLOCK)
            await writer.drain()

    async with RawBackend(backend) as rb, lbproxy_process(_config(rb.address), tmp_path) as lp:
        pid, port = lp.pid, lp.port
        base = _rss(pid)
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
        writer.write(b"GET /big HTTP/1.1\r\nHost: t\r\n\r\n")
        await reader.readuntil(b"\r\n\r\n")
        # The client reads nothing for a while: the backend keeps pushing.
        await asyncio.sleep(STALL)
        stalled = _rss(pid)
        peak = stalled
        got = 0
        while got < GIB:
            chunk = await asyncio.wait_for(reader.read(1 << 20), 30)
            assert chunk, f"proxy closed after {got} bytes"
            got += len(chunk)
            if got % (64 << 20) < len(chunk):
                peak = max(peak, _rss(pid))
        writer.close()
    assert got == GIB
    assert stalled - base < RSS_GROWTH_LIMIT, (base, stalled)
    assert peak - base < RSS_GROWTH_LIMIT, (base, peak)


async def test_slow_backend_reading_1gib_upload(tmp_path: Path) -> None:
    received = 0
    stall_over = asyncio.Event()

    async def backend(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal received
        await read_request_head(reader)
        await stall_over.wait()  # a backend that does not read yet
        while received < GIB:
            chunk = await reader.read(1 << 20)
            if not chunk:
                break
            received += len(chunk)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()

    async with RawBackend(backend) as rb, lbproxy_process(_config(rb.address), tmp_path) as lp:
        pid, port = lp.pid, lp.port
        base = _rss(pid)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /up HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % GIB)
        sent = 0
        loop = asyncio.get_running_loop()
        stall_end = loop.time() + STALL
        peak = 0
        while sent < GIB:
            writer.write(BLOCK)
            sent += len(BLOCK)
            if loop.time() >= stall_end and not stall_over.is_set():
                peak = max(peak, _rss(pid))
                stall_over.set()
            # drain() blocks while the proxy has stopped reading from us.
            try:
                await asyncio.wait_for(writer.drain(), STALL if not stall_over.is_set() else 30)
            except TimeoutError:
                peak = max(peak, _rss(pid))
                stall_over.set()
                await asyncio.wait_for(writer.drain(), 30)
            if sent % (64 << 20) == 0:
                peak = max(peak, _rss(pid))
        status = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
        writer.close()
    assert status.startswith(b"HTTP/1.1 200")
    assert received == GIB
    assert peak - base < RSS_GROWTH_LIMIT, (base, peak)
