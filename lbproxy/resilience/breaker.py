"""Circuit breaker for one backend: stop sending to it while it mostly fails.

Model
-----
Three states, after resilience4j and Envoy:

closed
    Every request may go. Outcomes fill a sliding window of ``window`` seconds
    kept as 10 buckets of ``window / 10`` seconds each: bucket e holds the
    outcomes recorded at ``floor(now / (window / 10)) == e``, and the window at
    ``now`` is the 10 newest buckets, the current one included. Buckets that
    fall out are dropped as time advances, so the rate reflects recent
    traffic in O(1) per outcome without keeping every outcome. After each
    outcome, if the window holds at least ``minimum_requests`` outcomes and
    ``failures / total >= failure_rate``, the breaker opens. (A success can
    open it too: it may be the outcome that reaches ``minimum_requests``.)

open
    No request may go, for ``open_duration`` seconds since it opened. Then it
    is half-open; the change happens lazily, when ``state``, ``allow``,
    ``record`` or ``release`` is next called with such a ``now``. Outcomes that
    arrive while open belong to requests started before it opened (``allow``
    admitted none since) and are ignored.

half_open
    At most ``half_open_requests`` trial requests may be in flight: ``allow``
    takes a permit, the trial's ``record`` (or ``release``, when it ended with
    no outcome) gives it back. A failed trial opens the breaker again for a
    fresh ``open_duration``; once ``half_open_requests`` trials have succeeded
    since it became half-open, it closes with an empty window. An outcome
    that arrives while no permit is out cannot be a trial's: it is a late
    outcome of a request started before the breaker opened, and is ignored.

``record`` returns the state that its outcome moved the breaker to ("open" or
"closed"), else None; the lazy open -> half_open change is not the outcome's
doing and is not returned (``transitions`` counts every change). The breaker is
pure: ``now`` is seconds on a monotonic clock, passed in; nothing allocates.
"""

from __future__ import annotations

import math
from typing import Final

__all__ = ["CLOSED", "HALF_OPEN", "OPEN", "CircuitBreaker"]

CLOSED: Final = "closed"
OPEN: Final = "open"
HALF_OPEN: Final = "half_open"

_BUCKETS = 10
# Before the first outcome, every bucket is older than any real time.
_NO_EPOCH = -(1 << 62)


