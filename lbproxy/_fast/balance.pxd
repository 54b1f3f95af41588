# Declarations shared with any future .pyx that wants to call the balancers at
# C level (a compiled pool, say) without going through Python attribute lookup.
cimport cython
from libc.stdint cimport int64_t, uint64_t


cdef class _Base:
    cdef Py_ssize_t n
    cdef int64_t *weights
    cdef Py_ssize_t *active_count

    cdef Py_ssize_t _checked(self, Py_ssize_t index) except -1
    cpdef void take(self, Py_ssize_t index)
    cpdef void drop(self, Py_ssize_t index)
    cpdef void set_weight(self, Py_ssize_t index, object weight)
    cpdef Py_ssize_t active(self, Py_ssize_t index) except -1
    cpdef int64_t weight(self, Py_ssize_t index) except -1


@cython.final
cdef class RoundRobin(_Base):
    cdef Py_ssize_t cursor

    cpdef Py_ssize_t pick(self, object ctx, object accept) except? -2


@cython.final
cdef class SmoothWeightedRoundRobin(_Base):
    cdef int64_t *current
    cdef char *mark

    cpdef Py_ssize_t pick(self, object ctx, object accept) except? -2


@cython.final
cdef class First(_Base):
    cpdef Py_ssize_t pick(self, object ctx, object accept) except? -2


cdef class _Seeded(_Base):
    cdef uint64_t state
    cdef char *mark

    cdef inline uint64_t _next(self) noexcept
    cdef Py_ssize_t _draw(self, bint use_mark, uint64_t total, Py_ssize_t skip) noexcept
    cpdef Py_ssize_t pick(self, object ctx, object accept) except? -2
    cdef Py_ssize_t _pick(self, object accept) except? -2


@cython.final
cdef class Random(_Seeded):
    pass


cdef class PowerOfTwo(_Seeded):
    # Not final: PeakEwma (ewma.pyx) is PowerOfTwo with another comparison.
    cdef Py_ssize_t _better(self, Py_ssize_t a, Py_ssize_t b) except -1
