# Compile-time declarations for pool.py (see upstream.pxd).
from lbproxy.http.upstream cimport IdlePool


cdef class BackendState:
    cdef public object _balancer
    cdef public Py_ssize_t _slot
    cdef public Py_ssize_t active
    cdef public object address
    cdef public bint backup
    cdef public Py_ssize_t failures_total
    cdef public str host
    cdef public bytes host_header
    cdef public IdlePool idle
    cdef public str label
    cdef public str pool_name
    cdef public int port
    cdef public double ramp_since
    cdef public Py_ssize_t ramp_step
    cdef public Py_ssize_t requests_total
    cdef public object weight

    cpdef void balancer_take(self)
    cpdef void balancer_drop(self)


cdef class _Tier:
    cdef public list backends
    cdef public object balancer


cdef class PoolRuntime:
    cdef public _Tier _backup
    cdef public object _ctx
    cdef public _Tier _primary
    cdef public list _primary_backends
    cdef public object _primary_balancer
    cdef public list backends
    cdef public object config
    cdef public double connect_timeout
    cdef public object key_of
    cdef public str name
    cdef public bint observes
    cdef public list ramping
    cdef public double response_timeout
    cdef public double slow_start

    cpdef BackendState pick(self, object tried=*, object hash_key=*)
