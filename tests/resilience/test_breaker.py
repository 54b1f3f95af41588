"""CircuitBreaker: closed/open/half-open over a 10-bucket sliding window."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lbproxy.resilience import CLOSED, HALF_OPEN, OPEN, CircuitBreaker


def make(
    failure_rate: float = 0.5,
    minimum_requests: int = 4,
    window: float = 10.0,
    open_duration: float = 5.0,
    half_open_requests: int = 2,
) -> CircuitBreaker:
    return CircuitBreaker(failure_rate, minimum_requests, window, open_duration, half_open_requests)


def trip(cb: CircuitBreaker, now: float, n: int = 4) -> None:
    for _ in range(n - 1):
        assert cb.record(False, now) is None
    assert cb.record(False, now) == OPEN


def test_state_constants() -> None:
    assert (CLOSED, OPEN, HALF_OPEN) == ("closed", "open", "half_open")


# --- closed ---------------------------------------------------------------


def test_starts_closed_and_allows_everything() -> None:
    cb = make()
    assert cb.state(0.0) == CLOSED
    assert all(cb.allow(0.0) for _ in range(100))
    assert cb.opened_at is None
    assert cb.transitions == 0


def test_no_decision_below_minimum_requests() -> None:
    cb = make(minimum_requests=4)
    for _ in range(3):
        assert cb.record(False, 1.0) is None
    assert cb.state(1.0) == CLOSED


def test_opens_when_rate_reaches_threshold_at_minimum() -> None:
    cb = make(failure_rate=0.5, minimum_requests=4)
    assert cb.record(True, 1.0) is None
    assert cb.record(True, 1.0) is None
    assert cb.record(False, 1.0) is None
    assert cb.record(False, 1.5) == OPEN  # 2/4 >= 0.5: the threshold is inclusive
    assert cb.state(1.5) == OPEN
    assert cb.opened_at == 1.5
    assert cb.transitions == 1


def test_rate_below_threshold_stays_closed() -> None:
    cb = make(failure_rate=0.5, minimum_requests=4)
    for ok in (True, True, True, False, False):
        assert cb.record(ok, 1.0) is None  # 2/5 < 0.5
    assert cb.state(1.0) == CLOSED


def test_a_success_can_open_it_when_it_reaches_minimum() -> None:
    cb = make(failure_rate=0.5, minimum_requests=4)
    for _ in range(3):
        cb.record(False, 1.0)
    assert cb.record(True, 1.0) == OPEN  # 3/4


def test_failure_rate_one_needs_every_outcome_to_fail() -> None:
    cb = make(failure_rate=1.0, minimum_requests=2)
    cb.record(False, 0.0)
    assert cb.record(True, 0.0) is None
    assert cb.record(False, 0.0) is None  # 2/3
    cb2 = make(failure_rate=1.0, minimum_requests=2)
    cb2.record(False, 0.0)
    assert cb2.record(False, 0.0) == OPEN


def test_outcomes_fall_out_of_the_window_bucket_by_bucket() -> None:
    # window 10 s: buckets of 1 s; at now the window is buckets floor(now)-9 .. floor(now).
    cb = make(failure_rate=0.5, minimum_requests=4)
    cb.record(False, 0.0)
    cb.record(False, 0.5)
    cb.record(False, 3.0)
    # At 10.0 bucket 0 (two failures) has dropped: 1 failure + this one.
    assert cb.record(False, 10.0) is None
    # At 10.99 still buckets 1..10: failures at 3.0, 10.0, 10.99.
    assert cb.record(False, 10.99) is None
    assert cb.record(False, 11.0) == OPEN  # 3.0, 10.0, 10.99, 11.0


def test_bucket_kept_until_its_epoch_leaves_the_window() -> None:
    cb = make(failure_rate=0.5, minimum_requests=2)
    cb.record(False, 0.9)
    assert cb.record(False, 9.99) == OPEN  # bucket 0 still among buckets 0..9


def test_a_long_gap_empties_the_window() -> None:
    cb = make(failure_rate=0.5, minimum_requests=2)
    cb.record(False, 0.0)
    assert cb.record(True, 500.0) is None  # 0/1: the old failure is long gone
    assert cb.record(True, 500.0) is None
    assert cb.state(500.0) == CLOSED


def test_successes_in_the_window_dilute_failures() -> None:
    cb = make(failure_rate=0.5, minimum_requests=4)
    for t in range(6):
        cb.record(True, float(t))
    for t in range(5):
        assert cb.record(False, 6.0 + t * 0.1) is None  # at most 5/11
    # Once the early successes leave, failures dominate: at 12.0 the window is
    # buckets 3..12: successes at 3, 4, 5 and five failures at 6.x -> 6/9 with this one.
    assert cb.record(False, 12.0) == OPEN


def test_an_outcome_timed_before_the_newest_counts_in_the_newest_bucket() -> None:
    cb = make(failure_rate=0.6, minimum_requests=2)
    cb.record(True, 20.0)
    assert cb.record(False, 5.0) is None  # a stale clock read: counted (1/2), not dropped
    assert cb.record(False, 20.0) == OPEN  # 2/3


# --- open -----------------------------------------------------------------


def test_open_refuses_until_open_duration_has_passed() -> None:
    cb = make(open_duration=5.0)
    trip(cb, 10.0)
    assert cb.allow(10.0) is False
    assert cb.allow(14.999) is False
    assert cb.state(14.999) == OPEN
    assert cb.state(15.0) == HALF_OPEN


def test_open_becomes_half_open_lazily_in_allow() -> None:
    cb = make(open_duration=5.0)
    trip(cb, 10.0)
    assert cb.allow(15.0) is True  # became half-open and took a permit
    assert cb.state(15.0) == HALF_OPEN
    assert cb.trials_in_flight == 1
    assert cb.transitions == 2


def test_outcomes_while_open_are_ignored() -> None:
    cb = make(open_duration=5.0, half_open_requests=1)
    trip(cb, 10.0)
    assert cb.record(True, 11.0) is None
    assert cb.record(False, 12.0) is None
    assert cb.state(12.0) == OPEN
    assert cb.opened_at == 10.0  # a late failure does not extend the open time


def test_a_late_outcome_after_the_open_time_is_not_a_trial() -> None:
    cb = make(open_duration=5.0, half_open_requests=1)
    trip(cb, 10.0)
    # A request started while closed ends after open_duration: the breaker is
    # half-open now, but no permit is out, so this is not a trial's outcome.
    assert cb.record(True, 16.0) is None
    assert cb.state(16.0) == HALF_OPEN
    assert cb.record(False, 16.0) is None
    assert cb.state(16.0) == HALF_OPEN


# --- half-open ------------------------------------------------------------


def test_half_open_admits_at_most_half_open_requests_trials() -> None:
    cb = make(open_duration=5.0, half_open_requests=2)
    trip(cb, 0.0)
    assert cb.allow(5.0) is True
    assert cb.allow(5.0) is True
    assert cb.allow(5.0) is False
    assert cb.trials_in_flight == 2


def test_half_open_closes_after_enough_trial_successes() -> None:
    cb = make(open_duration=5.0, half_open_requests=2)
    trip(cb, 0.0)
    assert cb.allow(5.0)
    assert cb.allow(5.0)
    assert cb.record(True, 5.1) is None
    assert cb.state(5.1) == HALF_OPEN
    assert cb.allow(5.2) is True  # the first trial's permit is free again
    assert cb.record(True, 5.3) == CLOSED
    assert cb.state(5.3) == CLOSED
    assert cb.allow(5.3) is True
    assert cb.trials_in_flight == 0


def test_closing_starts_from_an_empty_window() -> None:
    cb = make(failure_rate=0.5, minimum_requests=4, open_duration=5.0, half_open_requests=1)
    trip(cb, 0.0)
    assert cb.allow(5.0)
    assert cb.record(True, 5.0) == CLOSED
    # Without the reset, the four failures at 0.0 (still within 10 s) would reopen it.
    for _ in range(3):
        assert cb.record(False, 6.0) is None
    assert cb.record(True, 6.0) == OPEN  # four fresh outcomes, 3/4


def test_a_trial_failure_reopens_for_a_fresh_open_duration() -> None:
    cb = make(open_duration=5.0, half_open_requests=2)
    trip(cb, 0.0)
    assert cb.allow(5.0)
    assert cb.allow(5.0)
    assert cb.record(True, 5.5) is None
    assert cb.record(False, 6.0) == OPEN
    assert cb.opened_at == 6.0
    assert cb.allow(10.999) is False
    assert cb.state(11.0) == HALF_OPEN
    assert cb.trials_in_flight == 0


def test_successes_count_only_since_entering_half_open() -> None:
    cb = make(open_duration=5.0, half_open_requests=2)
    trip(cb, 0.0)
    cb.allow(5.0)
    cb.allow(5.0)
    cb.record(True, 5.0)
    cb.record(False, 5.0)  # reopens at 5.0
    assert cb.allow(10.0)
    assert cb.record(True, 10.0) is None  # 1 of 2, the earlier success forgotten
    assert cb.allow(10.0)
    assert cb.record(True, 10.0) == CLOSED


def test_trials_from_a_previous_half_open_are_ignored_once_reopened() -> None:
    cb = make(open_duration=5.0, half_open_requests=2)
    trip(cb, 0.0)
    cb.allow(5.0)
    cb.allow(5.0)
    assert cb.record(False, 5.0) == OPEN
    assert cb.record(True, 6.0) is None  # the other trial ends while open
    assert cb.state(6.0) == OPEN


def test_release_frees_a_trial_permit() -> None:
    cb = make(open_duration=5.0, half_open_requests=1)
    trip(cb, 0.0)
    assert cb.allow(5.0)
    assert cb.allow(5.0) is False
    cb.release(5.5)
    assert cb.trials_in_flight == 0
    assert cb.state(5.5) == HALF_OPEN  # a release is not an outcome
    assert cb.allow(5.5) is True


def test_release_has_no_effect_outside_half_open_or_without_permits() -> None:
    cb = make(open_duration=5.0, half_open_requests=1)
    cb.release(0.0)
    assert cb.state(0.0) == CLOSED
    trip(cb, 0.0)
    cb.release(1.0)
    assert cb.state(1.0) == OPEN
    cb.release(5.0)  # lazily half-open, but no permit to free
    assert cb.state(5.0) == HALF_OPEN
    assert cb.trials_in_flight == 0
    cb.release(5.0)
    assert cb.trials_in_flight == 0
    assert cb.allow(5.0) is True
    assert cb.allow(5.0) is False


def test_transitions_count_every_change() -> None:
    cb = make(open_duration=5.0, half_open_requests=1)
    trip(cb, 0.0)  # closed -> open
    cb.state(5.0)  # -> half_open
    cb.allow(5.0)
    cb.record(True, 5.0)  # -> closed
    assert cb.transitions == 3


@pytest.mark.parametrize(
    "kwargs",
    [
        {"failure_rate": 0.0},
        {"failure_rate": -0.5},
        {"failure_rate": 1.5},
        {"failure_rate": math.nan},
        {"minimum_requests": 0},
        {"window": 0.0},
        {"window": -1.0},
        {"window": math.inf},
        {"window": math.nan},
        {"open_duration": 0.0},
        {"open_duration": math.nan},
        {"half_open_requests": 0},
    ],
)
def test_invalid_settings_are_rejected(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        make(**kwargs)  # type: ignore[arg-type]


# --- against a reference model --------------------------------------------


class _Model:
    """The rules, replicated as plainly as possible: every outcome kept with
    its time, and filtered by bucket when the rate is computed."""

    def __init__(
        self, rate: float, minimum: int, width: float, open_duration: float, half: int
    ) -> None:
        self.rate, self.minimum, self.width = rate, minimum, width
        self.open_duration, self.half = open_duration, half
        self.st = CLOSED
        self.events: list[tuple[float, bool]] = []
        self.opened_at = 0.0
        self.trials = 0
        self.successes = 0

    def _lazy(self, now: float) -> None:
        if self.st == OPEN and now - self.opened_at >= self.open_duration:
            self.st, self.trials, self.successes = HALF_OPEN, 0, 0

    def state(self, now: float) -> str:
        self._lazy(now)
        return self.st

    def allow(self, now: float) -> bool:
        self._lazy(now)
        if self.st == CLOSED:
            return True
        if self.st == OPEN:
            return False
        if self.trials < self.half:
            self.trials += 1
            return True
        return False

    def _open(self, now: float) -> str:
        self.st, self.opened_at, self.trials, self.successes = OPEN, now, 0, 0
        return OPEN

    def record(self, ok: bool, now: float) -> str | None:
        self._lazy(now)
        if self.st == CLOSED:
            self.events.append((now, ok))
            current = math.floor(now / self.width)
            in_window = [o for t, o in self.events if math.floor(t / self.width) > current - 10]
            failures = in_window.count(False)
            if len(in_window) >= self.minimum and failures / len(in_window) >= self.rate:
                return self._open(now)
            return None
        if self.st == OPEN or self.trials == 0:
            return None
        self.trials -= 1
        if not ok:
            return self._open(now)
        self.successes += 1
        if self.successes == self.half:
            self.st, self.events, self.trials, self.successes = CLOSED, [], 0, 0
            return CLOSED
        return None

    def release(self, now: float) -> None:
        self._lazy(now)
        if self.st == HALF_OPEN and self.trials > 0:
            self.trials -= 1


# Steps of time are a quarter second, one bucket, the open duration or the
# whole window; all dyadic, so the model's arithmetic and the breaker's agree
# exactly, and steps land on bucket and half-open boundaries often.
_ops = st.lists(
    st.sampled_from(
        [
            *("quarter", "bucket", "open_duration", "window"),  # time steps
            *("allow", "allow", "ok", "ok", "fail", "release", "state"),
        ]
    ),
    min_size=10,
    max_size=150,
)


@settings(max_examples=600, deadline=None)
@given(
    rate=st.sampled_from([0.25, 0.5, 0.75, 1.0, 0.3]),
    minimum=st.integers(1, 5),
    width=st.sampled_from([0.25, 0.5, 1.0]),
    open_quarters=st.integers(1, 12),
    half=st.integers(1, 3),
    ops=_ops,
)
def test_matches_the_reference_model(
    rate: float, minimum: int, width: float, open_quarters: int, half: int, ops: list[str]
) -> None:
    open_duration = open_quarters / 4
    steps = {"quarter": 0.25, "bucket": width, "open_duration": open_duration, "window": width * 10}
    cb = CircuitBreaker(rate, minimum, width * 10, open_duration, half)
    model = _Model(rate, minimum, width, open_duration, half)
    now = 0.0
    for op in ops:
        if op in steps:
            now += steps[op]
        elif op == "allow":
            refused = model.st == OPEN and now - model.opened_at < open_duration
            allowed = cb.allow(now)
            assert allowed == model.allow(now)
            if refused:
                assert allowed is False
        elif op in ("ok", "fail"):
            assert cb.record(op == "ok", now) == model.record(op == "ok", now)
        elif op == "release":
            cb.release(now)
            model.release(now)
        else:
            assert cb.state(now) == model.state(now)
        assert 0 <= cb.trials_in_flight <= half
        assert cb.trials_in_flight == model.trials
    assert cb.state(now) == model.state(now)


@settings(max_examples=600, deadline=None)
@given(
    rate=st.sampled_from([0.25, 0.5, 0.6, 0.75, 0.9, 1.0]),
    minimum=st.integers(1, 20),
    width=st.sampled_from([0.25, 0.5, 1.0]),
    failure_tenths=st.integers(1, 9),
    outcomes=st.lists(
        st.tuples(st.integers(0, 6) | st.integers(34, 44), st.integers(0, 9)),
        min_size=5,
        max_size=150,
    ),
)
def test_window_matches_the_reference_model(
    rate: float,
    minimum: int,
    width: float,
    failure_tenths: int,
    outcomes: list[tuple[int, int]],
) -> None:
    # Closed state only: a denser stream of outcomes, failing about
    # failure_tenths / 10 of the time, in steps of a quarter bucket and
    # sometimes 8.5 to 11 buckets: exercises which buckets drop as time advances.
    cb = CircuitBreaker(rate, minimum, width * 10, 1.0, 1)
    model = _Model(rate, minimum, width, 1.0, 1)
    now = 0.0
    for quarter_buckets, draw in outcomes:
        now += quarter_buckets * width / 4
        ok = draw >= failure_tenths
        result = cb.record(ok, now)
        assert result == model.record(ok, now)
        if result is not None:
            break
