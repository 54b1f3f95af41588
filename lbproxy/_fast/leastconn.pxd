# Declarations for C-level callers (a compiled pool) and for leastconn.pyx,
# which shares _Base (weights, in-flight counts) with the other balancers.
cimport cython

from lbproxy._fast.balance cimport _Base


@cython.final
cdef class LeastConnections(_Base):
    cdef Py_ssize_t size
    cdef Py_ssize_t cursor
    cdef Py_ssize_t *tree
    cdef Py_ssize_t *refused

    cdef inline Py_ssize_t _better(self, Py_ssize_t a, Py_ssize_t b) noexcept
    cdef void _update(self, Py_ssize_t index, Py_ssize_t leaf) noexcept
    cdef inline void _restore(self, Py_ssize_t index) noexcept
    cdef Py_ssize_t _best_from(self, Py_ssize_t lo) noexcept
    cdef Py_ssize_t _candidate(self) noexcept
    cpdef Py_ssize_t pick(self, object ctx, object accept) except? -2
