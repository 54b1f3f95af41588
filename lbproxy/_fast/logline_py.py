"""JSON access-log lines (pure-Python twin of ``logline.pyx``).

``json_line`` writes the per-request part of a line as bytes: everything
after the cached prefix the logger keeps per listener, route, pool and
backend. Strings are written as JSON string literals of their bytes read as
Latin-1, exactly as ``json.dumps(value.decode("latin-1"))`` writes them
(ASCII only: ``"`` and ``\\`` escaped, the short escapes \\b \\f \\n \\r \\t,
everything else outside printable ASCII as ``\\u00XX``), so the compiled twin
can escape without a detour through ``str``. Milliseconds are written with
three decimals by ``_ms``: rounded half up on ``x * 1000.0``, computed in the
same IEEE operations by both twins (so the same digits, without a float
formatter's cost); negative values are written as 0.000 and values past
9e12 ms as 9000000000000.000.

The compiled twin must give byte-identical lines; tests/fast/test_logline.py
compares them on arbitrary input.
"""

from __future__ import annotations

import json

__all__ = ["json_line", "json_str"]


def json_str(value: bytes) -> bytes:
    """The JSON string literal of ``value`` (bytes read as Latin-1), ASCII."""
    text = value.decode("latin-1")
    if text.isascii() and text.isprintable() and '"' not in text and "\\" not in text:
        return b'"' + value + b'"'
    return json.dumps(text).encode("ascii")


_MS_MAX = 9e12  # milliseconds; about 285 years


def _ms(x: float) -> str:
    if not x > 0.0:  # negative, zero or NaN
        return "0.000"
    if x > _MS_MAX:
        x = _MS_MAX
    thousandths = int(x * 1000.0 + 0.5)
    return f"{thousandths // 1000}.{thousandths % 1000:03d}"


def json_line(
    stamp: bytes,
    where: bytes,
    client: bytes,
    method: bytes,
    host: bytes,
    path: bytes,
    status: int,
    resp_bytes: int,
    body_in: int,
    duration_ms: float,
    connect_ms: float,
    response_ms: float,
    user_agent: bytes,
    referer: bytes,
    request_id: bytes,
    traceparent: bytes,
    tries: int,
    reason: bytes,
) -> bytes:
    """One JSON access-log line, without its newline.

    ``stamp`` is the time (written as is, inside quotes), ``where`` the cached
    ``","listener":...,"client":`` run written as is. ``connect_ms`` appears
    when above 0, ``response_ms`` when 0 or above, the four header values when
    not empty, ``tries`` when above 1, and ``reason`` (already a JSON literal)
    when not empty.
    """
    parts = [
        b'{"time":"',
        stamp,
        where,
        json_str(client),
        b',"method":',
        json_str(method),
        b',"host":',
        json_str(host),
        b',"path":',
        json_str(path),
        f',"status":{status},"bytes":{resp_bytes},"bytes_in":{body_in}'
        f',"duration_ms":{_ms(duration_ms)}'.encode(),
    ]
    if connect_ms > 0.0:
        parts.append(f',"connect_ms":{_ms(connect_ms)}'.encode())
    if response_ms >= 0.0:
        parts.append(f',"response_ms":{_ms(response_ms)}'.encode())
    if user_agent:
        parts += (b',"user_agent":', json_str(user_agent))
    if referer:
        parts += (b',"referer":', json_str(referer))
    if request_id:
        parts += (b',"request_id":', json_str(request_id))
    if traceparent:
        parts += (b',"traceparent":', json_str(traceparent))
    if tries > 1:
        parts.append(f',"tries":{tries}'.encode())
    if reason:
        parts += (b',"reason":', reason)
    parts.append(b"}")
    return b"".join(parts)
