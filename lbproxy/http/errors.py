"""Responses the proxy writes itself, prebuilt once per status.

Each is small and plain text; the caller decides whether the connection
survives (``close=True`` when the request's framing is in doubt).
"""

from __future__ import annotations

from http import HTTPStatus

# By plain dict: HTTPStatus(status) is an enum lookup in Python, paid on
# every answer that carries a detail line (408s to slow clients, 400s).
_PHRASES = {s.value: s.phrase for s in HTTPStatus}


def _build(status: int, close: bool, extra: bytes = b"", detail: bytes = b"") -> bytes:
    phrase = _PHRASES[status]
    body = f"{status} {phrase}\n".encode() + (detail + b"\n" if detail else b"")
    head = (
        f"HTTP/1.1 {status} {phrase}\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\n"
    ).encode()
    if close:
        head += b"Connection: close\r\n"
    return head + extra + b"\r\n" + body


_STATUSES = (400, 404, 408, 413, 414, 431, 500, 501, 502, 503, 504, 505)
_CACHE: dict[tuple[int, bool], bytes] = {
    (s, c): _build(s, c) for s in _STATUSES for c in (False, True)
}
_HEAD_CACHE: dict[tuple[int, bool], bytes] = {
    k: v[: v.index(b"\r\n\r\n") + 4] for k, v in _CACHE.items()
}


_RETRY_AFTER = b"Retry-After: 1\r\n"


def error_response(
    status: int,
    close: bool,
    head_only: bool = False,
    retry_after: bool = False,
    extra: bytes = b"",
    detail: bytes = b"",
) -> bytes:
    """The bytes of the proxy's own response with this status; ``retry_after``
    adds ``Retry-After: 1`` (a full queue: come back in a second), ``extra``
    more header lines (each ending CRLF), such as the request id; ``detail``
    a line of the body saying what the client must change (a shard key)."""
    if retry_after or extra or detail:
        full = _build(status, close, (_RETRY_AFTER if retry_after else b"") + extra, detail)
        return full[: full.index(b"\r\n\r\n") + 4] if head_only else full
    cache = _HEAD_CACHE if head_only else _CACHE
    data = cache.get((status, close))
    if data is None:
        data = _build(status, close)
        if head_only:
            data = data[: data.index(b"\r\n\r\n") + 4]
    return data
