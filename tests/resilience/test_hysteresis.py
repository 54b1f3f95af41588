"""Hysteresis: flips after ``fall`` failures / ``rise`` successes in a row."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lbproxy.resilience import Hysteresis


def test_starts_healthy_by_default_with_no_streak() -> None:
    h = Hysteresis(rise=2, fall=3)
    assert h.healthy is True
    assert h.streak == 0


def test_can_start_unhealthy() -> None:
    assert Hysteresis(rise=2, fall=3, healthy=False).healthy is False


def test_goes_down_after_fall_consecutive_failures() -> None:
    h = Hysteresis(rise=2, fall=3)
    assert h.record(False) is False
    assert h.streak == 1
    assert h.record(False) is False
    assert h.streak == 2
    assert h.healthy is True
    assert h.record(False) is True
    assert h.healthy is False
    assert h.streak == 0


def test_comes_up_after_rise_consecutive_successes() -> None:
    h = Hysteresis(rise=2, fall=3, healthy=False)
    assert h.record(True) is False
    assert h.streak == 1
    assert h.record(True) is True
    assert h.healthy is True
    assert h.streak == 0


def test_a_success_while_healthy_resets_the_failure_streak() -> None:
    h = Hysteresis(rise=2, fall=3)
    h.record(False)
    h.record(False)
    assert h.record(True) is False
    assert h.streak == 0
    h.record(False)
    h.record(False)
    assert h.healthy is True  # only two in a row since the reset
    assert h.record(False) is True


def test_a_failure_while_unhealthy_resets_the_success_streak() -> None:
    h = Hysteresis(rise=3, fall=1, healthy=False)
    h.record(True)
    h.record(True)
    assert h.record(False) is False
    assert h.streak == 0
    assert h.healthy is False
    h.record(True)
    h.record(True)
    assert h.record(True) is True


def test_agreeing_results_never_flip() -> None:
    up = Hysteresis(rise=1, fall=1)
    down = Hysteresis(rise=1, fall=1, healthy=False)
    for _ in range(5):
        assert up.record(True) is False
        assert down.record(False) is False
    assert up.healthy and not down.healthy


def test_rise_and_fall_of_one_flip_on_every_disagreeing_result() -> None:
    h = Hysteresis(rise=1, fall=1)
    assert h.record(False) is True
    assert h.healthy is False
    assert h.record(True) is True
    assert h.healthy is True


def test_the_streak_restarts_after_a_flip() -> None:
    h = Hysteresis(rise=2, fall=2)
    h.record(False)
    assert h.record(False) is True  # down
    assert h.record(True) is False  # one toward rise, not carried over
    assert h.record(True) is True


@pytest.mark.parametrize(("rise", "fall"), [(0, 1), (1, 0), (-1, 3), (3, -2)])
def test_rise_and_fall_must_be_at_least_one(rise: int, fall: int) -> None:
    with pytest.raises(ValueError):
        Hysteresis(rise=rise, fall=fall)


class _Reference:
    """The rule as plainly as it can be said: look at the run of trailing
    results that disagree with the state since the last flip."""

    def __init__(self, rise: int, fall: int, healthy: bool) -> None:
        self.rise, self.fall, self.healthy = rise, fall, healthy
        self.since_flip: list[bool] = []

    def record(self, ok: bool) -> bool:
        self.since_flip.append(ok)
        run = 0
        for r in reversed(self.since_flip):
            if r == self.healthy:
                break
            run += 1
        if run == (self.fall if self.healthy else self.rise):
            self.healthy = not self.healthy
            self.since_flip = []
            return True
        return False

    @property
    def streak(self) -> int:
        run = 0
        for r in reversed(self.since_flip):
            if r == self.healthy:
                break
            run += 1
        return run


@given(
    rise=st.integers(1, 5),
    fall=st.integers(1, 5),
    healthy=st.booleans(),
    results=st.lists(st.booleans(), max_size=60),
)
def test_matches_the_reference_model(
    rise: int, fall: int, healthy: bool, results: list[bool]
) -> None:
    h = Hysteresis(rise, fall, healthy)
    ref = _Reference(rise, fall, healthy)
    for ok in results:
        assert h.record(ok) == ref.record(ok)
        assert h.healthy == ref.healthy
        assert h.streak == ref.streak
        assert 0 <= h.streak < (fall if h.healthy else rise)
