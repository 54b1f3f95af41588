# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False, embedsignature=True, autotestdict=False
"""Longest-prefix match of client addresses, compiled.

``cidr_py.py`` is the pure twin and the reference: read its docstring for
which networks and addresses are accepted and what comes back. Both must
return equal values and raise the same errors for every input; the test
suite checks that, and both against ``ipaddress``, with hypothesis.

The table is built by the twin's own ``split_networks`` and ``ranges`` (so
errors and ranges are the same objects' work) and copied into C arrays:
IPv4 range starts as uint32, IPv6 ones as (high, low) uint64 pairs, values as
int32. A lookup reads the address text through a pointer, parses it into
those integers following ``ipaddress``'s rules step by step (the same splits,
the same part counts, the same checks, so the two cannot drift apart on odd
input), and binary-searches the starts. Nothing is allocated but the result.

Bounds checking is off: the parser writes its part arrays only below the
counts it checks first, and the searches stay within 0..n-1.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from libc.stdint cimport int32_t, uint32_t, uint64_t

from lbproxy._fast.addrtext cimport hex_digit, put_ipv6_groups, put_quad
from lbproxy._fast.lines cimport line_end, region

from lbproxy._fast.cidr_py import MAX_VALUE, check_ranges, ranges, split_networks
from lbproxy._fast.cidr_py import locate_lines as _twin_locate_lines

__all__ = ["MAX_VALUE", "CidrTable", "canonical", "forwarded_client", "locate"]

cdef extern from "Python.h":
    # A macro over the string's header: no method call, no allocation.
    bint PyUnicode_IS_ASCII(object o)
    const char *PyUnicode_AsUTF8AndSize(object o, Py_ssize_t *size) except NULL
    object PyUnicode_FromStringAndSize(const char *s, Py_ssize_t size)


cdef struct Address:
    int version  # 4, 6, or 0: not an address
    uint32_t v4
    uint64_t hi
    uint64_t lo


# --- reading addresses ---


cdef bint _text(object ip, const unsigned char **p, Py_ssize_t *n) except -1:
    """Point at ``ip``'s characters; False for text that cannot be an address."""
    if isinstance(ip, bytes):
        p[0] = <const unsigned char *>PyBytes_AS_STRING(ip)
        n[0] = PyBytes_GET_SIZE(ip)
        return True
    if isinstance(ip, str):
        if not PyUnicode_IS_ASCII(ip):
            return False
        # ASCII text is its own UTF-8: this is the string's buffer, not a copy.
        p[0] = <const unsigned char *>PyUnicode_AsUTF8AndSize(ip, n)
        return True
    raise TypeError(f"an address is bytes or str, got {type(ip).__name__}")


cdef bint _ipv4(const unsigned char *s, Py_ssize_t n, uint32_t *out) noexcept nogil:
    """A dotted quad as ``ipaddress._parse_octet`` reads one: four parts of 1-3
    ASCII digits, no leading zero but in "0", each at most 255."""
    cdef uint32_t acc = 0, octet = 0
    cdef int dots = 0, digits = 0
    cdef Py_ssize_t i
    cdef unsigned char c
    for i in range(n):
        c = s[i]
        if c == 46:  # '.'
            if digits == 0 or dots == 3:
                return False
            acc = acc << 8 | octet
            dots += 1
            digits = 0
            octet = 0
        elif 48 <= c <= 57:
            if digits == 3 or (digits == 1 and octet == 0):
                return False
            octet = octet * 10 + (c - 48)
            if octet > 255:
                return False
            digits += 1
        else:
            return False
    if dots != 3 or digits == 0:
        return False
    out[0] = acc << 8 | octet
    return True


