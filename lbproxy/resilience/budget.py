"""Retry budget: retries may be at most a fraction of the traffic.

Model
-----
Retrying a failed request is cheap for one request and ruinous for a
struggling backend when every request does it: the retries multiply the load
exactly when capacity is short. After Finagle's and Envoy's retry budgets, the
number of retries *in flight* is bounded by ``ratio`` of the requests in
flight, with a floor of ``min_concurrent`` so that a quiet proxy can still
retry a few requests::

    allow(active)  <=>  in_flight < max(min_concurrent, floor(ratio * active))

The caller asks ``allow`` with its current count of active requests, calls
``start`` when it does retry and ``finish`` when that retry ends (however it
ends). ``finish`` never takes the count below 0, so a stray one is harmless.

``floor(ratio * active)`` is taken with a 1e-9 allowance for binary rounding,
so a decimal ratio means what it says (0.29 * 100 is 28.999999999999996 in
doubles; the budget is 29). The object is pure: no clock, no allocation.
"""

from __future__ import annotations

import math

__all__ = ["RetryBudget"]

# Absorbs the rounding of ratio * active in doubles; far below one request.
_EPSILON = 1e-9


class RetryBudget:
    """Bounds retries in flight to ``max(min_concurrent, floor(ratio * active))``."""

    __slots__ = ("_in_flight", "_min_concurrent", "_ratio")

    def __init__(self, ratio: float, min_concurrent: int = 3) -> None:
        if not 0.0 <= ratio <= 1.0:  # also rejects NaN
            raise ValueError(f"ratio must be in [0, 1], got {ratio!r}")
        if min_concurrent < 0:
            raise ValueError(f"min_concurrent must be >= 0, got {min_concurrent!r}")
        self._ratio = float(ratio)
        self._min_concurrent = min_concurrent
        self._in_flight = 0

    @property
    def in_flight(self) -> int:
        """Retries started and not yet finished."""
        return self._in_flight

    def allow(self, active_requests: int) -> bool:
        """May one more retry start while ``active_requests`` requests are active?"""
        in_flight = self._in_flight
        if in_flight < self._min_concurrent:
            return True  # under the floor: no need to multiply
        return in_flight < math.floor(self._ratio * active_requests + _EPSILON)

    def start(self) -> None:
        """A retry started (whether or not ``allow`` was asked)."""
        self._in_flight += 1

    def finish(self) -> None:
        """A retry ended; never below 0, so an unmatched call is harmless."""
        if self._in_flight > 0:
            self._in_flight -= 1
