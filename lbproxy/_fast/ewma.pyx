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


cdef class PeakEwma(PowerOfTwo):
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
