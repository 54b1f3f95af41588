"""The differential oracle: what the proxy forwards must mean what the client sent.

Two sides are parsed with h11, the strict reference:

* REF (``parse_reference``): the requests h11, in the server role, reads from
  the bytes one client connection sent (then half-closed), up to the first
  error or the end of the data. A request that h11 read whole (up to its
  ``EndOfMessage``) is *complete*; the last one may be incomplete (its head
  was read, its body was cut short or refused).
* FWD (``BackendParser``): the requests the backend received from the proxy
  during that input, read by h11 at the backend, one parser per upstream
  connection, answered with a small fixed response so the proxy can go on.

``compare`` states the property. FWD is a prefix of REF, request by request:
same method, same target (except the absolute-form rewrite), same end-to-end
headers in the same order, same body bytes and trailers; a forwarded request
that is not complete must be the last one and its body a prefix of REF's. The
backend must be able to frame everything it received: an h11 error there, or
bytes left over that never became a request, is a finding (smuggling). The
proxy may stop early (it is stricter than h11, or refuses a request), which
the prefix rule allows.

Compared per request:

* method, exactly;
* target, exactly; an absolute-form REF target (``http://host/p``) must come
  out in origin form (``/p``, ``/`` for an empty path), with Host replaced by
  the target's authority (docs/config.md, Routes);
* Host: exactly one at the backend, the client's (or the authority above);
  the backend's own address when the client sent none (HTTP/1.0 only);
* end-to-end headers: the header list with lower-case names, minus the
  hop-by-hop names (``HOP_BY_HOP``, ``Proxy-*``), the names the request's
  Connection lists (never the protected ones), the headers the proxy writes
  (``PROXY_WRITTEN``: X-Forwarded-*, Via, and Forwarded/X-Real-IP which it
  drops for an untrusted peer) and the framing headers Content-Length and
  Transfer-Encoding (framing is compared through the body instead);
* the proxy's own forwarding headers: exactly one ``X-Forwarded-For`` naming
  the peer, and no ``Forwarded``/``X-Real-IP`` (the peer is untrusted): a
  request that reached the backend without them was never rewritten by the
  proxy, i.e. it was smuggled past its parser;
* Upgrade: a REF upgrade request (Upgrade + an ``upgrade`` Connection token)
  must reach the backend with the same protocol list; any other request with
  no Upgrade at all;
* body bytes (chunk boundaries and extensions do not matter), and trailers
  minus hop-by-hop names;
* after a protocol switch the backend accepted (``accepts_upgrade``), the
  tunnel bytes the backend received must be a prefix of the bytes the client
  sent after the upgrade request.

Allowed differences (``ALLOWED_DIFFERENCES``): places where h11 and the
proxy's documented behaviour legitimately disagree and the oracle follows the
proxy. Everything else that differs is a finding.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import h11

__all__ = [
    "ALLOWED_DIFFERENCES",
    "BackendParser",
    "Forwarded",
    "Reference",
    "Request",
    "accepts_upgrade",
    "compare",
    "parse_reference",
]

# Where the oracle departs from plain h11, and why. Keep this short: each
# entry is documented lbproxy behaviour that is also what RFC 9112 allows.
ALLOWED_DIFFERENCES: tuple[tuple[str, str], ...] = (
    (
        "leading empty lines",
        "RFC 9112 2.2: a server SHOULD ignore at least one CRLF before a request line; "
        "h11 refuses any, lbproxy skips up to 8 (docs: 'empty lines before it are skipped'). "
        "The oracle skips CRLFs before each request before handing the rest to h11.",
    ),
    (
        "HTTP/1.0 keep-alive",
        "h11 never keeps an HTTP/1.0 connection open; lbproxy honours 'Connection: keep-alive' "
        "from 1.0 clients (docs: 'HTTP/1.0 without keep-alive ends the connection'). The "
        "oracle decides persistence by RFC 9112 9.3 (and 6.1: never after a 1.0 message "
        "with Transfer-Encoding) and parses each request with a fresh h11 connection, so "
        "the next request after a 1.0 keep-alive one is read too.",
    ),
    (
        "Proxy-Connection counts as Connection",
        "lbproxy reads the legacy Proxy-Connection header's tokens like Connection's (close, "
        "keep-alive, upgrade, names to drop), as forward proxies traditionally do; both are "
        "hop-by-hop. The oracle does the same.",
    ),
    (
        "HTTP/1.0 request without Host",
        "lbproxy adds 'Host: <backend address>' when the client sent none, or an empty one "
        "(docs: 'What reaches the backend'), since it always speaks HTTP/1.1 upstream.",
    ),
    (
        "absolute-form target",
        "forwarded in origin form with Host set to the target's authority (docs: Routes; "
        "RFC 9112 3.2.2: the authority wins over Host).",
    ),
    (
        "HTTP version",
        "lbproxy always speaks HTTP/1.1 upstream (docs), so the version is not compared; "
        "1.x with x > 1 is served as 1.1 by both h11 and lbproxy.",
    ),
)

# Always hop-by-hop (RFC 9110 7.6.1 and docs/config.md), plus every Proxy-* name.
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"proxy-connection",
    }
)
# Names a Connection token never removes (docs: hop-by-hop headers).
PROTECTED = frozenset(
    {
        b"content-length",
        b"host",
        b"transfer-encoding",
        b"x-forwarded-for",
        b"x-forwarded-proto",
        b"x-forwarded-host",
        b"via",
    }
)
# Written (or, for an untrusted peer, dropped) by the proxy itself.
PROXY_WRITTEN = frozenset(
    {
        b"x-forwarded-for",
        b"x-forwarded-proto",
        b"x-forwarded-host",
        b"via",
        b"forwarded",
        b"x-real-ip",
    }
)
FRAMING = frozenset({b"content-length", b"transfer-encoding"})

# h11's own buffer limit is an implementation limit, not syntax: lift it far
# above anything the proxy accepts so that it never decides a difference.
_H11_MAX_EVENT = 1 << 24
# Bounds on every loop over parser events.
MAX_REQUESTS = 256
_MAX_EVENTS = 100_000

_ABSOLUTE = re.compile(rb"[Hh][Tt][Tt][Pp][Ss]?://([^/?#]*)(.*)\Z", re.DOTALL)

_RESPONSE_HEADERS = [(b"content-length", b"0"), (b"x-fuzz-backend", b"1")]


@dataclass
class Request:
    """One request as h11 read it (names lower case, values as h11 trimmed them)."""

    method: bytes
    target: bytes
    version: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytearray = field(default_factory=bytearray)
    trailers: list[tuple[bytes, bytes]] = field(default_factory=list)
    complete: bool = False

    def values(self, name: bytes) -> list[bytes]:
        return [v for n, v in self.headers if n == name]

    def connection_tokens(self) -> list[bytes]:
        """Tokens of Connection and (an allowed difference) Proxy-Connection."""
        out: list[bytes] = []
        for n, v in self.headers:
            if n in (b"connection", b"proxy-connection"):
                out.extend(t.strip().lower() for t in v.split(b",") if t.strip())
        return out

    def upgrade_protocols(self) -> list[bytes]:
        return [t.strip() for v in self.values(b"upgrade") for t in v.split(b",") if t.strip()]

    def is_upgrade(self) -> bool:
        return bool(self.upgrade_protocols()) and b"upgrade" in self.connection_tokens()

    def persistent(self) -> bool:
        """RFC 9112 9.3: 1.1 (and 1.x, x > 1) persists unless 'close'; 1.0 only
        with 'keep-alive' (an allowed difference: h11 never keeps 1.0), and
        never after a 1.0 message with Transfer-Encoding, whose framing is
        faulty (RFC 9112 6.1: close the connection after processing it)."""
        tokens = self.connection_tokens()
        if b"close" in tokens:
            return False
        if self.version == b"1.0":
            return b"keep-alive" in tokens and not self.values(b"transfer-encoding")
        return True

    def describe(self) -> str:
        state = "complete" if self.complete else "incomplete"
        return (
            f"{self.method!r} {self.target!r} HTTP/{self.version.decode('latin-1')} "
            f"headers={self.headers!r} body={bytes(self.body)[:200]!r} "
            f"trailers={self.trailers!r} ({state})"
        )


def accepts_upgrade(req: Request) -> bool:
    """The backend's policy (used on both sides): switch protocols for an
    upgrade request offering ``websocket``, decline (200) any other."""
    return req.is_upgrade() and any(p.lower() == b"websocket" for p in req.upgrade_protocols())


def _request(ev: h11.Request) -> Request:
    return Request(
        method=bytes(ev.method),
        target=bytes(ev.target),
        version=bytes(ev.http_version),
        headers=[(bytes(n), bytes(v)) for n, v in ev.headers],
    )


@dataclass
class Reference:
    requests: list[Request]
    stop: str  # why h11 (or the oracle) stopped reading
    tunnel: bytes | None = None  # client bytes after an accepted upgrade


def _skip_empty_lines(data: bytes, pos: int) -> int:
    # Allowed difference: empty lines before a request line are skipped.
    while data.startswith(b"\r\n", pos):
        pos += 2
    return pos


def parse_reference(data: bytes) -> Reference:
    """REF: the requests h11 reads from ``data`` followed by the client's half-close."""
    requests: list[Request] = []
    pos = 0
    while len(requests) < MAX_REQUESTS:
        pos = _skip_empty_lines(data, pos)
        if pos >= len(data):
            return Reference(requests, "end of data")
        # A fresh h11 connection per request: persistence is the oracle's call
        # (HTTP/1.0 keep-alive), and h11 needs no simulated responses.
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=_H11_MAX_EVENT)
        conn.receive_data(data[pos:])
        conn.receive_data(b"")
        req: Request | None = None
        stop = ""
        for _ in range(_MAX_EVENTS):
            try:
                ev = conn.next_event()
            except h11.RemoteProtocolError as exc:
                stop = f"h11 error: {exc}"
                break
            if isinstance(ev, h11.Request):
                req = _request(ev)
                requests.append(req)
            elif isinstance(ev, h11.Data):
                assert req is not None
                req.body += ev.data
            elif isinstance(ev, h11.EndOfMessage):
                assert req is not None
                req.trailers = [(bytes(n), bytes(v)) for n, v in ev.headers]
                req.complete = True
                break
            else:  # NEED_DATA, PAUSED or ConnectionClosed before a whole request
                stop = f"h11 stopped: {ev!r}"
                break
        if req is None or not req.complete:
            return Reference(requests, stop or "incomplete request")
        rest = bytes(conn.trailing_data[0])
        if req.method == b"CONNECT":
            return Reference(requests, "CONNECT: the rest is not HTTP")
        if accepts_upgrade(req):
            return Reference(requests, "upgrade accepted", tunnel=rest)
        if not req.persistent():
            return Reference(requests, "connection not persistent")
        pos = len(data) - len(rest)
    return Reference(requests, "request limit")


