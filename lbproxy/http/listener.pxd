# Compile-time declarations for listener.py (see upstream.pxd).


cdef class ListenerRuntime:
    cdef public object _trusted
    cdef public object access_log
    cdef public double body_timeout
    cdef public object config
    cdef public object connections
    cdef public double header_timeout
    cdef public double idle_timeout
    cdef public bint logging
    cdef public object loop
    cdef public Py_ssize_t max_body_bytes
    cdef public Py_ssize_t max_header_bytes
    cdef public Py_ssize_t max_headers
    cdef public str name
    cdef public bytes proto
    cdef public object router
    cdef public object server
