# Compile-time declarations for client.py (see upstream.pxd).
from lbproxy.http.exchange cimport Exchange


cdef class ClientConnection:
    cdef public bint _corked
    cdef public bint _eof
    cdef public Py_ssize_t _feeding
    cdef public object _trailers
    cdef public list _wbuf
    cdef public bytes client_ip
    cdef public bint closed
    cdef public Exchange cur
    cdef public double deadline
    cdef public int deadline_kind
    cdef public bint draining
    cdef public list headers
    cdef public object loop
    cdef public object lr
    cdef public object parser
    cdef public int phase
    cdef public object queue
    cdef public Py_ssize_t raw_header_bytes
    cdef public int read_paused
    cdef public object transport
    cdef public bint trusted
    cdef public Exchange tunnel
    cdef public Exchange upgraded
    cdef public bytes url

    cpdef void write(self, object data)
    cpdef void cork(self)
    cpdef void uncork(self)
    cpdef void pause_reading_for(self, int bit)
    cpdef void resume_reading_for(self, int bit)
    cpdef void exchange_done(self, Exchange ex, bint close)
    cpdef void _arm_idle(self)
