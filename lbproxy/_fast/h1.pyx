# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False, embedsignature=True, autotestdict=False
"""HTTP/1.x message heads and chunked bodies, parsed strictly (compiled).

``h1_py.py`` is the pure twin and the reference: read its docstring for the
grammar. Both return equal values and raise ``ParseError`` with the same
message and status for every input; the test suite checks that with
hypothesis. This file only differs in how the work is done:

* a head is parsed optimistically in one pass over the buffer, straight into
  the result: start line, then each field's name and (trimmed) value sliced
  out. Bytes are classified by 256-entry tables, and the long runs (targets,
  values) eight at a time first (SWAR). The scans need no bounds checks: a
  ``bytes`` buffer always ends with a NUL byte (documented for
  ``PyBytes_AsString``), which no table accepts, so every scan stops at the
  end of the data at the latest. The commonest methods and field names (as
  browsers and servers spell them) come back as shared objects, not new ones;
* a head the fast pass does not accept whole (incomplete, or malformed) goes to
  ``_diagnose``, which repeats the twin's checks in the twin's order (bare LF,
  then bare CR, then "incomplete", then the start line, then each field) and so
  returns ``None`` or raises the error the twin would raise. Anything the twin
  accepts the fast pass accepts too, so a diagnosis that finds nothing wrong is
  a bug of ours (``SystemError``);
* ``ChunkedDecoder`` copies the chunk data found in one ``feed`` into a single
  result (the input itself when it is all data), never joining a list.

Inputs outside the contract of the head parsers (``data`` not exactly
``bytes``, ``pos`` not an ``int`` from 0 to ``sys.maxsize``) are handed to the
pure twin as a whole, so they too behave identically. ``ChunkedDecoder.feed``
takes only ``bytes`` and ``pos >= 0`` (``TypeError``, ``ValueError``), and
``max_trailer_bytes`` must fit a C ``Py_ssize_t``.
"""

cimport cython
from cpython.object cimport PyObject
from cpython.ref cimport Py_XDECREF
from libc.string cimport memchr, memcmp, memcpy

cdef extern from "Python.h":
    bint PyBytes_CheckExact(object o)
    bint PyLong_CheckExact(object o)
    char *PyBytes_AS_STRING(object o)
    Py_ssize_t PyBytes_GET_SIZE(object o)
    bytes PyBytes_FromStringAndSize(const char *s, Py_ssize_t n)
    # The raw forms, for the payload buffer filled in place then shrunk.
    PyObject *_bytes_new "PyBytes_FromStringAndSize"(const char *s, Py_ssize_t n) except NULL
    char *_bytes_buf "PyBytes_AS_STRING"(PyObject *o)
    int _PyBytes_Resize(PyObject **o, Py_ssize_t n) except -1
    Py_ssize_t _as_ssize "PyLong_AsSsize_t"(object o) noexcept
    PyObject *PyErr_Occurred()
    void PyErr_Clear()
    const Py_ssize_t PY_SSIZE_T_MIN

__all__ = [
    "ChunkedDecoder",
    "ParseError",
    "field_list",
    "parse_request_head",
    "parse_request_lines",
    "parse_response_head",
    "parse_response_lines",
]

cdef enum:
    _MAX_LEADING_EMPTY_LINES = 8
    _MAX_CHUNK_LINE = 4096
    _MAX_CHUNK_SIZE_DIGITS = 15

# Longest run of empty lines skipped before a request line.
MAX_LEADING_EMPTY_LINES = _MAX_LEADING_EMPTY_LINES
# Longest chunk-size line (size + extensions) accepted.
MAX_CHUNK_LINE = _MAX_CHUNK_LINE
# 15 hex digits: every size fits an int64 with room to add to it.
MAX_CHUNK_SIZE_DIGITS = _MAX_CHUNK_SIZE_DIGITS


class ParseError(ValueError):
    """A malformed message: ``status`` is what a client should be answered
    (400, or 505 for an unsupported HTTP version); the connection closes."""

    def __init__(self, message, status=400):
        super().__init__(message)
        self.status = status


# -- character classes ---------------------------------------------------------------

