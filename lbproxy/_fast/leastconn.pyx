# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False, embedsignature=True
"""Least-connections picks, compiled. ``leastconn_py.py`` is the pure twin and
the reference: both must give the same picks, call ``accept`` with the same
indices in the same order, and raise the same errors. Read the twin's
docstring for the theory of operation (the rule, the rotating tie-break, the
segment tree); this file only differs in where the state lives: C arrays
allocated once per balancer, so a pick allocates nothing, with or without
``accept``.

Bounds checking is off: every index from a caller goes through ``_checked``
(in the base class) first, and tree slots are 1..2*size-1 by construction.
"""

from cpython.mem cimport PyMem_Free, PyMem_Malloc
from libc.stdint cimport int64_t

from lbproxy._fast.balance cimport _Base


cdef Py_ssize_t *_alloc_indices(Py_ssize_t count) except NULL:
    # Never ask for 0 bytes: PyMem_Malloc(0) may return NULL, which reads as
    # out-of-memory.
    cdef Py_ssize_t *p = <Py_ssize_t *>PyMem_Malloc((count if count > 0 else 1) * sizeof(Py_ssize_t))
    if p is NULL:
        raise MemoryError()
    return p


cdef class LeastConnections(_Base):
    """Fewest requests in flight per unit of weight; ties rotate."""

    def __cinit__(self, weights, *args, **kwargs):
        # _Base.__cinit__ has already validated the weights and set n.
        cdef Py_ssize_t size = 1
        cdef Py_ssize_t i, j
        while size < self.n:
            size *= 2
        self.size = size
        self.cursor = 0
        self.tree = _alloc_indices(2 * size)
        # One slot per index: a pick refuses each index at most once, so this
        # is all the room the list of refusals to undo can ever need.
        self.refused = _alloc_indices(self.n)
        for j in range(2 * size):
            self.tree[j] = -1
        for i in range(self.n):
            if self.weights[i] > 0:
                self.tree[size + i] = i
        for j in range(size - 1, 0, -1):
            self.tree[j] = self._better(self.tree[2 * j], self.tree[2 * j + 1])

    def __dealloc__(self):
        # _Base.__dealloc__ frees weights and counts after this.
        PyMem_Free(self.tree)
        PyMem_Free(self.refused)

    # -- the tree --------------------------------------------------------------

    cdef inline Py_ssize_t _better(self, Py_ssize_t a, Py_ssize_t b) noexcept:
        # Lower load wins, then the lower index; -1 (nothing) loses. int64 is
        # exact here: see "Overflow" in the twin's docstring.
        if a < 0:
            return b
        if b < 0:
            return a
        cdef int64_t left = <int64_t>self.active_count[a] * self.weights[b]
        cdef int64_t right = <int64_t>self.active_count[b] * self.weights[a]
        if left < right or (left == right and a < b):
            return a
        return b

    cdef void _update(self, Py_ssize_t index, Py_ssize_t leaf) noexcept:
        # Set one leaf (index or -1) and recompute its ancestors.
        cdef Py_ssize_t *tree = self.tree
        cdef Py_ssize_t j = self.size + index
        tree[j] = leaf
        j >>= 1
        while j:
            tree[j] = self._better(tree[2 * j], tree[2 * j + 1])
            j >>= 1

    cdef inline void _restore(self, Py_ssize_t index) noexcept:
        # A leaf as take/drop/set_weight keep it: itself when weighted.
        self._update(index, index if self.weights[index] > 0 else -1)

    cdef Py_ssize_t _best_from(self, Py_ssize_t lo) noexcept:
        # The best index in [lo, n): a bottom-up range query over [lo, size);
        # the slots past n are -1 and never win.
        cdef Py_ssize_t *tree = self.tree
        cdef Py_ssize_t best = -1
        cdef Py_ssize_t left = lo + self.size
        cdef Py_ssize_t right = 2 * self.size
        while left < right:
            if left & 1:
                best = self._better(best, tree[left])
                left += 1
            if right & 1:
                right -= 1
                best = self._better(best, tree[right])
            left >>= 1
            right >>= 1
        return best

    cdef Py_ssize_t _candidate(self) noexcept:
        # The rule, in O(log n): see "A pick in O(log n)" in the twin.
        cdef Py_ssize_t root = self.tree[1]
        cdef Py_ssize_t after
        if root < 0 or root >= self.cursor:
            return root
        after = self._best_from(self.cursor)
        # ``after`` is never less loaded than the root: equal means tied.
        if after >= 0 and (
            <int64_t>self.active_count[after] * self.weights[root]
            == <int64_t>self.active_count[root] * self.weights[after]
        ):
            return after
        return root

    # -- the balancer ------------------------------------------------------------

    cpdef Py_ssize_t pick(self, object ctx, object accept) except? -2:
        cdef Py_ssize_t chosen
        cdef Py_ssize_t count = 0
        cdef Py_ssize_t k
        if accept is None:
            chosen = self._candidate()
            if chosen >= 0:
                self.cursor = chosen + 1 if chosen + 1 < self.n else 0
            return chosen
        try:
            while True:
                chosen = self._candidate()
                if chosen < 0:
                    return -1
                if accept(chosen):
                    self.cursor = chosen + 1 if chosen + 1 < self.n else 0
                    return chosen
                # Out for the rest of this pick, so it is not offered again.
                self.refused[count] = chosen
                count += 1
                self._update(chosen, -1)
        finally:
            # However the pick ends, the tree goes back to what it was.
            for k in range(count):
                self._restore(self.refused[k])

    cpdef void take(self, Py_ssize_t index):
        _Base.take(self, index)
        # A weight-0 index is in no node; its load matters again only when
        # set_weight brings it back, which recomputes its path anyway.
        if self.weights[index] > 0:
            self._restore(index)

    cpdef void drop(self, Py_ssize_t index):
        _Base.drop(self, index)
        if self.weights[index] > 0:
            self._restore(index)

    cpdef void set_weight(self, Py_ssize_t index, object weight):
        _Base.set_weight(self, index, weight)
        self._restore(index)
