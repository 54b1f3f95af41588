# cython: language_level=3, boundscheck=False, wraparound=False
# cython: initializedcheck=False, embedsignature=True
"""Counters in memory shared by worker processes, compiled. ``shared_py.py``
is the pure twin and describes the table; here row 0 (the totals) is
updated with the C compiler's atomic builtins, sequentially consistent, so
workers never lose each other's updates, and the table is a pointer into the
buffer (kept alive by the memoryview this object holds).
"""

from libc.stdint cimport int64_t

cdef extern from *:
    """
    static inline int64_t lbp_fetch_add(int64_t *p, int64_t d) {
        return __atomic_fetch_add(p, d, __ATOMIC_SEQ_CST);
    }
    static inline int64_t lbp_load(int64_t *p) {
        return __atomic_load_n(p, __ATOMIC_SEQ_CST);
    }
    """
    int64_t lbp_fetch_add(int64_t *p, int64_t d) nogil
    int64_t lbp_load(int64_t *p) nogil

cdef Py_ssize_t WIDTH = 8


cdef class Counters:
    # Attributes: see shared.pxd.

    def __cinit__(self, buffer, Py_ssize_t rows, Py_ssize_t cols, int fd=-1):
        # ``fd`` is for the pure twin's locks; atomics need none.
        if rows < 1 or cols < 1:
            raise ValueError(f"a table needs rows and columns, got {rows} x {cols}")
        view = memoryview(buffer)
        if view.readonly:
            raise ValueError("the buffer must be writable")
        if view.nbytes < (rows + 1) * cols * WIDTH:
            raise ValueError(
                f"buffer of {view.nbytes} bytes is too small for {rows} rows of {cols}"
            )
        cdef unsigned char[::1] raw = view.cast("B")
        if (<size_t>&raw[0]) % WIDTH:
            raise ValueError("the buffer is not 8-byte aligned")
        self._view = raw
        self._cells = <int64_t *>&raw[0]
        self.rows = rows
        self.cols = cols

    cdef inline Py_ssize_t _at(self, Py_ssize_t row, Py_ssize_t col) except -1:
        if row < 1 or row > self.rows:
            raise IndexError(f"row {row} out of range 1..{self.rows}")
        if col < 0 or col >= self.cols:
            raise IndexError(f"column {col} out of range for {self.cols} columns")
        return row * self.cols + col

    cpdef void add(self, Py_ssize_t row, Py_ssize_t col, int64_t delta) except *:
        cdef Py_ssize_t i = self._at(row, col)
        self._cells[i] = self._cells[i] + delta
        lbp_fetch_add(&self._cells[col], delta)

    cpdef bint try_add(self, Py_ssize_t row, Py_ssize_t col, int64_t limit) except -1:
        cdef Py_ssize_t i = self._at(row, col)
        if lbp_fetch_add(&self._cells[col], 1) >= limit:
            lbp_fetch_add(&self._cells[col], -1)
            return False
        self._cells[i] = self._cells[i] + 1
        return True

    cpdef int64_t get(self, Py_ssize_t row, Py_ssize_t col) except? -1:
        return self._cells[self._at(row, col)]

    cpdef int64_t total(self, Py_ssize_t col) except? -1:
        if col < 0 or col >= self.cols:
            raise IndexError(f"column {col} out of range for {self.cols} columns")
        return lbp_load(&self._cells[col])

    cpdef void clear_row(self, Py_ssize_t row) except *:
        cdef Py_ssize_t start = self._at(row, 0), col
        cdef int64_t held
        for col in range(self.cols):
            held = self._cells[start + col]
            if held:
                lbp_fetch_add(&self._cells[col], -held)
                self._cells[start + col] = 0
