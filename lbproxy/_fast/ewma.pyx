# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False, embedsignature=True
# distutils: extra_compile_args = -ffp-contract=off
"""Peak-EWMA picks, compiled. ``ewma_py.py`` is the pure twin and the
reference: both must give the same picks, call ``accept`` and the clock the
same number of times with the same indices in the same order, hold bit-equal
estimates and raise the same errors. Read the twin's docstring for the theory
of operation; this file only differs in where the state lives: C arrays
allocated once per balancer, so a pick allocates nothing of its own.

The floating-point expressions are written in the twin's order, and
``-ffp-contract=off`` (above) keeps compilers that default to fusing a
multiply and an add into one FMA (clang on arm64, gcc on aarch64 or with
-march flags) from rounding differently from Python's separate operations.

Bounds checking is off: every index that comes from a caller goes through
``_checked`` first, and the loops only walk 0..n-1.
"""

from cpython.mem cimport PyMem_Free, PyMem_Malloc
from libc.math cimport INFINITY, exp
from libc.stdint cimport int64_t, uint64_t
from libc.string cimport memset

import time as _time

# The double nearest ln 2, the same literal as the twin's _LN2.
cdef double _LN2 = 0.6931471805599453
# The cost of a backend with requests in flight but no answer yet; see the
# twin's _PENALTY.
cdef double _PENALTY = 1e6


cdef void *_alloc(Py_ssize_t count, size_t item_size) except NULL:
    # Never ask for 0 bytes: PyMem_Malloc(0) may return NULL, which reads as
    # out-of-memory.
    cdef size_t size = (count if count > 0 else 1) * item_size
    cdef void *p = PyMem_Malloc(size)
    if p is NULL:
        raise MemoryError()
    memset(p, 0, size)
    return p


cdef class PeakEwma(_Seeded):
    """Two weighted random candidates; the lower decayed peak-EWMA latency,
    times requests in flight + 1, per weight, wins."""

    def __cinit__(self, weights, seed=None, double half_life=5.0, clock=None):
        # _Base and _Seeded have already taken weights and seed, in the twin's
        # order, so the errors come in the same order too.
        if not 0.0 < half_life < INFINITY:
            raise ValueError(f"half_life must be a positive number of seconds, got {half_life}")
        if clock is None:
            clock = _time.monotonic
        elif not callable(clock):
            raise TypeError(f"clock must be callable, got {type(clock).__name__}")
        self.half_life = half_life
        self.clock = clock
        self.estimate = <double *>_alloc(self.n, sizeof(double))
        self.stamp = <double *>_alloc(self.n, sizeof(double))
        self.answered = <char *>_alloc(self.n, sizeof(char))

    def __init__(self, weights, seed=None, half_life=5.0, clock=None):
        pass  # all done in __cinit__; this replaces _Seeded's narrower signature

    def __dealloc__(self):
        PyMem_Free(self.estimate)
        PyMem_Free(self.stamp)
        PyMem_Free(self.answered)

    cpdef void observe(self, Py_ssize_t index, double seconds):
        """Record a response latency of ``seconds`` for backend ``index``."""
        cdef double t, dt, w, e
        self._checked(index)
        if not 0.0 <= seconds < INFINITY:
            raise ValueError(f"latency must be a finite number >= 0 seconds, got {seconds}")
        t = self.clock()
        dt = t - self.stamp[index]
        if dt < 0.0:
            dt = 0.0  # a clock that steps back must not inflate the estimate
        w = exp(-dt * _LN2 / self.half_life)
        e = self.estimate[index] * w
        if seconds > e:
            self.estimate[index] = seconds
        else:
            self.estimate[index] = e + seconds * (1.0 - w)
        self.stamp[index] = t
        self.answered[index] = 1

    cpdef double ewma(self, Py_ssize_t index) except? -1.0:
        """The stored latency estimate ``e`` of ``index`` (not decayed to now)."""
        return self.estimate[self._checked(index)]

    cdef inline double _cost(self, Py_ssize_t i, double t) noexcept:
        cdef Py_ssize_t active = self.active_count[i]
        cdef double dt
        if not self.answered[i]:
            return 0.0 if active == 0 else _PENALTY + active
        dt = t - self.stamp[i]
        if dt < 0.0:
            dt = 0.0
        return self.estimate[i] * exp(-dt * _LN2 / self.half_life) * (active + 1)

    cdef Py_ssize_t _better(self, Py_ssize_t a, Py_ssize_t b) except -1:
        # The one comparison of a pick, so the one clock read. Lower cost per
        # weight wins; a tie keeps the first drawn.
        cdef double t = self.clock()
        if self._cost(b, t) * <double>self.weights[a] < self._cost(a, t) * <double>self.weights[b]:
            return b
        return a

    cdef Py_ssize_t _pick(self, object accept) except? -2:
        # PowerOfTwo's candidate scheme, line for line; only _better differs.
        # The pick wrapper around it (generator restored on -1 or raise) is
        # _Seeded's.
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
        a = self._draw(False, total, -1)
        rest = total - <uint64_t>weights[a]
        b = self._draw(False, rest, a) if rest > 0 else -1
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
        a = self._draw(True, ok_total, -1)
        rest = ok_total - <uint64_t>weights[a]
        if rest == 0:
            return a
        return self._better(a, self._draw(True, rest, a))
