"""The client side: one accepted connection speaking HTTP/1.1 to a client.

Requests are parsed by ``h1.parse_request_lines`` (a whole head per call, see
lbproxy/_fast/h1_py.py), which rejects malformed lines; ``scan_request_lines`` then
judges the framing (CL+TE, duplicate or invalid Content-Length, unsupported
Transfer-Encoding, two Hosts) and rewrites the headers. Bodies are framed here:
Content-Length counted down, chunked undone by ``h1.ChunkedDecoder``. A
rejected request gets the proxy's own 4xx, and the connection closes when its
framing is in doubt.

Reading pauses for any of several reasons at once (a bit each): the upstream
transport is full (1), pipelined requests are waiting their turn (2), body
bytes are buffered while no upstream connection is ready yet (4). Reading
resumes only when every reason has cleared.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, cast

from lbproxy._fast import load as _load_fast
from lbproxy.http.errors import error_response
from lbproxy.http.exchange import Exchange
from lbproxy.http.pool import PoolRuntime
from lbproxy.http.primitives import Bytes, Clock
from lbproxy.http.shared import (
    D_RESPONSE,
    D_SEND,
    FRAMING_TRAILERS,
    HAS_BODY,
    WRITE_HIGH_WATER,
    not_connected,
)
from lbproxy.routing.router import normalise_host
from lbproxy.tls import client_subject
from lbproxy.tracing import (
    T_REQUEST_ID,
    T_TRACEPARENT,
    new_request_id,
    next_traceparent,
    usable_request_id,
    without_lines,
)

if TYPE_CHECKING:
    from lbproxy._fast import h1_py
    from lbproxy._fast.proxyproto_py import ProxyInfo
    from lbproxy.http.listener import ListenerRuntime

_headers = _load_fast("headers")
scan_request = _headers.scan_request
scan_request_lines = _headers.scan_request_lines
FramingError = _headers.FramingError
host_is_valid = _headers.host_is_valid
HAS_CONTENT_LENGTH = _headers.HAS_CONTENT_LENGTH
CHUNKED = _headers.CHUNKED
CONN_CLOSE = _headers.CONN_CLOSE
CONN_KEEP_ALIVE = _headers.CONN_KEEP_ALIVE
UPGRADE = _headers.UPGRADE
_proxyproto = _load_fast("proxyproto")
parse_proxy_header = _proxyproto.parse
ProxyProtocolError = _proxyproto.ProxyProtocolError
_h1 = _load_fast("h1")
parse_request_head = _h1.parse_request_head
parse_request_lines = _h1.parse_request_lines
field_list = _h1.field_list
ParseError = _h1.ParseError
ChunkedDecoder = _h1.ChunkedDecoder

VIA = b"1.1 lbproxy"
log = logging.getLogger("lbproxy")

# Phases of the request currently being read.
P_IDLE = 0  # between requests (keep-alive wait) or waiting on a response
P_HEADERS = 1
P_BODY = 2
P_CLOSING = 3  # lingering close: discard input until the peer closes
P_PROXY = 4  # waiting for the PROXY protocol header (listeners with proxy_protocol)

# Client-side deadline kinds.
T_NONE = 0
T_HEADER = 1
T_BODY = 2
T_IDLE = 3
T_LINGER = 4
T_TUNNEL = 5  # no bytes either way for timeouts.idle: the tunnel closes

LINGER_SECONDS = 2.0


class _Reject(Exception):
    """Raised from a parser callback to stop parsing with an error status."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class ClientConnection:
    """An asyncio protocol (uvloop calls it like one), without asyncio.Protocol
    as its base: compiled, it is an extension type (see lbproxy.http)."""

    __slots__ = (
        "_corked",
        "_eof",
        "_trailers",
        "_twrite",
        "_wbuf",
        "body_left",
        "cert_subject",
        "chunks",
        "client_ip",
        "closed",
        "cur",
        "deadline",
        "deadline_kind",
        "draining",
        "ended",
        "loop",
        "lr",
        "phase",
        "queue",
        "rbuf",
        "read_paused",
        "transport",
        "trusted",
        "tunnel",
        "upgrade_after_body",
        "upgraded",
        "url",
    )

    def __init__(self, lr: ListenerRuntime) -> None:
        self.lr = lr
        self.loop = lr.loop
        self.transport: asyncio.Transport | None = None
        # The exchanges of this connection in request order; the head one is
        # answering. A list, not a deque: it holds one exchange, two while a
        # pipelined request waits (then reading pauses), and compiled, a list
        # is appended to, tested and popped by C calls, a deque by method
        # lookups (about 600 instructions a request).
        self.queue: list[Exchange] = []
        self.cur: Exchange | None = None  # the exchange whose request is being read
        self.url = b""
        self.rbuf = b""  # the start of a head not complete yet
        self.body_left = 0  # Content-Length bytes of the current request still to read
        self.chunks: h1_py.ChunkedDecoder | None = None  # set while reading a chunked body
        # The request read last ends the connection (Connection: close, or
        # HTTP/1.0 without keep-alive): whatever follows it is not read.
        self.ended = False
        self.upgrade_after_body = False  # an upgrade request's body is being read
        self.phase = P_IDLE
        self.deadline = 0.0
        self.deadline_kind = T_NONE
        self.read_paused = 0
        self.draining = False
        self.client_ip = b""
        self.cert_subject = b""  # the verified client certificate's (with subject_header)
        self.trusted = False
        self.tunnel: Exchange | None = None
        self.upgraded: Exchange | None = None  # upgrade request sent, awaiting 101
        self._wbuf: list[bytes] = []
        # transport.write once connected: looked up once, not at every write.
        self._twrite: Callable[[bytes], None] = not_connected
        self._corked = False
        self.closed = False
        self._trailers: list[tuple[bytes, bytes]] | None = None
        self._eof = False  # we sent FIN: nothing more may be written

    # -- asyncio.Protocol ---------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = transport = cast(asyncio.Transport, transport)
        self._twrite = transport.write
        transport.set_write_buffer_limits(WRITE_HIGH_WATER)  # high, positionally: no kwargs call
        peer = transport.get_extra_info("peername")
        if peer:
            self.client_ip = peer[0].encode()
        lr = self.lr
        self.trusted = lr.is_trusted(self.client_ip)
        if not lr.accept(self):
            transport.write(error_response(503, True))
            transport.close()
            self.closed = True
            return
        store = lr.tls_store
        if store is not None:
            store.record_handshake(transport.get_extra_info("ssl_object"))
        if lr.subject_header:
            subject = client_subject(transport.get_extra_info("ssl_object"))
            self.cert_subject = (subject or "").encode("utf-8", "replace")
        if lr.proxy_protocol:
            self.phase = P_PROXY
        # The first request (and a PROXY header) must arrive within the header timeout.
        self.deadline = Clock.now() + lr.header_timeout
        self.deadline_kind = T_HEADER

    def data_received(self, data: bytes) -> None:
        if self.phase == P_CLOSING:
            return
        tunnel = self.tunnel
        if tunnel is not None:
            self.deadline = Clock.now() + self.lr.idle_timeout
            tunnel.send_raw(data)
            return
        upgraded = self.upgraded
        if upgraded is not None:
            # Bytes after an upgrade request, before the 101: held for the tunnel.
            upgraded.send_raw(data)
            return
        if self.phase == P_PROXY:
            data = self._proxy_header(data)
            if not data:
                return
        head = self.queue[0] if self.queue else None
        up = head.upstream if head is not None else None
        if up is not None:
            up.cork()
        try:
            self._parse(data)
        except _Reject as rej:
            self._reject(rej.status, rej.reason)
        except ParseError as err:
            self._reject(err.status, f"malformed request: {err}")
        except Exception:
            # A bug of ours, not the client's fault.
            log.exception("error handling a request")
            self._reject(500, "internal error")
        finally:
            if up is not None:
                up.uncork()
        if len(self.queue) > 1:
            self.pause_reading_for(2)

    def _proxy_header(self, data: bytes) -> bytes:
        """Read the PROXY protocol header that starts the connection; returns
        what follows it (b"" while it is incomplete). A connection without a
        valid one is closed: it is not HTTP's to answer."""
        if self.rbuf:
            data = self.rbuf + data
            self.rbuf = b""
        try:
            used, info = parse_proxy_header(data)
        except ProxyProtocolError as err:
            log.warning("%s: closing a connection: %s", self.lr.name, err)
            self.phase = P_CLOSING
            self._close()
            return b""
        if not used:
            self.rbuf = data
            return b""
        self.proxied(info)
        return data[used:]

    def proxied(self, info: ProxyInfo | None) -> None:
        """Take the client's address from its PROXY header (read here, or
        before TLS by lbproxy._fast.tlsconn); then HTTP starts."""
        if info is not None:  # LOCAL / UNKNOWN: the connection's own address stands
            self.client_ip = info.src_ip
            self.trusted = self.lr.is_trusted(self.client_ip)
        if self.phase == P_PROXY:
            self.phase = P_IDLE

    def _parse(self, data: bytes) -> None:
        """Parse everything ``data`` holds: heads, bodies, pipelined requests."""
        if self.rbuf:
            data = self.rbuf + data
            self.rbuf = b""
        pos = 0
        n = len(data)
        while pos < n:
            if self.phase == P_BODY:
                pos = self._body(data, pos)
                continue
            if self.phase == P_CLOSING or self.ended:
                return
            if self.upgraded is not None:
                self.upgraded.send_raw(data[pos:])
                return
            if self.phase == P_IDLE:
                self.on_message_begin()
            lr = self.lr
            # The (name, value) list when something will look a header up
            # (see on_head); else the field lines are scanned in place.
            listed = lr.want_fields or lr.logging or lr.tracing
            parsed = parse_request_head(data, pos) if listed else parse_request_lines(data, pos)
            if parsed is None:
                # A head that never ends must not grow without bound.
                limit = lr.max_header_bytes
                if n - pos > limit + 1 and data.find(b"\n", pos, pos + limit + 2) == -1:
                    raise _Reject(414, "request line too long")
                if n - pos > limit + 4096:
                    raise _Reject(431, "request header block too large")
                self.rbuf = data[pos:] if pos else data
                return
            if listed:
                end, method, target, minor, fields = parsed
                upgrade = self.on_head(
                    end - pos, method, target, minor, data, 0, 0, len(fields), fields
                )
            else:
                end, method, target, minor, fields_at, count = parsed
                upgrade = self.on_head(
                    end - pos, method, target, minor, data, fields_at, end - 2, count, None
                )
            pos = end
            if self.cur is not None and self.cur.req_done:
                self.on_message_complete()
            if upgrade:
                if self.phase == P_BODY:
                    self.upgrade_after_body = True
                else:
                    self._on_upgrade_request(data[pos:])
                    return

    def _body(self, data: bytes, pos: int) -> int:
        chunks = self.chunks
        if chunks is None:
            take = min(self.body_left, len(data) - pos)
            self.body_left -= take
            self.on_body(Bytes.cut(data, pos, pos + take) if pos or take != len(data) else data)
            pos += take
            if self.body_left == 0:
                return self._end_of_body(data, pos)
            return pos
        pos, payload, done = chunks.feed(data, pos)
        if payload:
            self.on_body(payload)
        if done:
            self.chunks = None
            trailers = chunks.trailers
            for name, _ in trailers:
                if name.lower() in FRAMING_TRAILERS:
                    raise _Reject(400, "framing or routing field in the request trailers")
            self._trailers = trailers or None
            return self._end_of_body(data, pos)
        return pos

    def _end_of_body(self, data: bytes, pos: int) -> int:
        self.on_message_complete()
        if self.upgrade_after_body:
            # What follows an upgrade request's body belongs to the new protocol.
            self.upgrade_after_body = False
            self._on_upgrade_request(data[pos:])
            return len(data)
        return pos

    def eof_received(self) -> bool | None:
        # A client half-close after a complete request still gets its
        # response (HTTP/1.0 style); otherwise there is nothing to wait for
        # (while lingering, the client's FIN is what the linger waited for).
        if self.queue and self.phase != P_HEADERS and self.phase != P_BODY and not self._eof:
            if self.queue[0].queued:
                # Still waiting for a pool slot: a client gone quiet before its
                # request even started is taken to have left (HAProxy's
                # abortonclose), so it frees its place in the queue.
                return None
            self.draining = True  # nothing more will come: close after the answers
            return True
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.lr.forget(self)
        for ex in self.queue:
            ex.on_client_lost()
            self.lr.log_access(self, ex)
        self.queue.clear()
        self.cur = None
        if self.tunnel is not None:
            self.tunnel.on_client_lost()
            self.tunnel = None

    def pause_writing(self) -> None:
        head = self.queue[0] if self.queue else self.tunnel
        if head is not None:
            up = head.upstream
            if up is not None and up.transport is not None and not head.upstream_read_paused:
                head.upstream_read_paused = True
                up.transport.pause_reading()
            if head.deadline_kind == D_RESPONSE:
                # The backend is not late, the client is slow: give the client
                # the idle timeout to take what is already buffered for it.
                head.deadline = Clock.now() + self.lr.idle_timeout
                head.deadline_kind = D_SEND

    def resume_writing(self) -> None:
        head = self.queue[0] if self.queue else self.tunnel
        if head is not None and head.upstream_read_paused:
            head.upstream_read_paused = False
            up = head.upstream
            if up is not None and up.transport is not None and not up.closed:
                up.transport.resume_reading()
            if head.deadline_kind == D_SEND:
                head._arm_response()

    # -- reading control ---------------------------------------------------------
    def pause_reading_for(self, bit: int) -> None:
        if not self.read_paused and self.transport is not None and not self.closed:
            self.transport.pause_reading()
        self.read_paused |= bit

    def resume_reading_for(self, bit: int) -> None:
        if self.read_paused & bit:
            self.read_paused &= ~bit
            if not self.read_paused and self.transport is not None and not self.closed:
                self.transport.resume_reading()

    # -- writing --------------------------------------------------------------
    def write(self, data: bytes) -> None:
        if self._corked:
            self._wbuf.append(data)
        elif self.transport is not None and not self.closed and not self._eof:
            self._twrite(data)

    def cork(self) -> None:
        self._corked = True

    def uncork(self) -> None:
        self._corked = False
        buf = self._wbuf
        if buf:
            if self.transport is not None and not self.closed and not self._eof:
                self._twrite(buf[0] if len(buf) == 1 else b"".join(buf))
            buf.clear()

    # -- parsing events ---------------------------------------------------------
    def on_message_begin(self) -> None:
        self.phase = P_HEADERS
        self.url = b""
        if self.deadline_kind != T_HEADER:
            self.deadline = Clock.now() + self.lr.header_timeout
            self.deadline_kind = T_HEADER

    def on_head(
        self,
        size: int,
        method: bytes,
        url: bytes,
        minor: int,
        data: bytes,
        start: int,
        stop: int,
        count: int,
        headers: list[tuple[bytes, bytes]] | None,
    ) -> bool:
        """A request head of ``size`` bytes was read, with ``count`` fields:
        make its exchange. True when the request asks to leave HTTP (an
        upgrade, or CONNECT). The fields come as their (name, value) list
        ``headers`` when something will look a header up (``lr.want_fields``,
        the access log, tracing), else as None and their lines at
        ``data[start:stop]``, which are scanned in place and listed only if a
        pool or route target turns out to need them."""
        lr = self.lr
        self.url = url
        self._trailers = None
        if len(method) + len(url) + 10 > lr.max_header_bytes:
            # The request line (method SP target SP HTTP/1.x), as measured
            # below for one that has not ended yet.
            raise _Reject(414, "request line too long")
        if count > lr.max_headers:
            raise _Reject(431, f"more than {lr.max_headers} request headers")
        router = lr.router
        if size > lr.max_header_bytes:
            # The head may be over the limit: measure it as documented, the
            # target and each field counted as its name and value + 4 bytes.
            fields = headers if headers is not None else field_list(data, start, stop)
            size = len(url) + sum([len(n) + len(v) + 4 for n, v in fields])
            if size > lr.max_header_bytes:
                raise _Reject(431, "request headers too large")
        try:
            if headers is None:
                block, host, clen, flags, _upgrade = scan_request_lines(
                    data, start, stop, self.client_ip, self.trusted, lr.proto, VIA
                )
            else:
                block, host, clen, flags, _upgrade = scan_request(
                    headers, self.client_ip, self.trusted, lr.proto, VIA
                )
        except FramingError as err:
            raise _Reject(400, str(err)) from None
        http11 = minor == 1
        if http11:
            keep_alive = not flags & CONN_CLOSE
            if not host:
                # Before the target is looked at: an absolute-form target does
                # not stand in for the Host an HTTP/1.1 request must carry.
                raise _Reject(400, "missing Host header")
        else:
            # Transfer-Encoding in an HTTP/1.0 request: its framing is suspect
            # by definition, so the connection ends with it (RFC 9112 6.1).
            keep_alive = (
                bool(flags & CONN_KEEP_ALIVE) and not flags & CONN_CLOSE and not flags & CHUNKED
            )
        if not keep_alive:
            self.ended = True
        keep_alive = keep_alive and not self.draining
        self.phase = P_BODY
        if clen > 0:
            self.body_left = clen
        elif flags & CHUNKED:
            self.chunks = ChunkedDecoder(lr.max_header_bytes)
        if clen > 0 or flags & CHUNKED:
            self.deadline = Clock.now() + lr.body_timeout
            self.deadline_kind = T_BODY
        else:
            self.deadline_kind = T_NONE
        if clen > lr.max_body_bytes:
            raise _Reject(413, f"Content-Length {clen} over the limit")
        status = 0
        reason = ""
        route = None
        pool = None
        chooser = None
        if method == b"CONNECT":
            # Whatever its target looks like: never forwarded, never a tunnel.
            status, reason = 501, "CONNECT is not supported"
        elif not url.startswith(b"/"):
            if url == b"*" and method == b"OPTIONS":
                pass
            else:
                authority, path = _split_absolute(url)
                if authority is None or not host_is_valid(authority):
                    raise _Reject(400, "invalid request target")
                if not router.serves_host(normalise_host(authority)):
                    raise _Reject(400, "absolute-form target names a host not served here")
                # The target's authority wins over Host (RFC 9112 3.2.2), so the
                # route and the backend see the same host.
                block = _with_host(block, authority)
                host = authority
                url = path
        location = b""
        if lr.redirect is not None and not status:
            # A plain listener that only sends clients to HTTPS.
            if not host:
                raise _Reject(400, "missing Host header")
            status, reason = 308, "redirected to https"
            location = _redirect_location(lr.redirect, host, url)
        if not status:
            found = router.match(host, url, method, headers)
            if found is None:
                status, reason = 404, "no route matches"
            else:
                route, pool = found
                if type(pool) is not PoolRuntime:
                    # A geo, shard, read/write or split route: its chooser
                    # names the pool once the exchange exists (routing/targets.py).
                    chooser = pool
                    pool = None
        if clen > 0:
            flags |= HAS_BODY
        if lr.subject_header:
            # Only the verified certificate names the client: a header of that
            # name sent by the client itself never reaches the backend.
            block = without_lines(block, (lr.subject_header.lower(),))
            if self.cert_subject:
                block += lr.subject_header + b": " + self.cert_subject + b"\r\n"
        ex = Exchange.create(
            self, method, url, host, keep_alive, http11, block, flags, route, pool, status, reason
        )
        if location:
            ex.local_headers = b"Location: " + location + b"\r\n"
        if chooser is not None:
            pick_lines = chooser.pick_lines
            if headers is None and pick_lines is not None:
                pool = pick_lines(
                    ex, data, start, stop, self.client_ip, self.trusted, lr.trusted_table
                )
            else:
                if headers is None:
                    headers = field_list(data, start, stop)
                    lr.want_fields = True
                pool = chooser.pick(ex, headers, self.client_ip, self.trusted, lr.trusted_table)
            ex.pool = pool
        # ``chosen`` is typed when compiled (``pool`` may have held a chooser):
        # C field reads below, not attribute lookups.
        chosen = ex.pool
        if chosen is not None and chosen.sticky is not None:
            pins = chosen.sticky.pins
            if headers is None:
                ex.pinned = pins.lookup_lines(data, start, stop)
            else:
                ex.pinned = pins.lookup(headers)
        if chosen is not None and (
            chosen.key_of is not None or (not ex.idempotent and chosen.retries.attempts > 1)
        ):
            if headers is None:
                headers = field_list(data, start, stop)
                lr.want_fields = True
            if chosen.key_of is not None:
                ex.hash_key = chosen.key_of(headers, url, self.client_ip)
            if not ex.idempotent and chosen.retries.attempts > 1:
                # A client may vouch for a POST (draft-ietf-httpapi-idempotency-key).
                for name, _ in headers:
                    if len(name) == 15 and name.lower() == b"idempotency-key":
                        ex.idempotent = True
        if lr.logging or lr.tracing:
            # Only an access log or tracing wants these; the hot path skips the scan.
            if headers is None:  # read above whenever these are on
                headers = field_list(data, start, stop)
            self._trace(ex, headers, lr)
        self.cur = ex
        self.queue.append(ex)
        if len(self.queue) == 1:
            ex.begin()
        return method == b"CONNECT" or bool(flags & UPGRADE)

    def _trace(self, ex: Exchange, headers: list[tuple[bytes, bytes]], lr: ListenerRuntime) -> None:
        """Read what the access log records; give the request its id and trace
        context when ``tracing`` is configured (see lbproxy/tracing.py)."""
        rid_lower = lr.rid_lower
        rid: bytes | None = None
        rid_seen = False
        parent: bytes | None = None
        for name, value in headers:
            lname = name.lower()
            if lname == b"user-agent":
                ex.user_agent = value
            elif lname == b"referer":
                ex.referer = value
            elif lname == rid_lower:
                if rid is None and not rid_seen:
                    rid = value
                rid_seen = True
            elif lname == b"traceparent":
                # Two are invalid (W3C trace context 3.2): start a new trace.
                parent = value if parent is None else b""
        tracing = lr.tracing
        if not tracing:
            ex.request_id = rid or b""
            ex.traceparent = parent or b""
            return
        block = ex.block
        drop: tuple[bytes, ...] = ()
        if tracing & T_REQUEST_ID:
            if rid is None or not usable_request_id(rid):
                if rid_seen:
                    drop = (rid_lower,)
                rid = new_request_id()
                add = lr.rid_name + b": " + rid + b"\r\n"
            else:
                add = b""
            ex.request_id = rid
        else:
            ex.request_id = rid or b""
            add = b""
        if tracing & T_TRACEPARENT:
            ex.traceparent = next_traceparent(parent or None)
            if parent is not None:
                drop += (b"traceparent",)
            add += b"traceparent: " + ex.traceparent + b"\r\n"
        else:
            ex.traceparent = parent or b""
        if drop:
            block = without_lines(block, drop)
        ex.block = block + add

    def on_body(self, body: bytes) -> None:
        cur = self.cur
        if cur is None:
            return
        if cur.body_in + len(body) > self.lr.max_body_bytes:
            raise _Reject(413, "request body over the limit")
        cur.send_body(body)
        if self.deadline_kind == T_BODY:
            self.deadline = Clock.now() + self.lr.body_timeout

    def on_message_complete(self) -> None:
        cur = self.cur
        self.cur = None
        if self.phase != P_CLOSING:  # an answer made meanwhile may have closed
            self.phase = P_IDLE
        if self.deadline_kind == T_BODY or self.deadline_kind == T_HEADER:
            self.deadline_kind = T_NONE
        if cur is not None:
            if not cur.req_done:
                trailers = self._trailers
                self._trailers = None
                cur.request_complete(trailers)
            if cur.done and not self.queue and not self.closed:
                self._arm_idle()

    # -- errors and ends ---------------------------------------------------------
    def _reject(self, status: int, reason: str) -> None:
        """A request the proxy refuses: answer in turn, then close."""
        self.phase = P_CLOSING
        self.deadline_kind = T_NONE
        cur = self.cur
        self.cur = None
        if cur is not None and not cur.done:
            if cur.resp_started:
                cur.reason = reason
                cur.on_client_lost()
                self.queue.remove(cur)
                self.lr.log_access(self, cur)
                self._linger_close()
                return
            if cur.local_status:
                cur.local_status = status
                cur.reason = reason
                cur.keep_alive = False
                if cur is self.queue[0]:
                    return  # already answered or answering
            else:
                cur.keep_alive = False
                if cur is self.queue[0]:
                    cur.fail(status, reason)
                    return
                cur.local_status = status
                cur.reason = reason
            return
        if cur is not None:
            # Its response is already complete (an early answer while its body
            # was still arriving): a second response would be one too many.
            cur.reason = reason
            if not self.queue:
                self._linger_close()
            return
        ex = Exchange(
            self, b"-", self.url or b"-", b"", False, True, b"", 0, None, None, status, reason
        )
        self.queue.append(ex)
        if len(self.queue) == 1:
            ex.begin()

    def exchange_done(self, ex: Exchange, close: bool) -> None:
        queue = self.queue
        if queue and queue[0] is ex:
            del queue[0]  # pop(0) is a method call even compiled; del is C
        lr = self.lr
        if (lr.logging or lr.metrics) and not ex.tunnel:  # a tunnel was logged when it opened
            lr.log_access(self, ex)
        if self.closed:
            return
        if close or (self.phase == P_CLOSING and not queue):
            if self.phase == P_IDLE and not queue:
                # The request was read to its end and nothing followed it: a
                # plain close (FIN after the response) loses nothing.
                self._close()
            else:
                self.resume_reading_for(1)
                self._linger_close()
            return
        if queue:
            nxt = queue[0]
            if len(queue) <= 1:
                self.resume_reading_for(2)
            nxt.begin()
            return
        if self.read_paused:
            self.resume_reading_for(3)
        if self.phase == P_IDLE:
            if self.draining:
                self._close()
            else:
                self.deadline = Clock.now() + lr.idle_timeout
                self.deadline_kind = T_IDLE

    def _arm_idle(self) -> None:
        self.deadline = Clock.now() + self.lr.idle_timeout
        self.deadline_kind = T_IDLE

    def _on_upgrade_request(self, extra: bytes) -> None:
        # The upgrade request has been read to its end; it is the newest
        # exchange in the queue (unless already answered and gone).
        ex = self.queue[-1] if self.queue else None
        self.cur = None
        self.phase = P_IDLE
        self.deadline_kind = T_NONE
        if ex is None or ex.done or ex.local_status or not ex.upgrade:
            # Refused (e.g. CONNECT) or an upgrade we don't forward: whatever
            # the client sends next is not HTTP we can parse, so the
            # connection closes after the answer.
            if ex is not None:
                ex.keep_alive = False
            self.phase = P_CLOSING
            if not self.queue:
                self._linger_close()
            return
        self.upgraded = ex
        if extra:
            ex.send_raw(extra)

    def start_tunnel(self, ex: Exchange) -> None:
        self.upgraded = None
        self.tunnel = ex
        self.resume_reading_for(4)  # bytes held before the 101 are flushed
        if self.queue and self.queue[0] is ex:
            del self.queue[0]
        self.lr.log_access(self, ex)
        self.deadline = Clock.now() + self.lr.idle_timeout
        self.deadline_kind = T_TUNNEL

    def _linger_close(self) -> None:
        """Close without losing the response: stop sending, drain what the
        client still sends for a moment, then close (a plain close with
        unread input would reset the connection and could destroy the
        response in flight)."""
        transport = self.transport
        if transport is None or self.closed or self._eof:
            return
        self.uncork()  # the response may still sit in the cork buffer
        self._eof = True
        self.phase = P_CLOSING
        self.read_paused = 0
        if transport.can_write_eof():
            transport.write_eof()
            # try/except, not contextlib.suppress: that is a Python-level
            # context manager, ~2k instructions on every lingering close.
            try:  # noqa: SIM105 (see above)
                transport.resume_reading()
            except RuntimeError:
                pass
            self.deadline = Clock.now() + LINGER_SECONDS
            self.deadline_kind = T_LINGER
        else:
            transport.close()

    def _close(self) -> None:
        """Close after sending what is written (the cork buffer included)."""
        if self.transport is not None and not self.closed and not self._eof:
            self.uncork()
            self._eof = True
            self.transport.close()

    def start_drain(self, close_idle: bool = True) -> None:
        """Graceful shutdown: finish what is in flight, then close. An idle
        connection closes now with ``close_idle``, else at its idle timeout
        (its next request, if one comes first, is answered with
        ``Connection: close``)."""
        self.draining = True
        if close_idle and not self.queue and self.phase == P_IDLE and self.tunnel is None:
            self._close()

    def abort(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.abort()

    def check_deadline(self, now: float) -> bool:
        """Act on an expired deadline (this connection's or its head
        exchange's); True when one expired."""
        acted = False
        if self.queue:
            head = self.queue[0]
            if head.deadline_kind and now >= head.deadline:
                head.check_deadline(now)
                acted = True
        kind = self.deadline_kind
        if kind == T_NONE or now < self.deadline or self.closed:
            return acted
        if kind == T_BODY and self.read_paused:
            # Not the client's fault: we stopped reading (backpressure).
            self.deadline = now + self.lr.body_timeout
            return acted
        self.deadline_kind = T_NONE
        if kind == T_IDLE:
            self._close()
        elif kind == T_TUNNEL:
            if self.tunnel is not None:
                self.tunnel.reason = "tunnel idle timeout"
            self._close()
        elif kind == T_LINGER:
            self.abort()
        elif kind == T_HEADER:
            if self.phase == P_HEADERS:
                self._reject(408, "timed out reading request headers")
            else:
                self._close()  # connected but never sent a byte
        elif kind == T_BODY:
            self._reject(408, "timed out reading request body")
        return True


def _with_host(block: bytes, authority: bytes) -> bytes:
    """The header block with its Host line replaced by one naming ``authority``."""
    return b"Host: " + authority + b"\r\n" + without_lines(block, (b"host",))


def _redirect_location(template: str, host: bytes, url: bytes) -> bytes:
    """``redirect_http_to`` filled in: ``{host}`` is the request's host
    without its port, ``{path}`` its target (appended when not placed)."""
    name = host[: host.find(b"]") + 1] if host[:1] == b"[" else host.partition(b":")[0]
    text = template.replace("{host}", name.decode("latin-1"))
    target = url.decode("latin-1")
    if "{path}" in text:
        return text.replace("{path}", target).encode("latin-1")
    return (text.rstrip("/") + target).encode("latin-1")


def _split_absolute(url: bytes) -> tuple[bytes | None, bytes]:
    """b"http://h:1/p?q" -> (b"h:1", b"/p?q"); (None, b"") when not absolute-form."""
    lower = url[:8].lower()
    if lower.startswith(b"http://"):
        rest = url[7:]
    elif lower.startswith(b"https://"):
        rest = url[8:]
    else:
        return None, b""
    slash = rest.find(b"/")
    query = rest.find(b"?")
    cut = min(x for x in (slash, query, len(rest)) if x >= 0)
    authority = rest[:cut]
    path = rest[cut:]
    if not authority or b"@" in authority:
        return None, b""
    if not path.startswith(b"/"):
        path = b"/" + path
    return authority, path
