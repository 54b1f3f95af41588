# Compile-time declarations for pool.py (see upstream.pxd).
from lbproxy._fast.shared cimport Counters
from lbproxy.http.upstream cimport IdlePool


cdef class BackendState:
    cdef public object _balancer
    cdef public Py_ssize_t _slot
    cdef public Py_ssize_t active
    cdef public int admin_state
    cdef public object address
    cdef public bint backup
    cdef public object breaker
    cdef public Py_ssize_t checks_failed
    cdef public Py_ssize_t checks_ok
    cdef public list connect_hist
    cdef public double connect_sum
    cdef public double drain_until
    cdef public Py_ssize_t ejections_total
    cdef public bint eligible
    cdef public Py_ssize_t failures_total
    cdef public object health
    cdef public str host
    cdef public bytes host_header
    cdef public list hist
    cdef public double hist_sum
    cdef public IdlePool idle
    cdef public Py_ssize_t index
    cdef public str label
    cdef public str pool_name
    cdef public int port
    cdef public double ramp_since
    cdef public Py_ssize_t ramp_step
    cdef public Py_ssize_t others
    cdef public Py_ssize_t requests_total
    cdef public Py_ssize_t shared_col
    cdef public bint usable
    cdef public object weight

    cpdef void balancer_take(self)
    cpdef void balancer_drop(self)
    cpdef void observe_duration(self, double seconds)
    cpdef void observe_connect(self, double seconds)


cdef class _Tier:
    cdef public list backends
    cdef public object balancer


cdef class PoolRuntime:
    cdef public _Tier _backup
    cdef public object _ctx
    cdef public list _open_breakers
    cdef public _Tier _primary
    cdef public list _primary_backends
    cdef public object _primary_balancer
    cdef public list backends
    cdef public object budget
    cdef public object checker
    cdef public object config
    cdef public double connect_timeout
    cdef public Py_ssize_t in_flight
    cdef public object key_of
    cdef public Py_ssize_t max_in_flight
    cdef public Py_ssize_t max_pending
    cdef public str name
    cdef public bint observes
    cdef public object on_health
    cdef public object outlier
    cdef public bint panic
    cdef public object pending
    cdef public double queue_timeout
    cdef public list ramping
    cdef public bint reports
    cdef public double response_timeout
    cdef public object retries
    cdef public dict retries_by_reason
    cdef public object retry_statuses
    cdef public bint serving
    cdef public object sticky
    cdef public Counters shared
    cdef public Py_ssize_t shared_col
    cdef public Py_ssize_t shared_row
    cdef public object upstream_sni
    cdef public object upstream_ssl
    cdef public double slow_start
    cdef public bint trials
    cdef public double try_timeout

    cpdef BackendState pick(self, object tried=*, object hash_key=*)
    cpdef Py_ssize_t busy(self) except -1