cdef enum:
    C_TOKEN = 1    # tchar (RFC 9110 5.6.2)
    C_VALUE = 2    # field-value byte: HTAB, SP, VCHAR, obs-text
    C_TARGET = 4   # VCHAR: request-target byte
    C_HEX = 8      # HEXDIG, either case

cdef unsigned char _CLASS[256]


cdef void _init_classes() noexcept:
    cdef int c
    cdef unsigned char f
    cdef const char *tchar = b"!#$%&'*+-.^_`|~"
    for c in range(256):
        f = 0
        if c == 9 or 32 <= c <= 126 or c >= 128:
            f |= C_VALUE
        if 33 <= c <= 126:
            f |= C_TARGET
        if 48 <= c <= 57 or 65 <= c <= 90 or 97 <= c <= 122:
            f |= C_TOKEN
        elif c != 0 and memchr(tchar, c, 15) != NULL:
            f |= C_TOKEN
        if 48 <= c <= 57 or 65 <= c <= 70 or 97 <= c <= 102:
            f |= C_HEX
        _CLASS[c] = f


_init_classes()

# Shared results for the commonest methods and reason, instead of a new object each.
cdef bytes _GET = b"GET"
cdef bytes _POST = b"POST"
cdef bytes _HEAD = b"HEAD"
cdef bytes _PUT = b"PUT"
cdef bytes _OK = b"OK"


# Eight bytes at a time (SWAR): a word passes when no byte of it needs a look
# of its own. HASLESS(x, n) is non-zero iff some byte of x is below n (n <= 128).
cdef extern from *:
    """
    #include <stdint.h>
    #include <string.h>
    #define H1_ONES 0x0101010101010101ULL
    #define H1_HIGH 0x8080808080808080ULL
    #define H1_HASLESS(x, n) (((x) - H1_ONES * (n)) & ~(x) & H1_HIGH)
    static inline uint64_t h1_load8(const unsigned char *p) {
        uint64_t x;
        memcpy(&x, p, 8);
        return x;
    }
    /* Eight field-value bytes other than HTAB: none below 0x20, no DEL. */
    static inline int h1_value8(const unsigned char *p) {
        uint64_t x = h1_load8(p);
        return !(H1_HASLESS(x, 0x20) | H1_HASLESS(x ^ (H1_ONES * 0x7f), 1));
    }
    /* Eight VCHAR bytes: none below 0x21, none from 0x7f up. */
    static inline int h1_vchar8(const unsigned char *p) {
        uint64_t x = h1_load8(p);
        return !(H1_HASLESS(x, 0x21) | (x & H1_HIGH) | H1_HASLESS(x ^ (H1_ONES * 0x7f), 1));
    }
    """
    bint h1_value8(const unsigned char *p) noexcept nogil
    bint h1_vchar8(const unsigned char *p) noexcept nogil


cdef inline bint _unended(const unsigned char *d, Py_ssize_t pos, Py_ssize_t n) noexcept nogil:
    """True when ``d[pos:n]`` holds no CRLFCRLF, so the head cannot be complete.

    A head that arrives in pieces (a slow client, a slowloris drip) is looked
    at again with each piece; building its fields each time only to throw
    them away cost ~4k instructions per piece. The usual head fills its read
    exactly, so its last four bytes answer without a search; otherwise the
    search goes from LF to LF (memchr is vectorised; glibc's memmem is not)."""
    cdef const unsigned char *q = d + pos
    cdef const unsigned char *e = d + n
    if n - pos >= 4 and e[-4] == 13 and e[-3] == 10 and e[-2] == 13 and e[-1] == 10:
        return False
    while True:
        q = <const unsigned char *>memchr(q, 10, e - q)
        if q == NULL:
            return True
        if e - q > 2 and q[1] == 13 and q[2] == 10 and q > d + pos and q[-1] == 13:
            return False
        q += 1


# Field names common enough to be shared rather than allocated per head,
# spelled as browsers and servers send them; the commonest first for their
# length. Looked up by length, first and last byte, then compared in full.
cdef enum:
    NAME_MAX_LEN = 32
    NAME_SLOTS = 4

cdef PyObject *_NAME_TABLE[NAME_MAX_LEN + 1][NAME_SLOTS]
cdef list _NAME_REFS = []  # keeps the table's objects alive


