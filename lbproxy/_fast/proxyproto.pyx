# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False, embedsignature=True, autotestdict=False
"""PROXY protocol headers (v1 and v2), compiled.

``proxyproto_py.py`` is the pure twin and the reference: read its docstring
for what is accepted and what comes back. Both must return equal values and
raise the same errors with the same messages for every input; the test suite
checks that with hypothesis. ``ProxyInfo``, ``ProxyProtocolError`` and the
limits are the twin's own objects, imported, so results and exceptions are
interchangeable whichever module a caller got from ``load``.

This one reads the buffer through a pointer: the v1 line's fields are found
as spans and checked in place, addresses are formatted into a stack buffer,
and the only objects made for a valid header are the address bytes, the two
port ints and the result tuples (``ProxyInfo`` built with ``tuple.__new__``,
as namedtuple's own ``_make`` does, skipping its generated ``__new__``).
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.string cimport memcmp

from lbproxy._fast.addrtext cimport hex_digit, put_ipv6_groups, put_quad

from lbproxy._fast.proxyproto_py import (
    V1_MAX_LENGTH,
    V2_MAX_LENGTH,
    V2_SIGNATURE,
    ProxyInfo,
    ProxyProtocolError,
)

__all__ = [
    "V1_MAX_LENGTH",
    "V2_MAX_LENGTH",
    "V2_SIGNATURE",
    "ProxyInfo",
    "ProxyProtocolError",
    "parse",
]

cdef Py_ssize_t _V1_MAX = V1_MAX_LENGTH
cdef Py_ssize_t _V2_MAX = V2_MAX_LENGTH
cdef bytes _SIGNATURE = V2_SIGNATURE
cdef const unsigned char *_SIG = <const unsigned char *>PyBytes_AS_STRING(_SIGNATURE)
_new = tuple.__new__


def parse(bytes data not None):
    """Read a PROXY header at the start of ``data``: ``(consumed, info)``;
    ``(0, None)`` while more bytes are needed. See ``proxyproto_py``."""
    cdef const unsigned char *p = <const unsigned char *>PyBytes_AS_STRING(data)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(data)
    if n == 0:
        return 0, None
    if p[0] == 13:
        return _parse_v2(p, n)
    return _parse_v1(p, n)


# --- version 1 ---


cdef tuple _parse_v1(const unsigned char *p, Py_ssize_t n):
    cdef Py_ssize_t i, end = -1
    cdef Py_ssize_t m = n if n < 6 else 6
    if memcmp(p, b"PROXY ", m) != 0:
        raise ProxyProtocolError("no PROXY protocol header")
    m = n if n < _V1_MAX else _V1_MAX
    for i in range(m):
        if p[i] == 10:
            raise ProxyProtocolError("PROXY v1: LF without CR")
        if p[i] == 13:
            end = i
            break
    if end < 0:
        if n >= _V1_MAX:
            raise ProxyProtocolError("PROXY v1: no CRLF within 107 bytes")
        return 0, None
    if end + 2 > _V1_MAX:  # the LF would be byte 108
        raise ProxyProtocolError("PROXY v1: no CRLF within 107 bytes")
    if end + 1 == n:
        return 0, None
    if p[end + 1] != 10:
        raise ProxyProtocolError("PROXY v1: CR not followed by LF")
    # The prefix matched, so end >= 6: the line is what lies between.
    return end + 2, _v1_line(p + 6, end - 6)


cdef object _v1_line(const unsigned char *s, Py_ssize_t n):
    # Field spans: the first five kept, all counted, as bytes.split(b" ") would.
    cdef Py_ssize_t starts[5]
    cdef Py_ssize_t ends[5]
    cdef Py_ssize_t i, start = 0, count = 0
    cdef bint empty = False, tcp4
    cdef unsigned char src4[4]
    cdef unsigned char dst4[4]
    cdef unsigned short src6[8]
    cdef unsigned short dst6[8]
    cdef bint src_ok, dst_ok
    cdef long sport, dport
    if n >= 7 and memcmp(s, b"UNKNOWN", 7) == 0 and (n == 7 or s[7] == 32):
        return None
    starts[0] = ends[0] = 0  # set by the loop; this keeps the compiler sure of it
    for i in range(n + 1):
        if i == n or s[i] == 32:
            if i == start:
                empty = True
            if count < 5:
                starts[count] = start
                ends[count] = i
            count += 1
            start = i + 1
    if ends[0] == 4 and memcmp(s, b"TCP4", 4) == 0:
        tcp4 = True
    elif ends[0] == 4 and memcmp(s, b"TCP6", 4) == 0:
        tcp4 = False
    else:
        raise ProxyProtocolError("PROXY v1: unknown protocol (expected TCP4, TCP6 or UNKNOWN)")
    if empty:
        raise ProxyProtocolError("PROXY v1: empty field (fields are separated by single spaces)")
    if count != 5:
        raise ProxyProtocolError("PROXY v1: expected 4 fields after the protocol")
    if tcp4:
        src_ok = _ipv4(s + starts[1], ends[1] - starts[1], src4)
        dst_ok = _ipv4(s + starts[2], ends[2] - starts[2], dst4)
        if not src_ok:
            raise ProxyProtocolError("PROXY v1: bad TCP4 source address")
        if not dst_ok:
            raise ProxyProtocolError("PROXY v1: bad TCP4 destination address")
    else:
        src_ok = _ipv6(s + starts[1], ends[1] - starts[1], src6)
        dst_ok = _ipv6(s + starts[2], ends[2] - starts[2], dst6)
        if not src_ok:
            raise ProxyProtocolError("PROXY v1: bad TCP6 source address")
        if not dst_ok:
            raise ProxyProtocolError("PROXY v1: bad TCP6 destination address")
    sport = _decimal(s + starts[3], ends[3] - starts[3], 65535)
    dport = _decimal(s + starts[4], ends[4] - starts[4], 65535)
    if sport < 0:
        raise ProxyProtocolError("PROXY v1: bad source port")
    if dport < 0:
        raise ProxyProtocolError("PROXY v1: bad destination port")
    if tcp4:
        # A strict dotted quad is already canonical: the field is the text.
        return _new(ProxyInfo, (
            "tcp4",
            PyBytes_FromStringAndSize(<const char *>s + starts[1], ends[1] - starts[1]),
            sport,
            PyBytes_FromStringAndSize(<const char *>s + starts[2], ends[2] - starts[2]),
            dport,
        ))
    return _new(ProxyInfo, ("tcp6", _format_ipv6(src6), sport, _format_ipv6(dst6), dport))


cdef long _decimal(const unsigned char *s, Py_ssize_t n, long most) noexcept:
    """1-5 digits without sign or leading zero, at most ``most``; else -1."""
    cdef long value = 0
    cdef Py_ssize_t i
    if n < 1 or n > 5 or (s[0] == 48 and n > 1):
        return -1
    for i in range(n):
        if s[i] < 48 or s[i] > 57:
            return -1
        value = value * 10 + (s[i] - 48)
    return value if value <= most else -1


cdef bint _ipv4(const unsigned char *s, Py_ssize_t n, unsigned char *octets) noexcept:
    """A strict dotted quad into ``octets``."""
    cdef Py_ssize_t i, start = 0
    cdef int parts = 0
    cdef long value
    for i in range(n + 1):
        if i == n or s[i] == 46:
            if parts == 4:
                return False
            value = _decimal(s + start, i - start, 255)
            if value < 0:
                return False
            octets[parts] = <unsigned char>value
            parts += 1
            start = i + 1
    return parts == 4


cdef bint _ipv6(const unsigned char *s, Py_ssize_t n, unsigned short *words) noexcept:
    """RFC 4291 text into eight 16-bit groups (the twin's ``_ipv6_words``)."""
    cdef unsigned short got[8]
    cdef unsigned char quad[4]
    cdef int count = 0, gap = -1, k, d
    cdef Py_ssize_t i = 0, start
    cdef long value
    if n >= 2 and s[0] == 58 and s[1] == 58:
        gap = 0
        i = 2
    elif n >= 1 and s[0] == 58:
        return False
    while i < n:
        if count == 8:
            return False
        start = i
        value = 0
        while i < n and i - start < 5:
            d = hex_digit(s[i])
            if d < 0:
                break
            value = value * 16 + d
            i += 1
        if i < n and s[i] == 46:  # the group was the start of a dotted quad
            if count > 6 or not _ipv4(s + start, n - start, quad):
                return False
            got[count] = <unsigned short>(quad[0] << 8 | quad[1])
            got[count + 1] = <unsigned short>(quad[2] << 8 | quad[3])
            count += 2
            break
        if i == start or i - start > 4:
            return False
        got[count] = <unsigned short>value
        count += 1
        if i == n:
            break
        if s[i] != 58:
            return False
        i += 1
        if i < n and s[i] == 58:
            if gap >= 0:
                return False
            gap = count
            i += 1
        elif i == n:  # one trailing ':'
            return False
    if gap < 0:
        if count != 8:
            return False
        gap = 8
    elif count > 7:
        return False
    for k in range(gap):
        words[k] = got[k]
    for k in range(gap, gap + 8 - count):
        words[k] = 0
    for k in range(gap, count):
        words[k + 8 - count] = got[k]
    return True


cdef bytes _format_ipv4(const unsigned char *b):
    cdef char buf[16]
    cdef char *end = put_quad(buf, b[0], b[1], b[2], b[3])
    return PyBytes_FromStringAndSize(buf, end - buf)


cdef bytes _format_ipv6(const unsigned short *w):
    """RFC 5952 text, as the twin's ``_format_ipv6``: an IPv4-mapped address
    with its dotted-quad tail."""
    cdef char buf[48]
    cdef char *out = buf
    cdef unsigned int groups[8]
    cdef int i
    if w[0] == 0 and w[1] == 0 and w[2] == 0 and w[3] == 0 and w[4] == 0 and w[5] == 0xFFFF:
        out[0] = b':'
        out[1] = b':'
        out[2] = b'f'
        out[3] = b'f'
        out[4] = b'f'
        out[5] = b'f'
        out[6] = b':'
        out = put_quad(out + 7, w[6] >> 8, w[6] & 255, w[7] >> 8, w[7] & 255)
        return PyBytes_FromStringAndSize(buf, out - buf)
    for i in range(8):
        groups[i] = w[i]
    return PyBytes_FromStringAndSize(buf, put_ipv6_groups(buf, groups) - buf)


# --- version 2 ---


cdef tuple _parse_v2(const unsigned char *p, Py_ssize_t n):
    cdef Py_ssize_t m = n if n < 12 else 12
    cdef int version, command, fam, block = 0
    cdef Py_ssize_t length, total
    cdef unsigned short src6[8]
    cdef unsigned short dst6[8]
    cdef int k
    if memcmp(p, _SIG, m) != 0:
        raise ProxyProtocolError("no PROXY protocol header")
    if n < 13:
        return 0, None
    version = p[12] >> 4
    command = p[12] & 15
    if version != 2:
        raise ProxyProtocolError(f"PROXY v2: unsupported version {version}")
    if command > 1:
        raise ProxyProtocolError(f"PROXY v2: unknown command {command}")
    if n < 14:
        return 0, None
    fam = p[13]
    if command == 1:
        if fam == 0x12 or fam == 0x22 or fam == 0x32:
            raise ProxyProtocolError("PROXY v2: datagram (UDP) transport is not supported")
        if fam == 0x00:
            block = 0
        elif fam == 0x11:
            block = 12
        elif fam == 0x21:
            block = 36
        elif fam == 0x31:
            block = 216
        else:
            raise ProxyProtocolError(
                f"PROXY v2: unknown address family/transport 0x{fam:02x}"
            )
    if n < 16:
        return 0, None
    length = p[14] << 8 | p[15]
    if length > _V2_MAX:
        raise ProxyProtocolError(
            f"PROXY v2: length {length} exceeds the {_V2_MAX}-byte cap"
        )
    if length < block:
        raise ProxyProtocolError(
            f"PROXY v2: length {length} is shorter than the {block}-byte address block"
        )
    total = 16 + length
    if n < total:
        return 0, None
    if command == 0 or fam == 0x00:
        return total, None
    _skip_tlvs(p, 16 + block, total)
    if fam == 0x11:
        return total, _new(ProxyInfo, (
            "tcp4",
            _format_ipv4(p + 16),
            p[24] << 8 | p[25],
            _format_ipv4(p + 20),
            p[26] << 8 | p[27],
        ))
    if fam == 0x21:
        for k in range(8):
            src6[k] = <unsigned short>(p[16 + 2 * k] << 8 | p[17 + 2 * k])
            dst6[k] = <unsigned short>(p[32 + 2 * k] << 8 | p[33 + 2 * k])
        return total, _new(ProxyInfo, (
            "tcp6",
            _format_ipv6(src6),
            p[48] << 8 | p[49],
            _format_ipv6(dst6),
            p[50] << 8 | p[51],
        ))
    return total, None  # AF_UNIX: the addresses are paths, of no use to a proxy


cdef int _skip_tlvs(const unsigned char *p, Py_ssize_t i, Py_ssize_t end) except -1:
    while i < end:
        if end - i < 3:
            raise ProxyProtocolError("PROXY v2: truncated TLV")
        i += 3 + (p[i + 1] << 8 | p[i + 2])
        if i > end:
            raise ProxyProtocolError("PROXY v2: TLV overruns the header")
    return 0
