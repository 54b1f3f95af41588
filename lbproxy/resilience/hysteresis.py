"""Hysteresis: a health state that flips only after a run of agreeing results.

Model
-----
Active health checks see noise: one lost probe should not take a backend out,
and one lucky answer should not put a sick one back. So, as HAProxy's
``rise``/``fall`` do, a healthy backend goes down only after ``fall``
consecutive failures, and an unhealthy one comes up only after ``rise``
consecutive successes. ``streak`` counts the current run toward a flip; a
result that agrees with the current state (a success while healthy, a failure
while unhealthy) resets it to 0, so a flapping backend stays where it is. A
flip also resets it: the run toward the next flip starts from scratch.

The object is pure: it never reads a clock and allocates nothing per result.
"""

from __future__ import annotations

__all__ = ["Hysteresis"]


class Hysteresis:
    """``record`` results; ``healthy`` flips after ``rise``/``fall`` in a row."""

    __slots__ = ("_fall", "_healthy", "_rise", "_streak")

    def __init__(self, rise: int, fall: int, healthy: bool = True) -> None:
        if rise < 1:
            raise ValueError(f"rise must be >= 1, got {rise!r}")
        if fall < 1:
            raise ValueError(f"fall must be >= 1, got {fall!r}")
        self._rise = rise
        self._fall = fall
        self._healthy = bool(healthy)
        self._streak = 0

    @property
    def healthy(self) -> bool:
        return self._healthy

    @property
    def streak(self) -> int:
        """Consecutive results so far that argue for a flip (0 after a flip)."""
        return self._streak

    def set(self, healthy: bool) -> bool:
        """Take a state decided elsewhere (another process's checks); True
        when it changed. The run toward a flip starts afresh."""
        self._streak = 0
        if bool(healthy) == self._healthy:
            return False
        self._healthy = bool(healthy)
        return True

    def record(self, ok: bool) -> bool:
        """Count one check result; True when it flipped the state."""
        if ok == self._healthy:
            # Agrees with where we are: the run toward a flip is broken.
            self._streak = 0
            return False
        streak = self._streak + 1
        if streak < (self._fall if self._healthy else self._rise):
            self._streak = streak
            return False
        self._healthy = not self._healthy
        self._streak = 0
        return True