cdef int _init_names() except -1:
    cdef bytes name
    cdef Py_ssize_t n, k
    for name in (
        b"Host", b"User-Agent", b"Accept", b"Accept-Language", b"Accept-Encoding",
        b"Connection", b"Cookie", b"Referer", b"Content-Length", b"Content-Type",
        b"Cache-Control", b"Upgrade-Insecure-Requests", b"Origin", b"Authorization",
        b"X-Forwarded-For", b"X-Forwarded-Proto", b"Priority", b"Sec-Fetch-Dest",
        b"Sec-Fetch-Mode", b"Sec-Fetch-Site", b"If-None-Match", b"If-Modified-Since",
        b"Date", b"Server", b"Set-Cookie", b"Vary", b"ETag", b"Last-Modified",
        b"Expires", b"Location", b"Transfer-Encoding", b"Keep-Alive",
        b"Content-Encoding", b"Age", b"Via", b"Strict-Transport-Security",
    ):
        n = len(name)
        for k in range(NAME_SLOTS):
            if _NAME_TABLE[n][k] == NULL:
                _NAME_REFS.append(name)
                _NAME_TABLE[n][k] = <PyObject *>name
                break
        else:
            raise SystemError(f"lbproxy._fast.h1: no slot for {name!r}")
    return 0


_init_names()


cdef inline bytes _name(const unsigned char *p, Py_ssize_t n):
    cdef Py_ssize_t k
    cdef PyObject *o
    cdef const unsigned char *q
    if n <= NAME_MAX_LEN:
        for k in range(NAME_SLOTS):
            o = _NAME_TABLE[n][k]
            if o == NULL:
                break
            q = <const unsigned char *>_bytes_buf(o)
            if q[0] == p[0] and q[n - 1] == p[n - 1] and memcmp(q, p, n) == 0:
                return <bytes>o
    return _slice(p, n)


cdef inline bint _ows(unsigned char c) noexcept nogil:
    return c == 32 or c == 9


cdef inline bint _digit(unsigned char c) noexcept nogil:
    return 48 <= c <= 57


cdef inline bint _all(const unsigned char *p, Py_ssize_t n, unsigned char cls) noexcept nogil:
    """Non-empty, every byte of class ``cls``."""
    cdef Py_ssize_t i
    if n == 0:
        return False
    for i in range(n):
        if not _CLASS[p[i]] & cls:
            return False
    return True


cdef inline bytes _slice(const unsigned char *p, Py_ssize_t n):
    return PyBytes_FromStringAndSize(<const char *>p, n)


# -- the fast pass -------------------------------------------------------------------

cdef inline int _version_line_end(const unsigned char *p) noexcept nogil:
    """``HTTP/1.d`` then CRLF at ``p``: the minor version (0 or 1), else -1.
    The comparisons stop at the first mismatch, so at the NUL after the data."""
    if (
        p[0] == c'H' and p[1] == c'T' and p[2] == c'T' and p[3] == c'P' and p[4] == c'/'
        and p[5] == c'1' and p[6] == c'.' and _digit(p[7]) and p[8] == 13 and p[9] == 10
    ):
        return 0 if p[7] == c'0' else 1
    return -1


cdef Py_ssize_t _fields_fast(
    const unsigned char *d, Py_ssize_t i, Py_ssize_t n, list fields, Py_ssize_t *count=NULL
) except -2:
    """Parses the field lines at ``d[i:n]`` and the blank line after them into
    ``fields`` (only checks them when ``fields`` is None; ``count`` gets their
    number); the index past the blank line, or -1 for anything unusual."""
    cdef Py_ssize_t n0, n1, v0, v1, lines = 0
    while True:
        if d[i] == 13:
            if d[i + 1] == 10:
                if count != NULL:
                    count[0] = lines
                return i + 2
            return -1
        n0 = i
        while _CLASS[d[i]] & C_TOKEN:
            i += 1
        if i == n0 or d[i] != c':':
            return -1
        n1 = i
        i += 1
        while _ows(d[i]):
            i += 1
        v0 = i
        while i + 8 <= n and h1_value8(d + i):
            i += 8
        while _CLASS[d[i]] & C_VALUE:
            i += 1
        if d[i] != 13 or d[i + 1] != 10:
            return -1
        v1 = i
        while v1 > v0 and _ows(d[v1 - 1]):
            v1 -= 1
        if fields is not None:
            fields.append((_name(d + n0, n1 - n0), _slice(d + v0, v1 - v0)))
        lines += 1
        i += 2


