"""Shared test furniture: real servers on 127.0.0.1 and raw clients.

* ``running_proxy(yaml_text)`` starts an in-process ``lbproxy.Proxy`` from a
  YAML string (use ``{b0}``, ``{b1}``... placeholders for backend addresses;
  listeners bind port 0 and the real port is read back).
* ``aiohttp_backend(handler)`` / ``named_backends(n)`` run real aiohttp servers.
* ``RawBackend(handler)`` is an asyncio TCP server whose handler gets the raw
  reader/writer, for backends that misbehave on purpose.
* ``raw_request(port, data)`` sends bytes and reads the reply until close or a
  complete response.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

import lbproxy

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
RawHandler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class BackendServer:
    """An aiohttp server on 127.0.0.1 that counts the TCP connections it accepts."""

    def __init__(self, app: web.Application) -> None:
        self.app = app
        self.runner = web.AppRunner(app, access_log=None)
        self.port = 0
        self.connections = 0
        self.requests = 0

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self) -> None:
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        sockets = getattr(server, "sockets", None)
        assert sockets
        self.port = sockets[0].getsockname()[1]
        # Count accepted connections: every aiohttp request handler reports its
        # connection to the web.Server (works on asyncio's loop and on uvloop).
        web_server = self.runner.server
        assert web_server is not None
        made = web_server.connection_made

        def counting_connection_made(*args: Any, **kwargs: Any) -> Any:
            self.connections += 1
            return made(*args, **kwargs)

        web_server.connection_made = counting_connection_made  # type: ignore[method-assign]

    async def stop(self) -> None:
        await self.runner.cleanup()


@contextlib.asynccontextmanager
async def aiohttp_backend(
    handler: Handler | None = None, name: str = "b"
) -> AsyncIterator[BackendServer]:
    async def default(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        srv.requests += 1
        return web.Response(
            text=f"{name} {request.method} {request.path_qs} {len(body)}",
            headers={"X-Backend": name},
        )

    app = web.Application(client_max_size=2**31)

    async def counted(request: web.Request) -> web.StreamResponse:
        if handler is None:
            return await default(request)
        srv.requests += 1
        return await handler(request)

    app.router.add_route("*", "/{tail:.*}", counted)
    srv = BackendServer(app)
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop()


@contextlib.asynccontextmanager
async def named_backends(
    n: int, handler: Handler | None = None
) -> AsyncIterator[list[BackendServer]]:
    async with contextlib.AsyncExitStack() as stack:
        servers = [
            await stack.enter_async_context(aiohttp_backend(handler, name=f"b{i}"))
            for i in range(n)
        ]
        yield servers


class RawBackend:
    """A TCP server whose handler speaks (or breaks) HTTP by hand."""

    def __init__(self, handler: RawHandler) -> None:
        self.handler = handler
        self.server: asyncio.AbstractServer | None = None
        self.port = 0
        self.connections = 0
        self.tasks: set[asyncio.Task[None]] = set()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)
        try:
            await self.handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self.tasks.discard(task)
            writer.close()

    async def __aenter__(self) -> RawBackend:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        for t in list(self.tasks):
            t.cancel()
        await self.server.wait_closed()


async def read_request_head(reader: asyncio.StreamReader) -> bytes:
    return await reader.readuntil(b"\r\n\r\n")


def proxy_yaml(body: str, **addresses: str) -> str:
    text = textwrap.dedent(body)
    for key, value in addresses.items():
        text = text.replace("{" + key + "}", value)
    return text


@contextlib.asynccontextmanager
async def running_proxy(
    yaml_text: str, **addresses: str
) -> AsyncIterator[tuple[lbproxy.Proxy, int]]:
    """Start a Proxy from YAML; yields (proxy, port of the first listener)."""
    config = lbproxy.parse_config(proxy_yaml(yaml_text, **addresses))
    proxy = lbproxy.Proxy(config)
    await proxy.start()
    try:
        port = next(iter(proxy.addresses().values()))[1]
        yield proxy, port
    finally:
        await proxy.stop(timeout=2)


def simple_config(
    *backends: str, extra_pool: str = "", extra_listener: str = "", balance: str = "round_robin"
) -> str:
    lines = "\n".join(f'        - {{address: "{b}"}}' for b in backends)
    return f"""
listeners:
  - name: test
    bind: "127.0.0.1:0"
{extra_listener}
    routes:
      - match: {{path_prefix: /}}
        pool: web
