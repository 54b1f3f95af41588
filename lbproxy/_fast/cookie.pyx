# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False, embedsignature=True, autotestdict=False
"""Finding one cookie in a request's Cookie fields, compiled.

``cookie_py.py`` is the pure twin and the reference (its docstring says what
is matched); the test suite checks both return the same for any input. This
one walks each field's bytes once in C, making no object but the value.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.string cimport memcmp
from libc.time cimport time as c_time

from lbproxy._fast.cookie_py import find_cookie_lines as _twin_find_cookie_lines
from lbproxy._fast.lines cimport line_end, name_end, region, value_end, value_start


cdef inline bint _space(unsigned char c) noexcept nogil:
    # bytes.strip()'s ASCII whitespace: space, \t \n \v \f \r.
    return c == 32 or 9 <= c <= 13


cdef inline bint _is_cookie_at(const unsigned char *p) noexcept nogil:
    """The six bytes at ``p`` are "cookie", in any case."""
    return ((p[0] | 32) == b'c' and (p[1] | 32) == b'o' and (p[2] | 32) == b'o'
            and (p[3] | 32) == b'k' and (p[4] | 32) == b'i' and (p[5] | 32) == b'e')


cdef inline bint _is_cookie(bytes n):
    if PyBytes_GET_SIZE(n) != 6:
        return False
    return _is_cookie_at(<const unsigned char *>PyBytes_AS_STRING(n))


cdef object _cookie_in(
    const unsigned char *p, Py_ssize_t size, const char *want, Py_ssize_t want_n
):
    """The value of cookie ``want`` in one Cookie field's value ``p[:size]``,
    or None when that field does not hold it."""
    cdef Py_ssize_t i = 0, j, e, ks, ke, vs, ve
    while i <= size:
        j = i
        while j < size and p[j] != b';':
            j += 1
        e = i
        while e < j and p[e] != b'=':
            e += 1
        if e < j:
            ks = i
            ke = e
            while ks < ke and _space(p[ks]):
                ks += 1
            while ke > ks and _space(p[ke - 1]):
                ke -= 1
            if ke - ks == want_n and memcmp(p + ks, want, want_n) == 0:
                vs = e + 1
                ve = j
                while vs < ve and _space(p[vs]):
                    vs += 1
                while ve > vs and _space(p[ve - 1]):
                    ve -= 1
                if ve - vs >= 2 and p[vs] == b'"' and p[ve - 1] == b'"':
                    vs += 1
                    ve -= 1
                return PyBytes_FromStringAndSize(<const char *>p + vs, ve - vs)
        i = j + 1
    return None


def find_cookie(headers, bytes name):
    """The value of cookie ``name``; see ``cookie_py.find_cookie``."""
    cdef const char *want = PyBytes_AS_STRING(name)
    cdef Py_ssize_t want_n = PyBytes_GET_SIZE(name)
    cdef object found
    for n, v in headers:
        if not _is_cookie(<bytes?>n):
            continue
        found = _cookie_in(
            <const unsigned char *>PyBytes_AS_STRING(<bytes?>v), PyBytes_GET_SIZE(<bytes>v),
            want, want_n,
        )
        if found is not None:
            return found
    return None


def find_cookie_lines(data, start, stop, bytes name):
    """``find_cookie`` over the field lines at ``data[start:stop]`` (a region
    that ``h1.parse_request_lines`` found valid), read in place; see
    ``cookie_py.find_cookie_lines``."""
    cdef const char *want = PyBytes_AS_STRING(name)
    cdef Py_ssize_t want_n = PyBytes_GET_SIZE(name)
    cdef const unsigned char *d
    cdef Py_ssize_t i, e, cr, colon, v0, v1
    cdef object found
    if not region(data, start, stop, &i, &e):
        return _twin_find_cookie_lines(data, start, stop, name)
    d = <const unsigned char *>PyBytes_AS_STRING(data)
    while i < e:
        cr = line_end(d, i, e)
        if cr < 0:
            return _twin_find_cookie_lines(data, start, stop, name)
        colon = name_end(d, i, cr)
        if colon < 0:
            return _twin_find_cookie_lines(data, start, stop, name)
        if colon - i == 6 and _is_cookie_at(d + i):
            # The value as h1 reads it: trimmed of SP and HTAB.
            v0 = value_start(d, colon + 1, cr)
            v1 = value_end(d, v0, cr)
            found = _cookie_in(d + v0, v1 - v0, want, want_n)
            if found is not None:
                return found
        i = cr + 2
    return None


cdef class CookieCache:
    """What a request's cookie stands for, remembered by its value; see
    ``cookie_py.CookieCache``."""

    cdef public bytes name
    cdef public object resolve
    cdef public Py_ssize_t size
    cdef dict _seen
    cdef dict _old

    def __init__(self, bytes name, resolve, Py_ssize_t size=4096):
        self.name = name
        self.resolve = resolve
        self.size = size
        self._seen = {}
        self._old = {}

    def lookup(self, headers):
        return self._answer(find_cookie(headers, self.name))

    def lookup_lines(self, data, start, stop):
        """``lookup`` over the field lines at ``data[start:stop]``, read in place."""
        return self._answer(find_cookie_lines(data, start, stop, self.name))

    cdef object _answer(self, object value):
        cdef object hit
        cdef long long expires
        if value is None:
            return None
        hit = self._seen.get(value)
        if hit is None:
            hit = self._old.get(value)
            if hit is None:
                hit = self.resolve(value)
            if len(self._seen) >= self.size:
                self._old = self._seen
                self._seen = {}
            self._seen[value] = hit
        expires = (<tuple>hit)[1]
        if expires and c_time(NULL) >= expires:
            return None
        return (<tuple>hit)[0]
