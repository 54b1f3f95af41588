"""PROXY protocol in front of TLS.

An L4 balancer that passes TLS through (an AWS NLB, HAProxy in ``mode tcp``
with ``send-proxy``) writes the PROXY header in the clear, then relays the
client's TLS bytes untouched. The event loop's TLS server would take that
header for a ClientHello and reset the connection, so such a listener serves
without TLS at first: ``ProxyThenTls`` reads the header, then starts TLS on
the same connection (``loop.start_tls``) and hands the TLS transport to a
``ClientConnection`` with the client address from the header.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any, cast

from lbproxy._fast import load as _load_fast
from lbproxy.http.client import ClientConnection

if TYPE_CHECKING:
    from lbproxy._fast.proxyproto_py import ProxyInfo
    from lbproxy.http.listener import ListenerRuntime

_proxyproto = _load_fast("proxyproto")
parse_proxy_header = _proxyproto.parse
ProxyProtocolError = _proxyproto.ProxyProtocolError

log = logging.getLogger("lbproxy")

_handshakes: set[asyncio.Task[None]] = set()  # TLS starts in progress


class ProxyThenTls(asyncio.Protocol):
    """Accepts a connection of a TLS listener with ``proxy_protocol``: reads
    the PROXY header (within ``timeouts.header``), then the TLS handshake
    (within what is left of it), then serves HTTP like any TLS connection."""

    def __init__(self, lr: ListenerRuntime) -> None:
        self.lr = lr
        self.loop = lr.loop
        self.transport: asyncio.Transport | None = None
        self.buf = b""
        self.started = 0.0
        self.timer: asyncio.TimerHandle | None = None
        self.handed_over = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        self.started = self.loop.time()
        self.timer = self.loop.call_later(self.lr.header_timeout, self._expired)

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data if self.buf else data
        if self.handed_over:
            # Read before start_tls took the transport over: TLS bytes, kept
            # for it (reading is paused, so this is at most one read).
            self.buf = buf
            return
        try:
            used, info = parse_proxy_header(buf)
        except ProxyProtocolError as err:
            log.warning("%s: closing a connection: %s", self.lr.name, err)
            self._abort()
            return
        if not used:
            self.buf = buf
            return
        # What followed the header (often the start of the ClientHello, in
        # the same segment) belongs to TLS, as does anything read before
        # start_tls puts its protocol on the transport.
        self.buf = buf[used:]
        self.handed_over = True
        assert self.transport is not None
        self.transport.pause_reading()
        task = self.loop.create_task(self._start_tls(info))
        # Held until done: the loop keeps only a weak reference to a task.
        _handshakes.add(task)
        task.add_done_callback(_handshakes.discard)

    def eof_received(self) -> bool | None:
        self._abort()  # closed before its header was complete: nothing to answer
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.handed_over:
            self._cancel_timer()
        self.transport = None

    def _expired(self) -> None:
        self.timer = None
        if not self.handed_over:
            log.info("%s: no complete PROXY header in time, closing", self.lr.name)
            self._abort()

    def _cancel_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _abort(self) -> None:
        self._cancel_timer()
        if self.transport is not None:
            self.transport.abort()

    async def _start_tls(self, info: ProxyInfo | None) -> None:
        self._cancel_timer()
        transport = self.transport
        lr = self.lr
        ctx = lr.tls_context
        if transport is None or ctx is None or transport.is_closing():
            return
        conn = ClientConnection(lr)
        left = max(0.1, lr.header_timeout - (self.loop.time() - self.started))
        # start_tls puts its TLS protocol on the transport before it first
        # waits: bytes already read go into that protocol from the next turn.
        # Awaited here, not as a task of its own, so that connection_made
        # below runs before the first request reaches the connection.
        self.loop.call_soon(self._feed_early)
        try:
            # ClientConnection is a protocol to the loop without the base class.
            tls_transport = await self.loop.start_tls(
                transport,
                cast(asyncio.BaseProtocol, conn),
                ctx,
                server_side=True,
                ssl_handshake_timeout=left,
            )
        except Exception as exc:  # any failed handshake closes the same way
            log.debug("%s: TLS handshake failed after a PROXY header: %r", lr.name, exc)
            transport.abort()
            return
        if tls_transport is None:  # only when the loop has closed meanwhile
            transport.abort()
            return
        conn.connection_made(tls_transport)
        conn.proxied(info)

    def _feed_early(self) -> None:
        """Give what was read past the PROXY header to the TLS protocol,
        through the buffered-protocol methods (get_buffer, buffer_updated)
        that the TLS protocols of uvloop and asyncio both have; it lands in
        their input buffer, read when the handshake starts."""
        early, self.buf = self.buf, b""
        transport = self.transport
        if early and transport is not None:
            tls_protocol = transport.get_protocol()
            if tls_protocol is not self:
                _feed(tls_protocol, early)


def _feed(protocol: Any, data: bytes) -> None:
    view = memoryview(data)
    while view:
        buf = memoryview(protocol.get_buffer(len(view)))
        n = min(len(buf), len(view))
        buf[:n] = view[:n]
        protocol.buffer_updated(n)
        view = view[n:]
