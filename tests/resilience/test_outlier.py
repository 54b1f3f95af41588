"""OutlierDetector: consecutive failures eject, for base * k capped, within a cap."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lbproxy.resilience import OutlierDetector


def make(
    n: int = 4,
    consecutive_failures: int = 3,
    base_ejection_time: float = 10.0,
    max_ejection_time: float = 35.0,
    max_ejection_percent: int = 50,
) -> OutlierDetector:
    return OutlierDetector(
        n, consecutive_failures, base_ejection_time, max_ejection_time, max_ejection_percent
    )


def fail(d: OutlierDetector, i: int, now: float, times: int) -> list[bool]:
    return [d.record(i, False, now) for _ in range(times)]


# --- ejection -------------------------------------------------------------


def test_ejects_after_consecutive_failures() -> None:
    d = make(consecutive_failures=3)
    assert fail(d, 1, 0.0, 3) == [False, False, True]
    assert d.ejected(1, 0.0) is True
    assert d.ejected(0, 0.0) is False
    assert d.ejected_count == 1
    assert d.ejections(1) == 1


def test_a_success_resets_the_run() -> None:
    d = make(consecutive_failures=3)
    fail(d, 0, 0.0, 2)
    assert d.record(0, True, 0.0) is False
    assert fail(d, 0, 0.0, 2) == [False, False]
    assert d.ejected(0, 0.0) is False
    assert d.record(0, False, 0.0) is True


def test_runs_are_per_backend() -> None:
    d = make(consecutive_failures=2)
    assert d.record(0, False, 0.0) is False
    assert d.record(1, False, 0.0) is False
    assert d.record(1, True, 0.0) is False
    assert d.record(0, False, 0.0) is True


def test_ejected_is_true_until_the_ejection_time_and_is_a_pure_query() -> None:
    d = make(consecutive_failures=1, base_ejection_time=10.0)
    d.record(2, False, 5.0)
    assert d.ejected(2, 14.999) is True
    assert d.ejected(2, 15.0) is False
    assert d.ejected_count == 1  # the query changed nothing: expire() returns it
    assert d.next_expiry() == 15.0


def test_results_of_an_ejected_backend_are_ignored() -> None:
    d = make(consecutive_failures=2)
    fail(d, 0, 0.0, 2)
    assert fail(d, 0, 1.0, 5) == [False] * 5
    assert d.ejections(0) == 1
    d.expire(10.0)
    # The run restarted at return: one failure is not enough.
    assert d.record(0, False, 10.0) is False
    assert d.record(0, False, 10.0) is True


def test_results_between_the_end_of_an_ejection_and_expire_are_ignored() -> None:
    d = make(consecutive_failures=1, base_ejection_time=10.0)
    d.record(0, False, 0.0)
    assert d.ejected(0, 12.0) is False
    assert d.record(0, False, 12.0) is False  # still in the ejected state until the tick
    assert d.expire(12.0) == [0]
    assert d.record(0, False, 12.0) is True


# --- ejection time ---------------------------------------------------------


def test_ejection_time_grows_with_the_count_and_is_capped() -> None:
    d = make(n=1, consecutive_failures=1, base_ejection_time=10.0, max_ejection_time=35.0)
    now = 0.0
    for k, duration in [(1, 10.0), (2, 20.0), (3, 30.0), (4, 35.0), (5, 35.0)]:
        assert d.record(0, False, now) is True
        assert d.ejections(0) == k
        assert d.next_expiry() == now + duration
        assert d.ejected(0, now + duration - 0.5) is True
        assert d.ejected(0, now + duration) is False
        now += duration
        assert d.expire(now) == [0]
        # Fail again immediately: no full base period without ejection, no decay.


def test_the_count_decays_one_per_full_base_period_since_return() -> None:
    d = make(n=1, consecutive_failures=1, base_ejection_time=10.0, max_ejection_time=100.0)
    d.record(0, False, 0.0)  # k=1 until 10
    d.expire(10.0)
    d.record(0, False, 10.0)  # k=2 until 30
    d.expire(30.0)
    d.record(0, False, 30.0)  # k=3 until 60
    assert d.ejections(0) == 3
    d.expire(60.0)
    # Returned at 60; 19.9 s later is one full period: 3 - 1 + 1.
    d.record(0, False, 79.9)
    assert d.ejections(0) == 3
    assert d.next_expiry() == pytest.approx(79.9 + 30.0)


def test_decay_counts_whole_periods_and_stops_at_zero() -> None:
    d = make(n=1, consecutive_failures=1, base_ejection_time=10.0, max_ejection_time=100.0)
    d.record(0, False, 0.0)
    d.expire(10.0)
    d.record(0, False, 10.0)  # k=2, until 30
    d.expire(30.0)
    d.record(0, False, 50.0)  # two full periods since 30: 2 - 2 + 1
    assert d.ejections(0) == 1
    assert d.next_expiry() == 60.0
    d.expire(60.0)
    d.record(0, False, 1000.0)  # many periods: floor at 0, then this one
    assert d.ejections(0) == 1
    assert d.next_expiry() == 1010.0


def test_decay_is_measured_from_when_the_ejection_ended_not_the_tick() -> None:
    d = make(n=1, consecutive_failures=1, base_ejection_time=10.0, max_ejection_time=100.0)
    d.record(0, False, 0.0)
    d.expire(10.0)
    d.record(0, False, 10.0)  # k=2, ended at 30
    d.expire(38.0)  # a late tick
    d.record(0, False, 40.0)  # 10 s since the end: one period
    assert d.ejections(0) == 2


def test_ejections_shows_the_count_as_of_the_last_ejection() -> None:
    d = make(n=1, consecutive_failures=1)
    assert d.ejections(0) == 0
    d.record(0, False, 0.0)
    d.expire(100.0)
    assert d.ejections(0) == 1  # decay is applied only at the next ejection


# --- the cap ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "percent", "cap"),
    [(4, 50, 2), (4, 10, 1), (10, 33, 3), (3, 100, 3), (1, 1, 1), (7, 99, 6), (5, 0, 0)],
)
def test_cap_is_max_one_floor_n_percent(n: int, percent: int, cap: int) -> None:
    d = make(n=n, consecutive_failures=1, max_ejection_percent=percent)
    ejected = [d.record(i, False, 0.0) for i in range(n)]
    assert sum(ejected) == d.ejected_count == cap
    assert ejected == [True] * cap + [False] * (n - cap)


def test_at_the_cap_the_run_keeps_counting_and_the_next_failure_retries() -> None:
    d = make(n=2, consecutive_failures=2, base_ejection_time=10.0, max_ejection_percent=50)
    fail(d, 0, 0.0, 2)
    assert fail(d, 1, 1.0, 3) == [False, False, False]  # cap of 1 is full
    assert d.ejections(1) == 0
    assert d.expire(10.0) == [0]
    assert d.record(1, False, 10.0) is True  # run at 4 >= 2: ejected at once
    assert d.next_expiry() == 20.0


def test_percent_zero_never_ejects() -> None:
    d = make(n=3, consecutive_failures=1, max_ejection_percent=0)
    assert fail(d, 0, 0.0, 10) == [False] * 10
    assert d.ejected_count == 0
    assert d.next_expiry() is None


def test_expired_but_not_returned_backends_count_against_the_cap() -> None:
    d = make(n=2, consecutive_failures=1, base_ejection_time=10.0, max_ejection_percent=50)
    d.record(0, False, 0.0)
    assert d.record(1, False, 20.0) is False
    d.expire(20.0)
    assert d.record(1, False, 20.0) is True


# --- expire -----------------------------------------------------------------


def test_expire_returns_ended_ejections_in_order_and_resets_runs() -> None:
    d = make(n=4, consecutive_failures=2, base_ejection_time=10.0, max_ejection_percent=100)
    fail(d, 2, 0.0, 2)  # until 10
    fail(d, 0, 3.0, 2)  # until 13
    fail(d, 3, 1.0, 2)  # until 11
    d.record(1, False, 0.0)  # a run of 1 on a backend in service survives expire
    assert d.next_expiry() == 10.0
    assert d.expire(9.99) == []
    assert d.expire(11.0) == [2, 3]  # at or before now, earliest first
    assert d.ejected_count == 1
    assert d.next_expiry() == 13.0
    assert d.expire(13.0) == [0]
    assert d.next_expiry() is None
    assert d.expire(100.0) == []
    assert d.record(1, False, 100.0) is True
    assert d.record(2, False, 100.0) is False  # its run was reset on return


def test_no_backends() -> None:
    d = make(n=0)
    assert d.expire(0.0) == []
    assert d.ejected_count == 0


def test_index_out_of_range() -> None:
    d = make(n=2)
    for bad in (-1, 2):
        with pytest.raises(IndexError):
            d.record(bad, False, 0.0)
        with pytest.raises(IndexError):
            d.ejected(bad, 0.0)
        with pytest.raises(IndexError):
            d.ejections(bad)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"n": -1},
        {"consecutive_failures": 0},
        {"base_ejection_time": 0.0},
        {"base_ejection_time": -1.0},
        {"base_ejection_time": math.nan},
        {"base_ejection_time": math.inf},
        {"max_ejection_time": 5.0},  # below base
        {"max_ejection_time": math.nan},
        {"max_ejection_percent": -1},
        {"max_ejection_percent": 101},
    ],
)
def test_invalid_settings_are_rejected(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        make(**kwargs)  # type: ignore[arg-type]


# --- properties -------------------------------------------------------------


class _Model:
    """The rules, replicated plainly, one backend at a time."""

    def __init__(self, n: int, threshold: int, base: float, cap_time: float, cap: int) -> None:
        self.threshold, self.base, self.cap_time, self.cap = threshold, base, cap_time, cap
        self.failures = [0] * n
        self.k = [0] * n
        self.until: list[float | None] = [None] * n  # set while ejected
        self.returned_at: list[float | None] = [None] * n

    def ejected_count(self) -> int:
        return sum(u is not None for u in self.until)

    def record(self, i: int, ok: bool, now: float) -> float | None:
        """The ejection time if this outcome ejects, else None."""
        if self.until[i] is not None:
            return None
        if ok:
            self.failures[i] = 0
            return None
        self.failures[i] += 1
        if self.failures[i] < self.threshold or self.ejected_count() >= self.cap:
            return None
        back = self.returned_at[i]
        if back is not None:
            self.k[i] = max(0, self.k[i] - math.floor((now - back) / self.base))
        self.k[i] += 1
        duration = min(self.base * self.k[i], self.cap_time)
        self.until[i] = now + duration
        return duration

    def expire(self, now: float) -> set[int]:
        done = {i for i, u in enumerate(self.until) if u is not None and u <= now}
        for i in done:
            self.returned_at[i] = self.until[i]
            self.until[i] = None
            self.failures[i] = 0
        return done


@settings(max_examples=250, deadline=None)
@given(
    n=st.integers(1, 6),
    threshold=st.integers(1, 3),
    base_quarters=st.integers(1, 8),
    cap_multiple=st.integers(1, 6),
    percent=st.integers(0, 100),
    ops=st.lists(
        st.one_of(
            # Time moves in half base periods, so decay and expiry boundaries
            # are hit exactly; the flag is whether the periodic tick runs.
            st.tuples(st.just("advance"), st.integers(0, 6), st.booleans()),
            st.tuples(st.just("result"), st.integers(0, 5), st.booleans()),
            st.tuples(st.just("result"), st.integers(0, 5), st.just(False)),
        ),
        min_size=20,
        max_size=150,
    ),
)
def test_cap_and_durations_against_the_reference_model(
    n: int,
    threshold: int,
    base_quarters: int,
    cap_multiple: int,
    percent: int,
    ops: list[tuple[str, int, bool]],
) -> None:
    # Quarter seconds keep every sum and boundary exact in doubles.
    base = base_quarters / 4
    cap_time = base * cap_multiple + (0.25 if cap_multiple > 1 else 0.0)
    cap = 0 if percent == 0 else max(1, n * percent // 100)
    d = OutlierDetector(n, threshold, base, cap_time, percent)
    model = _Model(n, threshold, base, cap_time, cap)
    now = 0.0
    for op, x, flag in ops:
        if op == "advance":
            now += x * base / 2
            if flag:
                returned = d.expire(now)
                assert len(returned) == len(set(returned))
                assert set(returned) == model.expire(now)
        else:
            i = x % n
            duration = model.record(i, flag, now)
            assert d.record(i, flag, now) == (duration is not None)
            assert d.ejections(i) == model.k[i]
            if duration is not None:
                assert duration == min(base * d.ejections(i), cap_time)
                assert d.ejected(i, now + duration - 0.125)
                assert not d.ejected(i, now + duration)
        assert d.ejected_count == model.ejected_count() <= cap
        assert sum(d.ejected(j, now) for j in range(n)) <= cap
        expiries = [u for u in model.until if u is not None]
        assert d.next_expiry() == (min(expiries) if expiries else None)


# --- carrying state into another detector ---------------------------------------------


def test_state_carries_into_another_detector_by_any_index() -> None:
    old = make(n=3)
    fail(old, 2, 100.0, 3)  # ejected until 110
    old.record(0, False, 100.0)  # one failure in a row
    new = make(n=4)
    new.restore(1, old.state(2))  # the backend moved from index 2 to 1
    new.restore(3, old.state(0))
    assert new.ejected(1, 105.0) and not new.ejected(1, 110.0)
    assert new.ejected_count == 1 and new.ejections(1) == 1
    assert new.next_expiry() == 110.0
    assert new.expire(111.0) == [1] and new.ejected_count == 0
    # The carried run of failures continues: two more eject.
    assert fail(new, 3, 120.0, 2) == [False, True]
    # A second ejection of the carried backend, soon after, lasts base * 2.
    fail(new, 1, 112.0, 3)
    assert new.ejections(1) == 2 and new.ejected(1, 131.0) and not new.ejected(1, 132.0)


def test_restore_leaves_a_backend_already_ejected_here_alone() -> None:
    old, new = make(), make()
    fail(new, 0, 0.0, 3)
    new.restore(0, old.state(0))
    assert new.ejected(0, 1.0) and new.ejected_count == 1
    with pytest.raises(IndexError):
        new.restore(4, old.state(0))
    with pytest.raises(IndexError):
        old.state(-1)
