"""The upstream side: one keep-alive connection to a backend, and the idle pool.

An ``UpstreamConnection`` serves one exchange at a time. It parses the
backend's response (``h1.parse_response_lines``, whose field lines the
exchange reads in place, then the body as the exchange says it is framed) and
hands each event to the exchange that owns it; while idle it owns nothing,
and any byte the backend sends then, or after the end of a response, is a
protocol violation that closes it. A backend closing an idle connection
removes it from the pool at once (``connection_lost``), and the exchange
retries on a fresh connection when the close races with a reuse.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from time import monotonic
from typing import TYPE_CHECKING, cast

from lbproxy._fast import load as _load_fast
from lbproxy.http.primitives import Bytes
from lbproxy.http.shared import (
    BODY_CHUNKED,
    BODY_FAILED,
    BODY_UNTIL_CLOSE,
    BODY_UPGRADE,
    MAX_RESPONSE_HEAD,
    MAX_RESPONSE_TRAILERS,
    WRITE_HIGH_WATER,
    not_connected,
)

log = logging.getLogger("lbproxy")

_h1 = _load_fast("h1")
parse_response_lines = _h1.parse_response_lines
field_list = _h1.field_list
ParseError = _h1.ParseError
ChunkedDecoder = _h1.ChunkedDecoder

if TYPE_CHECKING:
    from lbproxy._fast import h1_py
    from lbproxy.http.exchange import Exchange
    from lbproxy.http.pool import BackendState


class UpstreamConnection:
    """An asyncio protocol without asyncio.Protocol as its base (see ClientConnection)."""

    __slots__ = (
        "_corked",
        "_twrite",
        "_wbuf",
        "backend",
        "body_left",
        "chunks",
        "closed",
        "exchange",
        "got_bytes",
        "idle_since",
        "in_head",
        "rbuf",
        "served",
        "trailers",
        "transport",
    )

    def __init__(self, backend: BackendState) -> None:
        self.backend = backend
        self.transport: asyncio.Transport | None = None
        self.exchange: Exchange | None = None
        self.served = 0  # exchanges completed on this connection
        self.idle_since = 0.0
        self.closed = False
        self.trailers: list[tuple[bytes, bytes]] | None = None
        self.in_head = True  # reading a response head (not a body)
        self.rbuf = b""  # the start of a head not complete yet
        # The body being read: Content-Length bytes left (>= 0), or chunked
        # (``chunks`` set), or until the backend closes (BODY_UNTIL_CLOSE).
        self.body_left = 0
        self.chunks: h1_py.ChunkedDecoder | None = None
        self._wbuf: list[bytes] = []
        self._twrite: Callable[[bytes], None] = not_connected  # transport.write, once connected
        self._corked = False
        self.got_bytes = False

    # -- asyncio.Protocol -------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = transport = cast(asyncio.Transport, transport)
        self._twrite = transport.write
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
            client.deadline = monotonic() + client.lr.idle_timeout
            client.write(data)
            return
        client = ex.client
        client.cork()  # replies made while parsing leave in one write
        try:
            self._parse(data)
        except ParseError as err:
            self._invalid(f"invalid response from backend: {err}")
        except Exception:
            # A bug of ours, not the backend's fault.
            log.exception("error handling a response")
            self._invalid("internal error handling the response")
        finally:
            client.uncork()
        if self.exchange is not None:
            self.exchange.upstream_activity()

    def _invalid(self, reason: str) -> None:
        self.rbuf = b""
        cur = self.exchange
        if cur is not None:
            cur.on_upstream_error(reason)
        else:
            self.close()

    def _parse(self, data: bytes) -> None:
        if self.rbuf:
            data = self.rbuf + data
            self.rbuf = b""
        pos = 0
        n = len(data)
        while pos < n:
            ex = self.exchange
            if ex is None:
                # Bytes after the end of the response: the backend sent more
                # than it framed, and the connection cannot be trusted.
                self.close()
                return
            if not self.in_head:
                pos = self._body(ex, data, pos)
                continue
            parsed = parse_response_lines(data, pos)
            if parsed is None:
                if n - pos > MAX_RESPONSE_HEAD:
                    raise ParseError("response head too large")
                self.rbuf = data[pos:] if pos else data
                return
            end, status, reason, minor, fields_at = parsed
            if end - pos > MAX_RESPONSE_HEAD:
                raise ParseError("response head too large")
            pos = end
            if status < 200 and status != 101:
                # 1xx interim response: the final response follows.
                ex.on_interim(status, reason, field_list(data, fields_at, end - 2))
                continue
            framing = ex.on_response_head(status, reason, data, fields_at, end - 2, minor)
            if framing == BODY_FAILED:
                return
            if framing == BODY_UPGRADE:
                ex.on_upgraded(data[pos:])
                return
            if framing == 0:
                self._complete(ex, pos < n)
                continue
            self.in_head = False
            if framing == BODY_CHUNKED:
                self.chunks = ChunkedDecoder(MAX_RESPONSE_TRAILERS)
            else:
                self.body_left = framing

    def _body(self, ex: Exchange, data: bytes, pos: int) -> int:
        chunks = self.chunks
        n = len(data)
        if chunks is not None:
            pos, payload, done = chunks.feed(data, pos)
            if payload:
                ex.on_response_body(payload)
            if done:
                self.chunks = None
                self.trailers = chunks.trailers or None
                self._complete(ex, pos < n)
            return pos
        left = self.body_left
        if left == BODY_UNTIL_CLOSE:
            ex.on_response_body(Bytes.cut(data, pos, n) if pos else data)
            return n
        take = min(left, n - pos)
        self.body_left = left - take
        ex.on_response_body(Bytes.cut(data, pos, pos + take) if pos or take != n else data)
        pos += take
        if self.body_left == 0:
            self._complete(ex, pos < n)
        return pos

    def _complete(self, ex: Exchange, extra: bool) -> None:
        if extra:
            # The backend sent more than the response it framed. Decided before
            # the exchange completes: completing may hand this connection to the
            # client's next request at once, which must not read these bytes as
            # its response. Not pooled, then; the rest of the read is dropped.
            ex.upstream_reusable = False
        ex.on_response_complete()

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
            self._twrite(data)

    def cork(self) -> None:
        self._corked = True

    def uncork(self) -> None:
        self._corked = False
        buf = self._wbuf
        if buf and self.transport is not None:
            self._twrite(buf[0] if len(buf) == 1 else b"".join(buf))
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

    def reset(self, ex: Exchange) -> None:
        """Start serving ``ex``: expect a response head."""
        self.exchange = ex
        self.trailers = None
        self.rbuf = b""
        self.in_head = True
        self.got_bytes = False
        self.chunks = None
        self.body_left = 0


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
        # A list, oldest first: compiled code pops and appends it in C (a
        # deque's methods are looked up by name), and only ``expire`` takes
        # from the old end, a few at a time.
        self.conns: list[UpstreamConnection] = []
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
        try:  # noqa: SIM105 - contextlib.suppress is a Python-level context manager
            self.conns.remove(conn)
        except ValueError:
            pass

    def expire(self, now: float) -> None:
        """Close connections idle too long, then the oldest beyond ``max_idle``."""
        conns = self.conns
        limit = now - self.idle_timeout
        stale = 0
        while stale < len(conns) and conns[stale].idle_since <= limit:
            stale += 1
        stale = max(stale, len(conns) - self.max_idle)
        if stale > 0:
            old = conns[:stale]
            del conns[:stale]
            for conn in old:
                conn.close()

    def close_all(self) -> None:
        """Close every idle connection, and any handed back later (a pool
        replaced by a reload still sees its in-flight requests finish)."""
        self.max_idle = 0
        while self.conns:
            self.conns.pop().close()
