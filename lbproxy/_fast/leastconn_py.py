"""Least-connections picks, pure Python: the reference twin of ``leastconn.pyx``.

Theory of operation
-------------------
``LeastConnections`` follows the balancer contract in ``balance_py`` (indices
0..n-1, ``take``/``drop``/``set_weight``, ``pick(ctx, accept)`` returning an
index or -1, weight 0 = never offered, a pick that returns -1 or raises changes
nothing). ``ctx`` is unused.

The rule
    A pick returns the accepted, weighted index with the fewest requests in
    flight per unit of weight, ``active[i] / weight[i]``. Loads are compared
    by cross-multiplying (``active[a] * weight[b] < active[b] * weight[a]``),
    never as floats, so equal ratios are exactly equal and both twins agree.

Ties rotate
    Among the indices tied at the minimum, the pick takes the first one at or
    after a cursor, wrapping around, and leaves the cursor just after it; the
    first pick of a new balancer starts at 0. Lowest-index tie-breaking would
    send every request of an idle pool (all at 0 in flight) to backend 0, and
    with short requests a pool is idle most of the time. ``take``, ``drop``
    and ``set_weight`` leave the cursor where it is.

The index: a segment tree
    ``_tree`` has ``2 * size`` slots, ``size`` the smallest power of two
    >= n (at least 1). Leaf ``size + i`` holds ``i`` when index i has a
    weight, else -1; slots past n hold -1. Every inner node ``j`` holds the
    better of its children ``2j`` and ``2j + 1`` (``_better``: the lower
    load, a tie going to the lower index, -1 losing to anything), i.e. the
    best index of its subtree. ``take``/``drop``/``set_weight`` change one
    index's load or leaf, so they recompute the nodes on that leaf's path to
    the root: O(log n). Slot 0 is unused.

A pick in O(log n)
    The root ``r = _tree[1]`` is the lowest index among the least loaded. If
    ``r >= cursor`` it is also the first of them at or after the cursor, and
    it is the candidate. Otherwise the best index of ``[cursor, n)`` (one
    range query, O(log n)) is the candidate when its load equals ``r``'s
    (the cursor side wins a tie: that is the rotation), and ``r`` (the best
    of ``[0, cursor)``, wrapped around to) when it does not. This is the same
    as querying ``[cursor, n)`` and ``[0, cursor)`` and preferring the first
    on equal load; the root saves the second query.

Refusals
    When ``accept`` refuses the candidate, its leaf is set to -1 for the rest
    of the pick (an O(log n) path update) and the candidate is chosen again
    the same way, so an index is offered at most once per pick and in the
    order of the rule: least loaded first, ties in rotation order. Before the
    pick returns, however it returns (index, -1, or an exception from
    ``accept``), every refused leaf is restored, so the tree is exactly as
    before the pick; the cursor moves only when an index is returned.

Overflow
    The compiled twin compares loads in int64: ``active * weight`` stays
    exact while ``active < 2**63 / MAX_WEIGHT`` (about 9 * 10**12 requests in
    flight on one backend), far beyond any real pool.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lbproxy._fast.balance_py import _Base

if TYPE_CHECKING:
    from collections.abc import Iterable

    from lbproxy.balance.base import Accept, PickContext


class LeastConnections(_Base):
    """Fewest requests in flight per unit of weight; ties rotate."""

    __slots__ = ("_cursor", "_size", "_tree")

    def __init__(self, weights: Iterable[int]) -> None:
        super().__init__(weights)
        size = 1
        while size < self._n:
            size *= 2
        self._size = size
        self._cursor = 0
        tree = [-1] * (2 * size)
        for i, w in enumerate(self._weights):
            if w > 0:
                tree[size + i] = i
        self._tree = tree
        for j in range(size - 1, 0, -1):
            tree[j] = self._better(tree[2 * j], tree[2 * j + 1])

    # -- the tree --------------------------------------------------------------

    def _better(self, a: int, b: int) -> int:
        # Lower load wins, then the lower index; -1 (nothing) loses. Callers
        # may pass a and b in either order: this is a min over (load, index).
        if a < 0:
            return b
        if b < 0:
            return a
        active = self._active
        weights = self._weights
        left = active[a] * weights[b]
        right = active[b] * weights[a]
        if left < right or (left == right and a < b):
            return a
        return b

    def _update(self, index: int, leaf: int) -> None:
        # Set one leaf (index or -1) and recompute its ancestors.
        tree = self._tree
        j = self._size + index
        tree[j] = leaf
        j >>= 1
        while j:
            tree[j] = self._better(tree[2 * j], tree[2 * j + 1])
            j >>= 1

    def _restore(self, index: int) -> None:
        # A leaf as take/drop/set_weight keep it: itself when weighted.
        self._update(index, index if self._weights[index] > 0 else -1)

    def _best_from(self, lo: int) -> int:
        # The best index in [lo, n): a bottom-up range query over [lo, size);
        # the slots past n are -1 and never win.
        tree = self._tree
        best = -1
        left = lo + self._size
        right = 2 * self._size
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

    def _candidate(self) -> int:
        # The rule, in O(log n): see "A pick in O(log n)" above.
        root = self._tree[1]
        cursor = self._cursor
        if root < 0 or root >= cursor:
            return root
        after = self._best_from(cursor)
        if after >= 0:
            weights = self._weights
            active = self._active
            # ``after`` is never less loaded than the root: equal means tied.
            if active[after] * weights[root] == active[root] * weights[after]:
                return after
        return root

    # -- the balancer ------------------------------------------------------------

    def pick(self, ctx: PickContext | None, accept: Accept | None) -> int:
        if accept is None:
            chosen = self._candidate()
            if chosen >= 0:
                self._cursor = chosen + 1 if chosen + 1 < self._n else 0
            return chosen
        refused: list[int] = []
        try:
            while True:
                chosen = self._candidate()
                if chosen < 0:
                    return -1
                if accept(chosen):
                    self._cursor = chosen + 1 if chosen + 1 < self._n else 0
                    return chosen
                # Out for the rest of this pick, so it is not offered again.
                refused.append(chosen)
                self._update(chosen, -1)
        finally:
            # However the pick ends, the tree goes back to what it was.
            for i in refused:
                self._restore(i)

    def take(self, index: int) -> None:
        super().take(index)
        # A weight-0 index is in no node; its load matters again only when
        # set_weight brings it back, which recomputes its path anyway.
        if self._weights[index] > 0:
            self._restore(index)

    def drop(self, index: int) -> None:
        super().drop(index)
        if self._weights[index] > 0:
            self._restore(index)

    def set_weight(self, index: int, weight: int) -> None:
        # The index first, as the compiled twin checks it: the base class
        # here evaluates the weight first (the right side of its assignment),
        # so a call wrong in both would raise ValueError here, IndexError there.
        self._checked(index)
        super().set_weight(index, weight)
        self._restore(index)
