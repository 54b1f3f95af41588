"""Request and response header scanning and rewriting (pure-Python twin).

One pass over the header list that the parser collected does three jobs at
once, because each is needed for every proxied message and a second pass
costs as much as the first:

* framing: Content-Length / Transfer-Encoding / Connection / Upgrade /
  Expect are read and checked so that nothing ambiguous is forwarded;
* hop-by-hop removal: Connection, the names it lists, Keep-Alive, TE,
  Trailer, Upgrade (kept only for an upgrade), Proxy-*;
* serialisation: what survives is written out as one ``bytes`` block
  ready to follow the start line.

Rules that keep a client (or a backend) from confusing the framing or the
proxy's own headers:

* a Connection token never removes Content-Length, Host or
  Transfer-Encoding, nor the X-Forwarded-For/-Proto/-Host and Via headers
  the proxy writes itself: listing them would otherwise drop a request's
  Content-Length while its body is still forwarded (request smuggling);
* a Content-Length of more than 18 digits is invalid (``FramingError``), so
  every accepted value fits an int64;
* a request may carry at most one Upgrade header;
* an empty Host line is not forwarded (it reads as no Host at all, for which
  the caller sends the backend's own);
* a request may carry at most one Host header, empty or not, and its value
  must be ``uri-host [":" port]`` (RFC 9110 7.2): a reg-name or IPv4 address
  (unreserved, sub-delims and %XX escapes) or a bracketed IPv6 address or
  IPvFuture literal, then
  an optional port of at most 5 digits: never a space, "@", "/" or anything
  that would let a backend or a router read another host out of it;
* when the peer is not a trusted proxy its X-Forwarded-* headers are
  replaced and its ``Forwarded`` and ``X-Real-IP`` headers are dropped, so a
  client cannot forge its address to the backend; a trusted peer's are kept;
* in a response, all Transfer-Encoding lines form one list of codings; when
  any is present it overrides Content-Length (RFC 9112 6.3): the body is
  chunked if the final coding is ``chunked``, else read until close, and
  Content-Length is neither returned nor forwarded. Equal duplicate
  Content-Length headers are forwarded as one.

The compiled twin ``headers.pyx`` must behave identically; the test suite
runs the same cases against both.
"""

from __future__ import annotations

from lbproxy._fast.h1_py import field_list as _field_list

# Flag bits returned by the scanners.
CHUNKED = 1
EXPECT_CONTINUE = 2
CONN_CLOSE = 4
CONN_KEEP_ALIVE = 8
UPGRADE = 16
HAS_CONTENT_LENGTH = 32
# A response carried both Content-Length and Transfer-Encoding: relayed as the
# latter frames it, but the connection it came on is not to be trusted again.
FRAMING_CONFLICT = 64

