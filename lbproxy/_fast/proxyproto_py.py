"""PROXY protocol headers, versions 1 and 2 (pure-Python twin of ``proxyproto.pyx``).

A load balancer in front of lbproxy (HAProxy, an AWS/GCP network LB, another
lbproxy) can open each connection with a PROXY protocol header that says who
the client really is. The spec is HAProxy's ``proxy-protocol.txt``. ``parse``
reads that header from the start of a connection's buffered bytes:

``parse(data) -> (consumed, info)``

* ``(0, None)``: ``data`` is a valid beginning of a header so far; read more.
  An empty buffer is one.
* ``(n, None)``, ``n > 0``: a complete header of ``n`` bytes that says to use
  the connection's own addresses (v1 ``UNKNOWN``; v2 ``LOCAL``, v2 ``PROXY``
  over ``AF_UNSPEC`` or ``AF_UNIX``).
* ``(n, ProxyInfo)``: a complete header of ``n`` bytes carrying TCP over IPv4
  (family ``"tcp4"``) or IPv6 (``"tcp6"``). Bytes past ``n`` are the
  client's (usually its HTTP request).
* ``ProxyProtocolError`` (a ``ValueError``) when ``data`` can no longer become
  a valid header. The first bytes are checked at once against ``"PROXY "`` and
  the v2 signature, so a plain HTTP request on a listener that requires the
  header fails on its first bytes rather than waiting for a timeout.

Version 1 is one text line, at most 107 bytes with its CRLF:
``PROXY TCP4 <src> <dst> <sport> <dport>\\r\\n`` (or ``TCP6``), or
``PROXY UNKNOWN`` followed by anything (ignored) up to the CRLF. It is read
strictly: single spaces, uppercase keywords, dotted-quad IPv4 with octets
0-255 and no leading zeros, IPv6 as RFC 4291 text (hex groups of 1-4 digits,
at most one ``::``, an optional dotted-quad tail; no zone, no brackets), ports
0-65535 in decimal with no sign and no leading zeros. A CR must be followed by
LF and a LF must follow a CR. Before the line is complete only its first six
bytes, its CR/LF and its length are checked; the fields once it is.

Version 2 is binary: the 12-byte signature, a version/command byte (version 2;
``LOCAL`` or ``PROXY``), a family/transport byte, a 16-bit big-endian length,
then that many bytes: the address block for the family, then TLVs. Every
fixed field is checked as soon as it arrives. ``LOCAL`` ignores the family and
the block (the spec says so). ``PROXY`` accepts the spec's stream families
(``0x00`` UNSPEC, ``0x11`` TCP/IPv4, ``0x21`` TCP/IPv6, ``0x31`` UNIX stream),
rejects datagram ones (lbproxy proxies TCP) and every other byte, and needs a
length at least the family's address block (0, 12, 36, 216 bytes). For the
IPv4, IPv6 and UNIX families the TLVs after the block must tile the rest
exactly (each a type byte, a 16-bit length and that many bytes); they are
skipped, not read (a CRC32C TLV is not checked). What follows the fixed part
of a ``LOCAL`` or ``UNSPEC`` header is not looked at, as the spec asks.
The length is capped at ``V2_MAX_LENGTH``.

Addresses come back as ASCII text: IPv4 dotted-quad; IPv6 in the RFC 5952
form (lowercase hex, no leading zeros, the longest run of two or more zero
groups written ``::``, the first such run on a tie; IPv4-mapped addresses as
``::ffff:a.b.c.d``), whichever version carried them.

The compiled twin must return equal values and raise the same errors with the
same messages for every input; tests/fast/test_proxyproto.py compares them.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

__all__ = [
    "V1_MAX_LENGTH",
    "V2_MAX_LENGTH",
    "V2_SIGNATURE",
    "ProxyInfo",
    "ProxyProtocolError",
    "parse",
]

V1_MAX_LENGTH = 107  # the spec's bound, "PROXY " through CRLF
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
# The spec allows 65535 bytes after the 16-byte fixed part, but the whole
# header is buffered before anything is known about the peer, so a peer (or a
# mistake) could pin 64 KiB per connection. Real senders put the addresses and
# a few short TLVs (ALPN, authority, SSL version/cipher/CN, cloud endpoint
# ids) there: hundreds of bytes. 4096 leaves ample room for those; HAProxy
# itself bounds the header by its own buffer.
V2_MAX_LENGTH = 4096

_V1_PREFIX = b"PROXY "
_CR = 0x0D
_LF = 0x0A
# family/transport byte -> address block size, for those a PROXY command accepts
_V2_BLOCK = {0x00: 0, 0x11: 12, 0x21: 36, 0x31: 216}
_V2_DGRAM = (0x12, 0x22, 0x32)
_HEX = b"0123456789abcdefABCDEF"


class ProxyProtocolError(ValueError):
    """The bytes are not, and cannot become, a valid PROXY protocol header."""


class ProxyInfo(NamedTuple):
    """The client's TCP connection as the sender of the header saw it."""

    family: Literal["tcp4", "tcp6"]
    src_ip: bytes
    src_port: int
    dst_ip: bytes
    dst_port: int


