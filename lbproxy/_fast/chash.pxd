# Declarations of the compiled consistent-hash balancer, for any .pyx that wants
# to call it at C level. chash_py.py is the reference; chash.pyx the code.
cimport cython
from libc.stdint cimport int64_t, uint32_t, uint64_t

from lbproxy._fast.balance cimport _Base


cdef uint64_t _hash_bytes(object data) except? 0


@cython.final
cdef class ConsistentHash(_Base):
    cdef tuple names
    cdef double factor            # 0.0: no load bound
    cdef uint64_t *name_hash      # key_hash(name_i.encode())
    cdef Py_ssize_t *rank         # position of name_i among the sorted names
    cdef Py_ssize_t *counts       # ring points per backend
    cdef Py_ssize_t *scratch      # counts being computed by _build
    cdef bint built
    cdef uint64_t *points         # ring positions, ascending (ties by name)
    cdef int *owners              # backend index of each point
    cdef Py_ssize_t size          # number of points
    cdef uint32_t *marks          # marks[i] == epoch: i already considered this pick
    cdef uint32_t epoch
    cdef Py_ssize_t cursor        # round robin when a pick has no hash key
    cdef Py_ssize_t weighted      # indices with a weight > 0
    cdef int64_t weight_sum       # W: the sum of the weights
    cdef Py_ssize_t total_active  # T: requests in flight on all indices

    # take, drop and set_weight are overridden in chash.pyx (they keep T and
    # rebuild the ring) but not redeclared here: Cython refuses a redeclared
    # inherited cpdef method in a final class, and the vtable slots of _Base
    # point to the overrides all the same.
    cpdef Py_ssize_t ring_points(self, Py_ssize_t index) except -1
    cpdef Py_ssize_t pick(self, object ctx, object accept) except? -2
    cdef int _build(self, Py_ssize_t changed) except -1
    cdef void _install(self, uint64_t *points, int *owners, Py_ssize_t total) noexcept
    cdef int _update(
        self, Py_ssize_t index, Py_ssize_t old_count, Py_ssize_t new_count, Py_ssize_t total
    ) except -1
    cdef Py_ssize_t _round_robin(self, object accept) except? -2
