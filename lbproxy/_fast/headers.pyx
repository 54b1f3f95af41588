# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False, embedsignature=True, autotestdict=False
"""Request and response header scanning and rewriting, compiled.

``headers_py.py`` is the pure twin and the reference: read its docstring for
what the scan does. Both must return equal values and raise the same errors
with the same messages for every input; the test suite checks that with
hypothesis. This file only differs in how the work is done:

* names are classified by length and first byte, then compared
  case-insensitively in place: no lower-cased copy per header;
* the Connection tokens are kept as spans into the values (a linear scan for
  the usual one or two; sorted and binary-searched when a message lists more,
  so a hostile list cannot make the scan quadratic);
* the output block is sized exactly, then allocated once and filled with
  memcpy;
* the Host value is checked against a byte table (``_host_ok``).

Between reading a name's or value's buffer and copying from it nothing runs
Python code (the only allocations are the result's bytes and ints, which do
not trigger the cyclic GC), so the borrowed pointers stay valid.

Inputs outside the contract (not a list or tuple of 2-tuples of exact
``bytes``; a ``trusted`` that is not a bool or int; non-bytes arguments) are
handed to the pure twin as a whole, so they too behave identically. The first
pass changes nothing, so it can hand over at any header before it has raised.
A Content-Length of more than 18 digits is a ``FramingError`` in both twins,
so every accepted value fits an int64.
"""

from cpython.mem cimport PyMem_Free, PyMem_Malloc, PyMem_Realloc
from cpython.object cimport PyObject
from libc.stdlib cimport qsort
from libc.string cimport memcpy, strlen

from lbproxy._fast.lines cimport line_end, name_end, region, value_end, value_start


cdef extern from "Python.h":
    bint PyList_CheckExact(PyObject *o)
    bint PyTuple_CheckExact(PyObject *o)
    bint PyBytes_CheckExact(PyObject *o)
    bint PyBool_Check(PyObject *o)
    bint PyLong_CheckExact(PyObject *o)
    Py_ssize_t PyTuple_GET_SIZE(PyObject *o)
    PyObject *PyTuple_GET_ITEM(PyObject *o, Py_ssize_t i)
    char *PyBytes_AS_STRING(PyObject *o)
    Py_ssize_t PyBytes_GET_SIZE(PyObject *o)
    PyObject **PySequence_Fast_ITEMS(PyObject *o)
    Py_ssize_t PySequence_Fast_GET_SIZE(PyObject *o)
    object PyBytes_FromStringAndSize(const char *s, Py_ssize_t n)


# Flag bits returned by the scanners (same values as the twin).
cdef enum:
    _CHUNKED = 1
    _EXPECT_CONTINUE = 2
    _CONN_CLOSE = 4
    _CONN_KEEP_ALIVE = 8
    _UPGRADE = 16
    _HAS_CONTENT_LENGTH = 32
    _FRAMING_CONFLICT = 64

CHUNKED = _CHUNKED
EXPECT_CONTINUE = _EXPECT_CONTINUE
CONN_CLOSE = _CONN_CLOSE
CONN_KEEP_ALIVE = _CONN_KEEP_ALIVE
UPGRADE = _UPGRADE
HAS_CONTENT_LENGTH = _HAS_CONTENT_LENGTH
FRAMING_CONFLICT = _FRAMING_CONFLICT


class FramingError(ValueError):
    """The message's framing is ambiguous or invalid: answer 400 and close."""


# What a header name is. The order matters: a request keeps (unless
# Connection lists them) only names up to H_XRIP, and H_FORWARDED and H_XRIP
# only from a trusted peer; a response keeps names up to H_VIA; everything
# from H_TE on is hop-by-hop on both sides. Connection never removes H_HOST,
# H_CL, H_XFF, H_XFP, H_XFH, H_VIA (nor H_TE, which is dropped anyway).
cdef enum:
    H_OTHER = 0
    H_HOST
    H_CL
    H_EXPECT
    H_FORWARDED        # forwarded
    H_XRIP             # x-real-ip
    H_XFF
    H_XFP
    H_XFH
    H_VIA
    H_TE               # transfer-encoding
    H_CONNECTION
    H_PROXY_CONN
    H_UPGRADE
    H_KEEP_ALIVE
    H_TE_FIELD         # te
    H_TRAILER
    H_PROXY            # any other proxy-*
    CODE_MASK = 0x7f
    KEEP = 0x80        # set on a header's code once it is known to be written

# Bits for the Connection tokens the scanners act on.
cdef enum:
    TOK_CLOSE = 1
    TOK_KEEP_ALIVE = 2
    TOK_UPGRADE = 4

cdef enum:
    LOCAL_CODES = 64    # headers classified without a heap allocation
    LINEAR_TOKENS = 16  # Connection tokens searched linearly; more get sorted