def parse(data: bytes) -> tuple[int, ProxyInfo | None]:
    """Read a PROXY header at the start of ``data``; see the module docstring."""
    if type(data) is not bytes:  # exactly bytes, as the compiled twin's signature takes
        raise TypeError(
            f"Argument 'data' has incorrect type (expected bytes, got {type(data).__name__})"
        )
    if not data:
        return 0, None
    if data[0] == _CR:
        return _parse_v2(data)
    return _parse_v1(data)


# --- version 1 ---


def _parse_v1(data: bytes) -> tuple[int, ProxyInfo | None]:
    n = len(data)
    if not _V1_PREFIX.startswith(data[:6]):
        raise ProxyProtocolError("no PROXY protocol header")
    end = -1
    for i in range(min(n, V1_MAX_LENGTH)):
        c = data[i]
        if c == _LF:
            raise ProxyProtocolError("PROXY v1: LF without CR")
        if c == _CR:
            end = i
            break
    if end < 0:
        if n >= V1_MAX_LENGTH:
            raise ProxyProtocolError("PROXY v1: no CRLF within 107 bytes")
        return 0, None
    if end + 2 > V1_MAX_LENGTH:  # the LF would be byte 108
        raise ProxyProtocolError("PROXY v1: no CRLF within 107 bytes")
    if end + 1 == n:
        return 0, None
    if data[end + 1] != _LF:
        raise ProxyProtocolError("PROXY v1: CR not followed by LF")
    # The prefix matched, so ``end`` >= 6: the line is what lies between.
    return end + 2, _v1_line(data[6:end])


def _v1_line(line: bytes) -> ProxyInfo | None:
    if line[:7] == b"UNKNOWN" and (len(line) == 7 or line[7] == 0x20):
        return None
    fields = line.split(b" ")
    proto = fields[0]
    if proto == b"TCP4":
        family: Literal["tcp4", "tcp6"] = "tcp4"
    elif proto == b"TCP6":
        family = "tcp6"
    else:
        raise ProxyProtocolError("PROXY v1: unknown protocol (expected TCP4, TCP6 or UNKNOWN)")
    if b"" in fields:
        raise ProxyProtocolError("PROXY v1: empty field (fields are separated by single spaces)")
    if len(fields) != 5:
        raise ProxyProtocolError("PROXY v1: expected 4 fields after the protocol")
    if family == "tcp4":
        src, dst = _v1_ipv4(fields[1]), _v1_ipv4(fields[2])
        if src is None:
            raise ProxyProtocolError("PROXY v1: bad TCP4 source address")
        if dst is None:
            raise ProxyProtocolError("PROXY v1: bad TCP4 destination address")
    else:
        src6, dst6 = _ipv6_words(fields[1]), _ipv6_words(fields[2])
        if src6 is None:
            raise ProxyProtocolError("PROXY v1: bad TCP6 source address")
        if dst6 is None:
            raise ProxyProtocolError("PROXY v1: bad TCP6 destination address")
        src, dst = _format_ipv6(src6), _format_ipv6(dst6)
    sport, dport = _v1_port(fields[3]), _v1_port(fields[4])
    if sport < 0:
        raise ProxyProtocolError("PROXY v1: bad source port")
    if dport < 0:
        raise ProxyProtocolError("PROXY v1: bad destination port")
    return ProxyInfo(family, src, sport, dst, dport)


def _decimal(text: bytes, most: int) -> int:
    """``text`` as a decimal of 1-5 digits without sign or leading zero, at
    most ``most``; -1 otherwise."""
    if not 1 <= len(text) <= 5 or (text[0] == 0x30 and len(text) > 1):
        return -1
    value = 0
    for c in text:
        if not 0x30 <= c <= 0x39:
            return -1
        value = value * 10 + c - 0x30
    return value if value <= most else -1


def _v1_port(text: bytes) -> int:
    return _decimal(text, 65535)


def _v1_ipv4(text: bytes) -> bytes | None:
    """``text`` if it is a strict dotted quad (already canonical), else None."""
    octets = text.split(b".")
    if len(octets) != 4:
        return None
    for octet in octets:
        if _decimal(octet, 255) < 0:
            return None
    return text


