"""A bare uvloop + httptools HTTP/1.1 relay: the floor for a Python proxy.

Not a usable proxy but a reference point: the least work a Python HTTP/1.1
proxy on uvloop can do per request, measured on the same machine as nginx,
lbproxy and the naive aiohttp proxy. Each client connection gets an
``asyncio.Protocol`` with an ``httptools.HttpRequestParser``; each backend
connection an ``httptools.HttpResponseParser``. The parsers only find where
messages begin and end; the bytes themselves are relayed exactly as received,
in both directions, without being rewritten or copied into new messages.

What it does: keeps backend connections alive in an idle pool, binds one to a
client from the start of a request until its response is complete (pipelined
requests go to the same backend connection, in order), closes the client after
a response when the request or the response was not keep-alive, and applies
backpressure both ways (a client that reads slowly pauses its backend
connection, a backend that reads slowly pauses its client).

What it does not do, on purpose: no header rewriting at all (no Host, no
X-Forwarded-For, no hop-by-hop removal: the client's ``Connection: close``
reaches the backend, which then closes its connection too), no timeouts, no
health checks, no retries, no TLS, no logging, one backend. Limits of a bare
relay for the benchmark's GET/POST scenarios: responses to HEAD requests are
not understood (their Content-Length is taken as a body to wait for), and
Upgrade/CONNECT requests close the client connection.

    python bench/peers/bare_relay.py --listen 127.0.0.1:8080 --backend 127.0.0.1:8000
"""

from __future__ import annotations

import argparse
import asyncio
from collections import deque

import httptools
import uvloop

# Idle backend connections kept for reuse; more are closed when released.
POOL_MAX = 1024
# Unparseable input: llhttp errors, and Upgrade/CONNECT, which httptools
# reports with its own exception (not an HttpParserError).
PARSE_ERRORS = (httptools.HttpParserError, httptools.HttpParserUpgrade)


class Relay:
    """The backend address and its pool of idle keep-alive connections."""

    __slots__ = ("host", "loop", "pool", "port")

    def __init__(self, loop: asyncio.AbstractEventLoop, host: str, port: int) -> None:
        self.loop = loop
        self.host = host
        self.port = port
        self.pool: deque[Upstream] = deque()

    def acquire(self, client: Client) -> Upstream:
        """A backend connection bound to ``client``: an idle one, else a new one."""
        pool = self.pool
        while pool:
            up = pool.pop()  # most recently used first: its socket is warm
            up.in_pool = False
            if up.transport.is_closing():  # closed, connection_lost not yet run
                continue
            up.client = client
            if client.write_paused:
                up.transport.pause_reading()
            return up
        up = Upstream(self, client)
        # The client's bytes wait in up.pending until connection_made.
        up.connecting = self.loop.create_task(
            self.loop.create_connection(lambda: up, self.host, self.port)
        )
        up.connecting.add_done_callback(up.connect_done)
        return up

    def release(self, up: Upstream) -> None:
        """``up`` finished its last response: pool it if it stays open, else close."""
        up.client = None
        if up.keep_alive and len(self.pool) < POOL_MAX and not up.transport.is_closing():
            up.in_pool = True
            self.pool.append(up)
        else:
            up.transport.close()

    def forget(self, up: Upstream) -> None:
        """``up`` closed while idle: drop it from the pool."""
        if up.in_pool:
            up.in_pool = False
            self.pool.remove(up)


