"""Consistent hashing with bounded loads, pure Python: the reference twin of
``chash.pyx``.

Theory of operation
-------------------
``ConsistentHash`` keeps the balancer contract of ``balance_py`` (read its
docstring: ``pick(ctx, accept)`` returns an index or -1, ``accept`` may veto,
each index is offered at most once per pick, weight-0 indices are never offered
nor picked, a pick that returns -1 or whose ``accept`` raises changes no
state). What it adds is *affinity*: requests with the same ``ctx.hash_key``
land on the same backend for as long as the pool does not change, and when it
does change, as few keys as possible move.

Keys
    ``key_hash(data)`` is 64-bit FNV-1a over the bytes followed by the
    splitmix64 finalizer, whose avalanche makes up for FNV's weak high bits.
    It depends on the bytes alone: never on Python's ``hash()`` (salted per
    process), so every worker and every restart maps a key the same way.

The ring
    Backend i with balancer weight w > 0 gets ``ceil(w * 160 / WEIGHT_UNIT)``
    points on a circle of 2**64 positions: 160 for config weight 1, 480 for
    config weight 3. Point k of backend i sits at ``mix(key_hash(name_i) +
    k * 0x9E3779B97F4A7C15)`` (mod 2**64, ``mix`` the splitmix64 finalizer),
    where ``name_i`` is the backend's address. The points are sorted by
    (position, name), so the ring depends only on the names and weights:
    never on the order the backends are listed in, the pool's name, the
    process or the time. Were the total to pass ``MAX_POINTS`` (2**22), which
    takes config weights summing past about 26,000, every backend's count is
    scaled down by the same factor (at least one point each); only in that
    regime does a change to one backend's weight move points of the others.

    A key goes to the owner of the first point at or after ``key_hash(key)``,
    wrapping past the top to the first point: a binary search, O(log points).

Why a ring and not Maglev
    Adding or removing one backend of N must move about 1/N of the keys, and
    keys on the other backends must stay where they are. On a ring that holds
    by construction: the new backend's points only take over arcs, so every
    key that moves, moves *to* it; removing a backend hands its arcs to the
    next points clockwise and nothing else changes. Maglev's lookup table is
    refilled from every backend's permutation when one changes, which also
    shuffles a few keys between backends that did not change. Maglev's O(1)
    lookup does not buy much here either: the binary search over a few
    thousand points is a small part of a pick. ``set_weight`` is the same
    story: the points of backend i are a prefix of one sequence, so raising
    its weight only adds points (keys move only to i) and lowering it only
    removes them (keys move only from i). Weight 0 takes i off the ring.

Picking
    From the key's point the walk goes clockwise and considers each distinct
    backend once, at its first point. With ``accept`` refusing the owner (down,
    ejected, already tried) the key falls to the next distinct backend
    clockwise, the same backend every time for the same key and pool. Once
    the walk has considered every weighted backend, the pick returns -1.

Bounded loads
    Mirrokni, Thorup and Zadimoghaddam, "Consistent Hashing with Bounded
    Loads" (2018). With ``balance_factor`` c >= 1 a backend may take a new
    request only if ``active[i] + 1 <= ceil(c * (T + 1) * w_i / W)``, where T
    is the number of requests in flight on all backends (``take`` and
    ``drop`` keep it, weight-0 backends included) and W the sum of the
    positive weights. A backend over its bound is skipped without being
    offered to ``accept``, so a hot key overflows to the next distinct
    backend clockwise. Since the bounds add up to at least c * (T + 1) > T,
    some backend is always under its bound. The test is computed as
    ``active[i] >= (c * (T + 1)) * w_i / W`` in doubles, evaluated in that
    order by both twins (``a + 1 <= ceil(q)`` holds exactly when ``a < q``),
    so they agree bit for bit. c = 0 (the default) turns the bound off;
    values between 0 and 1 would leave no room for T + 1 requests and are
    refused.

No key
    A pick without a context or without a ``hash_key`` has nothing to hash
    and falls back to round robin over the weighted backends, as
    ``balance_py.RoundRobin`` does it (its own cursor, each index offered at
    most once, the cursor moved only by a pick that returns an index). The
    load bound does not apply to these picks.

``ConsistentHash(weights, names, balance_factor=0.0)`` raises what every
balancer raises for bad weights and indices, TypeError for a name that is not
a str, and ValueError for names that are not one per weight or not distinct
and for a ``balance_factor`` that is neither 0 nor a finite number >= 1.
"""

