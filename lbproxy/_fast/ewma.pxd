# Declarations for C-level callers (a compiled pool) and for ewma.pyx. PeakEwma
# is balance.pyx's PowerOfTwo (weights, in-flight counts, generator, the two
# weighted draws and the state-restoring pick) with its own _better.
from lbproxy._fast.balance cimport PowerOfTwo


# Not final: Cython 3.3 refuses an override of an inherited method (_better)
# in a final class ("Overriding final methods is not allowed").
cdef class PeakEwma(PowerOfTwo):
    cdef double *estimate  # e: peak-EWMA latency, seconds
    cdef double *stamp     # s: clock reading at the last observation
    cdef char *answered    # 0 until the first observation
    cdef double half_life
    cdef object clock

    cpdef void observe(self, Py_ssize_t index, double seconds)
    cpdef double ewma(self, Py_ssize_t index) except? -1.0
    cdef inline double _cost(self, Py_ssize_t i, double t) noexcept
    cdef Py_ssize_t _better(self, Py_ssize_t a, Py_ssize_t b) except -1