cdef inline bytes _method(const unsigned char *p, Py_ssize_t n):
    if n == 3:
        if p[0] == c'G' and p[1] == c'E' and p[2] == c'T':
            return _GET
        if p[0] == c'P' and p[1] == c'U' and p[2] == c'T':
            return _PUT
    elif n == 4:
        if memcmp(p, <const char *>b"POST", 4) == 0:
            return _POST
        if memcmp(p, <const char *>b"HEAD", 4) == 0:
            return _HEAD
    return _slice(p, n)


cdef object _request(object data, Py_ssize_t pos, bint want_fields):
    """``parse_request_head`` (``want_fields``) or ``parse_request_lines``."""
    cdef const unsigned char *d = <const unsigned char *>PyBytes_AS_STRING(data)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(data)
    cdef Py_ssize_t i, m1, t0, t1, end, count = 0
    cdef int skipped = 0, minor
    cdef list fields
    if pos > n:
        return None
    while pos + 1 < n and d[pos] == 13 and d[pos + 1] == 10:
        skipped += 1
        if skipped > _MAX_LEADING_EMPTY_LINES:
            raise ParseError("too many empty lines before the request line")
        pos += 2
    if _unended(d, pos, n):
        return _diagnose(d, pos, n, True)  # None, or the bare CR/LF error
    i = pos
    while _CLASS[d[i]] & C_TOKEN:
        i += 1
    if i == pos or d[i] != 32:
        return _diagnose(d, pos, n, True)
    m1 = i
    i += 1
    t0 = i
    while i + 8 <= n and h1_vchar8(d + i):
        i += 8
    while _CLASS[d[i]] & C_TARGET:
        i += 1
    if i == t0 or d[i] != 32:
        return _diagnose(d, pos, n, True)
    t1 = i
    minor = _version_line_end(d + i + 1)
    if minor < 0:
        return _diagnose(d, pos, n, True)
    fields = [] if want_fields else None
    end = _fields_fast(d, i + 11, n, fields, &count)
    if end < 0:
        return _diagnose(d, pos, n, True)
    if want_fields:
        return end, _method(d + pos, m1 - pos), _slice(d + t0, t1 - t0), minor, fields
    return end, _method(d + pos, m1 - pos), _slice(d + t0, t1 - t0), minor, i + 11, count


cdef object _response(object data, Py_ssize_t pos, bint want_fields):
    """``parse_response_head`` (``want_fields``) or ``parse_response_lines``."""
    cdef const unsigned char *d = <const unsigned char *>PyBytes_AS_STRING(data)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(data)
    cdef const unsigned char *p
    cdef Py_ssize_t i, r0, end
    cdef int minor, status
    cdef list fields
    cdef bytes reason
    if pos > n:
        return None
    if _unended(d, pos, n):
        return _diagnose(d, pos, n, False)  # None, or the bare CR/LF error
    p = d + pos
    if not (
        p[0] == c'H' and p[1] == c'T' and p[2] == c'T' and p[3] == c'P' and p[4] == c'/'
        and p[5] == c'1' and p[6] == c'.' and _digit(p[7]) and p[8] == 32
        and 49 <= p[9] <= 57 and _digit(p[10]) and _digit(p[11])
    ):
        return _diagnose(d, pos, n, False)
    minor = 0 if p[7] == c'0' else 1
    status = (p[9] - 48) * 100 + (p[10] - 48) * 10 + (p[11] - 48)
    i = pos + 12
    r0 = i
    if d[i] == 32:
        i += 1
        r0 = i
        while _CLASS[d[i]] & C_VALUE:
            i += 1
    if d[i] != 13 or d[i + 1] != 10:
        return _diagnose(d, pos, n, False)
    if i - r0 == 2 and d[r0] == c'O' and d[r0 + 1] == c'K':
        reason = _OK
    else:
        reason = _slice(d + r0, i - r0)
    fields = [] if want_fields else None
    end = _fields_fast(d, i + 2, n, fields)
    if end < 0:
        return _diagnose(d, pos, n, False)
    if want_fields:
        return end, status, reason, minor, fields
    return end, status, reason, minor, i + 2