cdef inline bint _pack(const uint32_t *words, Address *a) noexcept nogil:
    """Eight 16-bit groups into ``a``; an IPv4-mapped address becomes the
    IPv4 client it stands for. Both IPv6 parsers end here. Always True."""
    a.hi = (<uint64_t>words[0] << 48 | <uint64_t>words[1] << 32
            | <uint64_t>words[2] << 16 | <uint64_t>words[3])
    a.lo = (<uint64_t>words[4] << 48 | <uint64_t>words[5] << 32
            | <uint64_t>words[6] << 16 | <uint64_t>words[7])
    if a.hi == 0 and a.lo >> 32 == 0xFFFF:  # IPv4-mapped: an IPv4 client
        a.version = 4
        a.v4 = <uint32_t>a.lo  # the low 32 bits
    else:
        a.version = 6
    return True


cdef bint _ipv6_plain(const unsigned char *s, Py_ssize_t n, Address *a) noexcept nogil:
    """The usual IPv6 text in one pass: groups of 1-4 hex digits separated
    by ':', with at most one '::' standing for one zero group or more. False
    for anything else (a zone, an IPv4 tail, a slip), which ``_ipv6`` then
    reads by ``ipaddress``'s rules; every text this accepts, ``_ipv6``
    accepts with the same value, so this only saves its five passes."""
    cdef uint32_t words[8]
    cdef Py_ssize_t i = 0, k, m
    cdef int count = 0, skip = -1, digits, d
    cdef uint32_t value
    if n < 2:
        return False
    if s[0] == 58:  # ':' opens only "::"
        if s[1] != 58:
            return False
        skip = 0
        i = 2
    while i < n:
        value = 0
        digits = 0
        while i < n:
            d = hex_digit(s[i])
            if d < 0:
                break
            value = value << 4 | <uint32_t>d
            digits += 1
            i += 1
        if digits == 0 or digits > 4 or count == 8:
            return False
        words[count] = value
        count += 1
        if i == n:
            break
        if s[i] != 58:  # '.', '%', '/' or garbage: the general reader decides
            return False
        i += 1
        if i == n:
            return False  # a lone ':' at the end
        if s[i] == 58:
            if skip >= 0:
                return False
            skip = count
            i += 1
    if skip < 0:
        if count != 8:
            return False
    else:
        if count > 7:
            return False
        # Move the groups after "::" to the end; zeros between.
        m = 8 - count
        for k in range(count - 1, skip - 1, -1):
            words[k + m] = words[k]
        for k in range(skip, skip + m):
            words[k] = 0
    return _pack(words, a)


cdef bint _ipv6(const unsigned char *s, Py_ssize_t n, Address *a) noexcept nogil:
    """IPv6 text as ``ipaddress.IPv6Address`` reads it (Python 3.11's
    ``_split_scope_id`` and ``_ip_int_from_string``), step for step."""
    # Parts as spans; a dotted-quad tail becomes two parts with known values.
    cdef Py_ssize_t starts[10]
    cdef Py_ssize_t ends[10]
    cdef long known[10]  # -1: parse the span
    cdef uint32_t words[8]
    cdef uint32_t tail
    cdef Py_ssize_t i, end = n, pct = -1, start = 0
    cdef int count = 0, total, skip = -1, hi, lo, k, d, j
    cdef long value
    for i in range(n):
        if s[i] == 47:  # '/' anywhere
            return False
        if s[i] == 37:  # '%': the zone follows, non-empty, without another '%'
            if pct >= 0:
                return False
            pct = i
    if pct >= 0:
        if pct == n - 1:
            return False
        end = pct
    for i in range(end + 1):
        if i == end or s[i] == 58:  # ':'
            if count == 9:  # ten parts: more than "at most 8 colons" allows
                return False
            starts[count] = start
            ends[count] = i
            known[count] = -1
            count += 1
            start = i + 1
    if count < 3:
        return False
    total = count
    for i in range(starts[count - 1], ends[count - 1]):
        if s[i] == 46:  # '.' in the last part: an IPv4 tail, two parts
            if not _ipv4(s + starts[count - 1], ends[count - 1] - starts[count - 1], &tail):
                return False
            if count == 9:
                return False
            known[count - 1] = tail >> 16
            known[count] = tail & 0xFFFF
            total = count + 1
            break
    # Disregarding the ends, an empty part is where "::" stands.
    for k in range(1, total - 1):
        if known[k] < 0 and starts[k] == ends[k]:
            if skip >= 0:
                return False
            skip = k
    if skip >= 0:
        hi = skip
        lo = total - skip - 1
        if known[0] < 0 and starts[0] == ends[0]:
            hi -= 1
            if hi:
                return False
        if known[total - 1] < 0 and starts[total - 1] == ends[total - 1]:
            lo -= 1
            if lo:
                return False
        if hi + lo > 7:
            return False
    else:
        if total != 8:
            return False
        hi = 8
        lo = 0
    for k in range(8):
        words[k] = 0
    for k in range(hi + lo):
        j = k if k < hi else total - lo + (k - hi)
        if known[j] >= 0:
            value = known[j]
        else:
            if ends[j] - starts[j] < 1 or ends[j] - starts[j] > 4:
                return False
            value = 0
            for i in range(starts[j], ends[j]):
                d = hex_digit(s[i])
                if d < 0:
                    return False
                value = value * 16 + d
        words[k if k < hi else 8 - lo + (k - hi)] = <uint32_t>value
    return _pack(words, a)


