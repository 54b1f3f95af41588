from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from types import ModuleType

import pytest


@pytest.fixture
def balance(fast_impl: Callable[[str], ModuleType]) -> ModuleType:
    return fast_impl("balance")


def picks(balancer: object, count: int, accept: Callable[[int], bool] | None = None) -> list[int]:
    pick = balancer.pick  # type: ignore[attr-defined]
    return [pick(None, accept) for _ in range(count)]


def letters(indices: list[int]) -> str:
    return "".join("abcdefgh"[i] if i >= 0 else "-" for i in indices)


def test_nginx_sequence_for_5_1_1(balance: ModuleType) -> None:
    swrr = balance.SmoothWeightedRoundRobin([5, 1, 1])
    # The example from nginx's commit introducing smooth weighted round robin;
    # the cycle repeats exactly, and a never wins 5 times in a row.
    assert letters(picks(swrr, 21)) == "aabacaa" * 3


def test_ties_go_to_the_lowest_index(balance: ModuleType) -> None:
    swrr = balance.SmoothWeightedRoundRobin([1, 1, 1])
    assert picks(swrr, 6) == [0, 1, 2, 0, 1, 2]
    swrr = balance.SmoothWeightedRoundRobin([2, 2])
    assert picks(swrr, 4) == [0, 1, 0, 1]


@pytest.mark.parametrize("weights", [[5, 1, 1], [3, 2], [1, 2, 3, 4], [7, 0, 1, 10]])
def test_each_window_of_one_cycle_matches_the_weights_exactly(
    balance: ModuleType, weights: list[int]
) -> None:
    swrr = balance.SmoothWeightedRoundRobin(weights)
    cycle = sum(weights)
    for _ in range(50):
        counts = Counter(picks(swrr, cycle))
        assert [counts[i] for i in range(len(weights))] == weights


def test_rejected_backend_sits_the_pick_out(balance: ModuleType) -> None:
    swrr = balance.SmoothWeightedRoundRobin([5, 1, 1])
    # Without a: b and c alternate, both weight 1.
    assert picks(swrr, 4, lambda i: i != 0) == [1, 2, 1, 2]
    # a kept its zero current, so it resumes its share at once.
    counts = Counter(picks(swrr, 700))
    assert counts == {0: 500, 1: 100, 2: 100}


def test_accept_is_offered_every_positive_weight_in_index_order(
    balance: ModuleType,
) -> None:
    swrr = balance.SmoothWeightedRoundRobin([2, 0, 1, 3])
    offered: list[int] = []

    def accept(i: int) -> bool:
        offered.append(i)
        return True

    swrr.pick(None, accept)
    assert offered == [0, 2, 3]


def test_all_rejected_returns_minus_one_and_changes_nothing(
    balance: ModuleType,
) -> None:
    a = balance.SmoothWeightedRoundRobin([5, 1, 1])
    b = balance.SmoothWeightedRoundRobin([5, 1, 1])
    picks(a, 2)
    picks(b, 2)
    assert a.pick(None, lambda i: False) == -1
    assert picks(a, 14) == picks(b, 14)


def test_empty_or_all_zero_returns_minus_one(balance: ModuleType) -> None:
    assert balance.SmoothWeightedRoundRobin([]).pick(None, None) == -1
    assert balance.SmoothWeightedRoundRobin([0, 0]).pick(None, None) == -1
    assert balance.SmoothWeightedRoundRobin([0, 0]).pick(None, lambda i: True) == -1


def test_weight_zero_is_never_picked(balance: ModuleType) -> None:
    swrr = balance.SmoothWeightedRoundRobin([3, 0, 1])
    assert set(picks(swrr, 100)) == {0, 2}


def test_set_weight_takes_effect_at_the_next_pick(balance: ModuleType) -> None:
    swrr = balance.SmoothWeightedRoundRobin([1, 1])
    assert picks(swrr, 2) == [0, 1]
    swrr.set_weight(1, 3)
    # Currents were 0,0; no restart needed for the new 1:3 interleaving.
    assert picks(swrr, 8) == [1, 0, 1, 1, 1, 0, 1, 1]


def test_set_weight_keeps_the_others_state(balance: ModuleType) -> None:
    changed = balance.SmoothWeightedRoundRobin([5, 1, 1])
    same = balance.SmoothWeightedRoundRobin([5, 1, 1])
    picks(changed, 3)
    picks(same, 3)
    # Setting a weight to its current value must be a no-op on the sequence.
    changed.set_weight(0, 5)
    assert picks(changed, 14) == picks(same, 14)


def test_disable_then_reenable_by_weight(balance: ModuleType) -> None:
    swrr = balance.SmoothWeightedRoundRobin([1, 1, 1])
    swrr.set_weight(0, 0)
    assert set(picks(swrr, 10)) == {1, 2}
    swrr.set_weight(0, 1)
    assert Counter(picks(swrr, 300)) == {0: 100, 1: 100, 2: 100}


def test_proportions_with_a_filter_over_many_picks(balance: ModuleType) -> None:
    swrr = balance.SmoothWeightedRoundRobin([4, 3, 2, 1])
    results = picks(swrr, 10_000, lambda i: i != 2)
    counts = Counter(results)
    # Only 4:3:1 take part, so over 8-pick cycles the shares are exact.
    assert counts == {0: 5000, 1: 3750, 3: 1250}


def test_accept_that_raises_leaves_the_state(balance: ModuleType) -> None:
    a = balance.SmoothWeightedRoundRobin([5, 1, 1])
    b = balance.SmoothWeightedRoundRobin([5, 1, 1])

    def boom_at_2(i: int) -> bool:
        if i == 2:
            raise RuntimeError("accept failed")
        return True

    with pytest.raises(RuntimeError, match="accept failed"):
        a.pick(None, boom_at_2)
    assert picks(a, 14) == picks(b, 14)