class CircuitBreaker:
    """Failure-rate breaker over a sliding time window, with half-open trials."""

    __slots__ = (
        "_bad",
        "_bad_total",
        "_failure_rate",
        "_half_open_at",
        "_half_open_requests",
        "_head",
        "_minimum_requests",
        "_ok",
        "_ok_total",
        "_open_duration",
        "_opened_at",
        "_state",
        "_successes",
        "_transitions",
        "_trials",
        "_width",
    )

    def __init__(
        self,
        failure_rate: float,
        minimum_requests: int,
        window: float,
        open_duration: float,
        half_open_requests: int,
    ) -> None:
        if not 0.0 < failure_rate <= 1.0:  # also rejects NaN
            raise ValueError(f"failure_rate must be in (0, 1], got {failure_rate!r}")
        if minimum_requests < 1:
            raise ValueError(f"minimum_requests must be >= 1, got {minimum_requests!r}")
        if not (window > 0.0 and math.isfinite(window)):
            raise ValueError(f"window must be > 0 and finite, got {window!r}")
        if not open_duration > 0.0:  # also rejects NaN
            raise ValueError(f"open_duration must be > 0, got {open_duration!r}")
        if half_open_requests < 1:
            raise ValueError(f"half_open_requests must be >= 1, got {half_open_requests!r}")
        self._failure_rate = float(failure_rate)
        self._minimum_requests = minimum_requests
        self._width = window / _BUCKETS
        self._open_duration = float(open_duration)
        self._half_open_requests = half_open_requests
        self._state: str = CLOSED
        # The window: per-bucket counts in a ring, slot = epoch % 10, plus totals.
        self._ok = [0] * _BUCKETS
        self._bad = [0] * _BUCKETS
        self._ok_total = 0
        self._bad_total = 0
        self._head = _NO_EPOCH  # newest bucket epoch the ring holds
        self._opened_at: float | None = None
        self._half_open_at = 0.0  # while open: when it turns half-open
        self._trials = 0  # half-open permits out
        self._successes = 0  # trial successes since it became half-open
        self._transitions = 0

    # --- queries -----------------------------------------------------------

    @property
    def opened_at(self) -> float | None:
        """When it last opened; None if it never has."""
        return self._opened_at

    @property
    def transitions(self) -> int:
        """State changes so far, the lazy open -> half_open ones included."""
        return self._transitions

    @property
    def trials_in_flight(self) -> int:
        """Half-open permits taken and not yet given back (0 unless half-open)."""
        return self._trials

    def state(self, now: float) -> str:
        """CLOSED, OPEN or HALF_OPEN at ``now``."""
        if self._state == OPEN and now >= self._half_open_at:
            self._enter_half_open()
        return self._state

    # --- the request path --------------------------------------------------

    def allow(self, now: float) -> bool:
        """May a request go now? In half-open, True takes a trial permit."""
        state = self._state
        if state == CLOSED:
            return True
        if state == OPEN:
            if now < self._half_open_at:
                return False
            self._enter_half_open()
        if self._trials < self._half_open_requests:
            self._trials += 1
            return True
        return False

    def record(self, ok: bool, now: float) -> str | None:
        """The outcome of a permitted request; the new state on a transition."""
        state = self._state
        if state == CLOSED:
            return self._record_closed(ok, now)
        if state == OPEN:
            if now < self._half_open_at:
                return None  # started before it opened
            self._enter_half_open()
        if self._trials == 0:
            return None  # no trial out, so not a trial's outcome: a stale one
        self._trials -= 1
        if not ok:
            self._open(now)
            return OPEN
        self._successes += 1
        if self._successes >= self._half_open_requests:
            self._close()
            return CLOSED
        return None

    def release(self, now: float) -> None:
        """A permitted request ended with no outcome: give back its permit."""
        if self._state == OPEN and now >= self._half_open_at:
            self._enter_half_open()
        elif self._state == HALF_OPEN and self._trials > 0:
            self._trials -= 1

    # --- internals ---------------------------------------------------------

    def _record_closed(self, ok: bool, now: float) -> str | None:
        epoch = int(now // self._width)
        head = self._head
        if epoch > head:
            self._advance(epoch)
        elif epoch < head:
            # Time read before a newer outcome's: count it with the newest
            # rather than in a bucket that may already have been recycled.
            epoch = head
        slot = epoch % _BUCKETS
        if ok:
            self._ok[slot] += 1
            self._ok_total += 1
        else:
            self._bad[slot] += 1
            self._bad_total += 1
        bad = self._bad_total
        total = self._ok_total + bad
        if total >= self._minimum_requests and bad / total >= self._failure_rate:
            self._open(now)
            return OPEN
        return None

    def _advance(self, epoch: int) -> None:
        """Make ``epoch`` the newest bucket, dropping the ones that fall out."""
        head = self._head
        if epoch - head >= _BUCKETS:
            self._clear_window()
        else:
            ok, bad = self._ok, self._bad
            while head < epoch:  # at most 9 steps
                head += 1
                slot = head % _BUCKETS
                self._ok_total -= ok[slot]
                self._bad_total -= bad[slot]
                ok[slot] = 0
                bad[slot] = 0
        self._head = epoch

    def _clear_window(self) -> None:
        for slot in range(_BUCKETS):
            self._ok[slot] = 0
            self._bad[slot] = 0
        self._ok_total = 0
        self._bad_total = 0

    def _open(self, now: float) -> None:
        self._state = OPEN
        self._opened_at = now
        self._half_open_at = now + self._open_duration
        self._trials = 0
        self._successes = 0
        self._transitions += 1

    def _enter_half_open(self) -> None:
        self._state = HALF_OPEN
        self._trials = 0
        self._successes = 0
        self._transitions += 1

    def _close(self) -> None:
        self._state = CLOSED
        self._clear_window()
        self._trials = 0
        self._successes = 0
        self._transitions += 1