cdef bint _parse(object ip, Address *a) except -1:
    cdef const unsigned char *s
    cdef Py_ssize_t n
    a.version = 0
    if not _text(ip, &s, &n):
        return False
    return _parse_chars(s, n, a)


cdef bint _parse_chars(const unsigned char *s, Py_ssize_t n, Address *a) noexcept:
    cdef Py_ssize_t i
    a.version = 0
    for i in range(n):
        if s[i] == 58:  # IPv6 text has two ':' at least; IPv4 text has none
            return _ipv6_plain(s, n, a) or _ipv6(s, n, a)
    if _ipv4(s, n, &a.v4):
        a.version = 4
        return True
    return False


# --- writing them ---


cdef str _format_ipv4(uint32_t v):
    cdef char buf[16]
    cdef char *out = put_quad(buf, v >> 24, (v >> 16) & 255, (v >> 8) & 255, v & 255)
    return PyUnicode_FromStringAndSize(buf, out - buf)


cdef str _format_ipv6(uint64_t hi, uint64_t lo):
    """RFC 5952 text, as ``str(IPv6Address)``."""
    cdef unsigned int w[8]
    cdef char buf[48]
    cdef int i
    for i in range(4):
        w[i] = (hi >> (48 - 16 * i)) & 0xFFFF
        w[i + 4] = (lo >> (48 - 16 * i)) & 0xFFFF
    return PyUnicode_FromStringAndSize(buf, put_ipv6_groups(buf, w) - buf)


def canonical(ip):
    """``ip`` as a dotted quad (IPv4, mapped IPv6) or RFC 5952 text; None
    when it is not an address. See ``cidr_py``."""
    cdef Address a
    if not _parse(ip, &a):
        return None
    if a.version == 4:
        return _format_ipv4(a.v4)
    return _format_ipv6(a.hi, a.lo)


# --- the table ---

# One index entry per value of the top 16 bits, and one past the last.
cdef enum:
    _INDEX_SIZE = 65537


