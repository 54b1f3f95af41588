# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False, embedsignature=True
"""Balancer picks, compiled. ``balance_py.py`` is the pure twin and the reference:
both must give the same picks, call ``accept`` with the same indices in the same
order, and raise the same errors. Read the twin's docstring for the theory of
operation; this file only differs in how the state is stored (C arrays, so a
pick allocates nothing of its own).

Bounds checking is off: every index that comes from a caller goes through
``_checked`` first, and the loops only walk 0..n-1.
"""

from cpython.mem cimport PyMem_Free, PyMem_Malloc
from libc.stdint cimport int64_t, uint64_t
from libc.string cimport memset

import os as _os
from operator import index as _as_int

# Caps the weight so that ``current`` (int64) cannot overflow for any pool
# size a proxy will ever have; the twin uses Python ints and must agree.
MAX_WEIGHT = 1_000_000
# The balancer weight of one configured weight unit: the pool hands balancers
# ``config weight * WEIGHT_UNIT`` so that slow start can ramp even a weight-1
# backend in small steps, and config weights (0..1000) reach MAX_WEIGHT at most.
WEIGHT_UNIT = 1000


cdef int64_t _validated_weight(object weight) except -1:
    cdef object w = _as_int(weight)
    if not 0 <= w <= MAX_WEIGHT:
        raise ValueError(f"weight must be between 0 and {MAX_WEIGHT}, got {w}")
    return w


cdef void *_alloc(Py_ssize_t count, size_t item_size) except NULL:
    # Never ask for 0 bytes: PyMem_Malloc(0) may return NULL, which reads as
    # out-of-memory.
    cdef size_t size = (count if count > 0 else 1) * item_size
    cdef void *p = PyMem_Malloc(size)
    if p is NULL:
        raise MemoryError()
    memset(p, 0, size)
    return p


cdef class _Base:
    """Weights and in-flight counts per backend index; shared by all algorithms."""

    def __cinit__(self, weights, *args, **kwargs):
        # Cython hands a subclass's constructor arguments to every __cinit__
        # up the chain: the extra ones (Random's seed) are the subclass's.
        cdef list validated = [_validated_weight(w) for w in weights]
        cdef Py_ssize_t i
        self.n = len(validated)
        self.weights = <int64_t *>_alloc(self.n, sizeof(int64_t))
        self.active_count = <Py_ssize_t *>_alloc(self.n, sizeof(Py_ssize_t))
        for i in range(self.n):
            self.weights[i] = validated[i]

    def __dealloc__(self):
        PyMem_Free(self.weights)
        PyMem_Free(self.active_count)

    def __len__(self):
        return self.n

    cdef Py_ssize_t _checked(self, Py_ssize_t index) except -1:
        if index < 0 or index >= self.n:
            raise IndexError(f"backend index {index} out of range for {self.n} backends")
        return index

    cpdef void take(self, Py_ssize_t index):
        self.active_count[self._checked(index)] += 1

    cpdef void drop(self, Py_ssize_t index):
        # A stray drop must not drive the count negative: least-connections
        # would then prefer that backend forever.
        self._checked(index)
        if self.active_count[index] > 0:
            self.active_count[index] -= 1

    cpdef void set_weight(self, Py_ssize_t index, object weight):
        self._checked(index)
        self.weights[index] = _validated_weight(weight)

    cpdef Py_ssize_t active(self, Py_ssize_t index) except -1:
        return self.active_count[self._checked(index)]

    cpdef int64_t weight(self, Py_ssize_t index) except -1:
        return self.weights[self._checked(index)]


cdef class RoundRobin(_Base):
    """Cycle over the indices; weight 0 means never picked, other weights are equal."""

    cpdef Py_ssize_t pick(self, object ctx, object accept) except? -2:
        cdef Py_ssize_t n = self.n
        cdef Py_ssize_t i = self.cursor
        cdef Py_ssize_t k
        for k in range(n):
            if self.weights[i] > 0 and (accept is None or accept(i)):
                self.cursor = i + 1 if i + 1 < n else 0
                return i
            i = i + 1 if i + 1 < n else 0
        return -1