class BackendParser:
    """FWD, one upstream connection: h11 as the backend, fed what the proxy sent."""

    def __init__(self) -> None:
        self.conn = h11.Connection(h11.SERVER, max_incomplete_event_size=_H11_MAX_EVENT)
        self.requests: list[Request] = []
        self.error: str | None = None
        self.tunnel: bytearray | None = None
        self.closing = False  # the backend closes after what it wrote
        self.after_close = bytearray()  # bytes received after it decided to close
        self._cur: Request | None = None

    def feed(self, data: bytes) -> bytes:
        """Take bytes from the proxy; return the bytes to answer with."""
        if self.tunnel is not None:
            self.tunnel += data
            return b""
        if self.closing:
            self.after_close += data
            return b""
        self.conn.receive_data(data)
        out: list[bytes] = []
        for _ in range(_MAX_EVENTS):
            try:
                ev = self.conn.next_event()
            except h11.RemoteProtocolError as exc:
                self.error = str(exc)
                self.closing = True
                break
            if isinstance(ev, h11.Request):
                self._cur = _request(ev)
                self.requests.append(self._cur)
            elif isinstance(ev, h11.Data):
                assert self._cur is not None
                self._cur.body += ev.data
            elif isinstance(ev, h11.EndOfMessage):
                req = self._cur
                assert req is not None
                req.trailers = [(bytes(n), bytes(v)) for n, v in ev.headers]
                req.complete = True
                self._cur = None
                if self._respond(req, out):
                    break
            else:  # NEED_DATA, PAUSED, ConnectionClosed
                break
        return b"".join(out)

    def _respond(self, req: Request, out: list[bytes]) -> bool:
        """Answer ``req``; True when nothing more is parsed as HTTP."""
        conn = self.conn
        if accepts_upgrade(req) and conn.their_state is h11.MIGHT_SWITCH_PROTOCOL:
            proto = req.upgrade_protocols()[0]
            out.append(
                conn.send(
                    h11.InformationalResponse(
                        status_code=101,
                        headers=[(b"upgrade", proto), (b"connection", b"upgrade")],
                    )
                )
                or b""
            )
            self.tunnel = bytearray(conn.trailing_data[0])
            return True
        # 405 to a CONNECT (a 2xx would open a tunnel), 200 to anything else.
        status = 405 if req.method == b"CONNECT" else 200
        out.append(conn.send(h11.Response(status_code=status, headers=_RESPONSE_HEADERS)) or b"")
        out.append(conn.send(h11.EndOfMessage()) or b"")
        if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
            self.closing = True
            self.after_close += conn.trailing_data[0]
            return True
        conn.start_next_cycle()
        return False

    def leftover(self) -> bytes:
        """Bytes received that never became (part of) a request."""
        if self.tunnel is not None:
            return b""
        if self.error is not None:
            return b""  # reported as the error
        if self.closing:
            return bytes(self.after_close)
        if self.conn.their_state is h11.IDLE:
            return bytes(self.conn.trailing_data[0])
        return b""


