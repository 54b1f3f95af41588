"""Load-balancing algorithms, chosen by the name a pool's ``balance`` key gives.

The algorithms live in ``lbproxy._fast.balance`` (compiled, or its pure twin
``balance_py``; see ``lbproxy._fast.load``). To add one: write the class in
both twins (and the ``.pyi`` stub) and give it a line in ``ALGORITHMS``. An
algorithm that gains nothing from compiling may instead be a plain class in a
module of this package; ``ALGORITHMS`` takes any ``BalancerFactory``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING

from lbproxy._fast import load
from lbproxy.balance.base import Accept, Balancer, BalancerFactory, PickContext

if TYPE_CHECKING:
    # Type-check against the stub; at run time use whichever twin load() picks.
    from lbproxy._fast import balance as _impl
else:
    _impl = load("balance")

__all__ = [
    "ALGORITHMS",
    "Accept",
    "Balancer",
    "BalancerFactory",
    "PickContext",
    "make_balancer",
]

ALGORITHMS: Mapping[str, BalancerFactory] = MappingProxyType(
    {
        "round_robin": _impl.RoundRobin,
        "weighted_round_robin": _impl.SmoothWeightedRoundRobin,
        "random": _impl.Random,
        "first": _impl.First,
        "power_of_two": _impl.PowerOfTwo,
    }
)


def make_balancer(algorithm: str, weights: Sequence[int]) -> Balancer:
    """A new balancer over ``len(weights)`` backends, in index order."""
    try:
        factory = ALGORITHMS[algorithm]
    except KeyError:
        known = ", ".join(sorted(ALGORITHMS))
        raise ValueError(f"unknown balance algorithm {algorithm!r} (known: {known})") from None
    return factory(weights)
