"""Outlier detection: eject a backend that keeps failing real requests.

Model
-----
Passive health, after Envoy's consecutive-5xx outlier detection, over the
backend indices 0..n-1 of one pool. Every request outcome is ``record``-ed;
``consecutive_failures`` failures in a row (a success resets the run) eject
the backend for::

    min(base_ejection_time * k, max_ejection_time)

where k is its ejection count including this one, so a backend that keeps
coming back broken stays out longer each time. The count decays: after a
backend returns, it loses one for each full ``base_ejection_time`` it then
goes without an ejection. The decay is computed lazily at its next ejection
from the time it returned, so nothing needs a tick for it; ``ejections(i)``
shows the count as of the last ejection, before any decay since.

Ejection cap
    Ejecting everything would turn a shared outage into a total one, so at
    most ``max(1, floor(n * max_ejection_percent / 100))`` backends are ejected
    at once (none at all when the percent is 0). A backend that reaches the
    threshold while the cap is full stays in; its run keeps counting, and its
    next failure tries again.

Time and state
    ``ejected(i, now)`` is a pure query: True while ``now < ejected_until``.
    The state changes in two places only: ``record`` ejects, and ``expire``
    (called from a periodic tick) returns backends whose ejection ended at or
    before ``now`` to service, resetting their failure run. Until that tick
    an expired backend still counts against the cap and its results are
    ignored, as are those of any ejected backend (they would be outcomes of
    requests sent before the ejection). Its decay clock starts at the moment
    its ejection ended, not at the tick, so the tick's period does not change
    how fast it is forgiven.

The detector is pure (``now`` is seconds on a monotonic clock, passed in) and
``record`` is O(1) with no allocation except on the rare ejection itself.
"""

from __future__ import annotations

import heapq
import math

__all__ = ["OutlierDetector"]


class OutlierDetector:
    """Consecutive-failure ejection with a growing, decaying ejection time."""

    __slots__ = (
        "_base",
        "_consecutive",
        "_ejected",
        "_ejected_count",
        "_ejections",
        "_failures",
        "_max_ejected",
        "_max_time",
        "_n",
        "_queue",
        "_until",
    )

    def __init__(
        self,
        n: int,
        consecutive_failures: int,
        base_ejection_time: float,
        max_ejection_time: float,
        max_ejection_percent: int,
    ) -> None:
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n!r}")
        if consecutive_failures < 1:
            raise ValueError(f"consecutive_failures must be >= 1, got {consecutive_failures!r}")
        if not (base_ejection_time > 0.0 and math.isfinite(base_ejection_time)):
            raise ValueError(f"base_ejection_time must be > 0, got {base_ejection_time!r}")
        if not max_ejection_time >= base_ejection_time:  # also rejects NaN
            raise ValueError(
                f"max_ejection_time ({max_ejection_time!r}) must be >= "
                f"base_ejection_time ({base_ejection_time!r})"
            )
        if not 0 <= max_ejection_percent <= 100:
            raise ValueError(
                f"max_ejection_percent must be in 0..100, got {max_ejection_percent!r}"
            )
        self._n = n
        self._consecutive = consecutive_failures
        self._base = float(base_ejection_time)
        self._max_time = float(max_ejection_time)
        # The cap on backends ejected at once; a percent of 0 disables ejection.
        self._max_ejected = (
            0 if max_ejection_percent == 0 else max(1, n * max_ejection_percent // 100)
        )
        self._failures = [0] * n  # current run of consecutive failures
        self._ejections = [0] * n  # k, as of the last ejection
        self._ejected = [False] * n  # ejected until expire() returns it
        # While ejected: when the ejection ends. After: when it ended, which is
        # where the decay of the ejection count is measured from.
        self._until = [0.0] * n
        self._ejected_count = 0
        # (until, index) of every ejected backend. A backend leaves the state
        # only through expire(), which pops it, so the heap holds no stale entry.
        self._queue: list[tuple[float, int]] = []

    @property
    def ejected_count(self) -> int:
        """Backends ejected now (including expired ones not yet ``expire``-d)."""
        return self._ejected_count

    def _check(self, i: int) -> None:
        # A negative index would silently address another backend.
        if not 0 <= i < self._n:
            raise IndexError(f"backend index {i} out of range for {self._n} backends")

    def record(self, i: int, ok: bool, now: float) -> bool:
        """Count one outcome of backend ``i``; True when it ejected ``i`` now."""
        self._check(i)
        if self._ejected[i]:
            return False
        if ok:
            self._failures[i] = 0
            return False
        failures = self._failures[i] + 1
        self._failures[i] = failures
        if failures < self._consecutive or self._ejected_count >= self._max_ejected:
            return False
        k = self._ejections[i]
        if k:
            # Lazy decay: one off per full base period since it last returned.
            idle = now - self._until[i]
            if idle >= self._base:
                k = max(0, k - int(idle // self._base))
        k += 1
        self._ejections[i] = k
        until = now + min(self._base * k, self._max_time)
        self._until[i] = until
        self._ejected[i] = True
        self._ejected_count += 1
        heapq.heappush(self._queue, (until, i))
        return True

    def ejected(self, i: int, now: float) -> bool:
        """Is backend ``i`` out of service at ``now``? Changes nothing."""
        self._check(i)
        return self._ejected[i] and now < self._until[i]

    def ejections(self, i: int) -> int:
        """Backend ``i``'s ejection count k, as of its last ejection."""
        self._check(i)
        return self._ejections[i]

    def state(self, i: int) -> tuple[int, int, bool, float]:
        """Backend ``i``'s whole state (failures in a row, ejection count,
        ejected, until), to carry it into another detector (a reload, a new
        worker process: monotonic time is the same in every process)."""
        self._check(i)
        return (self._failures[i], self._ejections[i], self._ejected[i], self._until[i])

    def restore(self, i: int, state: tuple[int, int, bool, float]) -> None:
        """Give backend ``i`` a state ``state()`` returned (for a backend not
        ejected here yet); an ejection carried over counts toward the cap."""
        self._check(i)
        failures, ejections, ejected, until = state
        if self._ejected[i]:
            return
        self._failures[i] = failures
        self._ejections[i] = ejections
        self._until[i] = until
        if ejected:
            self._ejected[i] = True
            self._ejected_count += 1
            heapq.heappush(self._queue, (until, i))

    def next_expiry(self) -> float | None:
        """When the earliest current ejection ends; None when none is ejected."""
        return self._queue[0][0] if self._queue else None

    def expire(self, now: float) -> list[int]:
        """Return to service every backend whose ejection ended at or before
        ``now``; they are listed in the order their ejections ended."""
        queue = self._queue
        returned: list[int] = []
        while queue and queue[0][0] <= now:
            _, i = heapq.heappop(queue)
            self._ejected[i] = False
            self._failures[i] = 0
            self._ejected_count -= 1
            returned.append(i)
        return returned
