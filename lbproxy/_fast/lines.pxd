# A message head's field lines, read in place where h1.parse_request_lines or
# h1.parse_response_lines found them (each ``name:value`` then CRLF): shared
# by headers.pyx, cookie.pyx and cidr.pyx, which read them without a
# (name, value) list. Inline only, so no module of its own exists at run
# time: each user compiles these in.

from cpython.bytes cimport PyBytes_GET_SIZE
from libc.string cimport memchr


cdef inline Py_ssize_t line_end(const unsigned char *d, Py_ssize_t i, Py_ssize_t stop) noexcept nogil:
    """The index of the CR that ends the line at ``d[i:stop]``, with its LF
    before ``stop``; -1 when the line does not end so."""
    cdef const unsigned char *q = <const unsigned char *>memchr(d + i, 13, stop - i)
    if q == NULL or q + 1 >= d + stop or q[1] != 10:
        return -1
    return q - d


cdef inline Py_ssize_t name_end(const unsigned char *d, Py_ssize_t i, Py_ssize_t cr) noexcept nogil:
    """The index of the colon that ends the name of the line ``d[i:cr]``; -1
    for a line without one or with an empty name."""
    cdef const unsigned char *q = <const unsigned char *>memchr(d + i, 58, cr - i)
    if q == NULL or q == d + i:
        return -1
    return q - d


cdef inline Py_ssize_t value_start(const unsigned char *d, Py_ssize_t v, Py_ssize_t cr) noexcept nogil:
    """Past the SP and HTAB that open the value ``d[v:cr]``, as h1 trims it."""
    while v < cr and (d[v] == 32 or d[v] == 9):
        v += 1
    return v


cdef inline Py_ssize_t value_end(const unsigned char *d, Py_ssize_t v, Py_ssize_t cr) noexcept nogil:
    """Before the SP and HTAB that close the value ``d[v:cr]``, as h1 trims it."""
    while cr > v and (d[cr - 1] == 32 or d[cr - 1] == 9):
        cr -= 1
    return cr


cdef inline bint region(object data, object start, object stop, Py_ssize_t *s, Py_ssize_t *e):
    """Whether ``data[start:stop]`` is a region these helpers can read:
    ``data`` exact bytes, ``start`` and ``stop`` exact ints with
    ``0 <= start <= stop <= len(data)``, then in ``s`` and ``e``. Anything
    else is outside the contract; each user hands such a call to its twin."""
    cdef Py_ssize_t a, b
    if not (type(data) is bytes and type(start) is int and type(stop) is int):
        return False
    try:
        a = start
        b = stop
    except OverflowError:
        return False
    if not 0 <= a <= b <= PyBytes_GET_SIZE(data):
        return False
    s[0] = a
    e[0] = b
    return True
