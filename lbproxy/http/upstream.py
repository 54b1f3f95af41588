"""The upstream side: one keep-alive connection to a backend, and the idle pool.

An ``UpstreamConnection`` serves one exchange at a time. It parses the
backend's response with llhttp (httptools) and hands each event to the
exchange that owns it; while idle it owns nothing, and any byte the backend
sends then is a protocol violation that closes it. A backend closing an idle
connection removes it from the pool at once (``connection_lost``), and the
exchange retries on a fresh connection when the close races with a reuse.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from typing import TYPE_CHECKING, cast

import httptools

log = logging.getLogger("lbproxy")

if TYPE_CHECKING:
    from lbproxy.http.exchange import Exchange
    from lbproxy.pool import BackendState

# Large enough to keep the pipe full, small enough that a slow client holds at
# most this much per direction in the transport's buffer before we pause.
WRITE_HIGH_WATER = 64 * 1024


class UpstreamConnection:
    """An asyncio protocol without asyncio.Protocol as its base (see ClientConnection)."""

    __slots__ = (
        "_corked",
        "_wbuf",
        "backend",
        "closed",
        "exchange",
        "got_bytes",
        "head_done_for_head",
        "headers",
        "idle_since",
        "in_head",
        "parser",
        "served",
        "status_reason",
        "trailers",
        "transport",
    )

    def __init__(self, backend: BackendState) -> None:
        self.backend = backend
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.exchange: Exchange | None = None
        self.served = 0  # exchanges completed on this connection
        self.idle_since = 0.0
        self.closed = False
        self.headers: list[tuple[bytes, bytes]] = []
        self.trailers: list[tuple[bytes, bytes]] | None = None
        self.status_reason = b""
        self.in_head = True
        # A response to HEAD ends with its headers, but llhttp would read a body
        # its Content-Length announces; after such a response every further
        # byte in the same read is a violation (see on_body).
        self.head_done_for_head = False
        self._wbuf: list[bytes] = []
        self._corked = False
        self.got_bytes = False

    # -- asyncio.Protocol -------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = transport = cast(asyncio.Transport, transport)
        transport.set_write_buffer_limits(high=WRITE_HIGH_WATER)

    def data_received(self, data: bytes) -> None:
        ex = self.exchange
        if ex is None:
            # Unsolicited bytes on an idle connection: the backend is broken.
            self.close()
            return
        self.got_bytes = True
        if ex.tunnel:
            client = ex.client
            client.deadline = client.loop.time() + client.lr.config.timeouts.idle
            client.write(data)
            return
        client = ex.client
        client.cork()  # replies made while parsing leave in one write
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as up:
            ex.on_upgraded(data[up.args[0] :])
        except httptools.HttpParserError as err:
            if err.__context__ is not None:
                # One of our callbacks raised: a bug, not the backend's fault.
                log.error("error handling a response", exc_info=err.__context__)
            cur = self.exchange
            if cur is not None:
                cur.on_upstream_error(f"invalid response from backend: {err}")
            else:
                self.close()
        finally:
            self.head_done_for_head = False
            client.uncork()
        if self.exchange is not None:
            self.exchange.upstream_activity()

    def eof_received(self) -> bool | None:
        return None  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        ex = self.exchange
        if ex is not None:
            self.exchange = None
            ex.on_upstream_lost(self, exc)
        else:
            self.backend.forget(self)

    def pause_writing(self) -> None:
        ex = self.exchange
        if ex is not None:
            ex.client.pause_reading_for(1)

    def resume_writing(self) -> None:
        ex = self.exchange
        if ex is not None:
            ex.client.resume_reading_for(1)

    # -- writing ----------------------------------------------------------
    def write(self, data: bytes) -> None:
        if self._corked:
            self._wbuf.append(data)
        elif self.transport is not None:
            self.transport.write(data)

    def cork(self) -> None:
        self._corked = True

    def uncork(self) -> None:
        self._corked = False
        buf = self._wbuf
        if buf and self.transport is not None:
            self.transport.write(buf[0] if len(buf) == 1 else b"".join(buf))
            buf.clear()

    # Closing does not detach the exchange: if one is attached it learns of
    # the close through connection_lost, like any other loss of the backend.
    # An exchange done with this connection detaches itself first.
    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    # -- httptools callbacks ------------------------------------------------
    def on_status(self, reason: bytes) -> None:
        self.status_reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.in_head:
            self.headers.append((name, value))
        else:
            if self.trailers is None:
                self.trailers = []
            self.trailers.append((name, value))

    def on_headers_complete(self) -> None:
        ex = self.exchange
        if ex is None:
            return
        self.in_head = False
        status = self.parser.get_status_code()
        reason = self.status_reason
        self.status_reason = b""
        headers = self.headers
        self.headers = []
        if 100 <= status < 200 and status != 101:
            self.in_head = True  # the final response follows on this parser
            ex.on_interim(status, reason, headers)
            return
        ex.on_response_head(status, reason, headers, self.parser.should_keep_alive())
        if ex.method_head and self.exchange is ex:
            # The response to HEAD is complete now, whatever its headers say.
            self.parser = httptools.HttpResponseParser(self)
            self.head_done_for_head = True
            ex.on_response_complete()

    def on_body(self, body: bytes) -> None:
        ex = self.exchange
        if self.head_done_for_head or ex is None:
            # Bytes after a HEAD response: the backend is sending what we
            # never asked for; the connection cannot be trusted any more.
            self.close()
            return
        ex.on_response_body(body)

    def on_message_complete(self) -> None:
        if self.head_done_for_head:
            return
        ex = self.exchange
        if ex is None:
            return
        if self.in_head or ex.resp_status == 101:
            # End of a 1xx interim response; or of a 101, after which the
            # parser raises HttpParserUpgrade and the connection becomes a tunnel.
            return
        ex.on_response_complete()


class IdlePool:
    """Idle keep-alive connections to one backend, most recently used first.

    ``max_idle`` is enforced by the periodic ``expire`` rather than at every
    release: an event-loop turn often completes a burst of responses at once
    and the next turn brings the clients' next requests, so closing the
    surplus at once would only reopen it a moment later (connect churn costs
    more CPU than a few idle sockets). A hard cap of four times ``max_idle``
    still bounds a burst.
    """

    __slots__ = ("conns", "idle_timeout", "max_idle")

    def __init__(self, max_idle: int, idle_timeout: float) -> None:
        self.conns: deque[UpstreamConnection] = deque()
        self.max_idle = max_idle
        self.idle_timeout = idle_timeout

    def get(self) -> UpstreamConnection | None:
        conns = self.conns
        while conns:
            conn = conns.pop()
            if not conn.closed and conn.transport is not None and not conn.transport.is_closing():
                return conn
        return None

    def put(self, conn: UpstreamConnection, now: float) -> None:
        if len(self.conns) >= 4 * self.max_idle:
            conn.close()
            return
        conn.idle_since = now
        self.conns.append(conn)

    def remove(self, conn: UpstreamConnection) -> None:
        with contextlib.suppress(ValueError):
            self.conns.remove(conn)

    def expire(self, now: float) -> None:
        """Close connections idle too long, then the oldest beyond ``max_idle``."""
        conns = self.conns
        limit = now - self.idle_timeout
        while conns and conns[0].idle_since <= limit:
            conns.popleft().close()
        while len(conns) > self.max_idle:
            conns.popleft().close()

    def close_all(self) -> None:
        """Close every idle connection, and any handed back later (a pool
        replaced by a reload still sees its in-flight requests finish)."""
        self.max_idle = 0
        while self.conns:
            self.conns.pop().close()
