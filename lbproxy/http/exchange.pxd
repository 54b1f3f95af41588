# Compile-time declarations for exchange.py (see upstream.pxd).
cimport cython

from lbproxy.http.primitives cimport Clock
from lbproxy.http.client cimport ClientConnection
from lbproxy.http.pool cimport BackendState, PoolRuntime
from lbproxy.http.upstream cimport UpstreamConnection

# Constants from lbproxy.http.shared and the header scanner as C ints (see
# client.pxd).
cdef int BODY_CHUNKED, BODY_FAILED, BODY_UNTIL_CLOSE, BODY_UPGRADE
cdef int D_CONNECT, D_QUEUE, D_RESPONSE, D_SEND, HAS_BODY, NO_DEADLINE
cdef int CHUNKED, CONN_CLOSE, CONN_KEEP_ALIVE, FRAMING_CONFLICT, UPGRADE, EXPECT_CONTINUE
cdef int T_REQUEST_ID
# Status lines already built, by status code: read with a C list index.
cdef list _STATUS_LINES
@cython.locals(cached=tuple)
cdef bytes _status_line(int status, bytes reason)
cdef list _NO_FIELDS


cdef class Exchange:
    cdef public Py_ssize_t attempts
    cdef public BackendState backend
    cdef public bytes block
    cdef public Py_ssize_t body_in
    cdef public bint chunked_in
    cdef public bint chunked_out
    cdef public ClientConnection client
    cdef public bint client_fault
    cdef public bint close_after
    cdef public double connect_s
    cdef public object connect_task
    cdef public bint connecting
    cdef public bint continued
    cdef public double deadline
    cdef public int deadline_kind
    cdef public bint done
    cdef public bint expect_continue
    cdef public object hash_key
    cdef public double head_at
    cdef public list held
    cdef public Py_ssize_t held_size
    cdef public bytes host
    cdef public bint http11
    cdef public bint idempotent
    cdef public bint keep_alive
    cdef public bytes local_headers
    cdef public int local_status
    cdef public bytes method
    cdef public bint method_head
    cdef public list pending
    cdef public Py_ssize_t pending_size
    cdef public double picked_at
    cdef public BackendState pinned
    cdef public PoolRuntime pool
    cdef public bint queued
    cdef public str reason
    cdef public bytes referer
    cdef public bytes region
    cdef public bytes request_id
    cdef public bytes traceparent
    cdef public object replay
    cdef public Py_ssize_t replay_size
    cdef public bint replayable
    cdef public bint req_done
    cdef public bint req_empty
    cdef public Py_ssize_t resp_bytes
    cdef public bytes resp_extra
    cdef public bint resp_framed
    cdef public bint resp_started
    cdef public int resp_status
    cdef public bint retried
    cdef public bint retry_counted
    cdef public object route
    cdef public double sent_at
    cdef public bytes served_region
    cdef public double started_at
    cdef public bytes target
    cdef public object tried
    cdef public bint tunnel
    cdef public bint upgrade
    cdef public UpstreamConnection upstream
    cdef public bint upstream_read_paused
    cdef public bint upstream_reusable
    cdef public bytes user_agent

    cpdef void _init(self, ClientConnection client, bytes method, bytes target, bytes host,
                     bint keep_alive, bint http11, bytes block, int flags, object route,
                     PoolRuntime pool, int local_status, str reason)
    @staticmethod
    @cython.locals(ex=Exchange)
    cdef Exchange create(ClientConnection client, bytes method, bytes target, bytes host,
                         bint keep_alive, bint http11, bytes block, int flags, object route,
                         PoolRuntime pool, int local_status, str reason)
    cpdef void begin(self)
    cpdef void _start(self)
    cpdef void _take(self, BackendState b)
    cpdef void _leave(self, BackendState b)
    cpdef void _end_accounting(self)
    cpdef void _attach(self, UpstreamConnection conn)
    cpdef void _arm_response(self)
    cpdef void send_body(self, object data)
    cpdef void _send(self, object data)
    cpdef void upstream_activity(self)
    cpdef void on_interim(self, int status, bytes reason, list headers)
    @cython.locals(headers=list, line=bytes)
    cpdef int on_response_head(self, int status, bytes reason, bytes data, Py_ssize_t start,
                               Py_ssize_t stop, int minor) except? -99
    cpdef void on_upgraded(self, bytes extra)
    cpdef void on_upstream_error(self, str reason)
    cpdef void on_response_body(self, object data)
    cpdef void on_response_complete(self)
    cpdef void _release_upstream(self, bint clean)
    cpdef void _finish(self, bint close)
