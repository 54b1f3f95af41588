# Compile-time declarations for accesslog.py (see upstream.pxd).
from lbproxy.http.client cimport ClientConnection
from lbproxy.http.exchange cimport Exchange


cdef class AccessLogger:
    cdef public str format
    cdef public bint _json
    cdef public bint _own
    cdef public object _out
    cdef public list _lines
    cdef public dict _wheres
    cdef public str _fmt
    cdef public bytes _stamp
    cdef public double _until

    cpdef bytes _clock(self, double now)
    cpdef bytes _where(self, tuple key, object route)
    cpdef void record(self, str listener, ClientConnection client, Exchange ex, double now) except *
    cpdef void flush(self) except *