def _ipv6_words(text: bytes) -> list[int] | None:
    """The eight 16-bit groups of an RFC 4291 text address, else None."""
    n = len(text)
    words: list[int] = []
    gap = -1  # index in ``words`` where "::" stands
    i = 0
    if text[:2] == b"::":
        gap = 0
        i = 2
    elif text[:1] == b":":
        return None
    while i < n:
        if len(words) == 8:
            return None
        start = i
        value = 0
        while i < n and i - start < 5 and text[i] in _HEX:
            value = value * 16 + int(chr(text[i]), 16)
            i += 1
        if i < n and text[i] == 0x2E:  # the group was the start of a dotted quad
            if len(words) > 6 or _v1_ipv4(text[start:]) is None:
                return None
            quad = [int(octet) for octet in text[start:].split(b".")]
            words += (quad[0] << 8 | quad[1], quad[2] << 8 | quad[3])
            i = n
            break
        if i == start or i - start > 4:
            return None
        words.append(value)
        if i == n:
            break
        if text[i] != 0x3A:  # ':'
            return None
        i += 1
        if i < n and text[i] == 0x3A:
            if gap >= 0:
                return None
            gap = len(words)
            i += 1
        elif i == n:  # one trailing ':'
            return None
    if gap < 0:
        return words if len(words) == 8 else None
    if len(words) > 7:
        return None
    return words[:gap] + [0] * (8 - len(words)) + words[gap:]


def _format_ipv4(b: bytes) -> bytes:
    return b"%d.%d.%d.%d" % (b[0], b[1], b[2], b[3])


def _format_ipv6(words: list[int]) -> bytes:
    if words[:6] == [0, 0, 0, 0, 0, 0xFFFF]:
        w6, w7 = words[6], words[7]
        return b"::ffff:%d.%d.%d.%d" % (w6 >> 8, w6 & 255, w7 >> 8, w7 & 255)
    best, best_len, run = -1, 1, 0  # a run of one zero group is not compressed
    for i, w in enumerate(words):
        run = run + 1 if w == 0 else 0
        if run > best_len:
            best, best_len = i - run + 1, run
    if best < 0:
        return b":".join(b"%x" % w for w in words)
    head = b":".join(b"%x" % w for w in words[:best])
    tail = b":".join(b"%x" % w for w in words[best + best_len :])
    return head + b"::" + tail


# --- version 2 ---


def _parse_v2(data: bytes) -> tuple[int, ProxyInfo | None]:
    n = len(data)
    if not V2_SIGNATURE.startswith(data[:12]):
        raise ProxyProtocolError("no PROXY protocol header")
    if n < 13:
        return 0, None
    version, command = data[12] >> 4, data[12] & 15
    if version != 2:
        raise ProxyProtocolError(f"PROXY v2: unsupported version {version}")
    if command > 1:
        raise ProxyProtocolError(f"PROXY v2: unknown command {command}")
    if n < 14:
        return 0, None
    fam = data[13]
    block = 0
    if command == 1:
        if fam in _V2_DGRAM:
            raise ProxyProtocolError("PROXY v2: datagram (UDP) transport is not supported")
        if fam not in _V2_BLOCK:
            raise ProxyProtocolError(f"PROXY v2: unknown address family/transport 0x{fam:02x}")
        block = _V2_BLOCK[fam]
    if n < 16:
        return 0, None
    length = data[14] << 8 | data[15]
    if length > V2_MAX_LENGTH:
        raise ProxyProtocolError(f"PROXY v2: length {length} exceeds the {V2_MAX_LENGTH}-byte cap")
    if length < block:
        raise ProxyProtocolError(
            f"PROXY v2: length {length} is shorter than the {block}-byte address block"
        )
    total = 16 + length
    if n < total:
        return 0, None
    if command == 0 or fam == 0x00:
        return total, None
    _skip_tlvs(data, 16 + block, total)
    if fam == 0x11:
        return total, ProxyInfo(
            "tcp4",
            _format_ipv4(data[16:20]),
            data[24] << 8 | data[25],
            _format_ipv4(data[20:24]),
            data[26] << 8 | data[27],
        )
    if fam == 0x21:
        return total, ProxyInfo(
            "tcp6",
            _format_ipv6([data[j] << 8 | data[j + 1] for j in range(16, 32, 2)]),
            data[48] << 8 | data[49],
            _format_ipv6([data[j] << 8 | data[j + 1] for j in range(32, 48, 2)]),
            data[50] << 8 | data[51],
        )
    return total, None  # AF_UNIX: the addresses are paths, of no use to a proxy


def _skip_tlvs(data: bytes, i: int, end: int) -> None:
    while i < end:
        if end - i < 3:
            raise ProxyProtocolError("PROXY v2: truncated TLV")
        i += 3 + (data[i + 1] << 8 | data[i + 2])
        if i > end:
            raise ProxyProtocolError("PROXY v2: TLV overruns the header")
