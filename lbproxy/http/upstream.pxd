# Compile-time declarations for upstream.py, which setup.py compiles with
# Cython when it can (the .py itself is the pure-Python twin). Attribute
# names must match the class's __slots__; tests/test_datapath_build.py checks.
from lbproxy.http.exchange cimport Exchange


cdef class UpstreamConnection:
    cdef public bint _corked
    cdef public list _wbuf
    cdef public object backend
    cdef public bint closed
    cdef public Exchange exchange
    cdef public bint got_bytes
    cdef public bint head_done_for_head
    cdef public list headers
    cdef public double idle_since
    cdef public bint in_head
    cdef public object parser
    cdef public Py_ssize_t served
    cdef public bytes status_reason
    cdef public object trailers
    cdef public object transport

    cpdef void write(self, object data)
    cpdef void cork(self)
    cpdef void uncork(self)
    cpdef void close(self)
    cpdef void abort(self)


cdef class IdlePool:
    cdef public object conns
    cdef public double idle_timeout
    cdef public Py_ssize_t max_idle

    cpdef UpstreamConnection get(self)
    cpdef void put(self, UpstreamConnection conn, double now)
