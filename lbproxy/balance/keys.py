"""Hash keys taken from a request: what ``hash_key`` (and a ``shard:`` route's
``key``) names — the client's address, the path or one segment of it, a
header, a cookie or a query parameter. Only pools that hash pay for this; the
others never call it.

A key that the request does not carry, or carries empty, is ``None``: the
balancer then falls back to round robin rather than sending every keyless
request to the one backend that owns the empty key.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from lbproxy.config.model import HashKey

Headers = Sequence[tuple[bytes, bytes]]
KeyOf = Callable[[Headers, bytes, bytes], "bytes | None"]


def _header(name: bytes) -> KeyOf:
    def key_of(headers: Headers, target: bytes, client_ip: bytes) -> bytes | None:
        for n, v in headers:
            if len(n) == len(name) and n.lower() == name:
                return v or None  # the first one: a repeated field is the client's mistake
        return None

    return key_of


def _cookie(name: bytes) -> KeyOf:
    def key_of(headers: Headers, target: bytes, client_ip: bytes) -> bytes | None:
        for n, v in headers:
            if len(n) == 6 and n.lower() == b"cookie":
                for pair in v.split(b";"):
                    k, eq, value = pair.strip().partition(b"=")
                    if eq and k == name:
                        # RFC 6265 allows the value in double quotes; the
                        # same session must hash the same either way.
                        if len(value) >= 2 and value[:1] == b'"' == value[-1:]:
                            value = value[1:-1]
                        return value or None
        return None

    return key_of


def _query(name: bytes) -> KeyOf:
    def key_of(headers: Headers, target: bytes, client_ip: bytes) -> bytes | None:
        query = target.partition(b"?")[2].partition(b"#")[0]
        for pair in query.split(b"&"):
            k, _, value = pair.partition(b"=")
            if k == name:
                return value or None
        return None

    return key_of


def _path(headers: Headers, target: bytes, client_ip: bytes) -> bytes | None:
    return target.partition(b"?")[0] or None


def _path_segment(index: int) -> KeyOf:
    def key_of(headers: Headers, target: bytes, client_ip: bytes) -> bytes | None:
        # Empty segments are skipped so that "/accounts//123/" and
        # "/accounts/123" name the same account.
        n = index
        for segment in target.partition(b"?")[0].split(b"/"):
            if segment:
                if n == 0:
                    return segment
                n -= 1
        return None

    return key_of


def _client_ip(headers: Headers, target: bytes, client_ip: bytes) -> bytes | None:
    return client_ip or None


def key_extractor(key: HashKey) -> KeyOf:
    """A function ``(headers, target, client_ip) -> key bytes or None``.

    ``headers`` are the request's fields as received, ``target`` the
    origin-form request target (path and query), ``client_ip`` the address of
    the connection's peer (the client, or the proxy in front of it).
    """
    if key.source == "client_ip":
        return _client_ip
    if key.source == "path":
        return _path
    if key.source == "path_segment":
        # str.isdigit() alone admits digits of other scripts, which int() reads.
        if not (key.name.isascii() and key.name.isdigit()):
            raise ValueError(f"path_segment index must be a non-negative integer, got {key.name!r}")
        return _path_segment(int(key.name))
    name = key.name.encode("latin-1")
    if key.source == "header":
        return _header(name.lower())
    if key.source == "cookie":
        return _cookie(name)
    if key.source == "query":
        return _query(name)
    raise ValueError(f"unknown hash key source {key.source!r}")