# -- the slow pass: the twin's checks in the twin's order ------------------------------

cdef Py_ssize_t _line_ends(const unsigned char *d, Py_ssize_t start, Py_ssize_t n) except -2:
    """Where the head at ``d[start:n]`` ends (the index of its CRLFCRLF), or -1
    while it is incomplete. Raises for a bare LF, then for a bare CR, up to the
    end of the head (or of the data)."""
    cdef Py_ssize_t i = start, j, found = -1, end
    cdef const unsigned char *q
    while i < n:
        q = <const unsigned char *>memchr(d + i, 10, n - i)
        if q == NULL:
            break
        j = q - d
        if j == start or d[j - 1] != 13:
            raise ParseError("bare LF in the message head")
        if j + 2 < n and d[j + 1] == 13 and d[j + 2] == 10:
            found = j - 1
            break
        i = j + 1
    end = found + 2 if found >= 0 else n
    i = start
    while i < end:
        q = <const unsigned char *>memchr(d + i, 13, end - i)
        if q == NULL:
            break
        j = q - d
        if j + 1 < end and d[j + 1] != 10:
            raise ParseError("bare CR in the message head")
        i = j + 1
    return found


cdef int _check_version(const unsigned char *p, Py_ssize_t n) except -1:
    if not (
        n == 8 and memcmp(p, <const char *>b"HTTP/", 5) == 0 and _digit(p[5]) and p[6] == c'.'
        and _digit(p[7])
    ):
        raise ParseError("invalid HTTP version")
    if p[5] != c'1':
        raise ParseError("HTTP version not supported", 505)
    return 0


cdef int _check_request_line(const unsigned char *p, Py_ssize_t n) except -1:
    cdef const unsigned char *sp1 = <const unsigned char *>memchr(p, 32, n)
    cdef const unsigned char *sp2 = NULL
    cdef const unsigned char *e = p + n
    if sp1 != NULL:
        sp2 = <const unsigned char *>memchr(sp1 + 1, 32, e - sp1 - 1)
    if sp2 == NULL or memchr(sp2 + 1, 32, e - sp2 - 1) != NULL:
        raise ParseError("invalid request line")
    if not _all(p, sp1 - p, C_TOKEN):
        raise ParseError("invalid method")
    if not _all(sp1 + 1, sp2 - sp1 - 1, C_TARGET):
        raise ParseError("invalid request target")
    return _check_version(sp2 + 1, e - sp2 - 1)


cdef int _check_status_line(const unsigned char *p, Py_ssize_t n) except -1:
    cdef const unsigned char *e = p + n
    cdef const unsigned char *sp1 = <const unsigned char *>memchr(p, 32, n)
    cdef const unsigned char *code
    cdef const unsigned char *sp2
    cdef Py_ssize_t i, code_len, reason_len
    if sp1 == NULL:
        raise ParseError("invalid status line")
    _check_version(p, sp1 - p)
    code = sp1 + 1
    sp2 = <const unsigned char *>memchr(code, 32, e - code)
    if sp2 == NULL:
        code_len = e - code
        reason_len = 0
    else:
        code_len = sp2 - code
        reason_len = e - sp2 - 1
    if code_len != 3 or not (_digit(code[0]) and _digit(code[1]) and _digit(code[2])) or (
        code[0] == c'0'
    ):
        raise ParseError("invalid status code")
    for i in range(reason_len):
        if not _CLASS[sp2[1 + i]] & C_VALUE:
            raise ParseError("invalid character in the reason phrase")
    return 0


