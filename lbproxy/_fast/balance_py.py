"""Balancer picks, pure Python: the reference twin of ``balance.pyx``.

Theory of operation
-------------------
A balancer serves one pool and knows its backends only by index 0..n-1. Each
index has a weight (0..MAX_WEIGHT) and an in-flight count kept by ``take`` /
``drop``. Weight 0 means "never pick": that is how admin disable and the start
of a slow-start ramp switch a backend off without rebuilding the balancer. For
a weight-0 index ``accept`` is never even called.

``pick(ctx, accept)`` returns an index or -1. ``accept(i)`` lets the pool veto
an index (unhealthy, ejected, already tried); each index is offered at most
once per pick, in the algorithm's own order, and a pick that finds nothing
acceptable changes no state. If ``accept`` raises, the exception propagates
and the balancer is left exactly as before the pick. ``accept`` must not call
back into the same balancer.

RoundRobin
    A cursor walks the indices cyclically. A pick offers indices starting at
    the cursor and leaves the cursor just after the index it returns; the
    first pick of a new balancer offers index 0 first. Weights other than 0
    are ignored.

SmoothWeightedRoundRobin
    nginx's algorithm (ngx_http_upstream_get_peer). Every index keeps a
    ``current`` value, initially 0. A pick adds each accepted index's weight
    to its ``current``, chooses the largest ``current``, and subtracts the sum
    of the accepted weights from the chosen one. Ties go to the lowest index
    (the scan is in index order and only a strictly larger value displaces
    the best so far), so weights 5,1,1 give a,a,b,a,c,a,a. Rejected indices
    sit the pick out with their ``current`` untouched, which keeps the sum of
    all ``current`` values at 0. ``set_weight`` changes only that index's
    weight; every ``current`` carries on, so the change shows from the next
    pick without a restart of the sequence.

First
    The lowest accepted index with a weight, in config order: a primary and
    its standbys. Weights other than 0 are ignored.

Random
    Weighted random: index i with probability w[i] / sum(w). One draw over
    all the weighted indices; if ``accept`` refuses it, the others are offered
    once each, in index order, and a second draw is made among those it took.
    The generator is xorshift64* (Vigna), 64-bit state seeded from
    ``os.urandom`` unless a ``seed`` is given, so both twins give the same
    picks from the same seed. A pick that returns -1, or whose ``accept``
    raises, leaves the generator where it was.

PowerOfTwo
    Envoy's least-request with two choices: two different indices drawn at
    random by weight (as Random draws), and the one with fewer requests in
    flight relative to its weight wins (``active / weight``, compared by
    cross-multiplying; a tie goes to the first drawn, itself random, so no
    index is favoured). ``accept`` is asked about the two candidates; if it
    refuses both, the other indices are offered once each and the two
    choices are drawn again among those it took. With one candidate left,
    that one. The generator and its seeding are Random's, and so is the
    promise that a pick returning -1 or raising leaves it unchanged.

All classes raise IndexError for an index outside 0..n-1, TypeError for a
weight that is not an int and ValueError for one outside 0..MAX_WEIGHT.
"""

from __future__ import annotations

import os as _os
from operator import index as _as_int
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable

    from lbproxy.balance.base import Accept, PickContext

# Keeps the compiled twin's int64 ``current`` sums far from overflow.
MAX_WEIGHT = 1_000_000
# The balancer weight of one configured weight unit: the pool hands balancers
# ``config weight * WEIGHT_UNIT`` so that slow start can ramp even a weight-1
# backend in small steps, and config weights (0..1000) reach MAX_WEIGHT at most.
WEIGHT_UNIT = 1000


def _validated_weight(weight: int) -> int:
    w = _as_int(weight)
    if not 0 <= w <= MAX_WEIGHT:
        raise ValueError(f"weight must be between 0 and {MAX_WEIGHT}, got {w}")
    return w


class _Base:
    """Weights and in-flight counts per backend index; shared by all algorithms."""

    __slots__ = ("_active", "_n", "_weights")

    def __init__(self, weights: Iterable[int]) -> None:
        self._weights = [_validated_weight(w) for w in weights]
        self._n = len(self._weights)
        self._active = [0] * self._n

    def __len__(self) -> int:
        return self._n

    def _checked(self, index: int) -> int:
        # Python lists accept negative indices; the compiled twin does not.
        if index < 0 or index >= self._n:
            raise IndexError(f"backend index {index} out of range for {self._n} backends")
        return index

    def take(self, index: int) -> None:
        self._active[self._checked(index)] += 1

    def drop(self, index: int) -> None:
        # A stray drop must not drive the count negative: least-connections
        # would then prefer that backend forever.
        i = self._checked(index)
        if self._active[i] > 0:
            self._active[i] -= 1

    def set_weight(self, index: int, weight: int) -> None:
        self._weights[self._checked(index)] = _validated_weight(weight)

    def active(self, index: int) -> int:
        return self._active[self._checked(index)]

    def weight(self, index: int) -> int:
        return self._weights[self._checked(index)]


class RoundRobin(_Base):
    """Cycle over the indices; weight 0 means never picked, other weights are equal."""

    __slots__ = ("_cursor",)

    def __init__(self, weights: Iterable[int]) -> None:
        super().__init__(weights)
        self._cursor = 0

    def pick(self, ctx: PickContext | None, accept: Accept | None) -> int:
        n = self._n
        weights = self._weights
        i = self._cursor
        for _ in range(n):
            if weights[i] > 0 and (accept is None or accept(i)):
                self._cursor = i + 1 if i + 1 < n else 0
                return i
            i = i + 1 if i + 1 < n else 0
        return -1