from __future__ import annotations

import math as _math
from bisect import bisect_left as _bisect_left
from typing import TYPE_CHECKING

from lbproxy._fast.balance_py import WEIGHT_UNIT, _Base

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from lbproxy.balance.base import Accept, PickContext

__all__ = ["MAX_POINTS", "POINTS_PER_UNIT", "WEIGHT_UNIT", "ConsistentHash", "key_hash"]

# Ring points per configured weight unit (WEIGHT_UNIT balancer units).
POINTS_PER_UNIT = 160
# Cap on the ring's size: 2**22 points are 48 MiB in the compiled twin.
MAX_POINTS = 1 << 22

_MASK64 = (1 << 64) - 1
_FNV_OFFSET = 0xCBF29CE484222325
_FNV_PRIME = 0x100000001B3
_GOLDEN = 0x9E3779B97F4A7C15  # 2**64 / phi: spreads a backend's points apart


def _mix(z: int) -> int:
    """The splitmix64 finalizer: a bijection of 64-bit values."""
    z ^= z >> 30
    z = (z * 0xBF58476D1CE4E5B9) & _MASK64
    z ^= z >> 27
    z = (z * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


def key_hash(data: bytes) -> int:
    """64-bit FNV-1a of ``data`` then the splitmix64 finalizer; the same in every process."""
    if not isinstance(data, bytes):
        raise TypeError(f"hash key must be bytes, not {type(data).__name__}")
    h = _FNV_OFFSET
    for byte in data:
        h = ((h ^ byte) * _FNV_PRIME) & _MASK64
    return _mix(h)


def _validated_factor(balance_factor: float) -> float:
    if isinstance(balance_factor, bool) or not isinstance(balance_factor, (int, float)):
        raise TypeError(f"balance_factor must be a number, not {type(balance_factor).__name__}")
    c = float(balance_factor)
    if c != 0.0 and not (c >= 1.0 and _math.isfinite(c)):
        raise ValueError(f"balance_factor must be 0 (off) or a finite number >= 1, got {c!r}")
    return c


def _validated_names(names: Sequence[str], n: int) -> tuple[str, ...]:
    if isinstance(names, (str, bytes)):
        raise TypeError("names must be a sequence of str, one per backend")
    checked = tuple(names)
    for name in checked:
        if not isinstance(name, str):
            raise TypeError(f"backend name must be a str, not {type(name).__name__}")
    if len(checked) != n:
        raise ValueError(f"{len(checked)} names for {n} weights: need one name per backend")
    if len(set(checked)) != n:
        raise ValueError("backend names must be distinct")
    return checked


def _ring_counts(weights: list[int]) -> list[int]:
    """Points per backend: ceil(w * 160 / WEIGHT_UNIT), scaled down past MAX_POINTS."""
    counts = [
        (w * POINTS_PER_UNIT + WEIGHT_UNIT - 1) // WEIGHT_UNIT if w > 0 else 0 for w in weights
    ]
    total = sum(counts)
    if total > MAX_POINTS:
        counts = [max(1, c * MAX_POINTS // total) if c > 0 else 0 for c in counts]
    return counts


class ConsistentHash(_Base):
    """Hash ring with bounded loads: a key sticks to a backend; round robin without one."""

    __slots__ = (
        "_counts",
        "_cursor",
        "_factor",
        "_name_hash",
        "_names",
        "_owners",
        "_points",
        "_rank",
        "_total_active",
        "_weight_sum",
        "_weighted",
    )

    def __init__(
        self, weights: Iterable[int], names: Sequence[str], balance_factor: float = 0.0
    ) -> None:
        super().__init__(weights)
        self._names = _validated_names(names, self._n)
        self._factor = _validated_factor(balance_factor)
        self._name_hash = [key_hash(name.encode()) for name in self._names]
        order = sorted(range(self._n), key=self._names.__getitem__)
        self._rank = [0] * self._n
        for r, i in enumerate(order):
            self._rank[i] = r
        self._cursor = 0
        self._total_active = 0
        self._counts: list[int] = []
        self._points: list[int] = []
        self._owners: list[int] = []
        self._weighted = 0
        self._weight_sum = 0
        self._build()

    def _build(self, changed: int = -1) -> None:
        """Points from the weights; the state changes only once they are all made.

        The ring is a function of the point counts alone. When only backend
        ``changed`` has a new count, its points k < min(old, new) are where
        they were: only the difference is hashed and merged in or taken out,
        O(points) instead of rehashing and sorting the whole ring, and with
        the same result.
        """
        weights = self._weights
        counts = _ring_counts(weights)
        old = self._counts
        i = changed
        if counts == old:
            pass  # same points: the ring stands
        elif 0 <= i < len(old) and counts[:i] == old[:i] and counts[i + 1 :] == old[i + 1 :]:
            self._update(i, old[i], counts[i])
            self._counts = counts
        else:
            entries: list[tuple[int, int, int]] = []
            for i, count in enumerate(counts):
                entries.extend(self._entries(i, 0, count))
            entries.sort()  # by position, then name: rank r is the r-th name in order
            self._points = [e[0] for e in entries]
            self._owners = [e[2] for e in entries]
            self._counts = counts
        self._weighted = sum(1 for w in weights if w > 0)
        self._weight_sum = sum(weights)

    def _entries(self, i: int, start: int, stop: int) -> list[tuple[int, int, int]]:
        """(position, rank, i) of backend i's points start..stop-1."""
        base = self._name_hash[i]
        rank = self._rank[i]
        return [(_mix((base + k * _GOLDEN) & _MASK64), rank, i) for k in range(start, stop)]

    def _update(self, i: int, old_count: int, new_count: int) -> None:
        # Find where each point that comes (or goes) sits, then copy the ring
        # around them in slices: O(points) at C speed, O(change) in Python.
        points = self._points
        owners = self._owners
        rank = self._rank
        rank_i = rank[i]
        size = len(points)
        growing = new_count > old_count
        delta = sorted(e[0] for e in self._entries(i, *sorted((old_count, new_count))))
        new_points: list[int] = []
        new_owners: list[int] = []
        start = 0
        for value in delta:
            pos = _bisect_left(points, value, start)
            if growing:
                # Equal positions are ordered by name.
                while pos < size and points[pos] == value and rank[owners[pos]] < rank_i:
                    pos += 1
            else:
                while owners[pos] != i:  # value is on the ring, owned by i
                    pos += 1
            new_points += points[start:pos]
            new_owners += owners[start:pos]
            if growing:
                new_points.append(value)
                new_owners.append(i)
                start = pos
            else:
                start = pos + 1
        new_points += points[start:]
        new_owners += owners[start:]
        self._points = new_points
        self._owners = new_owners

    @property
    def balance_factor(self) -> float:
        return self._factor

    def ring_points(self, index: int) -> int:
        """How many points backend ``index`` has on the ring (0 for weight 0)."""
        return self._counts[self._checked(index)]

    def take(self, index: int) -> None:
        super().take(index)
        self._total_active += 1

    def drop(self, index: int) -> None:
        if self._active[self._checked(index)] > 0:
            self._total_active -= 1
        super().drop(index)

    def set_weight(self, index: int, weight: int) -> None:
        old = self.weight(index)
        super().set_weight(index, weight)
        try:
            self._build(index)
        except BaseException:  # out of memory: keep the weight the ring reflects
            self._weights[index] = old
            raise

    def pick(self, ctx: PickContext | None, accept: Accept | None) -> int:
        key = None if ctx is None else ctx.hash_key
        if key is None:
            return self._round_robin(accept)
        h = key_hash(key)
        points = self._points
        size = len(points)
        if size == 0:
            return -1
        j = _bisect_left(points, h)
        if j == size:
            j = 0
        owners = self._owners
        weights = self._weights
        active = self._active
        factor = self._factor
        bounded = factor > 0.0
        scale = factor * (self._total_active + 1)
        weight_sum = self._weight_sum
        weighted = self._weighted
        seen: set[int] = set()
        for _ in range(size):
            i = owners[j]
            j = j + 1 if j + 1 < size else 0
            if i in seen:
                continue
            seen.add(i)
            if bounded and active[i] >= scale * weights[i] / weight_sum:
                pass  # over its bound: skipped, never offered
            elif accept is None or accept(i):
                return i
            if len(seen) == weighted:
                return -1
        return -1  # not reached: every weighted backend has a point

    def _round_robin(self, accept: Accept | None) -> int:
        n = self._n
        weights = self._weights
        i = self._cursor
        for _ in range(n):
            if weights[i] > 0 and (accept is None or accept(i)):
                self._cursor = i + 1 if i + 1 < n else 0
                return i
            i = i + 1 if i + 1 < n else 0
        return -1
