"""Resilience decisions: when to stop sending to a backend, and when to retry.

Four pure objects, one per mechanism, that the proxy consults on its request
path and from its periodic tick. None of them does I/O, touches asyncio or
reads a clock: every method that depends on time takes ``now`` (seconds on a
monotonic clock), so tests and simulations drive them on their own time.

``Hysteresis`` (``hysteresis``)
    Active health checks: a backend goes down after ``fall`` failed probes in
    a row and comes back after ``rise`` good ones.
``OutlierDetector`` (``outlier``)
    Passive health over a pool's backends 0..n-1: consecutive failures of real
    requests eject a backend for a time that grows with each ejection and
    decays with good behaviour, with a cap on how many may be out at once.
``CircuitBreaker`` (``breaker``)
    Per backend: closed while the failure rate over a sliding window stays
    below the threshold; open (nothing sent) for a while when it does not;
    then half-open, where a few trial requests decide whether it closes.
    States are the strings ``CLOSED``, ``OPEN`` and ``HALF_OPEN``.
``RetryBudget`` (``budget``)
    Retries in flight are bounded by a fraction of the requests in flight.
"""

from __future__ import annotations

from lbproxy.resilience.breaker import CLOSED, HALF_OPEN, OPEN, CircuitBreaker
from lbproxy.resilience.budget import RetryBudget
from lbproxy.resilience.hysteresis import Hysteresis
from lbproxy.resilience.outlier import OutlierDetector

__all__ = [
    "CLOSED",
    "HALF_OPEN",
    "OPEN",
    "CircuitBreaker",
    "Hysteresis",
    "OutlierDetector",
    "RetryBudget",
]