cdef class SmoothWeightedRoundRobin(_Base):
    """nginx's smooth weighted round robin over the accepted backends."""

    def __cinit__(self, weights, *args, **kwargs):
        self.current = <int64_t *>_alloc(self.n, sizeof(int64_t))
        self.mark = <char *>_alloc(self.n, sizeof(char))

    def __dealloc__(self):
        PyMem_Free(self.current)
        PyMem_Free(self.mark)

    cpdef Py_ssize_t pick(self, object ctx, object accept) except? -2:
        cdef Py_ssize_t n = self.n
        cdef Py_ssize_t i
        cdef Py_ssize_t best = -1
        cdef int64_t w, v
        cdef int64_t best_value = 0
        cdef int64_t total = 0
        cdef int64_t *weights = self.weights
        cdef int64_t *current = self.current
        cdef char *mark = self.mark
        if accept is None:
            for i in range(n):
                w = weights[i]
                if w > 0:
                    v = current[i] + w
                    current[i] = v
                    total += w
                    if best < 0 or v > best_value:
                        best = i
                        best_value = v
        else:
            # Ask accept about everyone before touching ``current``, so an
            # accept that raises leaves the balancer as it was.
            for i in range(n):
                mark[i] = 0
                w = weights[i]
                if w > 0 and accept(i):
                    mark[i] = 1
                    v = current[i] + w
                    total += w
                    if best < 0 or v > best_value:
                        best = i
                        best_value = v
            if best < 0:
                return -1
            for i in range(n):
                if mark[i]:
                    current[i] += weights[i]
        if best >= 0:
            current[best] -= total
        return best


cdef class First(_Base):
    """The first accepted index with a weight, in index (config) order."""

    cpdef Py_ssize_t pick(self, object ctx, object accept) except? -2:
        cdef Py_ssize_t i
        for i in range(self.n):
            if self.weights[i] > 0 and (accept is None or accept(i)):
                return i
        return -1


cdef uint64_t _seed(object seed) except 0:
    if seed is None:
        seed = int.from_bytes(_os.urandom(8), "little")
    cdef uint64_t s = <uint64_t>(_as_int(seed) & 0xFFFFFFFFFFFFFFFF)
    return s if s != 0 else 1  # xorshift's state must not be 0