cdef class CidrTable:
    """Longest-prefix match over IPv4 and IPv6 networks; see ``cidr_py``."""

    cdef uint32_t *_v4_starts
    cdef int32_t *_v4_values
    cdef Py_ssize_t _v4_n
    cdef uint64_t *_v6_hi
    cdef uint64_t *_v6_lo
    cdef int32_t *_v6_values
    cdef Py_ssize_t _v6_n
    cdef Py_ssize_t _size
    # Per family, for each value k of an address's top 16 bits: the first
    # range starting at or above k << (bits - 16). A lookup then searches only
    # between two neighbouring entries: a few ranges instead of all of them,
    # so a table of a whole MaxMind DB (~800k ranges) costs one or two cache
    # misses per lookup, not one per level of a binary search.
    cdef uint32_t *_v4_index
    cdef uint32_t *_v6_index

    # No __cinit__: a new extension object is zero-filled, so every array
    # starts NULL and every count 0 until _fill.

    def __init__(self, entries):
        v4, v6 = split_networks(entries)
        starts4, values4 = ranges(v4, 32)
        starts6, values6 = ranges(v6, 128)
        self._fill(starts4, values4, starts6, values6, len(v4) + len(v6))

    @classmethod
    def from_ranges(cls, v4, v6):
        """A table of ready-made ranges, ``(starts, values)`` per family; see
        ``cidr_py.check_ranges``."""
        cdef CidrTable table
        size = check_ranges(v4[0], v4[1], 32) + check_ranges(v6[0], v6[1], 128)
        table = cls.__new__(cls)
        table._fill(v4[0], v4[1], v6[0], v6[1], size)
        return table

    cdef _fill(self, starts4, values4, starts6, values6, Py_ssize_t size):
        cdef Py_ssize_t i, n4 = len(starts4), n6 = len(starts6)
        self._release()  # __init__ called again: the old arrays go
        # At least one element each: malloc(0) may return NULL.
        self._v4_starts = <uint32_t *>PyMem_Malloc((n4 or 1) * sizeof(uint32_t))
        self._v4_values = <int32_t *>PyMem_Malloc((n4 or 1) * sizeof(int32_t))
        self._v6_hi = <uint64_t *>PyMem_Malloc((n6 or 1) * sizeof(uint64_t))
        self._v6_lo = <uint64_t *>PyMem_Malloc((n6 or 1) * sizeof(uint64_t))
        self._v6_values = <int32_t *>PyMem_Malloc((n6 or 1) * sizeof(int32_t))
        self._v4_index = <uint32_t *>PyMem_Malloc(_INDEX_SIZE * sizeof(uint32_t))
        self._v6_index = <uint32_t *>PyMem_Malloc(_INDEX_SIZE * sizeof(uint32_t))
        if (self._v4_starts == NULL or self._v4_values == NULL or self._v6_hi == NULL
                or self._v6_lo == NULL or self._v6_values == NULL
                or self._v4_index == NULL or self._v6_index == NULL):
            self._release()
            raise MemoryError()
        for i in range(n4):
            self._v4_starts[i] = starts4[i]
            self._v4_values[i] = values4[i]
        for i in range(n6):
            start = starts6[i]
            self._v6_hi[i] = start >> 64
            self._v6_lo[i] = start & 0xFFFFFFFFFFFFFFFF
            self._v6_values[i] = values6[i]
        self._v4_n = n4
        self._v6_n = n6
        self._size = size
        cdef Py_ssize_t k, at = 0
        for k in range(_INDEX_SIZE):
            while at < n4 and (self._v4_starts[at] >> 16) < <uint64_t>k:
                at += 1
            self._v4_index[k] = <uint32_t>at
        at = 0
        for k in range(_INDEX_SIZE):
            while at < n6 and (self._v6_hi[at] >> 48) < <uint64_t>k:
                at += 1
            self._v6_index[k] = <uint32_t>at

    cdef void _release(self) noexcept:
        PyMem_Free(self._v4_starts)
        PyMem_Free(self._v4_values)
        PyMem_Free(self._v6_hi)
        PyMem_Free(self._v6_lo)
        PyMem_Free(self._v6_values)
        PyMem_Free(self._v4_index)
        PyMem_Free(self._v6_index)
        self._v4_index = NULL
        self._v6_index = NULL
        self._v4_starts = NULL
        self._v4_values = NULL
        self._v6_hi = NULL
        self._v6_lo = NULL
        self._v6_values = NULL
        self._v4_n = self._v6_n = self._size = 0

    def __dealloc__(self):
        self._release()

    def __len__(self):
        """The number of distinct networks (``from_ranges``: of ranges that
        hold a value)."""
        return self._size

    def lookup(self, ip):
        """The value of the longest network holding ``ip``; -1 for none, or
        when ``ip`` is not an address."""
        cdef Address a
        if not _parse(ip, &a):
            return -1
        if a.version == 4:
            return self._find4(a.v4)
        return self._find6(a.hi, a.lo)

    cdef int32_t _find4(self, uint32_t x) noexcept:
        # Last start <= x; starts[0] is 0, so there is one. Every range
        # starting below x's 16-bit block lies before index[k], every one
        # starting above it at or after index[k + 1]: the answer is between.
        cdef Py_ssize_t low, high, mid, k = x >> 16
        if self._v4_n == 0:  # never initialised
            return -1
        low = self._v4_index[k]
        low = low - 1 if low > 0 else 0
        high = self._v4_index[k + 1]
        while high - low > 1:
            mid = (low + high) >> 1
            if self._v4_starts[mid] <= x:
                low = mid
            else:
                high = mid
        return self._v4_values[low]

    cdef int32_t _find6(self, uint64_t hi, uint64_t lo) noexcept:
        cdef Py_ssize_t low, high, mid, k = hi >> 48
        cdef uint64_t mh
        if self._v6_n == 0:
            return -1
        low = self._v6_index[k]
        low = low - 1 if low > 0 else 0
        high = self._v6_index[k + 1]
        while high - low > 1:
            mid = (low + high) >> 1
            mh = self._v6_hi[mid]
            if mh < hi or (mh == hi and self._v6_lo[mid] <= lo):
                low = mid
            else:
                high = mid
        return self._v6_values[low]


