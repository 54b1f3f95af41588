"""Constants the data path modules (client, exchange, upstream) share.

They live apart from the modules that use them because, compiled, those
modules import each other's extension types while loading, in a cycle (see
``lbproxy/http/__init__.py``): a name defined in one of them may not exist yet
when another's body runs. Names defined here, outside the cycle, always do.
"""

from __future__ import annotations

# The data path's clock is time.monotonic(): deadlines and idle times are set
# with it and the proxy's ticker compares them against it. Not loop.time():
# calling a module-level builtin costs less than a method lookup on the loop,
# several times per request.

# Large enough to keep the pipe full, small enough that a slow client holds at
# most this much per direction in the transport's buffer before we pause.
WRITE_HIGH_WATER = 64 * 1024

# Longest response head accepted from a backend (status line and fields).
MAX_RESPONSE_HEAD = 64 * 1024
# Longest trailer section accepted after a chunked response body.
MAX_RESPONSE_TRAILERS = 64 * 1024

# How a response body is framed, as Exchange.on_response_head returns it: a
# length >= 0, or one of these.
BODY_CHUNKED = -1
BODY_UNTIL_CLOSE = -2
BODY_UPGRADE = -3  # 101: the connection becomes a tunnel
BODY_FAILED = -4  # the exchange has failed the response

# Request flag set by the client side when Content-Length > 0 (beside the
# header scanner's flags).
HAS_BODY = 1 << 10

# Fields a trailer section may not carry (RFC 9110 6.5.1): framing, routing,
# connection control, and what describes the content as a whole. Passed on,
# they could reframe or reroute the message for whoever reads it next; they
# are dropped when relayed, and a request whose trailers try to reframe or
# reroute it (FRAMING_TRAILERS) is refused.
NOT_IN_TRAILERS = frozenset(
    (
        b"content-length",
        b"transfer-encoding",
        b"host",
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"upgrade",
        b"expect",
        b"content-encoding",
        b"content-type",
        b"content-range",
    )
)
FRAMING_TRAILERS = frozenset((b"content-length", b"transfer-encoding", b"host"))

# Exchange deadline kinds.
NO_DEADLINE = 0
D_CONNECT = 1
D_RESPONSE = 2  # the backend must make progress (accept body bytes, send response bytes)
D_SEND = 3  # the client must take the response bytes we hold for it
D_QUEUE = 4  # waiting in the pool's queue for a max_connections slot


def not_connected(data: bytes) -> None:
    """A connection's write function until its transport exists."""
    raise RuntimeError("write before the connection was made")
