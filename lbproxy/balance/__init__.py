"""Load-balancing algorithms, chosen by the name a pool's ``balance`` key gives.

The algorithms live in ``lbproxy._fast`` (compiled, or their pure twins; see
``lbproxy._fast.load``): ``balance`` holds the simple ones, ``leastconn``,
``ewma`` and ``chash`` one each. To add one: write the class in both twins
(and the ``.pyi`` stub) and give it a line in ``ALGORITHMS``. An algorithm that
gains nothing from compiling may instead be a plain class in a module of this
package; ``ALGORITHMS`` takes any ``BalancerFactory``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING

from lbproxy._fast import load
from lbproxy.balance.base import Accept, BalanceOptions, Balancer, BalancerFactory, PickContext

if TYPE_CHECKING:
    # Type-check against the stubs; at run time use whichever twin load() picks.
    from lbproxy._fast import balance as _impl
    from lbproxy._fast import chash as _chash
    from lbproxy._fast import ewma as _ewma
    from lbproxy._fast import leastconn as _leastconn
else:
    _impl = load("balance")
    _chash = load("chash")
    _ewma = load("ewma")
    _leastconn = load("leastconn")

__all__ = [
    "ALGORITHMS",
    "WEIGHT_UNIT",
    "Accept",
    "BalanceOptions",
    "Balancer",
    "BalancerFactory",
    "PickContext",
    "make_balancer",
]

WEIGHT_UNIT: int = _impl.WEIGHT_UNIT

ALGORITHMS: Mapping[str, BalancerFactory] = MappingProxyType(
    {
        "round_robin": lambda w, o: _impl.RoundRobin(w),
        "weighted_round_robin": lambda w, o: _impl.SmoothWeightedRoundRobin(w),
        "least_connections": lambda w, o: _leastconn.LeastConnections(w),
        "power_of_two": lambda w, o: _impl.PowerOfTwo(w, o.seed),
        "peak_ewma": lambda w, o: _ewma.PeakEwma(w, o.seed, o.ewma_half_life),
        "consistent_hash": lambda w, o: _chash.ConsistentHash(w, o.names, o.hash_balance_factor),
        "random": lambda w, o: _impl.Random(w, o.seed),
        "first": lambda w, o: _impl.First(w),
    }
)

_DEFAULT_OPTIONS = BalanceOptions()


def make_balancer(
    algorithm: str, weights: Sequence[int], options: BalanceOptions = _DEFAULT_OPTIONS
) -> Balancer:
    """A new balancer over ``len(weights)`` backends, in index order."""
    try:
        factory = ALGORITHMS[algorithm]
    except KeyError:
        known = ", ".join(sorted(ALGORITHMS))
        raise ValueError(f"unknown balance algorithm {algorithm!r} (known: {known})") from None
    if algorithm == "consistent_hash" and not options.names:
        # Placement hangs on the names; numbered stand-ins keep the
        # algorithm usable alone (tests, embedding) with stable placement.
        options = BalanceOptions(
            [f"backend-{i}" for i in range(len(weights))],
            options.hash_balance_factor,
            options.ewma_half_life,
            options.seed,
        )
    return factory(weights, options)
