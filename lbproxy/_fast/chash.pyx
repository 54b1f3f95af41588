# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False, embedsignature=True
"""Consistent hashing with bounded loads, compiled. ``chash_py.py`` is the pure
twin and the reference: both must build the same ring, give the same picks,
call ``accept`` with the same indices in the same order, and raise the same
errors. Read the twin's docstring for the theory of operation (the ring, why
not Maglev, the load bound and its arithmetic); this file differs only in how
the state is stored.

The ring is two C arrays, ``points`` (uint64, ascending) and ``owners``, and a
pick is a binary search plus a walk over them. The "already considered" marks
of a walk are stamps: ``marks[i] == epoch`` means considered in this pick, and
every pick starts a new epoch, which resets all the marks at once (a memset
only when the 32-bit epoch wraps). So a pick allocates nothing, and a pick
whose ``accept`` raises leaves no marks behind to clean up. The key is hashed
straight from the bytes object's buffer.

Bounds checking is off: every index from a caller goes through ``_checked``
first, and the loops only walk 0..n-1 and 0..size-1.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from libc.stdint cimport int64_t, uint32_t, uint64_t
from libc.stdlib cimport qsort
from libc.string cimport memset

import math as _math

from lbproxy._fast.balance import WEIGHT_UNIT

# Ring points per configured weight unit (WEIGHT_UNIT balancer units).
POINTS_PER_UNIT = 160
# Cap on the ring's size: 2**22 points are 48 MiB here (and 96 MiB more while a
# full build sorts them).
MAX_POINTS = 1 << 22

cdef int64_t _weight_unit = WEIGHT_UNIT
cdef int64_t _points_per_unit = POINTS_PER_UNIT
cdef int64_t _max_points = MAX_POINTS

cdef uint64_t _FNV_OFFSET = 0xCBF29CE484222325ULL
cdef uint64_t _FNV_PRIME = 0x100000001B3ULL
cdef uint64_t _GOLDEN = 0x9E3779B97F4A7C15ULL


cdef inline uint64_t _mix(uint64_t z) noexcept nogil:
    # The splitmix64 finalizer: a bijection of 64-bit values.
    z ^= z >> 30
    z *= 0xBF58476D1CE4E5B9ULL
    z ^= z >> 27
    z *= 0x94D049BB133111EBULL
    return z ^ (z >> 31)


cdef uint64_t _hash_bytes(object data) except? 0:
    if not isinstance(data, bytes):
        raise TypeError(f"hash key must be bytes, not {type(data).__name__}")
    cdef const unsigned char *p = <const unsigned char *>PyBytes_AS_STRING(data)
    cdef Py_ssize_t size = PyBytes_GET_SIZE(data)
    cdef Py_ssize_t k
    cdef uint64_t h = _FNV_OFFSET
    for k in range(size):
        h = (h ^ p[k]) * _FNV_PRIME
    return _mix(h)


def key_hash(data):
    """64-bit FNV-1a of ``data`` then the splitmix64 finalizer; the same in every process."""
    return _hash_bytes(data)


cdef void *_alloc(Py_ssize_t count, size_t item_size) except NULL:
    # Never ask for 0 bytes: PyMem_Malloc(0) may return NULL, which reads as
    # out-of-memory.
    cdef size_t size = (count if count > 0 else 1) * item_size
    cdef void *p = PyMem_Malloc(size)
    if p is NULL:
        raise MemoryError()
    memset(p, 0, size)
    return p


cdef double _validated_factor(object balance_factor) except -1.0:
    if isinstance(balance_factor, bool) or not isinstance(balance_factor, (int, float)):
        raise TypeError(f"balance_factor must be a number, not {type(balance_factor).__name__}")
    c = float(balance_factor)
    if c != 0.0 and not (c >= 1.0 and _math.isfinite(c)):
        raise ValueError(f"balance_factor must be 0 (off) or a finite number >= 1, got {c!r}")
    return c


cdef tuple _validated_names(object names, Py_ssize_t n):
    if isinstance(names, (str, bytes)):
        raise TypeError("names must be a sequence of str, one per backend")
    cdef tuple checked = tuple(names)
    for name in checked:
        if not isinstance(name, str):
            raise TypeError(f"backend name must be a str, not {type(name).__name__}")
    if len(checked) != n:
        raise ValueError(f"{len(checked)} names for {n} weights: need one name per backend")
    if len(set(checked)) != n:
        raise ValueError("backend names must be distinct")
    return checked


cdef struct _Entry:
    uint64_t value
    Py_ssize_t rank
    Py_ssize_t owner


cdef int _entry_order(const void *a, const void *b) noexcept nogil:
    # By position, then by name (rank r is the r-th name in sorted order).
    cdef const _Entry *x = <const _Entry *>a
    cdef const _Entry *y = <const _Entry *>b
    if x.value != y.value:
        return -1 if x.value < y.value else 1
    if x.rank != y.rank:
        return -1 if x.rank < y.rank else 1
    return 0


cdef int _u64_order(const void *a, const void *b) noexcept nogil:
    cdef uint64_t x = (<const uint64_t *>a)[0]
    cdef uint64_t y = (<const uint64_t *>b)[0]
    return -1 if x < y else (1 if x > y else 0)


cdef class ConsistentHash(_Base):
    """Hash ring with bounded loads: a key sticks to a backend; round robin without one."""

    def __cinit__(self, weights, names, balance_factor=0.0):
        # _Base.__cinit__ has run: n, weights and active_count are set.
        cdef Py_ssize_t i, r
        self.names = _validated_names(names, self.n)
        self.factor = _validated_factor(balance_factor)
        self.name_hash = <uint64_t *>_alloc(self.n, sizeof(uint64_t))
        self.rank = <Py_ssize_t *>_alloc(self.n, sizeof(Py_ssize_t))
        self.counts = <Py_ssize_t *>_alloc(self.n, sizeof(Py_ssize_t))
        self.scratch = <Py_ssize_t *>_alloc(self.n, sizeof(Py_ssize_t))
        self.marks = <uint32_t *>_alloc(self.n, sizeof(uint32_t))
        for i in range(self.n):
            self.name_hash[i] = _hash_bytes(self.names[i].encode())
        order = sorted(range(self.n), key=self.names.__getitem__)
        for r in range(self.n):
            self.rank[<Py_ssize_t>order[r]] = r
        self._build(-1)

    def __dealloc__(self):
        PyMem_Free(self.name_hash)
        PyMem_Free(self.rank)
        PyMem_Free(self.counts)
        PyMem_Free(self.scratch)
        PyMem_Free(self.points)
        PyMem_Free(self.owners)
        PyMem_Free(self.marks)

    cdef int _build(self, Py_ssize_t changed) except -1:
        # Points from the weights; the state changes only once they are all
        # made. The twin's _build says when a change is merged in (_update).
        cdef Py_ssize_t n = self.n
        cdef Py_ssize_t i, j, k
        cdef Py_ssize_t total = 0
        cdef Py_ssize_t weighted = 0
        cdef int64_t w, weight_sum = 0
        cdef Py_ssize_t *counts = self.scratch
        cdef bint same = True, others_same = True
        cdef _Entry *entries
        cdef uint64_t *points
        cdef int *owners
        cdef uint64_t base
        for i in range(n):
            w = self.weights[i]
            counts[i] = (w * _points_per_unit + _weight_unit - 1) // _weight_unit if w > 0 else 0
            total += counts[i]
            weight_sum += w
            if w > 0:
                weighted += 1
        if total > _max_points:
            for i in range(n):
                if counts[i] > 0:
                    counts[i] = max(1, <Py_ssize_t>(<int64_t>counts[i] * _max_points // total))
            total = 0
            for i in range(n):
                total += counts[i]
        for i in range(n):
            if counts[i] != self.counts[i]:
                same = False
                if i != changed:
                    others_same = False
        if not self.built or not same:
            if self.built and others_same and 0 <= changed < n:
                self._update(changed, self.counts[changed], counts[changed], total)
            else:
                entries = <_Entry *>_alloc(total, sizeof(_Entry))
                try:
                    points = <uint64_t *>_alloc(total, sizeof(uint64_t))
                    try:
                        owners = <int *>_alloc(total, sizeof(int))
                    except BaseException:
                        PyMem_Free(points)
                        raise
                    j = 0
                    for i in range(n):
                        base = self.name_hash[i]
                        for k in range(counts[i]):
                            entries[j].value = _mix(base + <uint64_t>k * _GOLDEN)
                            entries[j].rank = self.rank[i]
                            entries[j].owner = i
                            j += 1
                    qsort(entries, total, sizeof(_Entry), _entry_order)
                    for j in range(total):
                        points[j] = entries[j].value
                        owners[j] = <int>entries[j].owner
                finally:
                    PyMem_Free(entries)
                self._install(points, owners, total)
            self.scratch = self.counts
            self.counts = counts
            self.built = True
        self.weighted = weighted
        self.weight_sum = weight_sum
        return 0

    cdef void _install(self, uint64_t *points, int *owners, Py_ssize_t total) noexcept:
        PyMem_Free(self.points)
        PyMem_Free(self.owners)
        self.points = points
        self.owners = owners
        self.size = total

    cdef int _update(
        self, Py_ssize_t index, Py_ssize_t old_count, Py_ssize_t new_count, Py_ssize_t total
    ) except -1:
        # Only backend ``index`` changed its count: hash the points between
        # the old and the new count and merge them in (or take them out) in
        # one pass over the ring.
        cdef Py_ssize_t lo = old_count if old_count < new_count else new_count
        cdef Py_ssize_t d = (new_count - old_count) if new_count > old_count else (old_count - new_count)
        cdef uint64_t base = self.name_hash[index]
        cdef Py_ssize_t r = self.rank[index]
        cdef Py_ssize_t size = self.size
        cdef const uint64_t *old_points = self.points
        cdef const int *old_owners = self.owners
        cdef uint64_t *delta
        cdef uint64_t *points
        cdef int *owners
        cdef Py_ssize_t a = 0, b = 0, j = 0, k
        delta = <uint64_t *>_alloc(d, sizeof(uint64_t))
        try:
            points = <uint64_t *>_alloc(total, sizeof(uint64_t))
            try:
                owners = <int *>_alloc(total, sizeof(int))
            except BaseException:
                PyMem_Free(points)
                raise
            for k in range(d):
                delta[k] = _mix(base + <uint64_t>(lo + k) * _GOLDEN)
            qsort(delta, d, sizeof(uint64_t), _u64_order)
            if new_count > old_count:
                while a < size or b < d:
                    if b < d and (
                        a == size
                        or delta[b] < old_points[a]
                        or (delta[b] == old_points[a] and r < self.rank[old_owners[a]])
                    ):
                        points[j] = delta[b]
                        owners[j] = <int>index
                        b += 1
                    else:
                        points[j] = old_points[a]
                        owners[j] = old_owners[a]
                        a += 1
                    j += 1
            else:
                # index's points come in ascending order, and so do the ones
                # that go: each is the next of ``delta`` when it is met.
                for a in range(size):
                    if old_owners[a] == index and b < d and old_points[a] == delta[b]:
                        b += 1
                    else:
                        points[j] = old_points[a]
                        owners[j] = old_owners[a]
                        j += 1
        finally:
            PyMem_Free(delta)
        self._install(points, owners, total)
        return 0

    @property
    def balance_factor(self):
        return self.factor

    cpdef Py_ssize_t ring_points(self, Py_ssize_t index) except -1:
        """How many points backend ``index`` has on the ring (0 for weight 0)."""
        return self.counts[self._checked(index)]

    cpdef void take(self, Py_ssize_t index):
        _Base.take(self, index)
        self.total_active += 1

    cpdef void drop(self, Py_ssize_t index):
        if self.active_count[self._checked(index)] > 0:
            self.total_active -= 1
        _Base.drop(self, index)

    cpdef void set_weight(self, Py_ssize_t index, object weight):
        cdef int64_t old = self.weights[self._checked(index)]
        _Base.set_weight(self, index, weight)
        try:
            self._build(index)
        except BaseException:  # out of memory: keep the weight the ring reflects
            self.weights[index] = old
            raise

    cpdef Py_ssize_t pick(self, object ctx, object accept) except? -2:
        cdef object key
        cdef uint64_t h
        cdef Py_ssize_t size, lo, hi, mid, j, seen, i, step
        cdef const uint64_t *points
        cdef const int *owners
        cdef uint32_t *marks
        cdef uint32_t epoch
        cdef bint bounded
        cdef double scale, weight_sum
        if ctx is None:
            return self._round_robin(accept)
        key = ctx.hash_key
        if key is None:
            return self._round_robin(accept)
        h = _hash_bytes(key)
        size = self.size
        if size == 0:
            return -1
        points = self.points
        lo = 0
        hi = size
        while lo < hi:  # the first point at or after h
            mid = (lo + hi) >> 1
            if points[mid] < h:
                lo = mid + 1
            else:
                hi = mid
        j = lo if lo < size else 0
        # A new epoch clears every mark of the previous picks.
        self.epoch += 1
        if self.epoch == 0:
            memset(self.marks, 0, self.n * sizeof(uint32_t))
            self.epoch = 1
        epoch = self.epoch
        marks = self.marks
        owners = self.owners
        bounded = self.factor > 0.0
        scale = self.factor * <double>(self.total_active + 1)
        weight_sum = <double>self.weight_sum
        seen = 0
        for step in range(size):
            i = owners[j]
            j = j + 1 if j + 1 < size else 0
            if marks[i] == epoch:
                continue
            marks[i] = epoch
            seen += 1
            if bounded and <double>self.active_count[i] >= scale * <double>self.weights[i] / weight_sum:
                pass  # over its bound: skipped, never offered
            elif accept is None or accept(i):
                return i
            if seen == self.weighted:
                return -1
        return -1  # not reached: every weighted backend has a point

    cdef Py_ssize_t _round_robin(self, object accept) except? -2:
        cdef Py_ssize_t n = self.n
        cdef Py_ssize_t i = self.cursor
        cdef Py_ssize_t k
        for k in range(n):
            if self.weights[i] > 0 and (accept is None or accept(i)):
                self.cursor = i + 1 if i + 1 < n else 0
                return i
            i = i + 1 if i + 1 < n else 0
        return -1