class SmoothWeightedRoundRobin(_Base):
    """nginx's smooth weighted round robin over the accepted backends."""

    __slots__ = ("_current", "_mark")

    def __init__(self, weights: Iterable[int]) -> None:
        super().__init__(weights)
        self._current = [0] * self._n
        self._mark = [False] * self._n

    def pick(self, ctx: PickContext | None, accept: Accept | None) -> int:
        weights = self._weights
        current = self._current
        best = -1
        best_value = 0
        total = 0
        if accept is None:
            for i, w in enumerate(weights):
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
            mark = self._mark
            for i, w in enumerate(weights):
                mark[i] = False
                if w > 0 and accept(i):
                    mark[i] = True
                    v = current[i] + w
                    total += w
                    if best < 0 or v > best_value:
                        best = i
                        best_value = v
            if best < 0:
                return -1
            for i, marked in enumerate(mark):
                if marked:
                    current[i] += weights[i]
        if best >= 0:
            current[best] -= total
        return best


class First(_Base):
    """The first accepted index with a weight, in index (config) order."""

    __slots__ = ()

    def pick(self, ctx: PickContext | None, accept: Accept | None) -> int:
        weights = self._weights
        for i in range(self._n):
            if weights[i] > 0 and (accept is None or accept(i)):
                return i
        return -1


_MASK64 = (1 << 64) - 1


def _seed(seed: int | None) -> int:
    if seed is None:
        seed = int.from_bytes(_os.urandom(8), "little")
    return (_as_int(seed) & _MASK64) or 1  # xorshift's state must not be 0


class _Seeded(_Base):
    """The generator, weighted draw and pick wrapper that Random, PowerOfTwo and
    PeakEwma (``lbproxy._fast.ewma``) share: a pick that returns -1 or raises
    leaves the generator where it was."""

    __slots__ = ("_mark", "_state")

    def __init__(self, weights: Iterable[int], seed: int | None = None) -> None:
        super().__init__(weights)
        self._state = _seed(seed)
        self._mark = [False] * self._n

    def _next(self) -> int:
        x = self._state
        x ^= x >> 12
        x ^= (x << 25) & _MASK64
        x ^= x >> 27
        self._state = x
        return (x * 0x2545F4914F6CDD1D) & _MASK64

    def _draw(self, allowed: list[bool] | None, total: int, skip: int) -> int:
        # A weighted draw over the indices allowed (all weighted ones when
        # ``allowed`` is None) except ``skip``, whose weights sum to ``total``.
        weights = self._weights
        r = self._next() % total
        for i, w in enumerate(weights):
            if w > 0 and i != skip and (allowed is None or allowed[i]):
                if r < w:
                    return i
                r -= w
        return -1  # not reached: r < total

    def pick(self, ctx: PickContext | None, accept: Accept | None) -> int:
        state = self._state
        try:
            i = self._pick(accept)
        except BaseException:
            self._state = state
            raise
        if i < 0:
            self._state = state
        return i

    def _pick(self, accept: Accept | None) -> int:
        # Random's draw; PowerOfTwo (and PeakEwma after it) draw their own way.
        weights = self._weights
        total = sum(weights)
        if total == 0:
            return -1
        r = self._next() % total
        chosen = -1
        for i, w in enumerate(weights):
            if r < w:
                chosen = i
                break
            r -= w
        if accept is None or accept(chosen):
            return chosen
        # Refused: a second draw among the indices accept takes.
        mark = self._mark
        ok_total = 0
        for i, w in enumerate(weights):
            mark[i] = False
            if w > 0 and i != chosen and accept(i):
                mark[i] = True
                ok_total += w
        if ok_total == 0:
            return -1
        r = self._next() % ok_total
        for i, w in enumerate(weights):
            if mark[i]:
                if r < w:
                    return i
                r -= w
        return -1  # not reached: r < ok_total


class Random(_Seeded):
    """Weighted random picks (xorshift64*), reproducible from a seed: the
    draw _Seeded makes, under its own name."""

    __slots__ = ()


class PowerOfTwo(_Seeded):
    """Two weighted random candidates; the less loaded (per weight) wins.
    PeakEwma (``lbproxy._fast.ewma``) keeps the scheme and replaces ``_better``."""

    __slots__ = ()

    def _better(self, a: int, b: int) -> int:
        # Fewer in flight per unit of weight; a tie keeps the first drawn.
        active = self._active
        weights = self._weights
        return b if active[b] * weights[a] < active[a] * weights[b] else a

    def _pick(self, accept: Accept | None) -> int:
        weights = self._weights
        total = sum(weights)
        if total == 0:
            return -1
        a = self._draw(None, total, -1)
        rest = total - weights[a]
        b = self._draw(None, rest, a) if rest > 0 else -1
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
        mark = self._mark
        ok_total = 0
        for i, w in enumerate(weights):
            mark[i] = False
            if w > 0 and i != a and i != b and accept(i):
                mark[i] = True
                ok_total += w
        if ok_total == 0:
            return -1
        a = self._draw(mark, ok_total, -1)
        rest = ok_total - weights[a]
        if rest == 0:
            return a
        return self._better(a, self._draw(mark, rest, a))
