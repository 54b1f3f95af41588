"""The floor for HTTPS termination on uvloop: a bare TLS relay, no HTTP.

    python bench/tls_relay.py PORT BACKEND_PORT CERT KEY

Terminates TLS with the context lbproxy's listener builds (server_context,
same ciphers and options, no SNI callback) and relays bytes verbatim to
BACKEND_PORT, one backend connection per client connection. Measured with
wrk the same way as bench/https.py, it shows what uvloop's SSL transport
plus Python's ssl cost before any HTTP work: the rest of lbproxy's CPU per
request over this relay is its own (parsing, routing, pooling).
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lbproxy.tls.context import TlsSettings, server_context


class _Upstream(asyncio.Protocol):
    def __init__(self, client: _Client) -> None:
        self.client = client
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self.client.transport is not None:
            self.client.transport.write(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.client.transport is not None:
            self.client.transport.close()


class _Client(asyncio.Protocol):
    backend_port = 0

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.up = _Upstream(self)
        self.pending: list[bytes] = []
        self.connecting: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        loop = asyncio.get_running_loop()
        self.connecting = loop.create_task(self._connect(loop))

    async def _connect(self, loop: asyncio.AbstractEventLoop) -> None:
        await loop.create_connection(lambda: self.up, "127.0.0.1", self.backend_port)
        if self.pending and self.up.transport is not None:
            self.up.transport.write(b"".join(self.pending))
            self.pending.clear()

    def data_received(self, data: bytes) -> None:
        if self.up.transport is None:
            self.pending.append(data)
        else:
            self.up.transport.write(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.up.transport is not None:
            self.up.transport.close()


async def _main(port: int, cert: str, key: str) -> None:
    ctx = server_context(TlsSettings(((cert, key),)), None)
    ctx.load_cert_chain(cert, key)
    loop = asyncio.get_running_loop()
    await loop.create_server(_Client, "127.0.0.1", port, backlog=4096, ssl=ctx)
    await asyncio.Event().wait()


if __name__ == "__main__":
    _Client.backend_port = int(sys.argv[2])
    uvloop.run(_main(int(sys.argv[1]), sys.argv[3], sys.argv[4]))