cdef tuple _field(const unsigned char *p, Py_ssize_t n):
    """One field line (no CR or LF in it) as ``(name, value)``; raises as
    the twin's ``_fields`` does."""
    cdef const unsigned char *colon
    cdef Py_ssize_t c, v0, v1, i
    if n and _ows(p[0]):
        raise ParseError("obsolete line folding in the message head")
    colon = <const unsigned char *>memchr(p, c':', n)
    if colon == NULL:
        raise ParseError("header line without a colon")
    c = colon - p
    if not _all(p, c, C_TOKEN):
        raise ParseError("invalid header name")
    v0 = c + 1
    v1 = n
    while v0 < v1 and _ows(p[v0]):
        v0 += 1
    while v1 > v0 and _ows(p[v1 - 1]):
        v1 -= 1
    for i in range(v0, v1):
        if not _CLASS[p[i]] & C_VALUE:
            raise ParseError("invalid character in a header value")
    return (_slice(p, c), _slice(p + v0, v1 - v0))


cdef object _diagnose(const unsigned char *d, Py_ssize_t start, Py_ssize_t n, bint request):
    """``None`` for an incomplete head at ``d[start:n]``, else raises its error."""
    cdef Py_ssize_t found = _line_ends(d, start, n), i, e
    if found < 0:
        return None
    # No bare CR from here to found + 2: the first CR after a line start ends it.
    e = <const unsigned char *>memchr(d + start, 13, found + 2 - start) - d
    if request:
        _check_request_line(d + start, e - start)
    else:
        _check_status_line(d + start, e - start)
    i = e + 2
    while i <= found:
        e = <const unsigned char *>memchr(d + i, 13, found + 2 - i) - d
        _field(d + i, e - i)
        i = e + 2
    raise SystemError("lbproxy._fast.h1: a head refused by the fast pass passed every check")


# -- inputs outside the contract: the twin does the whole call ---------------------------

cdef object _twin = None


cdef object _pure():
    global _twin
    if _twin is None:
        from lbproxy._fast import h1_py
        _twin = h1_py
    return _twin


cdef object _pure_parse(bint request, object data, object pos, bint want_fields=True):
    twin = _pure()
    try:
        if request:
            if want_fields:
                return twin.parse_request_head(data, pos)
            return twin.parse_request_lines(data, pos)
        if want_fields:
            return twin.parse_response_head(data, pos)
        return twin.parse_response_lines(data, pos)
    except twin.ParseError as exc:
        raise ParseError(exc.args[0], exc.status) from None


cdef inline Py_ssize_t _index(object pos) noexcept:
    """``pos`` as a C index, or -1 when it is negative or too large for one."""
    cdef Py_ssize_t i = _as_ssize(pos)
    if i == -1 and PyErr_Occurred() != NULL:
        PyErr_Clear()
    return i


def parse_request_head(data, pos):
    """Parse the request head at ``data[pos:]``.

    Returns ``(end, method, target, minor, fields)`` with ``end`` the index
    just past the head, or ``None`` if the head is not complete yet (more
    data needed; what was seen so far is valid). Raises ``ParseError``.
    """
    cdef Py_ssize_t start
    if PyBytes_CheckExact(data) and PyLong_CheckExact(pos):
        start = _index(pos)
        if start >= 0:
            return _request(data, start, True)
    return _pure_parse(True, data, pos)


def parse_request_lines(data, pos):
    """``parse_request_head`` without the field list: returns ``(end,
    method, target, minor, fields_at, count)``, where the ``count`` field
    lines are ``data[fields_at:end - 2]``, or ``None`` if the head is not
    complete yet. Raises ``ParseError``: it checks everything
    ``parse_request_head`` does.
    """
    cdef Py_ssize_t start
    if PyBytes_CheckExact(data) and PyLong_CheckExact(pos):
        start = _index(pos)
        if start >= 0:
            return _request(data, start, False)
    return _pure_parse(True, data, pos, False)


def parse_response_head(data, pos):
    """Parse the response head at ``data[pos:]``.

    Returns ``(end, status, reason, minor, fields)``, or ``None`` if the
    head is not complete yet. Raises ``ParseError``.
    """
    cdef Py_ssize_t start
    if PyBytes_CheckExact(data) and PyLong_CheckExact(pos):
        start = _index(pos)
        if start >= 0:
            return _response(data, start, True)
    return _pure_parse(False, data, pos)