# --- X-Forwarded-For ---


cdef inline bint _is_xff_at(const unsigned char *p, Py_ssize_t n) noexcept:
    """``p[:n]`` is X-Forwarded-For, in any case."""
    cdef const unsigned char *want = b"x-forwarded-for"
    cdef Py_ssize_t i
    cdef unsigned char c
    if n != 15:
        return False
    for i in range(15):
        c = p[i]
        if 65 <= c <= 90:
            c += 32
        if c != want[i]:
            return False
    return True


cdef bint _is_xff(bytes name) noexcept:
    """``name`` is X-Forwarded-For, in any case."""
    return _is_xff_at(<const unsigned char *>PyBytes_AS_STRING(name), PyBytes_GET_SIZE(name))


cdef bint _walk_value(
    const unsigned char *p, Py_ssize_t end, CidrTable trusted, Address *a, Py_ssize_t *n,
    const unsigned char **found,
) noexcept:
    """One X-Forwarded-For value's hops (``p[:end]``), from the right, for
    ``_walk``: True when the walk ends here, with its answer in ``found``
    (unchanged when garbage ends it), False to go on to the field before."""
    cdef Py_ssize_t start, s, e
    cdef Address hop
    cdef int32_t hit
    while end >= 0:
        start = end - 1
        while start >= 0 and p[start] != 44:  # ','
            start -= 1
        s = start + 1
        e = end
        while s < e and (p[s] == 32 or p[s] == 9):
            s += 1
        while e > s and (p[e - 1] == 32 or p[e - 1] == 9):
            e -= 1
        end = start
        if s == e:
            continue  # an empty hop: skipped
        if not _parse_chars(p + s, e - s, &hop):
            return True  # garbage ends the walk at the last good hop
        found[0] = p + s
        n[0] = e - s
        a[0] = hop
        if trusted is None:
            return True
        hit = trusted._find4(hop.v4) if hop.version == 4 else trusted._find6(hop.hi, hop.lo)
        if hit < 0:
            return True
    return False


cdef const unsigned char *_walk(
    list headers, CidrTable trusted, Address *a, Py_ssize_t *n
) except? NULL:
    """The nearest X-Forwarded-For hop that is not a trusted proxy: its text
    (a pointer into the field's bytes, which ``headers`` keeps alive; length
    in ``n``) with its parsed address in ``a``; NULL for none usable (the
    peer stands). See ``cidr_py.forwarded_client``. The fields' bytes are
    walked from the right, each hop parsed where it lies."""
    cdef const unsigned char *found = NULL
    cdef Py_ssize_t f
    cdef bytes value
    for f in range(len(headers) - 1, -1, -1):
        field = <tuple>headers[f]
        if not _is_xff(<bytes?>field[0]):
            continue
        value = <bytes?>field[1]
        if _walk_value(
            <const unsigned char *>PyBytes_AS_STRING(value), PyBytes_GET_SIZE(value),
            trusted, a, n, &found,
        ):
            return found
    return found


