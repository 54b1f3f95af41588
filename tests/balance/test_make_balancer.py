from __future__ import annotations

import pytest

from lbproxy import _fast
from lbproxy.balance import ALGORITHMS, BalanceOptions, make_balancer
from lbproxy.balance.base import PickContext
from lbproxy.config.loader import _BALANCE


def test_every_algorithm_the_config_accepts_is_built() -> None:
    assert set(ALGORITHMS) == set(_BALANCE)
    for algorithm in ALGORITHMS:
        b = make_balancer(algorithm, [1000, 1000])
        assert b.pick(None, None) in (0, 1)


def test_options_reach_the_algorithms() -> None:
    names = BalanceOptions(names=["10.0.0.1:80", "10.0.0.2:80"])
    swapped = BalanceOptions(names=["10.0.0.2:80", "10.0.0.1:80"])
    a = make_balancer("consistent_hash", [1000, 1000], names)
    b = make_balancer("consistent_hash", [1000, 1000], swapped)
    for i in range(50):
        ctx = PickContext(hash_key=b"user-%d" % i)
        # Placement follows the names, not the order they are given in.
        assert names.names[a.pick(ctx, None)] == swapped.names[b.pick(ctx, None)]
    seeded = [make_balancer("random", [1] * 8, BalanceOptions(seed=3)) for _ in range(2)]
    assert [seeded[0].pick(None, None) for _ in range(20)] == [
        seeded[1].pick(None, None) for _ in range(20)
    ]


@pytest.mark.parametrize(
    ("algorithm", "expected"),
    [
        ("round_robin", [0, 1, 2, 0, 1, 2, 0]),
        ("weighted_round_robin", [0, 0, 1, 0, 2, 0, 0]),
    ],
)
def test_make_balancer_builds_the_named_algorithm(algorithm: str, expected: list[int]) -> None:
    b = make_balancer(algorithm, [5, 1, 1])
    assert [b.pick(None, None) for _ in range(7)] == expected


def test_make_balancer_uses_the_loaded_implementation() -> None:
    b = make_balancer("round_robin", [1])
    assert type(b).__module__ == _fast.load("balance").__name__


def test_unknown_algorithm_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"'fastest'.*round_robin, weighted_round_robin"):
        make_balancer("fastest", [1])
