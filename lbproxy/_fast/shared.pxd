# Declarations for cimport by the compiled data path (lbproxy/http/pool.pxd).
from libc.stdint cimport int64_t


cdef class Counters:
    cdef object _view
    cdef int64_t *_cells
    cdef readonly Py_ssize_t rows
    cdef readonly Py_ssize_t cols

    cdef inline Py_ssize_t _at(self, Py_ssize_t row, Py_ssize_t col) except -1
    cpdef void add(self, Py_ssize_t row, Py_ssize_t col, int64_t delta) except *
    cpdef bint try_add(self, Py_ssize_t row, Py_ssize_t col, int64_t limit) except -1
    cpdef int64_t get(self, Py_ssize_t row, Py_ssize_t col) except? -1
    cpdef int64_t total(self, Py_ssize_t col) except? -1
    cpdef void clear_row(self, Py_ssize_t row) except *
