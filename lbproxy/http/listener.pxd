# Compile-time declarations for listener.py (see upstream.pxd).
cimport cython

from lbproxy.http.accesslog cimport AccessLogger
from lbproxy.http.client cimport ClientConnection
from lbproxy.http.exchange cimport Exchange


cdef class ListenerRuntime:
    cdef public AccessLogger access_log
    cdef public double body_timeout
    cdef public object config
    cdef public object connections
    cdef public dict counts
    cdef public object env
    cdef public double header_timeout
    cdef public bytes hsts
    cdef public double idle_timeout
    cdef public bint logging
    cdef public object loop
    cdef public Py_ssize_t max_body_bytes
    cdef public Py_ssize_t max_header_bytes
    cdef public Py_ssize_t max_headers
    cdef public bint metrics
    cdef public str name
    cdef public bytes proto
    cdef public bint proxy_protocol
    cdef public object redirect
    cdef public bytes rid_lower
    cdef public bytes rid_name
    cdef public object router
    cdef public dict routes
    cdef public object server
    cdef public bytes subject_header
    cdef public object tls_front
    cdef public object tls_store
    cdef public object tls_watch
    cdef public object trusted_table
    cdef public dict targets
    cdef public int tracing
    cdef public bint want_fields

    cpdef void log_access(self, ClientConnection conn, Exchange ex) except *

    @cython.locals(conn=ClientConnection, acted=Py_ssize_t, i=Py_ssize_t, n=Py_ssize_t)
    cpdef void _check_from(self, list conns, Py_ssize_t start, double now)