cdef enum:
    MAX_XFF_LINES = 32  # read in place; a request with more goes to the twin


cdef const unsigned char *_walk_lines(
    const unsigned char *d, Py_ssize_t i, Py_ssize_t stop, CidrTable trusted, Address *a,
    Py_ssize_t *n, bint *ok,
) noexcept:
    """``_walk`` over the field lines at ``d[i:stop]``, read in place;
    ``ok`` false for lines that do not end in CRLF, or too many
    X-Forwarded-For lines, which the twin then reads. The lines must be valid
    field lines (h1.parse_request_lines checked them): names are not
    checked here."""
    cdef const unsigned char *found = NULL
    cdef Py_ssize_t at[MAX_XFF_LINES]
    cdef Py_ssize_t size[MAX_XFF_LINES]
    cdef Py_ssize_t count = 0, k, cr
    ok[0] = False
    while i < stop:
        cr = line_end(d, i, stop)
        if cr < 0:
            return NULL
        # A valid line's name ends at its first colon: X-Forwarded-For's is
        # the 15 bytes before a colon at 15, and any other line is skipped
        # without looking for its colon.
        if cr - i >= 15 and d[i + 15] == 58 and _is_xff_at(d + i, 15):
            if count == MAX_XFF_LINES:
                return NULL
            # The value untrimmed: each hop is trimmed of SP and HTAB anyway.
            at[count] = i + 16
            size[count] = cr - (i + 16)
            count += 1
        i = cr + 2
    ok[0] = True
    for k in range(count - 1, -1, -1):
        if _walk_value(d + at[k], size[k], trusted, a, n, &found):
            return found
    return found


def forwarded_client(bytes peer, list headers, CidrTable trusted):
    """The nearest X-Forwarded-For hop that is not a trusted proxy; see
    ``cidr_py.forwarded_client``. Only the answer becomes an object."""
    cdef Address a
    cdef Py_ssize_t n = 0
    cdef const unsigned char *found = _walk(headers, trusted, &a, &n)
    if found == NULL:
        return peer
    return PyBytes_FromStringAndSize(<const char *>found, n)


cdef inline int32_t _find(CidrTable table, Address *a) noexcept:
    if table is None:
        return -1
    if a.version == 4:
        return table._find4(a.v4)
    return table._find6(a.hi, a.lo)


def locate_lines(bytes peer, bint trusted, data, start, stop, CidrTable trusted_table,
                 CidrTable first, CidrTable second):
    """``locate`` with the request's fields as the lines at ``data[start:stop]``
    (a region that ``h1.parse_request_lines`` found valid), read in place:
    no (name, value) list is made. See ``cidr_py.locate_lines``."""
    cdef Address a
    cdef Py_ssize_t n = 0, s, e
    cdef bint ok = True
    cdef const unsigned char *found = NULL
    cdef int32_t hit
    if trusted:
        if not region(data, start, stop, &s, &e):
            return _twin_locate_lines(peer, trusted, data, start, stop, trusted_table, first, second)
        found = _walk_lines(
            <const unsigned char *>PyBytes_AS_STRING(data), s, e, trusted_table, &a, &n, &ok
        )
        if not ok:
            return _twin_locate_lines(peer, trusted, data, start, stop, trusted_table, first, second)
    if found == NULL:
        if not _parse(peer, &a):
            return -1
    hit = _find(first, &a)
    if hit < 0:
        hit = _find(second, &a)
    return hit


def locate(bytes peer, bint trusted, list headers, CidrTable trusted_table,
           CidrTable first, CidrTable second):
    """The value of the client's address in ``first``, else in ``second``
    (either may be None); -1 for none. See ``cidr_py.locate``. The address
    is parsed once, where it lies, and no object is made for it."""
    cdef Address a
    cdef Py_ssize_t n = 0
    cdef int32_t found
    if not trusted or _walk(headers, trusted_table, &a, &n) == NULL:
        if not _parse(peer, &a):
            return -1
    found = _find(first, &a)
    if found < 0:
        found = _find(second, &a)
    return found