pools:
  web:
    balance: {balance}
{extra_pool}
    backends:
{lines}
access_log: {{format: "off"}}
"""


async def raw_exchange(
    port: int, data: bytes, timeout: float = 5.0, until_close: bool = True
) -> bytes:
    """Send ``data``; return everything the proxy sends until it closes (or timeout)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        chunks: list[bytes] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            left = deadline - loop.time()
            if left <= 0:
                break
            try:
                chunk = await asyncio.wait_for(reader.read(65536), left)
            except (TimeoutError, ConnectionResetError):
                break
            if not chunk:
                break
            chunks.append(chunk)
            if not until_close and b"\r\n\r\n" in b"".join(chunks):
                break
        return b"".join(chunks)
    finally:
        writer.close()


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    """Read one Content-Length or chunked response from a raw stream."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if line:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
    body = b""
    if "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding") == "chunked":
        parts = []
        while True:
            size_line = await reader.readuntil(b"\r\n")
            size = int(size_line.split(b";")[0], 16)
            if size == 0:
                # trailers until blank line
                while (await reader.readuntil(b"\r\n")) != b"\r\n":
                    pass
                break
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)
        body = b"".join(parts)
    return status, headers, body


def parse_status(raw: bytes) -> int:
    return int(raw.split(b" ", 2)[1])


# --- Helpers for the HTTP behaviour, CLI and demo tests -----------------------

MAX_POLLS = 2000  # bound on any polling loop, whatever its deadline


async def poll_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``predicate`` every 10 ms until true; AssertionError naming ``what`` on timeout."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    for _ in range(MAX_POLLS):
        if predicate():
            return
        if loop.time() >= deadline:
            break
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


async def exchange_until_close(port: int, data: bytes, timeout: float = 3.0) -> tuple[bytes, bool]:
    """Send ``data`` and read until the peer closes.

    Returns ``(received, closed)``; ``closed`` is False when the connection was
    still open after ``timeout`` (a reset counts as closed).
    """
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    chunks: list[bytes] = []
    closed = False
    try:
        writer.write(data)
        await writer.drain()
        for _ in range(10_000):
            left = deadline - loop.time()
            if left <= 0:
                break
            try:
                chunk = await asyncio.wait_for(reader.read(65536), left)
            except TimeoutError:
                break
            except ConnectionError:
                closed = True
                break
            if not chunk:
                closed = True
                break
            chunks.append(chunk)
        return b"".join(chunks), closed
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


def split_response(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    """Parse one complete response held in ``raw`` (status, lower-case headers, rest)."""
    head, sep, rest = raw.partition(b"\r\n\r\n")
    assert sep, f"no complete response head in {raw[:300]!r}"
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return status, headers, rest


async def read_eof(reader: asyncio.StreamReader, timeout: float = 3.0) -> bytes:
    """Whatever arrives before the peer closes; AssertionError if it stays open."""
    try:
        return await asyncio.wait_for(reader.read(), timeout)
    except ConnectionError:
        return b""
    except TimeoutError:
        raise AssertionError(f"connection still open after {timeout}s") from None


@contextlib.asynccontextmanager
async def client_connection(
    port: int,
) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        yield reader, writer
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def get(
    port: int, path: str = "/", host: str = "test", timeout: float = 5.0
) -> tuple[int, dict[str, str], bytes]:
    """One GET on a fresh connection, closed after the response."""
    async with client_connection(port) as (reader, writer):
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        return await asyncio.wait_for(read_response(reader), timeout)


async def echo_request(request: web.Request) -> web.StreamResponse:
    """aiohttp handler answering with what it received, as JSON:
    method, path_qs, version and the raw header list (duplicates kept)."""
    body = await request.read()
    return web.json_response(
        {
            "method": request.method,
            "path": request.path_qs,
            "version": f"{request.version.major}.{request.version.minor}",
            "headers": [[n.decode("latin-1"), v.decode("latin-1")] for n, v in request.raw_headers],
            "body_len": len(body),
        }
    )


class ProxyProcess:
    """An ``lbproxy`` started as its own process (see ``lbproxy_process``)."""

    def __init__(self, proc: subprocess.Popen[bytes], port: int, log: Path) -> None:
        self.proc = proc
        self.pid = proc.pid
        self.port = port
        self.log = log

    @property
    def returncode(self) -> int | None:
        return self.proc.returncode

    def stderr(self) -> str:
        return self.log.read_text()


@contextlib.asynccontextmanager
async def lbproxy_process(
    config: str, tmp_path: Path, env: dict[str, str] | None = None
) -> AsyncIterator[ProxyProcess]:
    """Run ``python -m lbproxy`` on ``config`` (``{port}`` is replaced by a free
    port) until it listens; SIGTERM it on exit and wait for it, by PID."""
    port = free_port()
    cfg = tmp_path / "lb.yaml"
    cfg.write_text(config.replace("{port}", str(port)))
    log = tmp_path / "lbproxy.stderr"
    with log.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "lbproxy", "--config", str(cfg)],
            stdout=subprocess.DEVNULL,
            stderr=err,
            env=env,
        )
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 15
        while True:
            try:
                _, w = await asyncio.open_connection("127.0.0.1", port)
                w.close()
                break
            except OSError:
                assert proc.poll() is None, f"lbproxy exited: {log.read_text()}"
                assert loop.time() < deadline, "lbproxy did not start listening"
                await asyncio.sleep(0.05)
        yield ProxyProcess(proc, port, log)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
