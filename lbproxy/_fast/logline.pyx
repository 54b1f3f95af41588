# cython: language_level=3, boundscheck=False, wraparound=False
# cython: initializedcheck=False, embedsignature=True, cdivision=True
# distutils: extra_compile_args = -ffp-contract=off
"""JSON access-log lines, compiled. ``logline_py.py`` is the pure twin and the
reference (its docstring says what a line holds); this one writes the line
straight into one scratch buffer sized for the worst case (every input byte
escaped as ``\\u00XX``) and copies it out as one bytes object: no
intermediate strings, no Latin-1 detour; numbers are written digit by digit, not by printf. The
buffer is the module's, reused
by every call: the GIL makes calls one at a time.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.mem cimport PyMem_Realloc
from libc.string cimport memcpy

# The twin's _MS_MAX: milliseconds, about 285 years.
cdef double _MS_MAX = 9e12


cdef char *_buf = NULL
cdef Py_ssize_t _cap = 0


cdef char *_scratch(Py_ssize_t size) except NULL:
    global _buf, _cap
    cdef void *grown
    if size > _cap:
        grown = PyMem_Realloc(_buf, size)
        if grown is NULL:
            raise MemoryError()
        _buf = <char *>grown
        _cap = size
    return _buf


cdef const char *_HEX = b"0123456789abcdef"


cdef inline char *_put(char *out, const char *src, Py_ssize_t n) noexcept:
    memcpy(out, src, n)
    return out + n


cdef inline char *_raw(char *out, bytes value) noexcept:
    return _put(out, PyBytes_AS_STRING(value), PyBytes_GET_SIZE(value))


cdef char *_str(char *out, bytes value) noexcept:
    """``value`` as a JSON string literal, quotes included (at most 6n + 2 bytes)."""
    cdef const unsigned char *p = <const unsigned char *>PyBytes_AS_STRING(value)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(value), i
    cdef unsigned char c
    out[0] = b'"'
    out += 1
    for i in range(n):
        c = p[i]
        if 0x20 <= c <= 0x7e and c != 0x22 and c != 0x5c:
            out[0] = <char>c
            out += 1
            continue
        out[0] = b'\\'
        if c == 0x22 or c == 0x5c:
            out[1] = <char>c
        elif c == 0x0a:
            out[1] = b'n'
        elif c == 0x0d:
            out[1] = b'r'
        elif c == 0x09:
            out[1] = b't'
        elif c == 0x08:
            out[1] = b'b'
        elif c == 0x0c:
            out[1] = b'f'
        else:
            out[1] = b'u'
            out[2] = b'0'
            out[3] = b'0'
            out[4] = _HEX[c >> 4]
            out[5] = _HEX[c & 15]
            out += 6
            continue
        out += 2
    out[0] = b'"'
    return out + 1


cdef char *_int(char *out, long long v) noexcept:
    """``v`` in decimal, as Python's str(int) writes it."""
    cdef char digits[24]
    cdef int n = 0
    cdef unsigned long long u
    if v < 0:
        out[0] = b'-'
        out += 1
        u = <unsigned long long>(-(v + 1)) + 1
    else:
        u = <unsigned long long>v
    while True:
        digits[n] = <char>(48 + u % 10)
        n += 1
        u //= 10
        if u == 0:
            break
    while n:
        n -= 1
        out[0] = digits[n]
        out += 1
    return out


cdef char *_ms(char *out, const char *key, Py_ssize_t key_len, double x) noexcept:
    """``key``, then ``x`` with three decimals as the twin's _ms writes it."""
    cdef long long thousandths
    cdef int frac
    out = _put(out, key, key_len)
    if not x > 0.0:  # negative, zero or NaN
        return _put(out, b"0.000", 5)
    if x > _MS_MAX:
        x = _MS_MAX
    thousandths = <long long>(x * 1000.0 + 0.5)
    out = _int(out, thousandths // 1000)
    frac = <int>(thousandths % 1000)
    out[0] = b'.'
    out[1] = <char>(48 + frac // 100)
    out[2] = <char>(48 + frac // 10 % 10)
    out[3] = <char>(48 + frac % 10)
    return out + 4


def json_str(bytes value):
    cdef char *start = _scratch(6 * PyBytes_GET_SIZE(value) + 2)
    cdef char *end = _str(start, value)
    return PyBytes_FromStringAndSize(start, end - start)


def json_line(
    bytes stamp,
    bytes where,
    bytes client,
    bytes method,
    bytes host,
    bytes path,
    long long status,
    long long resp_bytes,
    long long body_in,
    double duration_ms,
    double connect_ms,
    double response_ms,
    bytes user_agent,
    bytes referer,
    bytes request_id,
    bytes traceparent,
    long long tries,
    bytes reason,
):
    cdef Py_ssize_t escaped = (
        PyBytes_GET_SIZE(client) + PyBytes_GET_SIZE(method) + PyBytes_GET_SIZE(host)
        + PyBytes_GET_SIZE(path) + PyBytes_GET_SIZE(user_agent) + PyBytes_GET_SIZE(referer)
        + PyBytes_GET_SIZE(request_id) + PyBytes_GET_SIZE(traceparent)
    )
    # Keys and numbers fit in 512 bytes.
    cdef Py_ssize_t cap = (
        PyBytes_GET_SIZE(stamp) + PyBytes_GET_SIZE(where) + PyBytes_GET_SIZE(reason)
        + 6 * escaped + 512
    )
    cdef char *start = _scratch(cap)
    cdef char *out = start
    out = _put(out, b'{"time":"', 9)
    out = _raw(out, stamp)
    out = _raw(out, where)
    out = _str(out, client)
    out = _put(out, b',"method":', 10)
    out = _str(out, method)
    out = _put(out, b',"host":', 8)
    out = _str(out, host)
    out = _put(out, b',"path":', 8)
    out = _str(out, path)
    out = _put(out, b',"status":', 10)
    out = _int(out, status)
    out = _put(out, b',"bytes":', 9)
    out = _int(out, resp_bytes)
    out = _put(out, b',"bytes_in":', 12)
    out = _int(out, body_in)
    out = _ms(out, b',"duration_ms":', 15, duration_ms)
    if connect_ms > 0.0:
        out = _ms(out, b',"connect_ms":', 14, connect_ms)
    if response_ms >= 0.0:
        out = _ms(out, b',"response_ms":', 15, response_ms)
    if PyBytes_GET_SIZE(user_agent):
        out = _put(out, b',"user_agent":', 14)
        out = _str(out, user_agent)
    if PyBytes_GET_SIZE(referer):
        out = _put(out, b',"referer":', 11)
        out = _str(out, referer)
    if PyBytes_GET_SIZE(request_id):
        out = _put(out, b',"request_id":', 14)
        out = _str(out, request_id)
    if PyBytes_GET_SIZE(traceparent):
        out = _put(out, b',"traceparent":', 15)
        out = _str(out, traceparent)
    if tries > 1:
        out = _put(out, b',"tries":', 9)
        out = _int(out, tries)
    if PyBytes_GET_SIZE(reason):
        out = _put(out, b',"reason":', 10)
        out = _raw(out, reason)
    out[0] = b'}'
    out += 1
    return PyBytes_FromStringAndSize(start, out - start)