cdef class _Seeded(_Base):
    """The generator, weighted draw and pick wrapper that Random, PowerOfTwo and
    PeakEwma (``lbproxy._fast.ewma``) share: a pick that returns -1 or raises
    leaves the generator where it was."""

    def __cinit__(self, weights, seed=None, *args, **kwargs):
        # The extra arguments are a subclass's (PeakEwma's half_life, clock,
        # in lbproxy._fast.ewma); __init__ below still rejects them for
        # Random and PowerOfTwo, as the pure twin does.
        self.mark = <char *>_alloc(self.n, sizeof(char))
        self.state = _seed(seed)

    def __init__(self, weights, seed=None):
        pass  # all done in __cinit__; this only checks the signature

    def __dealloc__(self):
        PyMem_Free(self.mark)

    cdef inline uint64_t _next(self) noexcept:
        cdef uint64_t x = self.state
        x ^= x >> 12
        x ^= x << 25
        x ^= x >> 27
        self.state = x
        return x * <uint64_t>0x2545F4914F6CDD1D

    cdef Py_ssize_t _draw(self, bint use_mark, uint64_t total, Py_ssize_t skip) noexcept:
        # A weighted draw over the indices allowed (all weighted ones unless
        # ``use_mark``) except ``skip``, whose weights sum to ``total``.
        cdef uint64_t r = self._next() % total
        cdef Py_ssize_t i
        cdef int64_t w
        for i in range(self.n):
            w = self.weights[i]
            if w > 0 and i != skip and (not use_mark or self.mark[i]):
                if r < <uint64_t>w:
                    return i
                r -= <uint64_t>w
        return -1  # not reached: r < total

    cpdef Py_ssize_t pick(self, object ctx, object accept) except? -2:
        cdef uint64_t state = self.state
        cdef Py_ssize_t i
        try:
            i = self._pick(accept)
        except BaseException:
            self.state = state
            raise
        if i < 0:
            self.state = state
        return i

    cdef Py_ssize_t _pick(self, object accept) except? -2:
        # Random's draw; PowerOfTwo (and PeakEwma after it) draw their own way.
        cdef Py_ssize_t n = self.n
        cdef Py_ssize_t i
        cdef Py_ssize_t chosen = -1
        cdef int64_t *weights = self.weights
        cdef char *mark = self.mark
        cdef uint64_t total = 0, ok_total = 0, r
        for i in range(n):
            total += <uint64_t>weights[i]
        if total == 0:
            return -1
        r = self._next() % total
        for i in range(n):
            if r < <uint64_t>weights[i]:
                chosen = i
                break
            r -= <uint64_t>weights[i]
        if accept is None or accept(chosen):
            return chosen
        # Refused: a second draw among the indices accept takes.
        for i in range(n):
            mark[i] = 0
            if weights[i] > 0 and i != chosen and accept(i):
                mark[i] = 1
                ok_total += <uint64_t>weights[i]
        if ok_total == 0:
            return -1
        r = self._next() % ok_total
        for i in range(n):
            if mark[i]:
                if r < <uint64_t>weights[i]:
                    return i
                r -= <uint64_t>weights[i]
        return -1  # not reached: r < ok_total


cdef class Random(_Seeded):
    """Weighted random picks (xorshift64*), reproducible from a seed: the
    draw _Seeded makes, under its own name."""


cdef class PowerOfTwo(_Seeded):
    """Two weighted random candidates; the less loaded (per weight) wins.
    PeakEwma (``lbproxy._fast.ewma``) keeps the scheme and replaces ``_better``."""

    cdef Py_ssize_t _better(self, Py_ssize_t a, Py_ssize_t b) except -1:
        # Fewer in flight per unit of weight; a tie keeps the first drawn.
        if <int64_t>self.active_count[b] * self.weights[a] < <int64_t>self.active_count[a] * self.weights[b]:
            return b
        return a

    cdef Py_ssize_t _pick(self, object accept) except? -2:
        cdef Py_ssize_t n = self.n
        cdef Py_ssize_t i, a, b
        cdef int64_t *weights = self.weights
        cdef char *mark = self.mark
        cdef uint64_t total = 0, ok_total = 0, rest
        cdef bint ok_a, ok_b
        for i in range(n):
            total += <uint64_t>weights[i]
        if total == 0:
            return -1
        # _draw through the class, not self: a direct call the C compiler can
        # inline (self._draw goes through the vtable, ~20% slower at 100+).
        a = _Seeded._draw(self, False, total, -1)
        rest = total - <uint64_t>weights[a]
        b = _Seeded._draw(self, False, rest, a) if rest > 0 else -1
        if accept is None:
            return a if b < 0 else self._better(a, b)
        ok_a = accept(a)
        ok_b = b >= 0 and accept(b)
        if ok_a and ok_b:
            return self._better(a, b)
        if ok_a:
            return a
        if ok_b:
            return b
        # Both refused: draw the two choices again among what accept takes.
        for i in range(n):
            mark[i] = 0
            if weights[i] > 0 and i != a and i != b and accept(i):
                mark[i] = 1
                ok_total += <uint64_t>weights[i]
        if ok_total == 0:
            return -1
        a = _Seeded._draw(self, True, ok_total, -1)
        rest = ok_total - <uint64_t>weights[a]
        if rest == 0:
            return a
        return self._better(a, _Seeded._draw(self, True, rest, a))