# Largest digit count that always fits an int64 (10**18 - 1 < 2**63); a longer
# Content-Length is invalid.
cdef Py_ssize_t MAX_FAST_DIGITS = 18

cdef unsigned char _LOWER[256]
cdef int _c
for _c in range(256):
    _LOWER[_c] = _c + 32 if 65 <= _c <= 90 else _c

# Host bytes: 1 in a reg-name (unreserved, sub-delims, "%"), 2 also in an
# IPvFuture literal (":"); 4 marks a hex digit, 8 a byte of an IPv6 address.
cdef unsigned char _HOST[256]
for _c in range(256):
    _HOST[_c] = 0
for _c in b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&'()*+,;=%":
    _HOST[_c] = 3
_HOST[58] = 2  # ":"
for _c in b"0123456789abcdefABCDEF":
    _HOST[_c] |= 4
for _c in b"0123456789abcdefABCDEF:.":
    _HOST[_c] |= 8  # in an IPv6 address

cdef const char *S_XFF = b"X-Forwarded-For: "
cdef const char *S_XFP = b"X-Forwarded-Proto: "
cdef const char *S_XFH = b"X-Forwarded-Host: "
cdef const char *S_VIA = b"Via: "
cdef const char *S_CHUNKED = b"Transfer-Encoding: chunked\r\n"
cdef const char *S_UPGRADE = b"Upgrade: "
cdef const char *S_CONN_UPGRADE = b"\r\nConnection: upgrade\r\n"
cdef Py_ssize_t L_XFF = strlen(S_XFF)
cdef Py_ssize_t L_XFP = strlen(S_XFP)
cdef Py_ssize_t L_XFH = strlen(S_XFH)
cdef Py_ssize_t L_VIA = strlen(S_VIA)
cdef Py_ssize_t L_CHUNKED = strlen(S_CHUNKED)
cdef Py_ssize_t L_UPGRADE = strlen(S_UPGRADE)
cdef Py_ssize_t L_CONN_UPGRADE = strlen(S_CONN_UPGRADE)


# -- bytes helpers -------------------------------------------------------------

cdef bint _host_ok(const unsigned char *p, Py_ssize_t n) noexcept nogil:
    """``uri-host [":" port]``, as ``host_is_valid`` in the twin."""
    cdef Py_ssize_t i = 0, end = n, dot
    cdef unsigned char allowed = 1
    if n > 0 and p[0] == 91:  # "["
        end = 1
        while end < n and p[end] != 93:  # "]"
            end += 1
        if end >= n or end < 2:
            return False
        if p[1] == 118 or p[1] == 86:  # "v": IPvFuture, "v" 1*HEXDIG "." 1*(...)
            dot = 2
            while dot < end and p[dot] != 46:
                dot += 1
            if dot < 3 or dot + 1 >= end:
                return False
            for i in range(2, dot):
                if not (_HOST[p[i]] & 4):
                    return False
            for i in range(dot + 1, end):
                if not (_HOST[p[i]] & 2) or p[i] == 37:
                    return False
        else:
            for i in range(1, end):
                if not (_HOST[p[i]] & 8):
                    return False
        i = end  # the literal is checked: only the port is left
        allowed = 2
    else:
        end = 0
        while end < n and p[end] != 58:  # ":"
            end += 1
    while i < end:
        if not (_HOST[p[i]] & allowed):
            return False
        if p[i] == 37:  # "%": two hex digits
            if i + 2 >= end or not (_HOST[p[i + 1]] & 4) or not (_HOST[p[i + 2]] & 4):
                return False
            i += 3
        else:
            i += 1
    if allowed == 2:
        end += 1  # past "]"
    if end < n:
        if p[end] != 58 or n - end - 1 > 5:
            return False
        for i in range(end + 1, n):
            if p[i] < 48 or p[i] > 57:
                return False
    return True


def host_is_valid(host):
    """Whether ``host`` is ``uri-host [":" port]``; an empty value is valid."""
    if not _bytes(host):
        return _pure().host_is_valid(host)
    cdef PyObject *h = <PyObject *>host
    return _host_ok(<const unsigned char *>PyBytes_AS_STRING(h), PyBytes_GET_SIZE(h))


cdef inline bint _space(unsigned char c) noexcept nogil:
    # bytes.strip()'s ASCII whitespace: space, \t \n \v \f \r.
    return c == 32 or 9 <= c <= 13


cdef inline bint _is(const unsigned char *p, const char *lower, Py_ssize_t n) noexcept nogil:
    """p[:n].lower() == lower[:n], where ``lower`` is already lower case."""
    cdef Py_ssize_t i
    for i in range(n):
        if _LOWER[p[i]] != <unsigned char>lower[i]:
            return False
    return True


