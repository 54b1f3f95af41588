"""Request ids and W3C trace context (``tracing:`` in the config).

With ``request_id`` on, every request carries an id upstream and back: the
client's own ``X-Request-ID`` (or the configured name) when it sent a usable
one, else a new one, 32 lower-case hex digits of randomness. With
``traceparent`` on, the proxy is a hop in the W3C Trace Context
(https://www.w3.org/TR/trace-context/): a valid incoming ``traceparent`` keeps
its trace id and flags and gets a new parent id (this hop's span id); a
missing or invalid one starts a new trace, marked sampled so that a backend
with a parent-based sampler records it. ``tracestate`` passes untouched.

Nothing here runs unless the config turns it on: the data path checks one
flag. Ids come from ``random.getrandbits``: unique enough for correlation
(128 bits), not secrets; ``random`` reseeds itself in a forked child, so
worker processes do not repeat each other's ids.
"""

from __future__ import annotations

from random import getrandbits

__all__ = [
    "MAX_REQUEST_ID",
    "T_REQUEST_ID",
    "T_TRACEPARENT",
    "new_request_id",
    "next_traceparent",
    "usable_request_id",
    "without_lines",
]

# Bits of ListenerRuntime.tracing.
T_REQUEST_ID = 1
T_TRACEPARENT = 2

# Longest client-sent request id passed on; a longer one is replaced. Bounded
# so a client cannot make every log line and upstream request carry kilobytes.
MAX_REQUEST_ID = 128

_HEX = frozenset(b"0123456789abcdef")


def new_request_id() -> bytes:
    return b"%032x" % getrandbits(128)


def usable_request_id(value: bytes) -> bool:
    """A client's id is kept when short and made only of visible ASCII."""
    if not value or len(value) > MAX_REQUEST_ID:
        return False
    return all(0x21 <= c <= 0x7E for c in value)


def _hex(field: bytes, size: int) -> bool:
    return len(field) == size and all(c in _HEX for c in field) and field.strip(b"0") != b""


def next_traceparent(incoming: bytes | None) -> bytes:
    """The ``traceparent`` to send upstream, given the client's (or None).

    Version 00 is written whatever version came in; a higher version is read
    by its first four fields, as the spec asks of a version-00 parser, and
    version ``ff`` is invalid.
    """
    if incoming is not None:
        value = incoming.strip()
        parts = value.split(b"-")
        if len(parts) >= 4:
            version, trace_id, parent_id, flags = parts[0], parts[1], parts[2], parts[3]
            ok = (
                len(version) == 2
                and all(c in _HEX for c in version)
                and version != b"ff"
                and _hex(trace_id, 32)
                and _hex(parent_id, 16)
                and len(flags) == 2
                and all(c in _HEX for c in flags)
                and (len(parts) == 4 if version == b"00" else True)
            )
            if ok:
                # Only the sampled bit is defined for version 00.
                sampled = int(flags, 16) & 1
                return b"00-%b-%016x-%02x" % (trace_id, _span_id(), sampled)
    return b"00-%032x-%016x-01" % (_nonzero(128), _span_id())


def _span_id() -> int:
    return _nonzero(64)


def _nonzero(bits: int) -> int:
    while True:
        value = getrandbits(bits)
        if value:  # all-zero ids are invalid
            return value


def without_lines(block: bytes, lower_names: tuple[bytes, ...]) -> bytes:
    """The header block without the lines whose (lower-cased) name is listed."""
    out = []
    for line in block.split(b"\r\n"):
        if not line:
            continue
        name = line[: line.find(b":")].lower()
        if name not in lower_names:
            out.append(line + b"\r\n")
    return b"".join(out)
