"""RetryBudget: retries in flight < max(min_concurrent, floor(ratio * active))."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lbproxy.resilience import RetryBudget


def test_min_concurrent_allows_retries_with_no_traffic() -> None:
    b = RetryBudget(ratio=0.2)  # min_concurrent defaults to 3
    for _ in range(3):
        assert b.allow(0) is True
        b.start()
    assert b.in_flight == 3
    assert b.allow(0) is False
    assert b.allow(15) is False  # floor(0.2 * 15) == 3: still not above the floor


def test_ratio_of_active_requests_raises_the_bound_above_the_floor() -> None:
    b = RetryBudget(ratio=0.2, min_concurrent=3)
    for _ in range(3):
        b.start()
    assert b.allow(20) is True  # floor(0.2 * 20) == 4
    b.start()
    assert b.allow(20) is False
    assert b.allow(25) is True  # 5


def test_floor_of_ratio_times_active() -> None:
    b = RetryBudget(ratio=0.5, min_concurrent=0)
    assert b.allow(1) is False  # floor(0.5) == 0
    assert b.allow(2) is True
    b.start()
    assert b.allow(3) is False  # floor(1.5) == 1


def test_decimal_ratio_is_not_lost_to_binary_rounding() -> None:
    # 0.29 * 100 == 28.999999999999996 in doubles; the budget is 29.
    b = RetryBudget(ratio=0.29, min_concurrent=0)
    for _ in range(28):
        b.start()
    assert b.allow(100) is True
    b.start()
    assert b.allow(100) is False


def test_zero_ratio_and_zero_floor_allow_nothing() -> None:
    b = RetryBudget(ratio=0.0, min_concurrent=0)
    assert b.allow(1000) is False


def test_finish_releases_and_never_goes_below_zero() -> None:
    b = RetryBudget(ratio=0.0, min_concurrent=1)
    b.start()
    assert b.allow(0) is False
    b.finish()
    assert b.in_flight == 0
    assert b.allow(0) is True
    b.finish()
    b.finish()
    assert b.in_flight == 0
    b.start()
    assert b.in_flight == 1


@pytest.mark.parametrize("ratio", [-0.1, 1.01, float("nan"), float("inf")])
def test_ratio_outside_zero_to_one_is_rejected(ratio: float) -> None:
    with pytest.raises(ValueError):
        RetryBudget(ratio)


def test_ratio_bounds_are_inclusive_and_negative_floor_is_rejected() -> None:
    RetryBudget(0.0)
    RetryBudget(1.0)
    with pytest.raises(ValueError):
        RetryBudget(0.5, min_concurrent=-1)


Op = tuple[str, int]


@given(
    percent=st.integers(0, 100),
    min_concurrent=st.integers(0, 5),
    ops=st.lists(
        st.one_of(
            st.tuples(st.just("retry"), st.integers(0, 500)),
            st.tuples(st.just("finish"), st.just(0)),
        ),
        max_size=80,
    ),
)
def test_retries_started_when_allowed_never_exceed_the_bound(
    percent: int, min_concurrent: int, ops: list[Op]
) -> None:
    b = RetryBudget(percent / 100, min_concurrent)
    in_flight = 0
    for op, active in ops:
        if op == "finish":
            b.finish()
            in_flight = max(0, in_flight - 1)
        else:
            # Exact integer arithmetic for the bound the ratio means.
            bound = max(min_concurrent, percent * active // 100)
            allowed = b.allow(active)
            assert allowed == (in_flight < bound)
            if allowed:
                b.start()
                in_flight += 1
                assert in_flight <= bound
        assert b.in_flight == in_flight >= 0


def test_bound_is_exact_for_every_whole_percent() -> None:
    # Products such as 0.29 * 100 or 0.57 * 300 round just below the integer
    # in doubles; a budget of p percent must still mean exactly that.
    for percent in range(101):
        b = RetryBudget(percent / 100, min_concurrent=0)
        for active in range(501):  # the bound only grows with active
            bound = percent * active // 100
            while b.in_flight < bound - 1:
                b.start()
            if bound:
                assert b.allow(active), (percent, active)  # bound - 1 in flight
                b.start()
            assert not b.allow(active), (percent, active)  # bound in flight
            if bound:
                b.finish()
