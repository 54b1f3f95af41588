# Compile-time declarations for upstream.py, which setup.py compiles with
# Cython when it can (the .py itself is the pure-Python twin). Attribute
# names must match the class's __slots__; tests/test_datapath_build.py checks.
cimport cython

from lbproxy.http.exchange cimport Exchange
from lbproxy.http.primitives cimport Bytes

# Constants from lbproxy.http.shared as C ints (see client.pxd).
cdef int BODY_CHUNKED, BODY_FAILED, BODY_UNTIL_CLOSE, BODY_UPGRADE
cdef Py_ssize_t MAX_RESPONSE_HEAD


cdef class UpstreamConnection:
    cdef public bint _corked
    cdef public object _twrite
    cdef public list _wbuf
    cdef public object backend
    cdef public Py_ssize_t body_left
    cdef public object chunks
    cdef public bint closed
    cdef public Exchange exchange
    cdef public bint got_bytes
    cdef public double idle_since
    cdef public bint in_head
    cdef public bytes rbuf
    cdef public Py_ssize_t served
    cdef public object trailers
    cdef public object transport

    cpdef void _invalid(self, str reason)
    @cython.locals(pos=Py_ssize_t, n=Py_ssize_t, end=Py_ssize_t, framing=Py_ssize_t,
                   fields_at=Py_ssize_t, status=int, minor=int, reason=bytes)
    cpdef void _parse(self, bytes data)
    @cython.locals(n=Py_ssize_t, left=Py_ssize_t, take=Py_ssize_t)
    cpdef Py_ssize_t _body(self, Exchange ex, bytes data, Py_ssize_t pos) except -1
    cpdef void reset(self, Exchange ex)
    cpdef void _complete(self, Exchange ex, bint extra)
    cpdef void write(self, object data)
    cpdef void cork(self)
    cpdef void uncork(self)
    cpdef void close(self)
    cpdef void abort(self)


cdef class IdlePool:
    cdef public list conns
    cdef public double idle_timeout
    cdef public Py_ssize_t max_idle

    @cython.locals(conn=UpstreamConnection)
    cpdef UpstreamConnection get(self)
    cpdef void put(self, UpstreamConnection conn, double now)
