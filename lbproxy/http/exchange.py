"""One request/response exchange: the glue between a client and a backend.

Theory of operation. A client connection parses requests in order and makes
an ``Exchange`` for each; exchanges queue on the connection and only the one
at the head talks to a backend, so responses leave in request order without
buffering any response. The head exchange picks a backend, takes an idle
keep-alive connection or opens one, writes the request head and whatever body
arrived meanwhile, and from then on streams: request body bytes go straight to
the upstream transport, response events from the upstream parser go straight
to the client transport. Backpressure is the transports' own: when the
receiving side pauses writing, the sending side pauses reading.

Nothing here reads the clock per byte: deadlines are plain floats that the
proxy's ticker compares against ``time.monotonic()``, the clock that
``Clock.now()`` reads.

An exchange ends exactly once, in ``_finish``: it hands the upstream
connection back to the idle pool only when the response ended cleanly, the
request was fully sent and both ends agreed to keep the connection alive.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, cast

from lbproxy._fast import load as _load_fast
from lbproxy.http.errors import error_response
from lbproxy.http.primitives import Clock
from lbproxy.http.shared import (
    BODY_CHUNKED,
    BODY_FAILED,
    BODY_UNTIL_CLOSE,
    BODY_UPGRADE,
    D_CONNECT,
    D_QUEUE,
    D_RESPONSE,
    D_SEND,
    HAS_BODY,
    NO_DEADLINE,
    NOT_IN_TRAILERS,
)
from lbproxy.http.upstream import UpstreamConnection
from lbproxy.tracing import T_REQUEST_ID

if TYPE_CHECKING:
    from lbproxy.config.model import Route
    from lbproxy.http.client import ClientConnection
    from lbproxy.http.pool import BackendState, PoolRuntime

_headers = _load_fast("headers")
scan_response_lines = _headers.scan_response_lines
field_list = _load_fast("h1").field_list
FramingError = _headers.FramingError
CHUNKED = _headers.CHUNKED
CONN_CLOSE = _headers.CONN_CLOSE
CONN_KEEP_ALIVE = _headers.CONN_KEEP_ALIVE
FRAMING_CONFLICT = _headers.FRAMING_CONFLICT
UPGRADE = _headers.UPGRADE
EXPECT_CONTINUE = _headers.EXPECT_CONTINUE

# Request bytes kept to resend on a fresh connection when a reused keep-alive
# connection turns out to have been closed by the backend. Larger bodies are
# streamed without a copy and are not resent.
REPLAY_LIMIT = 64 * 1024
# Body bytes buffered while no upstream connection is attached yet, before the
# client is paused.
PENDING_LIMIT = 256 * 1024

# Answers after which the connection's framing is in doubt: always close.
CLOSING_STATUSES = frozenset((400, 408, 413, 414, 431, 501, 505))

IDEMPOTENT = frozenset((b"GET", b"HEAD", b"OPTIONS", b"TRACE", b"PUT", b"DELETE"))


# What a failed try counts as, for retries.on (docs/config.md, Retries).
_CONNECT_FAILED = ("connect_failure",)
_CONNECT_TIMED_OUT = ("connect_failure", "timeout")
_RESET = ("reset",)
_INVALID = ("502",)
_TIMED_OUT = ("timeout", "504")

# Status lines already built, by status code: (reason, line) for the first
# reason phrase seen with that code, which is the one a backend keeps sending.
# A list indexed by the code (always 100-999) is read without hashing a key.
_STATUS_LINES: list[tuple[bytes, bytes] | None] = [None] * 1000
# The field list of a response nothing looks a header up in: never changed.
_NO_FIELDS: list[tuple[bytes, bytes]] = []

_ConnectTask = asyncio.Task[tuple[asyncio.Transport, asyncio.Protocol]]


def _protocol(backend: BackendState) -> asyncio.Protocol:
    # UpstreamConnection has no asyncio.Protocol base (it is an extension type
    # when compiled) but is one to the event loop.
    return cast(asyncio.Protocol, UpstreamConnection(backend))


def _status_line(status: int, reason: bytes) -> bytes:
    cached = _STATUS_LINES[status]
    if cached is not None and (cached[0] is reason or cached[0] == reason):
        return cached[1]
    line = b"HTTP/1.1 %d %s\r\n" % (status, reason)
    if cached is None:
        _STATUS_LINES[status] = (reason, line)
    return line


def _header_lines(headers: list[tuple[bytes, bytes]] | None) -> bytes:
    if not headers:
        return b""
    return b"".join(n + b": " + v + b"\r\n" for n, v in headers)


def _trailer_lines(trailers: list[tuple[bytes, bytes]] | None) -> bytes:
    if not trailers:
        return b""
    return b"".join(
        [n + b": " + v + b"\r\n" for n, v in trailers if n.lower() not in NOT_IN_TRAILERS]
    )


class Exchange:
    __slots__ = (
        "attempts",
        "backend",
        "block",
        "body_in",
        "chunked_in",
        "chunked_out",
        "client",
        "client_fault",
        "close_after",
        "connect_s",
        "connect_task",
        "connecting",
        "continued",
        "deadline",
        "deadline_kind",
        "done",
        "expect_continue",
        "hash_key",
        "head_at",
        "held",
        "held_size",
        "host",
        "http11",
        "idempotent",
        "keep_alive",
        "local_headers",
        "local_status",
        "method",
        "method_head",
        "pending",
        "pending_size",
        "picked_at",
        "pinned",
        "pool",
        "queued",
        "reason",
        "referer",
        "region",
        "replay",
        "replay_size",
        "replayable",
        "req_done",
        "req_empty",
        "request_id",
        "resp_bytes",
        "resp_extra",
        "resp_framed",
        "resp_started",
        "resp_status",
        "retried",
        "retry_counted",
        "route",
        "sent_at",
        "served_region",
        "started_at",
        "target",
        "traceparent",
        "tried",
        "tunnel",
        "upgrade",
        "upstream",
        "upstream_read_paused",
        "upstream_reusable",
        "user_agent",
    )

    def __init__(
        self,
        client: ClientConnection,
        method: bytes,
        target: bytes,
        host: bytes,
        keep_alive: bool,
        http11: bool,
        block: bytes,
        flags: int,
        route: Route | None,
        pool: PoolRuntime | None,
        local_status: int = 0,
        reason: str = "",
    ) -> None:
        self._init(
            client,
            method,
            target,
            host,
            keep_alive,
            http11,
            block,
            flags,
            route,
            pool,
            local_status,
            reason,
        )

    @staticmethod
    def create(
        client: ClientConnection,
        method: bytes,
        target: bytes,
        host: bytes,
        keep_alive: bool,
        http11: bool,
        block: bytes,
        flags: int,
        route: Route | None,
        pool: PoolRuntime | None,
        local_status: int,
        reason: str,
    ) -> Exchange:
        """A new exchange, as ``Exchange(...)`` makes it. The client's way:
        compiled, a C call with C arguments, where the constructor parses a
        Python call's twelve arguments."""
        ex = Exchange.__new__(Exchange)
        ex._init(
            client,
            method,
            target,
            host,
            keep_alive,
            http11,
            block,
            flags,
            route,
            pool,
            local_status,
            reason,
        )
        return ex

    def _init(
        self,
        client: ClientConnection,
        method: bytes,
        target: bytes,
        host: bytes,
        keep_alive: bool,
        http11: bool,
        block: bytes,
        flags: int,
        route: Route | None,
        pool: PoolRuntime | None,
        local_status: int,
        reason: str,
    ) -> None:
        self.client = client
        self.method = method
        self.method_head = method == b"HEAD"
        self.target = target
        self.host = host
        self.block = block
        self.keep_alive = keep_alive
        self.http11 = http11
        self.chunked_in = bool(flags & CHUNKED)
        self.expect_continue = bool(flags & EXPECT_CONTINUE)
        self.upgrade = bool(flags & UPGRADE)
        self.route = route
        self.pool = pool
        self.local_status = local_status
        self.local_headers = b""  # more header lines for the proxy's own answer (Location)
        # The local answer's reason is the client's to read (a shard key it
        # must send), not the proxy's internals: it goes in the body too.
        self.client_fault = False
        self.reason = reason
        # A request without a body is complete with its headers; one with a
        # body when the client side has read all of it.
        self.req_done = not (flags & (CHUNKED | HAS_BODY))
        self.req_empty = self.req_done  # no body at all
        self.continued = False  # the backend sent 100 Continue
        self.body_in = 0
        # Lists made only when needed (most requests need none of them).
        self.pending: list[bytes] | None = None  # body bytes before a connection is ready
        self.pending_size = 0
        self.held: list[bytes] | None = None  # client bytes after an upgrade request, pre-101
        self.held_size = 0
        self.replay: list[bytes] | None = None  # the body sent so far, to resend it
        self.replay_size = 0
        self.replayable = True  # False once the body outgrew REPLAY_LIMIT
        self.backend: BackendState | None = None
        self.upstream: UpstreamConnection | None = None
        self.tried: set[BackendState] | None = None
        self.connecting = False
        self.deadline = 0.0
        self.deadline_kind = NO_DEADLINE
        self.resp_status = 0
        self.resp_started = False
        self.resp_framed = True  # False: the response body ends when the backend closes
        self.chunked_out = False
        self.close_after = False
        self.upstream_reusable = False
        self.resp_bytes = 0
        self.tunnel = False
        self.done = False
        self.retried = False
        self.started_at = Clock.now()
        self.user_agent = b""  # filled only when an access log is written
        self.referer = b""
        # Filled by the client when tracing or an access log wants them.
        self.request_id = b""
        self.traceparent = b""
        self.upstream_read_paused = False
        self.connect_task: _ConnectTask | None = None
        self.hash_key: bytes | None = None  # set by the client for hashing pools
        self.picked_at = 0.0  # when the backend was picked, for latency-aware pools
        self.pinned: BackendState | None = None  # a sticky pool's backend from the cookie
        self.resp_extra = b""  # header lines a route target adds to the response (cookies)
        # Geo routes: the client's region, and the one that served it when
        # another did (a failover; empty: the client's own).
        self.region = b""
        self.served_region = b""
        self.attempts = 0  # tries on backends so far (retries.attempts bounds it)
        # For the access log: the last try's connect time (0: a reused
        # connection), when its request head was written, when the answer's came.
        self.connect_s = 0.0
        self.sent_at = 0.0
        self.head_at = 0.0
        self.retry_counted = False  # holds a slot of the pool's retry budget
        self.queued = False  # waiting in the pool's queue for a max_connections slot
        # Safe to send twice (RFC 9110 9.2.2), or marked so by the client; the
        # client sets it for an Idempotency-Key on other methods.
        self.idempotent = method in IDEMPOTENT

    # -- start ----------------------------------------------------------------
    def begin(self) -> None:
        """Called when this exchange reaches the head of the client's queue."""
        if self.local_status:
            self._respond_local()
            return
        pool = self.pool
        assert pool is not None
        if pool.max_in_flight and pool.busy() >= pool.max_in_flight:
            # limits.max_connections reached: wait in the pool's FIFO queue.
            if len(pool.pending) >= pool.max_pending:
                self.fail(503, "pool at max_connections and its queue is full", retry_after=True)
                return
            pool.pending.append(self)
            self.queued = True
            self.deadline = Clock.now() + pool.queue_timeout
            self.deadline_kind = D_QUEUE
            return
        self._start()

    def _start(self) -> None:
        pool = self.pool
        assert pool is not None
        b: BackendState | None = None
        pinned = self.pinned
        if pinned is not None and self.tried is None:
            sticky = pool.sticky
            assert sticky is not None
            if pinned.usable or sticky.can_serve(pinned, Clock.now()):
                b = pinned
            elif sticky.strict:
                self.fail(503, f"sticky backend {pinned.label} unavailable (strict)")
                return
        if b is None:
            b = pool.pick(self.tried, self.hash_key)
        if b is None:
            self.fail(503, "no eligible backend")
            return
        self._take(b)
        conn = b.idle.get()
        if conn is not None:
            self._attach(conn)
        else:
            self._connect()

    def _take(self, b: BackendState) -> None:
        pool = self.pool
        assert pool is not None
        if pool.observes:
            self.picked_at = Clock.now()
        self.backend = b
        self.attempts += 1
        b.active += 1
        b.requests_total += 1
        b.balancer_take()
        pool.in_flight += 1
        shared = pool.shared
        if shared is not None:  # worker processes: counted for all of them
            shared.add(pool.shared_row, pool.shared_col, 1)
            if b.shared_col >= 0:
                shared.add(pool.shared_row, b.shared_col, 1)

    def _leave(self, b: BackendState) -> None:
        """This exchange no longer holds a request on ``b``."""
        b.active -= 1
        b.balancer_drop()
        pool = self.pool
        assert pool is not None
        pool.in_flight -= 1
        shared = pool.shared
        if shared is not None:
            shared.add(pool.shared_row, pool.shared_col, -1)
            if b.shared_col >= 0:
                shared.add(pool.shared_row, b.shared_col, -1)
        if pool.pending:
            wake_queue(pool)

    def _retry(self, kinds: tuple[str, ...], sent: bool) -> bool:
        """After a failed try: start another on a different backend if the
        pool's retry policy allows it (see docs/config.md, Retries)."""
        pool = self.pool
        b = self.backend
        assert pool is not None and b is not None
        policy = pool.retries
        if self.done or self.resp_started or self.attempts >= policy.attempts:
            return False
        if not any(k in policy.on for k in kinds):
            return False
        if b is self.pinned and pool.sticky is not None and pool.sticky.strict:
            return False  # strict stickiness: that backend or a 503, never another
        if sent and (
            not self.replayable or self.upgrade or not (self.idempotent or policy.non_idempotent)
        ):
            return False
        if sent and not self.retry_counted and not pool.budget.allow(pool.in_flight):
            # The budget guards the backends against doing work twice; a try
            # that never reached one cost them nothing, so it is not counted.
            return False
        tried = self.tried
        if tried is None:
            tried = self.tried = set()
        tried.add(b)
        # Only to a backend not tried yet for this request (nginx's "next
        # upstream"): the same one again would double the load on a backend
        # that is failing.
        nb = pool.pick(tried, self.hash_key)
        if nb is None:
            return False
        self._release_upstream(clean=False)
        self.connecting = False
        if self.connect_task is not None:
            self.connect_task.cancel()
            self.connect_task = None
        if sent and not self.retry_counted:
            self.retry_counted = True
            pool.budget.start()
        counts = pool.retries_by_reason
        counts[kinds[0]] = counts.get(kinds[0], 0) + 1
        if sent:
            # The body sent so far goes again, then the rest as it arrives.
            self.pending = list(self.replay) if self.replay else None
            self.pending_size = self.replay_size
        self.continued = False
        self.upstream_reusable = False
        self._take(nb)
        self._leave(b)  # after taking the new slot: a queued request can't slip in between
        conn = nb.idle.get()
        if conn is not None:
            self._attach(conn)
        else:
            self._connect()
        return True

    def _try_failed(self, kinds: tuple[str, ...], sent: bool, status: int, reason: str) -> None:
        """A try ended without a usable response: count it, retry or fail."""
        self._count_failure()
        if self._retry(kinds, sent):
            self.reason = "retried after: " + reason  # for the access log
        else:
            self.fail(status, reason, counted=True)

    def _connect(self) -> None:
        b = self.backend
        pool = self.pool
        assert b is not None and pool is not None
        loop = self.client.loop
        self.connecting = True
        self.deadline = Clock.now() + pool.connect_timeout
        self.deadline_kind = D_CONNECT
        tls = pool.upstream_ssl
        if tls is None:
            connecting = loop.create_connection(lambda: _protocol(b), b.host, b.port)
        else:
            connecting = loop.create_connection(
                lambda: _protocol(b),
                b.host,
                b.port,
                ssl=tls,
                server_hostname=pool.upstream_sni or b.host,
                ssl_handshake_timeout=pool.connect_timeout,
            )
        task = loop.create_task(connecting)
        task.add_done_callback(self._connected)
        self.connect_task = task

    def _connected(self, task: _ConnectTask) -> None:
        self.connect_task = None
        if self.done or not self.connecting:
            # The client left or the connect timed out meanwhile.
            if not task.cancelled() and task.exception() is None:
                cast(UpstreamConnection, task.result()[1]).close()
            return
        self.connecting = False
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            msg = f"connect to {self.backend_label()} failed: {exc}"
            self._try_failed(_CONNECT_FAILED, False, 502, msg)
            return
        b = self.backend
        pool = self.pool
        if b is not None and pool is not None:
            # The connect started connect_timeout before its deadline.
            self.connect_s = Clock.now() - (self.deadline - pool.connect_timeout)
            b.observe_connect(self.connect_s)
        self._attach(cast(UpstreamConnection, task.result()[1]))

    def _attach(self, conn: UpstreamConnection) -> None:
        conn.reset(self)
        if self.client.lr.logging:
            self.sent_at = Clock.now()  # only the access log reads it
        self.upstream = conn
        backend = self.backend
        assert backend is not None
        # Without a Host from the client (HTTP/1.0), the backend's own.
        host = b"" if self.host else backend.host_header
        head = b"".join(
            (self.method, b" ", self.target, b" HTTP/1.1\r\n", host, self.block, b"\r\n")
        )
        pending = self.pending
        if pending:
            pending.insert(0, head)
            conn.write(b"".join(pending))
            self.pending = None
            self.pending_size = 0
            self.client.resume_reading_for(4)
        else:
            conn.write(head)
        self._arm_response()

    def _arm_response(self) -> None:
        pool = self.pool
        assert pool is not None
        # Until the response head, a try has retries.per_try_timeout at most.
        timeout = pool.response_timeout if self.resp_started else pool.try_timeout
        self.deadline = Clock.now() + timeout
        self.deadline_kind = D_RESPONSE

    # -- request body from the client -------------------------------------------
    def send_body(self, data: bytes) -> None:
        self.body_in += len(data)
        if self.local_status or self.done:
            return  # nothing upstream wants it
        if self.chunked_in:
            data = b"%x\r\n%b\r\n" % (len(data), data)
        self._send(data)

    def send_raw(self, data: bytes) -> None:
        """Bytes after an upgrade request: passed through untouched once the
        backend has switched protocols, held until then. A backend that
        declines the upgrade would read them as HTTP: a request smuggled past
        the proxy's parser, routing and header rewriting. Declined, they are
        dropped with the connection."""
        if self.done:
            return
        if self.tunnel:
            self._send(data)
            return
        if self.held is None:
            self.held = []
        self.held.append(data)
        self.held_size += len(data)
        if self.held_size > PENDING_LIMIT:
            self.client.pause_reading_for(4)

    def _send(self, data: bytes) -> None:
        if self.replayable:
            if self.replay_size + len(data) <= REPLAY_LIMIT:
                if self.replay is None:
                    self.replay = []
                self.replay.append(data)
                self.replay_size += len(data)
            else:
                self.replayable = False
                self.replay = None
        up = self.upstream
        if up is not None:
            up.write(data)
            if self.deadline_kind == D_RESPONSE:
                self._arm_response()  # a long upload is progress, not a late backend
        else:
            if self.pending is None:
                self.pending = []
            self.pending.append(data)
            self.pending_size += len(data)
            if self.pending_size > PENDING_LIMIT:
                self.client.pause_reading_for(4)

    def request_complete(self, trailers: list[tuple[bytes, bytes]] | None) -> None:
        if self.req_done:
            return  # no body: complete since its headers
        self.req_done = True
        if self.chunked_in and not self.local_status and not self.done:
            self._send(b"0\r\n" + _trailer_lines(trailers) + b"\r\n")
        if self.upstream is not None and not self.resp_started:
            self._arm_response()

    # -- response from the backend -----------------------------------------------
    def upstream_activity(self) -> None:
        if self.deadline_kind == D_RESPONSE:
            self._arm_response()

    def on_interim(self, status: int, reason: bytes, headers: list[tuple[bytes, bytes]]) -> None:
        # 1xx responses (100 Continue, 103 Early Hints) mean nothing to an
        # HTTP/1.0 client and are dropped for it.
        if status == 100:
            self.continued = True
        if self.http11 and not self.resp_started:
            self.client.write(_status_line(status, reason) + _header_lines(headers) + b"\r\n")

    def on_response_head(
        self, status: int, reason: bytes, data: bytes, start: int, stop: int, minor: int
    ) -> int:
        """Relay the final response's head, whose field lines are
        ``data[start:stop]``; return how its body is framed: a length, or one
        of the upstream module's BODY_* values."""
        try:
            # Read in place: no (name, value) list unless something below
            # must look a header up.
            block, clen, flags = scan_response_lines(data, start, stop)
        except FramingError as err:
            self.on_upstream_error(f"invalid response from backend: {err}")
            return BODY_FAILED
        # One clock read for whoever wants it: the access log, latency-aware
        # balancing, outlier detection and breakers.
        now = 0.0
        if self.client.lr.logging:
            now = self.head_at = Clock.now()
        pool = self.pool
        b = self.backend
        if pool is not None and b is not None:
            if pool.observes or pool.reports:
                if not now:
                    now = Clock.now()
                if pool.observes:
                    pool.observe(b, now - self.picked_at)
                if pool.reports:
                    pool.report(b, status < 500, now)
            if status in pool.retry_statuses and self._retry((str(status),), True):
                # This answer goes nowhere: the next backend's will.
                b.failures_total += 1
                self.reason = f"retried after: {b.label} answered {status}"
                return BODY_FAILED
        self.resp_status = status
        if minor == 1:
            self.upstream_reusable = not flags & CONN_CLOSE
        else:
            self.upstream_reusable = bool(flags & CONN_KEEP_ALIVE) and not flags & CONN_CLOSE
        if flags & FRAMING_CONFLICT:
            self.upstream_reusable = False
        elif self.expect_continue and not self.continued and not self.req_empty:
            # A final answer to "Expect: 100-continue" without a 100 first: the
            # backend may never read the body we relayed (RFC 9110 10.1.1), and
            # left in its buffer that body would be read as the next request.
            self.upstream_reusable = False
        framing: int = clen
        client = self.client
        lr = client.lr
        # The (name, value) list only for what must look a header up.
        headers = (
            field_list(data, start, stop)
            if status == 101 or lr.hsts or lr.tracing & T_REQUEST_ID
            else _NO_FIELDS
        )
        close = not self.keep_alive or not self.req_done or client.draining
        extra = b""
        if status == 101:
            if not self.upgrade:
                self.on_upstream_error("backend switched protocols without an upgrade request")
                return BODY_FAILED
            upgrade = b""
            for n, v in headers:
                if n.lower() == b"upgrade":
                    upgrade = v
            extra = b"Connection: upgrade\r\nUpgrade: " + upgrade + b"\r\n"
            self.upstream_reusable = False
            close = False
            framing = BODY_UPGRADE
        elif self.method_head or status == 204 or status == 304:
            framing = 0  # no body whatever the headers say; Content-Length passes as is
        elif clen >= 0:
            pass
        elif flags & CHUNKED:
            framing = BODY_CHUNKED
            if self.http11:
                self.chunked_out = True
                extra = b"Transfer-Encoding: chunked\r\n"
            else:
                close = True
        else:
            # Delimited by the backend closing; re-frame as chunked so an
            # HTTP/1.1 client can keep its connection.
            framing = BODY_UNTIL_CLOSE
            self.resp_framed = False
            self.upstream_reusable = False
            if self.http11:
                self.chunked_out = True
                extra = b"Transfer-Encoding: chunked\r\n"
            else:
                close = True
        if self.upgrade and status != 101:
            # The client's parser has stopped at the upgrade request; what it
            # sends next can't be trusted to be HTTP. What it sent already is
            # dropped (see send_raw).
            close = True
            self.upstream_reusable = False
            self.held = None
            self.held_size = 0
        if close:
            extra += b"Connection: close\r\n"
        elif not self.http11:
            extra += b"Connection: keep-alive\r\n"
        if lr.tracing & T_REQUEST_ID:
            extra += self._request_id_line(headers)
        if lr.hsts:
            extra += _unless_sent(headers, b"strict-transport-security", lr.hsts)
        if pool is not None and pool.sticky is not None and b is not None and b is not self.pinned:
            # A new session, or its backend could not serve it: pin the
            # client to the backend that answered.
            extra += pool.sticky.line_for(b)
        if self.resp_extra:
            extra += self.resp_extra
        self.close_after = close
        self.resp_started = True
        self.deadline_kind = NO_DEADLINE if status == 101 else self.deadline_kind
        line = _status_line(status, reason)
        client.write(b"".join((line, block, extra, b"\r\n")))
        return framing

    def _request_id_line(self, headers: list[tuple[bytes, bytes]]) -> bytes:
        """The request id for the client, unless the backend's answer echoes one."""
        lr = self.client.lr
        return _unless_sent(headers, lr.rid_lower, lr.rid_name + b": " + self.request_id + b"\r\n")

    def on_response_body(self, data: bytes) -> None:
        self.resp_bytes += len(data)
        if self.chunked_out:
            self.client.write(b"%x\r\n%b\r\n" % (len(data), data))
        else:
            self.client.write(data)

    def on_response_complete(self) -> None:
        if self.done:
            return
        if self.chunked_out:
            conn = self.upstream
            trailers = conn.trailers if conn is not None else None
            self.client.write(b"0\r\n" + _trailer_lines(trailers) + b"\r\n")
        self._release_upstream(clean=True)
        self._finish(self.close_after)

    def on_upgraded(self, extra: bytes) -> None:
        """The backend answered 101: from now on both directions are raw bytes."""
        if self.done or self.resp_status != 101:
            return
        self.tunnel = True
        self.deadline_kind = NO_DEADLINE
        if extra:
            self.client.write(extra)
        if self.held:
            self._send(b"".join(self.held))
            self.held = None
            self.held_size = 0
        self.client.start_tunnel(self)

    def on_upstream_lost(self, conn: UpstreamConnection, exc: Exception | None) -> None:
        if self.done:
            return
        self.upstream = None
        if self.tunnel:
            self._finish(True)
            return
        if (
            not self.resp_started
            and not conn.got_bytes
            and conn.served > 0
            and self.replayable
            and not self.retried
            and self.method in IDEMPOTENT
        ):
            # A reused keep-alive connection that the backend had closed: the
            # backend answered nothing, so resend on a fresh connection without
            # the client noticing. Only for idempotent methods: the close may
            # have raced with a request the backend did act on (RFC 9110 9.2.2).
            self.retried = True
            self.pending = list(self.replay) if self.replay else None
            self.pending_size = self.replay_size
            self._connect()
            return
        if not self.resp_started:
            why = "reset" if exc is not None else "closed"
            msg = f"backend {self.backend_label()} {why} the connection before responding"
            self._try_failed(_RESET, True, 502, msg)
        elif not self.resp_framed:
            self.on_response_complete()  # close-delimited body: EOF is its end
        else:
            self.reason = f"backend {self.backend_label()} closed mid-response"
            self._count_failure()
            self._finish(True)

    def on_upstream_error(self, reason: str) -> None:
        if self.done:
            return
        self._release_upstream(clean=False)
        if not self.resp_started:
            self._try_failed(_INVALID, True, 502, reason)
        else:
            self.reason = reason
            self._count_failure()
            self._finish(True)

    # -- ending -----------------------------------------------------------------
    def fail(
        self, status: int, reason: str, counted: bool = False, retry_after: bool = False
    ) -> None:
        """End with the proxy's own error response (or a close, if too late)."""
        if self.done:
            return
        self.reason = reason
        self._release_upstream(clean=False)
        if status >= 502 and not counted:
            self._count_failure()
        if self.resp_started:
            self._finish(True)
            return
        # The request's body is unread or half-sent: what follows on the
        # connection cannot be told apart from a next request.
        self._answer(status, close=not self.req_done, retry_after=retry_after)

    def _respond_local(self) -> None:
        # A local answer leaves the client's body to the parser, which reads
        # and drops it; only a client waiting on 100-continue is ambiguous.
        self._answer(self.local_status, close=not self.req_done and self.expect_continue)

    def _answer(self, status: int, close: bool, retry_after: bool = False) -> None:
        """Write the proxy's own response and end the exchange."""
        close = (
            close
            or not self.keep_alive
            or status in CLOSING_STATUSES
            or self.upgrade
            or self.client.draining
        )
        self.resp_status = status
        self.resp_started = True
        lr = self.client.lr
        extra = self.local_headers + lr.hsts
        if self.request_id and lr.tracing & T_REQUEST_ID:
            extra += self._request_id_line([])  # the proxy's own answer: no backend header
        detail = self.reason.encode("utf-8", "replace") if self.client_fault else b""
        self.client.write(
            error_response(status, close, self.method_head, retry_after, extra, detail)
        )
        self._finish(close)

    def _count_failure(self) -> None:
        b = self.backend
        if b is not None:
            b.failures_total += 1
            pool = self.pool
            if pool is not None and not self.resp_started:
                if pool.observes:
                    pool.observe_failure(b, Clock.now() - self.picked_at)
                if pool.reports:
                    pool.report(b, False, Clock.now())

    def _release_upstream(self, clean: bool) -> None:
        conn = self.upstream
        if conn is None:
            return
        self.upstream = None
        conn.exchange = None
        if self.client.read_paused & 1:
            self.client.resume_reading_for(1)
        if self.upstream_read_paused:
            self.upstream_read_paused = False
            if conn.transport is not None and not conn.closed:
                conn.transport.resume_reading()
        if clean and self.upstream_reusable and self.req_done and not conn.closed:
            conn.served += 1
            b = self.backend
            assert b is not None
            b.idle.put(conn, Clock.now())
        else:
            conn.close()

    def _finish(self, close: bool) -> None:
        self.done = True
        self.connecting = False
        self.deadline_kind = NO_DEADLINE
        if self.upstream is not None:
            self._release_upstream(clean=False)
        self._end_accounting()
        self.client.exchange_done(self, close)

    def on_client_lost(self) -> None:
        """The client went away: drop the backend side unless it finished cleanly."""
        if self.done:
            return
        self.done = True
        self.connecting = False
        self.deadline_kind = NO_DEADLINE
        if self.connect_task is not None:
            self.connect_task.cancel()
        conn = self.upstream
        if conn is not None:
            self.upstream = None
            conn.exchange = None
            conn.abort()
        if self.queued:
            self.queued = False
            pool = self.pool
            assert pool is not None
            pool.pending.remove(self)
        elif self.backend is not None and not self.resp_started:
            pool = self.pool
            assert pool is not None
            pool.release(self.backend, Clock.now())  # a breaker trial without an outcome
        self._end_accounting()
        if not self.reason:
            self.reason = "client closed the connection"

    def _end_accounting(self) -> None:
        b = self.backend
        if b is not None:
            self._leave(b)
        if self.retry_counted:
            self.retry_counted = False
            pool = self.pool
            assert pool is not None
            pool.budget.finish()

    def check_deadline(self, now: float) -> None:
        if self.deadline_kind == NO_DEADLINE or now < self.deadline:
            return
        kind = self.deadline_kind
        self.deadline_kind = NO_DEADLINE
        if kind == D_CONNECT:
            self.connecting = False
            if self.connect_task is not None:
                self.connect_task.cancel()
            msg = f"connect to {self.backend_label()} timed out"
            self._try_failed(_CONNECT_TIMED_OUT, False, 504, msg)
        elif kind == D_QUEUE:
            self.queued = False
            pool = self.pool
            assert pool is not None
            pool.pending.remove(self)
            self.fail(503, "timed out waiting for a max_connections slot", retry_after=True)
        elif kind == D_SEND:
            self.reason = "client too slow reading the response"
            self._release_upstream(clean=False)
            self._finish(True)
            # A plain close would wait for the buffered response to drain,
            # which a client that stopped reading never lets happen: the
            # connection, its descriptor and its max_connections slot would
            # be held for good. The response is cut short anyway.
            self.client.abort()
        elif self.resp_started:
            self.fail(504, f"backend {self.backend_label()} response timed out")
        else:
            msg = f"backend {self.backend_label()} response timed out"
            self._try_failed(_TIMED_OUT, True, 504, msg)

    def backend_label(self) -> str:
        return self.backend.label if self.backend is not None else "-"


def _unless_sent(headers: list[tuple[bytes, bytes]], lower_name: bytes, line: bytes) -> bytes:
    """``line``, unless the backend's response already has that header: the
    backend's own value wins (HAProxy's set-header would replace it; lbproxy
    never rewrites what the application chose)."""
    n = len(lower_name)
    for name, _ in headers:
        if len(name) == n and name.lower() == lower_name:
            return b""
    return line


def wake_queue(pool: PoolRuntime) -> None:
    """Start queued exchanges while the pool has free slots, oldest first.
    Called when a request leaves the pool, and every tick for slots that
    other worker processes freed."""
    pending = pool.pending
    while pending and pool.busy() < pool.max_in_flight:
        ex = cast(Exchange, pending.popleft())
        ex.queued = False
        ex.deadline_kind = NO_DEADLINE
        ex._start()