def parse_response_lines(data, pos):
    """``parse_response_head`` without the field list: returns ``(end,
    status, reason, minor, fields_at)``, where the field lines are
    ``data[fields_at:end - 2]``, or ``None`` if the head is not complete
    yet. Raises ``ParseError``: it checks everything ``parse_response_head``
    does.
    """
    cdef Py_ssize_t start
    if PyBytes_CheckExact(data) and PyLong_CheckExact(pos):
        start = _index(pos)
        if start >= 0:
            return _response(data, start, False)
    return _pure_parse(False, data, pos, False)


def field_list(data, start, stop):
    """The ``(name, value)`` list of the field lines at ``data[start:stop]``:
    a region that ``parse_request_lines`` or ``parse_response_lines`` found
    valid."""
    cdef Py_ssize_t s, e
    cdef const unsigned char *d
    cdef list fields
    if PyBytes_CheckExact(data) and PyLong_CheckExact(start) and PyLong_CheckExact(stop):
        s = _index(start)
        e = _index(stop)
        if 0 <= s <= e and e + 2 <= PyBytes_GET_SIZE(data):
            d = <const unsigned char *>PyBytes_AS_STRING(data)
            if d[e] == 13 and d[e + 1] == 10:
                fields = []
                # Reads stop at the blank line at ``e`` for a valid region;
                # anything else ends elsewhere and goes to the twin.
                if _fields_fast(d, s, e + 2, fields) == e + 2:
                    return fields
    return _pure().field_list(data, start, stop)


# -- chunked bodies ---------------------------------------------------------------------

cdef enum:
    S_SIZE = 0      # reading a chunk-size line
    S_DATA = 1      # reading chunk data
    S_DATA_CR = 2   # expecting the CR after chunk data
    S_DATA_LF = 3   # expecting the LF after chunk data
    S_TRAILER = 4   # reading trailer lines after the last chunk
    S_DONE = 5


cdef long long _chunk_size(const unsigned char *p, Py_ssize_t n) except -1:
    cdef const unsigned char *semi = <const unsigned char *>memchr(p, c';', n)
    cdef Py_ssize_t size_len = n if semi == NULL else semi - p, i
    cdef long long size = 0
    cdef unsigned char c
    if size_len > _MAX_CHUNK_SIZE_DIGITS or not _all(p, size_len, C_HEX):
        raise ParseError("invalid chunk size")
    if semi != NULL:
        # Extensions are checked, not interpreted: any visible text will do.
        if not _all(semi + 1, n - size_len - 1, C_VALUE):
            raise ParseError("invalid chunk extension")
    for i in range(size_len):
        c = p[i]
        if c <= c'9':
            size = size * 16 + (c - 48)
        else:
            size = size * 16 + ((c | 32) - 87)
    return size


