# Compile-time declarations for client.py (see upstream.pxd).
cimport cython

from lbproxy.http.primitives cimport Bytes, Clock
from lbproxy.http.exchange cimport Exchange
from lbproxy.http.listener cimport ListenerRuntime
from lbproxy.http.pool cimport PoolRuntime

# The module's phase, deadline and header-flag constants, as C ints: compared
# with the typed attributes below on every event, they would otherwise be
# module-dict lookups and Python-object comparisons. Not visible as module
# attributes when compiled (nothing imports them from here).
cdef int P_IDLE, P_HEADERS, P_BODY, P_CLOSING, P_PROXY
cdef int T_NONE, T_HEADER, T_BODY, T_IDLE, T_LINGER, T_TUNNEL
cdef int HAS_CONTENT_LENGTH, CHUNKED, CONN_CLOSE, CONN_KEEP_ALIVE, UPGRADE


cdef class ClientConnection:
    cdef public bint _corked
    cdef public bint _eof
    cdef public object _trailers
    cdef public object _twrite
    cdef public list _wbuf
    cdef public Py_ssize_t body_left
    cdef public object chunks
    cdef public bytes client_ip
    cdef public bytes cert_subject
    cdef public bint closed
    cdef public Exchange cur
    cdef public double deadline
    cdef public int deadline_kind
    cdef public bint draining
    cdef public bint ended
    cdef public object loop
    cdef public ListenerRuntime lr
    cdef public int phase
    cdef public list queue
    cdef public bytes rbuf
    cdef public int read_paused
    cdef public object transport
    cdef public bint trusted
    cdef public Exchange tunnel
    cdef public bint upgrade_after_body
    cdef public Exchange upgraded
    cdef public bytes url

    @cython.locals(pos=Py_ssize_t, n=Py_ssize_t, limit=Py_ssize_t, end=Py_ssize_t,
                   fields_at=Py_ssize_t, count=Py_ssize_t, listed=bint, lr=ListenerRuntime)
    cpdef void _parse(self, bytes data)
    cpdef Py_ssize_t _body(self, bytes data, Py_ssize_t pos) except -1
    cpdef Py_ssize_t _end_of_body(self, bytes data, Py_ssize_t pos) except -1
    cpdef void on_message_begin(self)
    @cython.locals(clen="long long", flags=int, http11=bint, keep_alive=bint, status=int,
                   chosen=PoolRuntime, fields=list)
    cpdef bint on_head(self, Py_ssize_t size, bytes method, bytes url, int minor, bytes data,
                       Py_ssize_t start, Py_ssize_t stop, Py_ssize_t count,
                       list headers) except -1
    cpdef void on_body(self, bytes body)
    cpdef void on_message_complete(self)
    cpdef void write(self, object data)
    cpdef void cork(self)
    cpdef void uncork(self)
    cpdef void pause_reading_for(self, int bit)
    cpdef void resume_reading_for(self, int bit)
    @cython.locals(queue=list)
    cpdef void exchange_done(self, Exchange ex, bint close)
    cpdef void _arm_idle(self)
    cpdef bint check_deadline(self, double now) except -1