# Headers that are always hop-by-hop, lower case (RFC 9110 7.6.1). The
# X-Forwarded-* and Via headers of a request, which the proxy writes itself,
# are replaced separately in ``scan_request``.
_HOP = frozenset(
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


# Names a Connection token can never remove: end-to-end framing, and the
# headers the proxy writes itself (which it replaces on requests anyway).
_PROTECTED = frozenset(
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

# Longest Content-Length accepted: 10**18 - 1 < 2**63, so it fits an int64.
_MAX_CL_DIGITS = 18


class FramingError(ValueError):
    """The message's framing is ambiguous or invalid: answer 400 and close."""


_REG_NAME = frozenset(
    b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&'()*+,;=%"
)
_IP_LITERAL = _REG_NAME | frozenset(b":")
_HEXDIGITS = frozenset(b"0123456789abcdefABCDEF")
_IPV6 = _HEXDIGITS | frozenset(b":.")


def host_is_valid(host: bytes) -> bool:
    """Whether ``host`` is ``uri-host [":" port]``; an empty value is valid."""
    if host[:1] == b"[":
        close = host.find(b"]")
        if close < 2:
            return False
        literal = host[1:close]
        rest = host[close + 1 :]
        if literal[:1] in (b"v", b"V"):
            # IPvFuture: "v" 1*HEXDIG "." 1*( unreserved / sub-delims / ":" )
            dot = literal.find(b".")
            tail = literal[dot + 1 :]
            if dot < 2 or not tail or any(c not in _HEXDIGITS for c in literal[1:dot]):
                return False
            if any(c not in _IP_LITERAL or c == 37 for c in tail):
                return False
        elif any(c not in _IPV6 for c in literal):
            return False
        name = b""
        allowed = _REG_NAME
    else:
        name, colon, port = host.partition(b":")
        allowed = _REG_NAME
        rest = colon + port
    n = len(name)
    i = 0
    while i < n:
        c = name[i]
        if c not in allowed:
            return False
        if c == 37:  # "%" starts an escape: two hex digits
            if i + 2 >= n or name[i + 1] not in _HEXDIGITS or name[i + 2] not in _HEXDIGITS:
                return False
            i += 3
        else:
            i += 1
    if rest:
        port = rest[1:]
        if rest[:1] != b":" or len(port) > 5 or (port and not port.isdigit()):
            return False
    return True


def _connection_tokens(value: bytes) -> list[bytes]:
    return [t.strip().lower() for t in value.split(b",") if t.strip()]


def _content_length(value: bytes) -> int:
    if not value.isdigit() or len(value) > _MAX_CL_DIGITS:
        raise FramingError("invalid Content-Length")
    return int(value)


def _dropped(conn_tokens: list[bytes]) -> set[bytes] | None:
    """The names Connection asks to remove, less the protected ones."""
    if not conn_tokens:
        return None
    drop = set(conn_tokens) - _PROTECTED
    return drop or None


def scan_request(
    headers: list[tuple[bytes, bytes]],
    client_ip: bytes,
    trusted: bool,
    proto: bytes,
    via: bytes,
) -> tuple[bytes, bytes, int, int, bytes]:
    """Check and rewrite a request's headers.

    Returns ``(block, host, content_length, flags, upgrade)`` where ``block``
    holds the headers to send upstream (each line ending CRLF, no final
    blank line), ``host`` the Host value (b"" if absent), ``content_length``
    -1 when absent, ``upgrade`` the Upgrade value when the request asks for
    one (and lists it in Connection), else b"".

    ``trusted`` says whether the peer is one of the listener's trusted
    proxies: only then are its X-Forwarded-* values believed and extended,
    and its Forwarded and X-Real-IP headers passed on; otherwise the former
    are replaced and the latter dropped, so a client cannot forge its address.
    """
    host = b""
    host_seen = False
    clen = -1
    flags = 0
    upgrade = b""
    upgrade_seen = False
    conn_tokens: list[bytes] = []
    xff = b""
    xfp = b""
    xfh = b""
    via_in = b""
    lowered: list[bytes] = []
    for name, value in headers:
        lname = name.lower()
        lowered.append(lname)
        if lname == b"host":
            if host_seen:
                raise FramingError("more than one Host header")
            host_seen = True
            host = value
        elif lname == b"content-length":
            if clen >= 0:
                raise FramingError("more than one Content-Length")
            clen = _content_length(value)
            flags |= HAS_CONTENT_LENGTH
        elif lname == b"transfer-encoding":
            if flags & CHUNKED or value.strip().lower() != b"chunked":
                raise FramingError("unsupported Transfer-Encoding")
            flags |= CHUNKED
        elif lname == b"connection" or lname == b"proxy-connection":
            conn_tokens.extend(_connection_tokens(value))
        elif lname == b"upgrade":
            # One line only: a backend that honoured another line than the
            # one forwarded would switch to a protocol nobody checked.
            if upgrade_seen:
                raise FramingError("more than one Upgrade header")
            upgrade_seen = True
            upgrade = value
        elif lname == b"expect":
            if value.strip().lower() == b"100-continue":
                flags |= EXPECT_CONTINUE
        elif lname == b"x-forwarded-for":
            xff = xff + b", " + value if xff else value
        elif lname == b"x-forwarded-proto":
            xfp = value
        elif lname == b"x-forwarded-host":
            xfh = value
        elif lname == b"via":
            via_in = via_in + b", " + value if via_in else value
    if flags & CHUNKED and flags & HAS_CONTENT_LENGTH:
        raise FramingError("both Content-Length and Transfer-Encoding")
    if host and not host_is_valid(host):
        raise FramingError("invalid Host header")
    if b"close" in conn_tokens:
        flags |= CONN_CLOSE
    if b"keep-alive" in conn_tokens:
        flags |= CONN_KEEP_ALIVE
    if upgrade and b"upgrade" in conn_tokens:
        flags |= UPGRADE
    else:
        upgrade = b""

    out: list[bytes] = []
    drop = _dropped(conn_tokens)
    i = 0
    for name, value in headers:
        lname = lowered[i]
        i += 1
        if (
            lname in _HOP
            or lname.startswith(b"proxy-")
            or lname == b"x-forwarded-for"
            or lname == b"x-forwarded-proto"
            or lname == b"x-forwarded-host"
            or lname == b"via"
            or (not trusted and (lname == b"forwarded" or lname == b"x-real-ip"))
            or (drop is not None and lname in drop)
            # An empty Host is no Host: the caller may send the backend's.
            or (lname == b"host" and not value)
            # Framing is re-stated below; only a Content-Length may pass.
        ):
            continue
        out.append(name + b": " + value + b"\r\n")
    if trusted and xff:
        out.append(b"X-Forwarded-For: " + xff + b", " + client_ip + b"\r\n")
    else:
        out.append(b"X-Forwarded-For: " + client_ip + b"\r\n")
    out.append(b"X-Forwarded-Proto: " + (xfp if trusted and xfp else proto) + b"\r\n")
    fwd_host = xfh if trusted and xfh else host
    if fwd_host:
        out.append(b"X-Forwarded-Host: " + fwd_host + b"\r\n")
    out.append(b"Via: " + (via_in + b", " + via if via_in else via) + b"\r\n")
    if flags & CHUNKED:
        out.append(b"Transfer-Encoding: chunked\r\n")
    if flags & UPGRADE:
        out.append(b"Upgrade: " + upgrade + b"\r\nConnection: upgrade\r\n")
    return b"".join(out), host, clen, flags, upgrade


def scan_response(headers: list[tuple[bytes, bytes]]) -> tuple[bytes, int, int]:
    """Check and strip a response's headers.

    Returns ``(block, content_length, flags)``: ``block`` holds the
    end-to-end headers (one Content-Length included, Transfer-Encoding and
    Connection not: the caller re-states framing for the client), and
    ``flags`` has CHUNKED when the body is chunked, HAS_CONTENT_LENGTH when
    Content-Length delimits it, CONN_CLOSE when the backend said it will
    close, CONN_KEEP_ALIVE when it said keep-alive (which an HTTP/1.0
    response needs to be reusable), FRAMING_CONFLICT when Transfer-Encoding
    overrode a Content-Length (the connection must not be reused). With
    neither CHUNKED nor HAS_CONTENT_LENGTH (``content_length`` -1) the body,
    if any, runs until the backend closes.
    """
    clen = -1
    flags = 0
    te_seen = False
    chunked = False
    conn_tokens: list[bytes] = []
    lowered: list[bytes] = []
    for name, value in headers:
        lname = name.lower()
        lowered.append(lname)
        if lname == b"content-length":
            n = _content_length(value)
            if clen >= 0 and n != clen:
                raise FramingError("conflicting Content-Length")
            clen = n
            flags |= HAS_CONTENT_LENGTH
        elif lname == b"transfer-encoding":
            # All the lines make one list of codings; only a final "chunked"
            # delimits the body, anything else means read until close.
            te_seen = True
            codings = _connection_tokens(value)
            if codings:
                chunked = codings[-1] == b"chunked"
        elif lname == b"connection":
            conn_tokens.extend(_connection_tokens(value))
    if te_seen:
        # Transfer-Encoding overrides Content-Length (RFC 9112 6.3), which
        # also says to treat the pair as an error: hence FRAMING_CONFLICT.
        if flags & HAS_CONTENT_LENGTH:
            flags |= FRAMING_CONFLICT
        clen = -1
        flags &= ~HAS_CONTENT_LENGTH
        if chunked:
            flags |= CHUNKED
    if b"close" in conn_tokens:
        flags |= CONN_CLOSE
    if b"keep-alive" in conn_tokens:
        flags |= CONN_KEEP_ALIVE
    out: list[bytes] = []
    drop = _dropped(conn_tokens)
    clen_written = False
    i = 0
    for name, value in headers:
        lname = lowered[i]
        i += 1
        if lname in _HOP or lname.startswith(b"proxy-") or (drop is not None and lname in drop):
            continue
        if lname == b"content-length":
            # Only one, and none when Transfer-Encoding frames the body.
            if te_seen or clen_written:
                continue
            clen_written = True
        out.append(name + b": " + value + b"\r\n")
    return b"".join(out), clen, flags


def scan_request_lines(
    data: bytes,
    start: int,
    stop: int,
    client_ip: bytes,
    trusted: bool,
    proto: bytes,
    via: bytes,
) -> tuple[bytes, bytes, int, int, bytes]:
    """``scan_request`` of the field lines at ``data[start:stop]``, read in
    place: a region that ``h1.parse_request_lines`` found valid (each line
    ``name:value`` and CRLF). Returns what ``scan_request`` returns for
    ``h1.field_list(data, start, stop)``, without that list in the compiled
    twin."""
    return scan_request(_field_list(data, start, stop), client_ip, trusted, proto, via)


def scan_response_lines(data: bytes, start: int, stop: int) -> tuple[bytes, int, int]:
    """``scan_response`` of the field lines at ``data[start:stop]``, read in
    place: a region that ``h1.parse_response_lines`` found valid (each line
    ``name:value`` and CRLF). Returns what ``scan_response`` returns for
    ``h1.field_list(data, start, stop)``, without that list in the compiled
    twin."""
    return scan_response(_field_list(data, start, stop))