class Client(asyncio.Protocol):
    """One client connection; the request parser only counts messages."""

    __slots__ = (
        "close_after",
        "in_request",
        "outstanding",
        "parser",
        "relay",
        "transport",
        "upstream",
        "write_paused",
    )

    def __init__(self, relay: Relay) -> None:
        self.relay = relay
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.parser = httptools.HttpRequestParser(self)
        self.upstream: Upstream | None = None  # bound while a request is in flight
        self.outstanding = 0  # requests begun whose responses have not completed
        self.in_request = False  # a request's bytes are still arriving
        self.close_after = False  # a request or response said the connection ends
        self.write_paused = False  # our transport asked us to stop writing

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self.close_after:
            return  # after a Connection: close request: nobody will answer it
        try:
            # May bind an upstream (on_message_begin) before we forward.
            self.parser.feed_data(data)
        except PARSE_ERRORS:
            if not self.close_after:
                self.transport.close()  # malformed: nothing sane to relay
                return
            # llhttp rejects bytes after a Connection: close request; the
            # backend stops reading there too, so forwarding them is harmless.
        up = self.upstream
        if up is not None:
            t = up.transport
            if t is None:
                up.pending.append(data)  # still connecting
            else:
                t.write(data)
            # The response ended before its request did (an early answer):
            # release only now, once the request's last bytes went with it.
            if self.outstanding == 0 and not self.in_request:
                self.finish()

    # httptools callbacks (only these two: every callback defined costs a call)
    def on_message_begin(self) -> None:
        self.outstanding += 1
        self.in_request = True
        if self.upstream is None:
            self.upstream = self.relay.acquire(self)

    def on_message_complete(self) -> None:
        self.in_request = False
        if not self.parser.should_keep_alive():
            self.close_after = True

    def response_done(self, keep_alive: bool) -> None:
        """Called by the bound upstream when a final response is complete."""
        self.outstanding -= 1
        if not keep_alive:
            # The client read the same Connection: close (or HTTP/1.0) response.
            self.close_after = True
        if self.outstanding == 0 and not self.in_request:
            self.finish()

    def finish(self) -> None:
        """Nothing in flight: give the upstream back, close if the exchange said so."""
        up = self.upstream
        assert up is not None
        self.upstream = None
        if up.write_paused:  # its pause_writing paused us; it's no longer ours
            self.transport.resume_reading()
        if self.write_paused:  # our pause_writing paused it; pooled, it must read
            up.transport.resume_reading()
        self.relay.release(up)
        if self.close_after:
            self.transport.close()  # after the response already written (flushed)

    def connection_lost(self, exc: Exception | None) -> None:
        up = self.upstream
        if up is not None:
            # Mid-request or mid-response: the backend connection's state is
            # unknown, so it cannot be reused.
            self.upstream = None
            up.client = None
            up.close()

    # Flow control: a slow client reader pauses the backend connection
    # (1 MiB responses), a slow backend reader pauses the client (uploads).
    def pause_writing(self) -> None:
        self.write_paused = True
        up = self.upstream
        if up is not None and up.transport is not None:
            up.transport.pause_reading()

    def resume_writing(self) -> None:
        self.write_paused = False
        up = self.upstream
        if up is not None and up.transport is not None:
            up.transport.resume_reading()


class Upstream(asyncio.Protocol):
    """One backend connection, bound to at most one client at a time."""

    __slots__ = (
        "client",
        "connecting",
        "in_pool",
        "keep_alive",
        "parser",
        "pending",
        "relay",
        "transport",
        "write_paused",
    )

    def __init__(self, relay: Relay, client: Client) -> None:
        self.relay = relay
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.parser = httptools.HttpResponseParser(self)
        self.client: Client | None = client
        self.pending: list[bytes] = []  # client bytes that came before connection_made
        self.connecting: asyncio.Task[object] | None = None  # kept referenced until done
        self.keep_alive = True
        self.write_paused = False
        self.in_pool = False

    def connect_done(self, task: asyncio.Task[object]) -> None:
        self.connecting = None
        if task.cancelled() or task.exception() is not None:
            client = self.client
            if client is not None:  # backend unreachable: the client gets nothing
                self.client = None
                client.upstream = None
                client.transport.close()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        client = self.client
        if client is None:  # the client left while we were connecting
            transport.close()
            return
        if client.write_paused:
            transport.pause_reading()  # type: ignore[attr-defined]
        self.transport.writelines(self.pending)
        self.pending.clear()

    def data_received(self, data: bytes) -> None:
        client = self.client
        if client is None:  # bytes on an idle connection: not HTTP we understand
            self.transport.close()
            return
        # Written before parsing: the response may complete (and close the
        # client) inside feed_data; close() still flushes what was written.
        client.transport.write(data)
        try:
            self.parser.feed_data(data)
        except PARSE_ERRORS:
            self.transport.close()  # connection_lost closes the client if bound

    def on_message_complete(self) -> None:
        parser = self.parser
        if parser.get_status_code() < 200:
            return  # 1xx interim response (100 Continue): the final one follows
        self.keep_alive = parser.should_keep_alive()
        client = self.client
        if client is None:  # a response nobody asked for
            self.transport.close()
            return
        client.response_done(self.keep_alive)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
        # else connecting: connection_made sees client None and closes.

    def connection_lost(self, exc: Exception | None) -> None:
        client = self.client
        if client is not None:
            # Closed or failed mid-exchange: what was relayed so far is all the
            # client gets (a response delimited by EOF ends here correctly).
            self.client = None
            client.upstream = None
            client.transport.close()
        else:
            self.relay.forget(self)

    def pause_writing(self) -> None:
        self.write_paused = True
        if self.client is not None:
            self.client.transport.pause_reading()

    def resume_writing(self) -> None:
        self.write_paused = False
        if self.client is not None:
            self.client.transport.resume_reading()


def split_hostport(text: str) -> tuple[str, int]:
    host, port = text.rsplit(":", 1)
    return host, int(port)


async def serve(listen: str, backend: str) -> None:
    loop = asyncio.get_running_loop()
    relay = Relay(loop, *split_hostport(backend))
    host, port = split_hostport(listen)
    # backlog 1024: the idle scenario opens connections in batches of 200.
    server = await loop.create_server(lambda: Client(relay), host, port, backlog=1024)
    await server.serve_forever()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--listen", default="127.0.0.1:8080", help="HOST:PORT to listen on")
    p.add_argument("--backend", required=True, help="HOST:PORT of the backend")
    args = p.parse_args()
    uvloop.run(serve(args.listen, args.backend))


if __name__ == "__main__":
    main()
