from __future__ import annotations

import pytest

from lbproxy import _fast
from lbproxy.balance import ALGORITHMS, make_balancer


def test_known_algorithms() -> None:
    assert set(ALGORITHMS) == {
        "round_robin",
        "weighted_round_robin",
        "random",
        "first",
        "power_of_two",
    }


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
