"""The balancer interface: what a pool asks when it needs a backend.

A balancer is a pure object over backend *indices* 0..n-1 of one pool. It owns
no sockets, and reads no clock except peak_ewma's, which is injected (tests and
the simulation in bench/balance_sim.py run it on their own time). The pool
calls ``pick`` with a context (who is asking, with which hash key, which
backends were already tried) and an ``accept`` filter through which the pool
rejects backends that are not eligible (down, ejected, breaker open, draining,
already tried); the balancer walks its own candidate order and returns the
first accepted index, or -1.

Accounting follows HAProxy's lbprm callbacks: the pool tells the balancer
``take(i)`` when a request starts on backend i and ``drop(i)`` when it ends,
and ``set_weight(i, w)`` when a weight changes (admin, slow start), so no
algorithm rescans the pool per pick.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

Accept = Callable[[int], bool]


class PickContext:
    """Per-request facts a balancer may use. Cheap to build: plain slots."""

    __slots__ = ("client_ip", "hash_key", "headers", "tried")

    def __init__(
        self,
        client_ip: str = "",
        hash_key: bytes | None = None,
        tried: frozenset[int] | set[int] = frozenset(),
        headers: Sequence[tuple[bytes, bytes]] = (),
    ) -> None:
        self.client_ip = client_ip
        self.hash_key = hash_key  # already extracted by the pool from hash_key config
        self.tried = tried  # indices already attempted for this request
        self.headers = headers  # the request's headers as received, for policies that need them


class Balancer(Protocol):
    """What every algorithm provides. Indices refer to the pool's backends."""

    def pick(self, ctx: PickContext | None, accept: Accept | None) -> int: ...

    def take(self, index: int) -> None: ...

    def drop(self, index: int) -> None: ...

    def set_weight(self, index: int, weight: int) -> None: ...


@dataclass(frozen=True, slots=True)
class BalanceOptions:
    """Settings some algorithms take besides the weights (the pool's config)."""

    names: Sequence[str] = ()  # backend addresses, for consistent_hash placement
    hash_balance_factor: float = 0.0  # consistent_hash bounded load; 0 = off
    ewma_half_life: float = 5.0  # peak_ewma, seconds
    seed: int | None = None  # random, power_of_two, peak_ewma: reproducible draws


# Built from the weights (balancer units: config weight x WEIGHT_UNIT) and options.
BalancerFactory = Callable[[Sequence[int], BalanceOptions], Balancer]
