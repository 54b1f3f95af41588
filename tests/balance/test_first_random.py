"""``first`` (primary/standby) and weighted ``random``, both twins."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from types import ModuleType

import pytest

Accept = Callable[[int], bool]


@pytest.fixture
def balance(fast_impl: Callable[[str], ModuleType]) -> ModuleType:
    return fast_impl("balance")


def picks(balancer: object, count: int, accept: Accept | None = None) -> list[int]:
    pick = balancer.pick  # type: ignore[attr-defined]
    return [pick(None, accept) for _ in range(count)]


def offering(log: list[int], refused: set[int]) -> Accept:
    def accept(i: int) -> bool:
        log.append(i)
        return i not in refused

    return accept


# -- first ----------------------------------------------------------------------


def test_first_always_picks_the_first_backend(balance: ModuleType) -> None:
    assert picks(balance.First([1, 5, 1]), 5) == [0] * 5


def test_first_falls_to_the_next_eligible_in_order(balance: ModuleType) -> None:
    log: list[int] = []
    b = balance.First([1, 0, 1, 1])
    assert b.pick(None, offering(log, {0})) == 2
    assert log == [0, 2]  # weight 0 is never offered; offering stops at the pick
    assert b.pick(None, offering(log, {0, 2, 3})) == -1


def test_first_follows_weight_changes(balance: ModuleType) -> None:
    b = balance.First([1, 1])
    b.set_weight(0, 0)
    assert picks(b, 2) == [1, 1]
    b.set_weight(0, 3)
    assert picks(b, 2) == [0, 0]


# -- random ---------------------------------------------------------------------


@pytest.mark.parametrize("weights", [[1, 1, 1], [5, 1, 1], [3, 0, 7, 1]])
def test_random_shares_converge_to_the_weights(balance: ModuleType, weights: list[int]) -> None:
    n = 30_000
    counts = Counter(picks(balance.Random(weights, seed=11), n))
    total = sum(weights)
    for i, w in enumerate(weights):
        # 30,000 draws: a share's standard deviation is under 0.3 points.
        assert abs(counts[i] / n - w / total) < 0.015, (i, counts)


def test_random_is_reproducible_from_a_seed_and_varies_without_one(balance: ModuleType) -> None:
    assert picks(balance.Random([1, 1, 1, 1], seed=5), 50) == picks(
        balance.Random([1, 1, 1, 1], seed=5), 50
    )
    unseeded = {tuple(picks(balance.Random([1] * 8), 20)) for _ in range(5)}
    assert len(unseeded) > 1


def test_random_offers_each_backend_at_most_once_per_pick(balance: ModuleType) -> None:
    b = balance.Random([1, 2, 3, 4], seed=3)
    for _ in range(200):
        log: list[int] = []
        got = b.pick(None, offering(log, {1, 3}))
        assert got in (0, 2)
        assert len(log) == len(set(log))


def test_random_refusals_spread_over_the_accepted_by_weight(balance: ModuleType) -> None:
    b = balance.Random([1, 1, 3], seed=9)
    counts = Counter(picks(b, 20_000, lambda i: i != 0))
    assert set(counts) == {1, 2}
    assert abs(counts[2] / 20_000 - 0.75) < 0.02


def test_random_never_picks_weight_zero(balance: ModuleType) -> None:
    assert set(picks(balance.Random([0, 2, 0, 1], seed=1), 2_000)) == {1, 3}
    assert balance.Random([0, 0], seed=1).pick(None, None) == -1


def test_random_pick_that_finds_nothing_or_raises_changes_nothing(balance: ModuleType) -> None:
    a = balance.Random([1, 2, 3], seed=21)
    b = balance.Random([1, 2, 3], seed=21)
    assert a.pick(None, lambda i: False) == -1

    def boom(i: int) -> bool:
        raise RuntimeError("accept failed")

    with pytest.raises(RuntimeError):
        a.pick(None, boom)
    # a's generator is where b's is: the same picks follow.
    assert picks(a, 30) == picks(b, 30)


# -- power of two choices ---------------------------------------------------------


def test_power_of_two_avoids_the_loaded_backend(balance: ModuleType) -> None:
    b = balance.PowerOfTwo([1, 1, 1, 1], seed=4)
    for _ in range(50):
        b.take(0)  # backend 0 is busy
    counts = Counter(picks(b, 4_000))
    # 0 wins only when drawn twice, which two different draws never are.
    assert counts[0] == 0
    assert min(counts[i] for i in (1, 2, 3)) > 1_000


def test_power_of_two_weighs_load_by_weight(balance: ModuleType) -> None:
    b = balance.PowerOfTwo([3, 1], seed=8)
    for _ in range(3):
        b.take(0)
    b.take(1)
    # 3 in flight on weight 3 ties with 1 on weight 1: the first drawn wins,
    # so both are picked, the heavier one more often (it is drawn first more).
    counts = Counter(picks(b, 4_000))
    assert counts[0] > counts[1] > 500


def test_power_of_two_spreads_by_weight_when_idle(balance: ModuleType) -> None:
    counts = Counter(picks(balance.PowerOfTwo([1, 1, 1], seed=6), 9_000))
    for i in range(3):
        assert abs(counts[i] / 9_000 - 1 / 3) < 0.03


def test_power_of_two_honours_accept(balance: ModuleType) -> None:
    b = balance.PowerOfTwo([1, 1, 1, 1], seed=12)
    for _ in range(300):
        log: list[int] = []
        got = b.pick(None, offering(log, {0, 1, 2}))
        assert got == 3
        assert len(log) == len(set(log))
    assert b.pick(None, lambda i: False) == -1
    assert balance.PowerOfTwo([0, 2], seed=1).pick(None, None) == 1
    assert balance.PowerOfTwo([0, 0], seed=1).pick(None, None) == -1