@dataclass
class Forwarded:
    """FWD: every upstream connection the proxy opened during one input, in order."""

    conns: list[BackendParser]
    backend_address: bytes  # what the proxy writes as Host when the client sent none
    peer: bytes = b"127.0.0.1"  # the client's address, as X-Forwarded-For must say

    @property
    def requests(self) -> list[Request]:
        return [r for c in self.conns for r in c.requests]


def _tokens_removed(req: Request) -> set[bytes]:
    return set(req.connection_tokens()) - PROTECTED


def end_to_end(req: Request) -> list[tuple[bytes, bytes]]:
    """The headers that must reach the backend unchanged, in order (Host aside)."""
    drop = _tokens_removed(req)
    return [
        (n, v)
        for n, v in req.headers
        if n not in HOP_BY_HOP
        and not n.startswith(b"proxy-")
        and n not in drop
        and n not in PROXY_WRITTEN
        and n not in FRAMING
        and n != b"host"
    ]


def _trailers(fields: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    return [(n, v) for n, v in fields if n not in HOP_BY_HOP and not n.startswith(b"proxy-")]


def expected_target_and_host(req: Request) -> tuple[bytes, bytes | None]:
    """Origin-form target and Host the backend should see (None: no Host sent)."""
    m = _ABSOLUTE.match(req.target)
    if m is not None:
        authority, rest = m.group(1), m.group(2)
        if not rest.startswith(b"/"):
            rest = b"/" + rest
        return rest, authority
    hosts = req.values(b"host")
    # An empty Host reads as none: the proxy sends the backend's address.
    return req.target, hosts[0] if hosts and hosts[0] else None


def compare_request(ref: Request, fwd: Request, fwd_all: Forwarded) -> list[str]:
    """How ``fwd`` (what the backend got) differs from ``ref`` (what the client sent)."""
    out: list[str] = []
    if fwd.method != ref.method:
        out.append(f"method {ref.method!r} forwarded as {fwd.method!r}")
    if fwd.method == b"CONNECT":
        out.append("CONNECT forwarded (documented: answered 501)")
    target, host = expected_target_and_host(ref)
    if fwd.target != target:
        out.append(f"target {ref.target!r} forwarded as {fwd.target!r} (expected {target!r})")
    fwd_hosts = fwd.values(b"host")
    want_host = host if host is not None else fwd_all.backend_address
    if fwd_hosts != [want_host]:
        out.append(
            f"Host {ref.values(b'host')!r} forwarded as {fwd_hosts!r} (expected {want_host!r})"
        )
    want, got = end_to_end(ref), end_to_end(fwd)
    if got != want:
        out.append(f"end-to-end headers differ: client sent {want!r}, backend got {got!r}")
    xff = fwd.values(b"x-forwarded-for")
    if xff != [fwd_all.peer]:
        out.append(f"X-Forwarded-For at the backend is {xff!r}, not [{fwd_all.peer!r}]")
    for name in (b"forwarded", b"x-real-ip"):
        if fwd.values(name):
            out.append(f"{name.decode()} from an untrusted peer reached the backend")
    if ref.is_upgrade():
        if fwd.upgrade_protocols() != ref.upgrade_protocols() or not fwd.is_upgrade():
            out.append(
                f"upgrade request {ref.upgrade_protocols()!r} forwarded as "
                f"{fwd.upgrade_protocols()!r} (upgrade={fwd.is_upgrade()})"
            )
    elif fwd.values(b"upgrade"):
        out.append(f"Upgrade {fwd.values(b'upgrade')!r} sent for a request that is no upgrade")
    if fwd.complete:
        if not ref.complete:
            out.append("the backend got a complete request the client never completed")
        elif bytes(fwd.body) != bytes(ref.body):
            out.append(f"body {bytes(ref.body)[:200]!r} forwarded as {bytes(fwd.body)[:200]!r}")
        elif _trailers(fwd.trailers) != _trailers(ref.trailers):
            out.append(f"trailers {ref.trailers!r} forwarded as {fwd.trailers!r}")
    elif not bytes(ref.body).startswith(bytes(fwd.body)):
        out.append(
            f"partial body {bytes(fwd.body)[:200]!r} is not a prefix of {bytes(ref.body)[:200]!r}"
        )
    return out


def compare(ref: Reference, fwd: Forwarded) -> list[str]:
    """Every way FWD breaks the property (empty: none)."""
    problems: list[str] = []
    for i, conn in enumerate(fwd.conns):
        if conn.error is not None:
            problems.append(
                f"upstream connection {i}: h11 cannot parse what the proxy sent: {conn.error}"
            )
        left = conn.leftover()
        if left:
            problems.append(
                f"upstream connection {i}: unframed bytes at the backend: {left[:200]!r}"
            )
    fwd_reqs = fwd.requests
    for i, req in enumerate(fwd_reqs[:-1]):
        if not req.complete:
            problems.append(f"request {i} forwarded incomplete, yet more requests followed it")
    if len(fwd_reqs) > len(ref.requests):
        extra = fwd_reqs[len(ref.requests) :]
        problems.append(
            f"{len(extra)} request(s) forwarded beyond the {len(ref.requests)} h11 read "
            f"(h11: {ref.stop}): " + "; ".join(r.describe() for r in extra[:3])
        )
    for i, (r, f) in enumerate(zip(ref.requests, fwd_reqs, strict=False)):
        for p in compare_request(r, f, fwd):
            problems.append(f"request {i}: {p}")
    tunnels = [c for c in fwd.conns if c.tunnel is not None]
    if tunnels:
        got = bytes(tunnels[-1].tunnel or b"")
        if ref.tunnel is None:
            problems.append(
                "the backend switched protocols where the client's stream had no upgrade"
            )
        elif not ref.tunnel.startswith(got):
            problems.append(f"tunnel bytes {got[:200]!r} are not a prefix of {ref.tunnel[:200]!r}")
    return problems
