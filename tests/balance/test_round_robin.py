from __future__ import annotations

from collections.abc import Callable
from types import ModuleType

import pytest


@pytest.fixture
def balance(fast_impl: Callable[[str], ModuleType]) -> ModuleType:
    return fast_impl("balance")


def picks(balancer: object, count: int, accept: Callable[[int], bool] | None = None) -> list[int]:
    pick = balancer.pick  # type: ignore[attr-defined]
    return [pick(None, accept) for _ in range(count)]


def test_rotates_over_all_indices_in_order(balance: ModuleType) -> None:
    rr = balance.RoundRobin([1, 1, 1])
    assert picks(rr, 7) == [0, 1, 2, 0, 1, 2, 0]


def test_weights_other_than_zero_are_ignored(balance: ModuleType) -> None:
    rr = balance.RoundRobin([5, 1, 3])
    assert picks(rr, 6) == [0, 1, 2, 0, 1, 2]


def test_weight_zero_is_never_picked_nor_offered(balance: ModuleType) -> None:
    rr = balance.RoundRobin([1, 0, 1])
    offered: list[int] = []

    def accept(i: int) -> bool:
        offered.append(i)
        return True

    assert picks(rr, 4, accept) == [0, 2, 0, 2]
    assert 1 not in offered


def test_skips_rejected_and_continues_after_the_pick(balance: ModuleType) -> None:
    rr = balance.RoundRobin([1, 1, 1, 1])
    assert picks(rr, 3, lambda i: i != 1) == [0, 2, 3]
    # The cursor sits after 3, so the next unfiltered pick starts again at 0.
    assert picks(rr, 2) == [0, 1]


def test_each_index_offered_at_most_once_per_pick(balance: ModuleType) -> None:
    rr = balance.RoundRobin([1, 1, 1])
    rr.pick(None, None)  # cursor now at 1
    offered: list[int] = []

    def accept(i: int) -> bool:
        offered.append(i)
        return i == 0

    assert rr.pick(None, accept) == 0
    assert offered == [1, 2, 0]


def test_all_rejected_returns_minus_one_and_keeps_the_cursor(
    balance: ModuleType,
) -> None:
    rr = balance.RoundRobin([1, 1, 1])
    rr.pick(None, None)
    offered: list[int] = []

    def reject(i: int) -> bool:
        offered.append(i)
        return False

    assert rr.pick(None, reject) == -1
    assert offered == [1, 2, 0]
    assert rr.pick(None, None) == 1


def test_all_weights_zero_or_empty_pool_returns_minus_one(balance: ModuleType) -> None:
    assert balance.RoundRobin([0, 0]).pick(None, None) == -1
    assert balance.RoundRobin([]).pick(None, None) == -1
    assert balance.RoundRobin([]).pick(None, lambda i: True) == -1


def test_set_weight_disables_and_reenables(balance: ModuleType) -> None:
    rr = balance.RoundRobin([1, 1, 1])
    assert picks(rr, 1) == [0]
    rr.set_weight(1, 0)
    assert picks(rr, 3) == [2, 0, 2]
    rr.set_weight(1, 4)
    assert picks(rr, 3) == [0, 1, 2]


def test_accept_that_raises_leaves_the_cursor(balance: ModuleType) -> None:
    rr = balance.RoundRobin([1, 1, 1])
    rr.pick(None, None)

    def boom(i: int) -> bool:
        raise RuntimeError("accept failed")

    with pytest.raises(RuntimeError, match="accept failed"):
        rr.pick(None, boom)
    assert rr.pick(None, None) == 1
