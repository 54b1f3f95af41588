"""Peak-EWMA picks, pure Python: the reference twin of ``ewma.pyx``.

Theory of operation
-------------------
PeakEwma is latency-aware power-of-two-choices, after Finagle's and Linkerd's
"peak EWMA" balancer. It keeps the balancer contract of ``balance_py`` (read
that module's docstring: indices, weights, ``accept``, at most one offer per
index per pick, a pick that returns -1 or raises changes nothing) and draws
its candidates exactly as PowerOfTwo does, with the same generator and
``seed``. Only the rule that picks the winner of the two differs.

Latency estimate
    Per index the balancer keeps a cost ``e`` (seconds), the time ``s`` of its
    last observation and whether it has answered at all. The pool reports every
    response latency with ``observe(index, seconds)``; at ``t = clock()``::

        dt = max(t - s, 0)
        w  = exp(-dt * ln2 / half_life)       # weight left on the old value
        e  = seconds              if seconds > e * w   # peak: jump up at once
             e * w + seconds * (1 - w)        otherwise # decay toward it
        s  = t; answered = True

    A slow answer raises ``e`` immediately, so a backend that turns slow stops
    drawing traffic at once; fast answers pull ``e`` down only as fast as the
    half-life allows, so one lucky answer does not undo a bad spell. ``w``
    depends on the time between observations, not their number, so the
    estimate means the same on a busy backend and an idle one.

Cost at a pick
    The cost of index i at time t is computed, never stored::

        never answered, nothing in flight:  0          (try it, do not starve it)
        never answered, k in flight:        PENALTY + k (do not pile on before
                                                          its first answer)
        otherwise:  e * exp(-max(t - s, 0) * ln2 / half_life) * (active + 1)

    The decay makes the cost of a backend that is not being picked drift to 0,
    so a backend that was slow gets probed again after a few half-lives and,
    if it is fast now, earns its share back. ``active + 1`` turns latency into
    expected wait: requests already in flight queue ahead of the next one.

Winner
    Of the two candidates, the lower cost per unit of weight wins, compared by
    cross-multiplying in doubles (``cost_b * w_a < cost_a * w_b`` makes b the
    winner); a tie goes to the first drawn, itself random. With one candidate
    left, that one, and no cost is computed.

Clock
    ``clock`` is a zero-argument callable returning seconds from a monotonic
    origin; None means ``time.monotonic``. It is read once per ``observe`` and
    once per pick that compares two candidates, never otherwise (so a pick
    that returns -1, or whose ``accept`` raises, does not read it). Both twins
    read it the same number of times, which is what lets the tests inject one.

Twins
    Both twins compute with IEEE doubles in the same order and call the same
    libm ``exp`` (``math.exp`` is a thin wrapper over it), so they agree to the
    last bit; the compiled one is built with ``-ffp-contract=off`` so that no
    compiler fuses a multiply and an add behind our back. Values that the
    compiled twin converts with ``PyFloat_AsDouble`` (seconds, half_life, the
    clock's result) go through ``math.ldexp(x, 0)`` here, which converts the
    same way (ints and ``__float__`` / ``__index__`` objects yes, str no) and
    returns x unchanged.

Errors: ``observe`` raises ValueError for a latency that is negative, NaN or
infinite; the constructor raises ValueError for a half_life that is not a
finite positive number and TypeError for a clock that is not callable. The
rest (IndexError, weight errors) is the base class's.
"""

from __future__ import annotations

import math as _math
import time as _time
from typing import TYPE_CHECKING

from lbproxy._fast.balance_py import PowerOfTwo as _PowerOfTwo

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable


# The double nearest ln 2 (== math.log(2)); the compiled twin uses the same
# literal, so the decay exponents agree to the last bit.
_LN2 = 0.6931471805599453
# Cost of a backend that has requests in flight but has never answered: far
# above any real latency, so it is not piled on before its first answer, yet
# finite so that two such backends still compare by their in-flight counts.
_PENALTY = 1e6
_INF = _math.inf

# Converts like the compiled twin's PyFloat_AsDouble and returns x unchanged.
_ldexp = _math.ldexp
_exp = _math.exp


class PeakEwma(_PowerOfTwo):
    """Two weighted random candidates; the lower decayed peak-EWMA latency,
    times requests in flight + 1, per weight, wins."""

    __slots__ = ("_answered", "_clock", "_ewma", "_half_life", "_stamp")

    def __init__(
        self,
        weights: Iterable[int],
        seed: int | None = None,
        half_life: float = 5.0,
        clock: Callable[[], float] | None = None,
    ) -> None:
        super().__init__(weights, seed)
        half_life = _ldexp(half_life, 0)
        if not 0.0 < half_life < _INF:
            raise ValueError(f"half_life must be a positive number of seconds, got {half_life}")
        if clock is None:
            clock = _time.monotonic
        elif not callable(clock):
            raise TypeError(f"clock must be callable, got {type(clock).__name__}")
        self._half_life = half_life
        self._clock = clock
        self._ewma = [0.0] * self._n
        self._stamp = [0.0] * self._n
        self._answered = [False] * self._n

    def observe(self, index: int, seconds: float) -> None:
        """Record a response latency of ``seconds`` for backend ``index``."""
        seconds = _ldexp(seconds, 0)
        i = self._checked(index)
        if not 0.0 <= seconds < _INF:
            raise ValueError(f"latency must be a finite number >= 0 seconds, got {seconds}")
        t = _ldexp(self._clock(), 0)
        dt = t - self._stamp[i]
        if dt < 0.0:
            dt = 0.0  # a clock that steps back must not inflate the estimate
        w = _exp(-dt * _LN2 / self._half_life)
        e = self._ewma[i] * w
        if seconds > e:
            self._ewma[i] = seconds
        else:
            self._ewma[i] = e + seconds * (1.0 - w)
        self._stamp[i] = t
        self._answered[i] = True

    def ewma(self, index: int) -> float:
        """The stored latency estimate ``e`` of ``index`` (not decayed to now)."""
        return self._ewma[self._checked(index)]

    def _cost(self, i: int, t: float) -> float:
        active = self._active[i]
        if not self._answered[i]:
            return 0.0 if active == 0 else _PENALTY + active
        dt = t - self._stamp[i]
        if dt < 0.0:
            dt = 0.0
        return self._ewma[i] * _exp(-dt * _LN2 / self._half_life) * (active + 1)

    def _better(self, a: int, b: int) -> int:
        # The one comparison of a pick, so the one clock read. Lower cost per
        # weight wins; a tie keeps the first drawn.
        t = _ldexp(self._clock(), 0)
        weights = self._weights
        return b if self._cost(b, t) * weights[a] < self._cost(a, t) * weights[b] else a