cdef inline bint _ieq(const unsigned char *a, const unsigned char *b, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        if _LOWER[a[i]] != _LOWER[b[i]]:
            return False
    return True


cdef inline bint _stripped_is(
    const unsigned char *p, Py_ssize_t n, const char *lower, Py_ssize_t ln
) noexcept nogil:
    """p[:n].strip().lower() == lower[:ln]."""
    cdef Py_ssize_t s = 0, e = n
    while s < e and _space(p[s]):
        s += 1
    while e > s and _space(p[e - 1]):
        e -= 1
    return e - s == ln and _is(p + s, lower, ln)


cdef inline bint _digits(const unsigned char *p, Py_ssize_t n) noexcept nogil:
    """bytes.isdigit(): non-empty, ASCII digits only."""
    cdef Py_ssize_t i
    if n == 0:
        return False
    for i in range(n):
        if not 48 <= p[i] <= 57:
            return False
    return True


cdef inline long long _small_int(const unsigned char *p, Py_ssize_t n) noexcept nogil:
    cdef long long v = 0
    cdef Py_ssize_t i
    for i in range(n):
        v = v * 10 + (p[i] - 48)
    return v


cdef unsigned char _classify(const unsigned char *p, Py_ssize_t n) noexcept nogil:
    if n < 2:
        return H_OTHER
    cdef unsigned char c = _LOWER[p[0]]
    if c == c'x':
        if n == 15 and _is(p, b"x-forwarded-for", 15):
            return H_XFF
        if n == 9 and _is(p, b"x-real-ip", 9):
            return H_XRIP
        if n == 16 and _is(p, b"x-forwarded-host", 16):
            return H_XFH
        if n == 17 and _is(p, b"x-forwarded-proto", 17):
            return H_XFP
    elif c == c'c':
        if n == 14 and _is(p, b"content-length", 14):
            return H_CL
        if n == 10 and _is(p, b"connection", 10):
            return H_CONNECTION
    elif c == c'h':
        if n == 4 and _is(p, b"host", 4):
            return H_HOST
    elif c == c't':
        if n == 17 and _is(p, b"transfer-encoding", 17):
            return H_TE
        if n == 2 and _LOWER[p[1]] == c'e':
            return H_TE_FIELD
        if n == 7 and _is(p, b"trailer", 7):
            return H_TRAILER
    elif c == c'v':
        if n == 3 and _is(p, b"via", 3):
            return H_VIA
    elif c == c'e':
        if n == 6 and _is(p, b"expect", 6):
            return H_EXPECT
    elif c == c'f':
        if n == 9 and _is(p, b"forwarded", 9):
            return H_FORWARDED
    elif c == c'u':
        if n == 7 and _is(p, b"upgrade", 7):
            return H_UPGRADE
    elif c == c'k':
        if n == 10 and _is(p, b"keep-alive", 10):
            return H_KEEP_ALIVE
    elif c == c'p':
        if n >= 6 and _is(p, b"proxy-", 6):
            if n == 16 and _is(p + 6, b"connection", 10):
                return H_PROXY_CONN
            return H_PROXY
    return H_OTHER


cdef inline bint _pair(PyObject *item, PyObject **name, PyObject **value) noexcept:
    """Unpacks a (bytes, bytes) tuple; False for anything else."""
    if not PyTuple_CheckExact(item) or PyTuple_GET_SIZE(item) != 2:
        return False
    name[0] = PyTuple_GET_ITEM(item, 0)
    value[0] = PyTuple_GET_ITEM(item, 1)
    return PyBytes_CheckExact(name[0]) and PyBytes_CheckExact(value[0])


cdef inline char *_put(char *w, const char *src, Py_ssize_t n) noexcept nogil:
    memcpy(w, src, n)
    return w + n


cdef inline char *_put_bytes(char *w, PyObject *b) noexcept:
    cdef Py_ssize_t n = PyBytes_GET_SIZE(b)
    memcpy(w, PyBytes_AS_STRING(b), n)
    return w + n


# -- Connection tokens -----------------------------------------------------------

cdef struct Span:
    const unsigned char *p
    Py_ssize_t n


cdef struct Tokens:
    Span *spans          # ``local`` until it overflows, then the heap
    Py_ssize_t count
    Py_ssize_t cap
    bint is_sorted
    Span local[LINEAR_TOKENS]


cdef inline void _tokens_init(Tokens *t) noexcept nogil:
    t.spans = t.local
    t.count = 0
    t.cap = LINEAR_TOKENS
    t.is_sorted = False


cdef inline void _tokens_free(Tokens *t) noexcept:
    if t.spans != t.local:
        PyMem_Free(t.spans)


cdef int _tokens_push(Tokens *t, const unsigned char *p, Py_ssize_t n) except -1:
    cdef Span *grown
    if t.count == t.cap:
        if t.spans == t.local:
            grown = <Span *>PyMem_Malloc(2 * t.cap * sizeof(Span))
            if grown is NULL:
                raise MemoryError()
            memcpy(grown, t.local, t.count * sizeof(Span))
        else:
            grown = <Span *>PyMem_Realloc(t.spans, 2 * t.cap * sizeof(Span))
            if grown is NULL:
                raise MemoryError()
        t.spans = grown
        t.cap *= 2
    t.spans[t.count].p = p
    t.spans[t.count].n = n
    t.count += 1
    return 0


cdef int _connection(Tokens *t, const unsigned char *p, Py_ssize_t n) except -1:
    """Records the value's non-empty stripped comma-separated tokens; returns TOK_* bits."""
    cdef Py_ssize_t start = 0, end, s, e
    cdef int bits = 0
    while start <= n:
        end = start
        while end < n and p[end] != c',':
            end += 1
        s = start
        e = end
        while s < e and _space(p[s]):
            s += 1
        while e > s and _space(p[e - 1]):
            e -= 1
        if e > s:
            _tokens_push(t, p + s, e - s)
            if e - s == 5 and _is(p + s, b"close", 5):
                bits |= TOK_CLOSE
            elif e - s == 10 and _is(p + s, b"keep-alive", 10):
                bits |= TOK_KEEP_ALIVE
            elif e - s == 7 and _is(p + s, b"upgrade", 7):
                bits |= TOK_UPGRADE
        start = end + 1
    return bits


cdef int _last_coding(const unsigned char *p, Py_ssize_t n) noexcept nogil:
    """Whether the last non-empty stripped comma-separated token is "chunked":
    1 if it is, 0 if not, -1 when there is no such token."""
    cdef Py_ssize_t start = 0, end, s, e
    cdef Py_ssize_t ls = 0, le = 0
    while start <= n:
        end = start
        while end < n and p[end] != c',':
            end += 1
        s = start
        e = end
        while s < e and _space(p[s]):
            s += 1
        while e > s and _space(p[e - 1]):
            e -= 1
        if e > s:
            ls = s
            le = e
        start = end + 1
    if le == 0:
        return -1
    return 1 if le - ls == 7 and _is(p + ls, b"chunked", 7) else 0


cdef inline int _order(
    const unsigned char *a, Py_ssize_t an, const unsigned char *b, Py_ssize_t bn
) noexcept nogil:
    # Length first (cheap, and most names differ in it), then lower-cased bytes.
    cdef Py_ssize_t i
    if an != bn:
        return -1 if an < bn else 1
    for i in range(an):
        if _LOWER[a[i]] != _LOWER[b[i]]:
            return -1 if _LOWER[a[i]] < _LOWER[b[i]] else 1
    return 0


cdef int _span_order(const void *x, const void *y) noexcept nogil:
    cdef const Span *a = <const Span *>x
    cdef const Span *b = <const Span *>y
    return _order(a.p, a.n, b.p, b.n)


cdef bint _listed(Tokens *t, const unsigned char *p, Py_ssize_t n) noexcept:
    """Whether Connection listed this name (case-insensitively)."""
    cdef Py_ssize_t i, lo, hi, mid
    cdef int o
    if t.count <= LINEAR_TOKENS:
        for i in range(t.count):
            if t.spans[i].n == n and _ieq(t.spans[i].p, p, n):
                return True
        return False
    if not t.is_sorted:
        qsort(t.spans, t.count, sizeof(Span), _span_order)
        t.is_sorted = True
    lo = 0
    hi = t.count
    while lo < hi:
        mid = (lo + hi) // 2
        o = _order(t.spans[mid].p, t.spans[mid].n, p, n)
        if o == 0:
            return True
        if o < 0:
            lo = mid + 1
        else:
            hi = mid
    return False


# -- inputs outside the contract: the twin does the whole call ---------------------

cdef object _twin = None


cdef object _pure():
    global _twin
    if _twin is None:
        from lbproxy._fast import headers_py
        _twin = headers_py
    return _twin


cdef object _pure_request(headers, client_ip, trusted, proto, via):
    twin = _pure()
    try:
        return twin.scan_request(headers, client_ip, trusted, proto, via)
    except twin.FramingError as exc:
        raise FramingError(*exc.args) from None


cdef object _pure_response(headers):
    twin = _pure()
    try:
        return twin.scan_response(headers)
    except twin.FramingError as exc:
        raise FramingError(*exc.args) from None


cdef object _pure_request_lines(data, start, stop, client_ip, trusted, proto, via):
    twin = _pure()
    try:
        return twin.scan_request_lines(data, start, stop, client_ip, trusted, proto, via)
    except twin.FramingError as exc:
        raise FramingError(*exc.args) from None


cdef object _pure_lines(data, start, stop):
    twin = _pure()
    try:
        return twin.scan_response_lines(data, start, stop)
    except twin.FramingError as exc:
        raise FramingError(*exc.args) from None


cdef inline bint _bytes(object o) noexcept:
    return PyBytes_CheckExact(<PyObject *>o)


cdef inline bint _sequence(object o) noexcept:
    return PyList_CheckExact(<PyObject *>o) or PyTuple_CheckExact(<PyObject *>o)


# -- the scanners ------------------------------------------------------------------

cdef struct Field:
    const unsigned char *name
    const unsigned char *value
    Py_ssize_t nl
    Py_ssize_t vl


cdef inline char *_put_field(char *w, Field *f) noexcept nogil:
    memcpy(w, f.name, f.nl)
    w += f.nl
    w[0] = c':'
    w[1] = c' '
    w += 2
    memcpy(w, f.value, f.vl)
    w += f.vl
    w[0] = c'\r'
    w[1] = c'\n'
    return w + 2


# -- fields: spans into (name, value) tuples or into a head's lines ---------------

cdef struct FieldList:
    Field *fields        # ``local`` until it overflows, then the heap
    Py_ssize_t cap
    Field local[LOCAL_CODES]


cdef inline void _fields_init(FieldList *fl) noexcept nogil:
    fl.fields = fl.local
    fl.cap = LOCAL_CODES


cdef inline void _fields_free(FieldList *fl) noexcept:
    if fl.fields != fl.local:
        PyMem_Free(fl.fields)


cdef int _fields_grow(FieldList *fl, Py_ssize_t n) except -1:
    """Room for ``n`` fields."""
    cdef Field *grown
    cdef Py_ssize_t cap = fl.cap
    if n <= cap:
        return 0
    while cap < n:
        cap *= 2
    if fl.fields == fl.local:
        grown = <Field *>PyMem_Malloc(cap * sizeof(Field))
        if grown is not NULL:
            memcpy(grown, fl.fields, fl.cap * sizeof(Field))
    else:
        grown = <Field *>PyMem_Realloc(fl.fields, cap * sizeof(Field))
    if grown is NULL:
        raise MemoryError()
    fl.fields = grown
    fl.cap = cap
    return 0


cdef bint _fields_of_pairs(FieldList *fl, PyObject *seq, Py_ssize_t n) except -1:
    """The fields of a list or tuple of (bytes, bytes); False for anything else."""
    cdef PyObject **items = PySequence_Fast_ITEMS(seq)
    cdef PyObject *name
    cdef PyObject *value
    cdef Py_ssize_t i
    _fields_grow(fl, n)
    for i in range(n):
        if not _pair(items[i], &name, &value):
            return False
        fl.fields[i].name = <const unsigned char *>PyBytes_AS_STRING(name)
        fl.fields[i].nl = PyBytes_GET_SIZE(name)
        fl.fields[i].value = <const unsigned char *>PyBytes_AS_STRING(value)
        fl.fields[i].vl = PyBytes_GET_SIZE(value)
    return True


cdef Py_ssize_t _fields_of_lines(FieldList *fl, object data, object start, object stop) except -2:
    """The fields of the lines at ``data[start:stop]``: ``name`` up to the
    first colon, the value trimmed of SP and HTAB, as h1 reads them; their
    number, or -1 for anything outside the contract (which the twin then
    answers for the whole call)."""
    cdef Py_ssize_t s, e, i, cr, colon, v0, v1, n = 0
    cdef const unsigned char *d
    if not region(data, start, stop, &s, &e):
        return -1
    d = <const unsigned char *>PyBytes_AS_STRING(<PyObject *>data)
    i = s
    while i < e:
        cr = line_end(d, i, e)
        if cr < 0:
            return -1
        colon = name_end(d, i, cr)
        if colon < 0:
            return -1
        v0 = value_start(d, colon + 1, cr)
        v1 = value_end(d, v0, cr)
        if n == fl.cap:
            _fields_grow(fl, n + 1)
        fl.fields[n].name = d + i
        fl.fields[n].nl = colon - i
        fl.fields[n].value = d + v0
        fl.fields[n].vl = v1 - v0
        n += 1
        i = cr + 2
    return n


cdef inline char *_put_span(char *w, const unsigned char *p, Py_ssize_t n) noexcept nogil:
    memcpy(w, p, n)
    return w + n


cdef char *_join_fields(
    char *w, Field *fields, const unsigned char *codes, Py_ssize_t first, Py_ssize_t n,
    unsigned char code,
) noexcept nogil:
    """Writes the values of the fields with ``code`` from ``first`` on, joined by ", "."""
    cdef Py_ssize_t i
    for i in range(first, n):
        if (codes[i] & CODE_MASK) == code:
            if i != first:
                w[0] = c','
                w[1] = c' '
                w += 2
            w = _put_span(w, fields[i].value, fields[i].vl)
    return w


cdef object _request_block(
    Field *fields, Py_ssize_t n, bytes client_ip, bint is_trusted, bytes proto, bytes via
):
    """The work of ``scan_request`` over ``n`` fields, however they were
    found: ``(block, host, content_length, flags, upgrade)``."""
    cdef unsigned char local_codes[LOCAL_CODES]
    cdef unsigned char *codes = local_codes
    cdef Tokens toks
    cdef Field *f
    cdef const unsigned char *p
    cdef Py_ssize_t i, vl
    cdef unsigned char code
    cdef int flags = 0, tok_bits = 0
    cdef bint have_clen = False
    cdef long long clen = -1
    cdef Field *host = NULL
    cdef Field *upgrade = NULL
    cdef Field *xfh = NULL
    cdef const unsigned char *xfp_p = NULL
    cdef Py_ssize_t xfp_l = 0
    cdef const unsigned char *fwd_p = NULL
    cdef Py_ssize_t fwd_l = 0
    cdef Field *xfp = NULL
    cdef Py_ssize_t xff_first = -1, xff_len = 0, via_first = -1, via_len = 0
    cdef Py_ssize_t total = 0
    cdef object block
    cdef char *w
    cdef char *start

    if n > LOCAL_CODES:
        codes = <unsigned char *>PyMem_Malloc(n)
        if codes is NULL:
            raise MemoryError()
    _tokens_init(&toks)
    try:
        for i in range(n):
            f = &fields[i]
            code = _classify(f.name, f.nl)
            codes[i] = code
            if code == H_OTHER:
                continue
            p = f.value
            vl = f.vl
            if code == H_HOST:
                if host is not NULL:
                    raise FramingError("more than one Host header")
                host = f
            elif code == H_CL:
                if have_clen:
                    raise FramingError("more than one Content-Length")
                if vl > MAX_FAST_DIGITS or not _digits(p, vl):
                    raise FramingError("invalid Content-Length")
                clen = _small_int(p, vl)
                have_clen = True
                flags |= _HAS_CONTENT_LENGTH
            elif code == H_TE:
                if flags & _CHUNKED or not _stripped_is(p, vl, b"chunked", 7):
                    raise FramingError("unsupported Transfer-Encoding")
                flags |= _CHUNKED
            elif code == H_CONNECTION or code == H_PROXY_CONN:
                tok_bits |= _connection(&toks, p, vl)
            elif code == H_UPGRADE:
                if upgrade is not NULL:
                    raise FramingError("more than one Upgrade header")
                upgrade = f
            elif code == H_EXPECT:
                if _stripped_is(p, vl, b"100-continue", 12):
                    flags |= _EXPECT_CONTINUE
            elif code == H_XFF:
                # Joined with ", " from the first non-empty value on, as the
                # twin's ``xff + b", " + value if xff else value`` does.
                if xff_first >= 0:
                    xff_len += 2 + vl
                elif vl > 0:
                    xff_first = i
                    xff_len = vl
            elif code == H_XFP:
                xfp = f
            elif code == H_XFH:
                xfh = f
            elif code == H_VIA:
                if via_first >= 0:
                    via_len += 2 + vl
                elif vl > 0:
                    via_first = i
                    via_len = vl
        if flags & _CHUNKED and flags & _HAS_CONTENT_LENGTH:
            raise FramingError("both Content-Length and Transfer-Encoding")
        if host is not NULL and not _host_ok(host.value, host.vl):
            raise FramingError("invalid Host header")
        if tok_bits & TOK_CLOSE:
            flags |= _CONN_CLOSE
        if tok_bits & TOK_KEEP_ALIVE:
            flags |= _CONN_KEEP_ALIVE
        if upgrade is not NULL and upgrade.vl > 0 and tok_bits & TOK_UPGRADE:
            flags |= _UPGRADE
        else:
            upgrade = NULL

        # Which headers pass, and the exact size of the block.
        for i in range(n):
            code = codes[i]
            if code > H_XRIP or (code >= H_FORWARDED and not is_trusted):
                continue
            f = &fields[i]
            if code == H_HOST and f.vl == 0:
                continue  # an empty Host is no Host: the caller may send the backend's
            if (
                toks.count and code != H_HOST and code != H_CL
                and _listed(&toks, f.name, f.nl)
            ):
                continue
            codes[i] = code | KEEP
            total += f.nl + f.vl + 4
        total += L_XFF + PyBytes_GET_SIZE(<PyObject *>client_ip) + 2
        if is_trusted and xff_first >= 0:
            total += xff_len + 2
        if is_trusted and xfp is not NULL and xfp.vl > 0:
            xfp_p = xfp.value
            xfp_l = xfp.vl
        else:
            xfp_p = <const unsigned char *>PyBytes_AS_STRING(<PyObject *>proto)
            xfp_l = PyBytes_GET_SIZE(<PyObject *>proto)
        total += L_XFP + xfp_l + 2
        if is_trusted and xfh is not NULL and xfh.vl > 0:
            fwd_p = xfh.value
            fwd_l = xfh.vl
        elif host is not NULL and host.vl > 0:
            fwd_p = host.value
            fwd_l = host.vl
        if fwd_p is not NULL:
            total += L_XFH + fwd_l + 2
        total += L_VIA + PyBytes_GET_SIZE(<PyObject *>via) + 2
        if via_first >= 0:
            total += via_len + 2
        if flags & _CHUNKED:
            total += L_CHUNKED
        if upgrade is not NULL:
            total += L_UPGRADE + upgrade.vl + L_CONN_UPGRADE

        block = PyBytes_FromStringAndSize(NULL, total)
        w = start = PyBytes_AS_STRING(<PyObject *>block)
        for i in range(n):
            if codes[i] & KEEP:
                w = _put_field(w, &fields[i])
        w = _put(w, S_XFF, L_XFF)
        if is_trusted and xff_first >= 0:
            w = _join_fields(w, fields, codes, xff_first, n, H_XFF)
            w = _put(w, b", ", 2)
        w = _put_bytes(w, <PyObject *>client_ip)
        w = _put(w, b"\r\n", 2)
        w = _put(w, S_XFP, L_XFP)
        w = _put_span(w, xfp_p, xfp_l)
        w = _put(w, b"\r\n", 2)
        if fwd_p is not NULL:
            w = _put(w, S_XFH, L_XFH)
            w = _put_span(w, fwd_p, fwd_l)
            w = _put(w, b"\r\n", 2)
        w = _put(w, S_VIA, L_VIA)
        if via_first >= 0:
            w = _join_fields(w, fields, codes, via_first, n, H_VIA)
            w = _put(w, b", ", 2)
        w = _put_bytes(w, <PyObject *>via)
        w = _put(w, b"\r\n", 2)
        if flags & _CHUNKED:
            w = _put(w, S_CHUNKED, L_CHUNKED)
        if upgrade is not NULL:
            w = _put(w, S_UPGRADE, L_UPGRADE)
            w = _put_span(w, upgrade.value, upgrade.vl)
            w = _put(w, S_CONN_UPGRADE, L_CONN_UPGRADE)
        if w - start != total:
            raise SystemError("lbproxy._fast.headers: request block size mismatch")
    finally:
        _tokens_free(&toks)
        if codes != local_codes:
            PyMem_Free(codes)
    return (
        block,
        PyBytes_FromStringAndSize(<const char *>host.value, host.vl) if host is not NULL else b"",
        clen,
        flags,
        (
            PyBytes_FromStringAndSize(<const char *>upgrade.value, upgrade.vl)
            if upgrade is not NULL else b""
        ),
    )


cdef inline bint _request_args(client_ip, trusted, proto, via) noexcept:
    return (
        _bytes(client_ip) and _bytes(proto) and _bytes(via)
        and (PyBool_Check(<PyObject *>trusted) or PyLong_CheckExact(<PyObject *>trusted))
    )


def scan_request(headers, client_ip, trusted, proto, via):
    """Check and rewrite a request's headers.

    Returns ``(block, host, content_length, flags, upgrade)``; see
    ``headers_py.scan_request``.
    """
    if not (_sequence(headers) and _request_args(client_ip, trusted, proto, via)):
        return _pure_request(headers, client_ip, trusted, proto, via)
    cdef Py_ssize_t n = PySequence_Fast_GET_SIZE(<PyObject *>headers)
    cdef FieldList fl
    _fields_init(&fl)
    try:
        if not _fields_of_pairs(&fl, <PyObject *>headers, n):
            return _pure_request(headers, client_ip, trusted, proto, via)
        return _request_block(fl.fields, n, client_ip, trusted, proto, via)
    finally:
        _fields_free(&fl)


def scan_request_lines(data, start, stop, client_ip, trusted, proto, via):
    """``scan_request`` of the field lines at ``data[start:stop]``, read in
    place: a region that ``h1.parse_request_lines`` found valid (each line
    ``name:value`` and CRLF). Returns what ``scan_request`` returns for
    ``h1.field_list(data, start, stop)``."""
    cdef FieldList fl
    cdef Py_ssize_t n
    if not _request_args(client_ip, trusted, proto, via):
        return _pure_request_lines(data, start, stop, client_ip, trusted, proto, via)
    _fields_init(&fl)
    try:
        n = _fields_of_lines(&fl, data, start, stop)
        if n < 0:
            return _pure_request_lines(data, start, stop, client_ip, trusted, proto, via)
        return _request_block(fl.fields, n, client_ip, trusted, proto, via)
    finally:
        _fields_free(&fl)


cdef object _response_block(Field *fields, Py_ssize_t n):
    """The work of ``scan_response`` over ``n`` fields, however they were
    found: ``(block, content_length, flags)``."""
    cdef unsigned char local_codes[LOCAL_CODES]
    cdef unsigned char *codes = local_codes
    cdef Tokens toks
    cdef Field *f
    cdef Py_ssize_t i
    cdef unsigned char code
    cdef int flags = 0, tok_bits = 0, last
    cdef bint have_clen = False, te_seen = False, chunked = False, clen_written = False
    cdef long long clen = -1, cl
    cdef Py_ssize_t total = 0
    cdef object block
    cdef char *w
    cdef char *start

    if n > LOCAL_CODES:
        codes = <unsigned char *>PyMem_Malloc(n)
        if codes is NULL:
            raise MemoryError()
    _tokens_init(&toks)
    try:
        for i in range(n):
            f = &fields[i]
            code = _classify(f.name, f.nl)
            codes[i] = code
            if code == H_OTHER:
                continue
            if code == H_CL:
                if f.vl > MAX_FAST_DIGITS or not _digits(f.value, f.vl):
                    raise FramingError("invalid Content-Length")
                cl = _small_int(f.value, f.vl)
                if have_clen and cl != clen:
                    raise FramingError("conflicting Content-Length")
                clen = cl
                have_clen = True
                flags |= _HAS_CONTENT_LENGTH
            elif code == H_TE:
                # All the lines make one list of codings; only a final
                # "chunked" delimits the body (RFC 9112 6.3).
                te_seen = True
                last = _last_coding(f.value, f.vl)
                if last >= 0:
                    chunked = last == 1
            elif code == H_CONNECTION:
                tok_bits |= _connection(&toks, f.value, f.vl)
        if te_seen:
            # Transfer-Encoding overrides Content-Length: chunked, or until close.
            if flags & _HAS_CONTENT_LENGTH:
                flags |= _FRAMING_CONFLICT
            clen = -1
            flags &= ~_HAS_CONTENT_LENGTH
            if chunked:
                flags |= _CHUNKED
        if tok_bits & TOK_CLOSE:
            flags |= _CONN_CLOSE
        if tok_bits & TOK_KEEP_ALIVE:
            flags |= _CONN_KEEP_ALIVE

        for i in range(n):
            code = codes[i]
            if code > H_VIA:
                continue
            if code == H_CL:
                # Only one, and none when Transfer-Encoding frames the body.
                if te_seen or clen_written:
                    continue
                clen_written = True
            f = &fields[i]
            if (
                toks.count and (code == H_OTHER or code == H_EXPECT or code == H_FORWARDED
                                or code == H_XRIP)
                and _listed(&toks, f.name, f.nl)
            ):
                continue
            codes[i] = code | KEEP
            total += f.nl + f.vl + 4

        block = PyBytes_FromStringAndSize(NULL, total)
        w = start = PyBytes_AS_STRING(<PyObject *>block)
        for i in range(n):
            if codes[i] & KEEP:
                w = _put_field(w, &fields[i])
        if w - start != total:
            raise SystemError("lbproxy._fast.headers: response block size mismatch")
    finally:
        _tokens_free(&toks)
        if codes != local_codes:
            PyMem_Free(codes)
    return block, clen, flags


def scan_response(headers):
    """Check and strip a response's headers.

    Returns ``(block, content_length, flags)``; see ``headers_py.scan_response``.
    """
    if not _sequence(headers):
        return _pure_response(headers)
    cdef Py_ssize_t n = PySequence_Fast_GET_SIZE(<PyObject *>headers)
    cdef FieldList fl
    _fields_init(&fl)
    try:
        if not _fields_of_pairs(&fl, <PyObject *>headers, n):
            return _pure_response(headers)
        return _response_block(fl.fields, n)
    finally:
        _fields_free(&fl)


def scan_response_lines(data, start, stop):
    """``scan_response`` of the field lines at ``data[start:stop]``, read in
    place: a region that ``h1.parse_response_lines`` found valid (each line
    ``name:value`` and CRLF). Returns what ``scan_response`` returns for
    ``h1.field_list(data, start, stop)``."""
    cdef FieldList fl
    cdef Py_ssize_t n
    _fields_init(&fl)
    try:
        n = _fields_of_lines(&fl, data, start, stop)
        if n < 0:
            return _pure_lines(data, start, stop)
        return _response_block(fl.fields, n)
    finally:
        _fields_free(&fl)