@cython.final
cdef class ChunkedDecoder:
    """Incremental decoder of one chunked body."""

    cdef public Py_ssize_t max_trailer_bytes
    cdef public list trailers
    cdef int _state
    cdef long long _remaining
    cdef Py_ssize_t _trailer_bytes
    cdef bytes _line  # a size or trailer line split across reads

    def __init__(self, Py_ssize_t max_trailer_bytes):
        self.max_trailer_bytes = max_trailer_bytes
        self._state = S_SIZE
        self._remaining = 0
        self._line = b""
        self._trailer_bytes = 0
        self.trailers = []

    @property
    def done(self):
        return self._state == S_DONE

    def feed(self, bytes data not None, Py_ssize_t pos):
        """Decode what ``data[pos:]`` holds of the body.

        Returns ``(pos, payload, done)``: where decoding stopped (the end of
        the data, or just past the body once it is complete), the chunk data
        found, and whether the body (trailers included) is complete; the
        trailer fields are then in ``trailers``. Raises ``ParseError``.
        """
        cdef const unsigned char *d = <const unsigned char *>PyBytes_AS_STRING(data)
        cdef Py_ssize_t n = PyBytes_GET_SIZE(data)
        cdef int state = self._state
        cdef Py_ssize_t take, first = 0, first_len = 0, used = 0
        cdef PyObject *buf = NULL
        cdef object payload
        if pos < 0:
            raise ValueError("pos must not be negative")
        try:
            while pos < n and state != S_DONE:
                if state == S_DATA:
                    take = n - pos
                    if self._remaining < take:
                        take = <Py_ssize_t>self._remaining
                    if first_len == 0:
                        first = pos
                        first_len = take
                    else:
                        if buf == NULL:
                            # Nothing after this point can add more than n - pos.
                            buf = _bytes_new(NULL, first_len + n - pos)
                            memcpy(_bytes_buf(buf), d + first, first_len)
                            used = first_len
                        memcpy(_bytes_buf(buf) + used, d + pos, take)
                        used += take
                    pos += take
                    self._remaining -= take
                    if self._remaining == 0:
                        state = S_DATA_CR
                elif state == S_DATA_CR:
                    if d[pos] != 13:
                        raise ParseError("chunk data not followed by CRLF")
                    pos += 1
                    state = S_DATA_LF
                elif state == S_DATA_LF:
                    if d[pos] != 10:
                        raise ParseError("chunk data not followed by CRLF")
                    pos += 1
                    state = S_SIZE
                else:
                    pos = self._take_line(data, d, pos, n, &state)
            self._state = state
            if buf != NULL:
                _PyBytes_Resize(&buf, used)
                payload = <object>buf
            elif first_len == 0:
                payload = b""
            elif first_len == n:
                payload = data
            else:
                payload = _slice(d + first, first_len)
        finally:
            Py_XDECREF(buf)
        return pos, payload, state == S_DONE

    cdef Py_ssize_t _take_line(
        self, bytes data, const unsigned char *d, Py_ssize_t pos, Py_ssize_t n, int *state
    ) except -1:
        """Consumes the next CRLF-terminated line at ``d[pos:n]`` (completing
        the part held from earlier reads) and acts on it; returns the new
        position, ``n`` when the line is incomplete (and now held)."""
        cdef Py_ssize_t limit, held_len, i, line_len
        cdef const unsigned char *line
        cdef bytes joined
        cdef bytes held = self._line
        if held is None:  # an instance whose __init__ never ran
            held = self._line = b""
        if state[0] == S_SIZE:
            limit = _MAX_CHUNK_LINE
        elif self.max_trailer_bytes < PY_SSIZE_T_MIN + self._trailer_bytes:
            limit = PY_SSIZE_T_MIN
        else:
            limit = self.max_trailer_bytes - self._trailer_bytes
        held_len = PyBytes_GET_SIZE(held)
        # A held part never holds LF, and CR only as its last byte.
        if held_len and (<const unsigned char *>PyBytes_AS_STRING(held))[held_len - 1] == 13:
            if d[pos] != 10:
                raise ParseError("bare LF or CR in chunked framing")
            i = pos - 1  # the CR, as if it were in data
        else:
            i = pos
            while i < n and d[i] != 13 and d[i] != 10:
                i += 1
            if i < n and (d[i] == 10 or (i + 1 < n and d[i + 1] != 10)):
                raise ParseError("bare LF or CR in chunked framing")
            if i + 1 >= n:
                # Incomplete: at most a CR at the very end, whose LF comes next.
                self._line = held + data[pos:] if held_len else data[pos:]
                if held_len + (n - pos) - 1 > limit:
                    self._too_long(state[0])
                return n
        # The line is held + d[pos:i], its CRLF at i.
        line_len = held_len + (i - pos)
        if line_len > limit:
            self._too_long(state[0])
        if held_len:
            joined = held[:line_len] if i < pos else held + data[pos:i]
            self._line = b""
            line = <const unsigned char *>PyBytes_AS_STRING(joined)
        else:
            line = d + pos
        if state[0] == S_SIZE:
            self._remaining = _chunk_size(line, line_len)
            state[0] = S_DATA if self._remaining else S_TRAILER
        else:
            self._trailer_bytes += line_len + 2
            if line_len:
                self.trailers.append(_field(line, line_len))
            else:
                state[0] = S_DONE
        return i + 2

    cdef int _too_long(self, int state) except -1:
        if state == S_SIZE:
            raise ParseError("chunk size line too long")
        raise ParseError("trailer section too large", 431)
