"""``peak_ewma`` (latency-aware power of two choices), both twins.

Every balancer here runs on a fake clock, so the decay arithmetic is exact and
the twins can be compared bit for bit; ``FakeClock.calls`` also checks that
both read the clock the same number of times.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lbproxy import _fast

Accept = Callable[[int], bool]
LN2 = 0.6931471805599453  # the twins' constant: the double nearest ln 2
UNIT = 1000  # balancer weight of config weight 1 (WEIGHT_UNIT)


class FakeClock:
    """A monotonic clock that moves only when told to, and counts its reads."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now
        self.calls = 0

    def __call__(self) -> float:
        self.calls += 1
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def ewma(fast_impl: Callable[[str], ModuleType]) -> ModuleType:
    return fast_impl("ewma")


def make(module: ModuleType, weights: list[int], seed: int = 7, **kw: Any) -> Any:
    return module.PeakEwma(weights, seed=seed, **kw)


def picks(balancer: Any, count: int, accept: Accept | None = None) -> list[int]:
    pick = balancer.pick
    return [pick(None, accept) for _ in range(count)]


def offering(log: list[int], refused: set[int]) -> Accept:
    def accept(i: int) -> bool:
        log.append(i)
        return i not in refused

    return accept


def decay(dt: float, half_life: float = 5.0) -> float:
    """The weight an estimate keeps after ``dt`` seconds, as the twins compute it."""
    return math.exp(-dt * LN2 / half_life)


# -- the estimate -----------------------------------------------------------------


def test_peak_jumps_up_at_once_and_decays_toward_smaller_answers(ewma: ModuleType) -> None:
    clock = FakeClock()
    b = make(ewma, [UNIT, UNIT], clock=clock)
    assert b.ewma(0) == 0.0
    b.observe(0, 0.01)
    assert b.ewma(0) == 0.01  # the first answer is the estimate
    clock.advance(1.0)
    b.observe(0, 1.0)
    assert b.ewma(0) == 1.0  # peak: a slow answer counts in full, at once
    clock.advance(5.0)  # one half-life
    b.observe(0, 0.01)
    w = decay(5.0)
    expected = 1.0 * w + 0.01 * (1.0 - w)
    assert b.ewma(0) == expected
    assert expected == pytest.approx(0.505, abs=1e-12)
    clock.advance(5.0)
    b.observe(0, 0.01)
    expected = expected * w + 0.01 * (1.0 - w)
    assert b.ewma(0) == expected
    assert expected == pytest.approx(0.2575, abs=1e-12)
    # A peak is measured against the estimate decayed to now (0.12875 here),
    # not the stored one: 0.2 is below 0.2575 but still jumps.
    clock.advance(5.0)
    b.observe(0, 0.2)
    assert b.ewma(0) == 0.2
    # Observations at the same instant: no decay, so a smaller one is ignored.
    b.observe(0, 0.05)
    assert b.ewma(0) == 0.2
    assert b.ewma(1) == 0.0  # the other backend is untouched


def test_a_clock_that_steps_back_does_not_inflate_the_estimate(ewma: ModuleType) -> None:
    clock = FakeClock(100.0)
    b = make(ewma, [UNIT], clock=clock)
    b.observe(0, 0.5)
    clock.now = 90.0  # dt is clamped to 0: weight 1 on the old value
    b.observe(0, 0.1)
    assert b.ewma(0) == 0.5


def test_cost_decays_with_the_half_life_while_idle(ewma: ModuleType) -> None:
    clock = FakeClock()
    # Two backends: every pick compares the same pair, so the cost decides.
    b = make(ewma, [UNIT, UNIT], clock=clock)
    b.observe(0, 0.1)  # slow at t=0, then left alone
    clock.advance(4.0)
    b.observe(1, 0.055)  # fresh
    # 0.1 * 2**-0.8 = 0.0574 > 0.055: backend 1 is cheaper.
    assert set(picks(b, 20)) == {1}
    clock.advance(1.0)  # one half-life since 0 was observed
    b.observe(1, 0.055)  # keep 1 fresh: still 0.055 (a peak)
    assert b.ewma(1) == 0.055
    # 0.1 * 2**-1 = 0.05 < 0.055: the idle backend has decayed below it.
    assert set(picks(b, 20)) == {0}


def test_a_backend_that_never_answered_is_tried_but_not_piled_on(ewma: ModuleType) -> None:
    clock = FakeClock()
    b = make(ewma, [UNIT, UNIT, UNIT], clock=clock)
    b.observe(0, 0.01)
    b.observe(1, 0.01)
    clock.advance(1.0)
    # The first pick that draws the new backend 2 picks it: its cost is 0.
    for _ in range(100):
        log: list[int] = []
        got = b.pick(None, offering(log, set()))
        if 2 in log:
            assert got == 2
            break
        assert got in (0, 1)
    else:
        pytest.fail("backend 2 never drawn")
    b.take(2)  # in flight, no answer yet
    assert 2 not in picks(b, 300)  # not piled on while 0 and 1 are cheap
    b.observe(2, 0.005)  # its first answer, and a fast one
    b.drop(2)
    assert 2 in picks(b, 300)  # back in the rotation


def test_never_answered_backends_with_requests_compare_by_in_flight(ewma: ModuleType) -> None:
    b = make(ewma, [UNIT, UNIT], clock=FakeClock())
    b.take(0)
    b.take(0)
    b.take(1)
    assert set(picks(b, 20)) == {1}  # PENALTY + 1 < PENALTY + 2


def test_a_slow_backend_loses_its_share_and_earns_it_back(ewma: ModuleType) -> None:
    clock = FakeClock()
    b = make(ewma, [UNIT, UNIT, UNIT], seed=3, clock=clock)
    latency = [0.01, 0.01, 0.1]  # backend 2 is 10x slower
    step = 0.01  # 100 picks per second

    def run(count: int) -> list[int]:
        got = []
        for _ in range(count):
            i = b.pick(None, None)
            b.take(i)
            clock.advance(step)
            b.observe(i, latency[i])
            b.drop(i)
            got.append(i)
        return got

    slow = Counter(run(3000))
    # Probed only when its cost has decayed 10x (log2(10) half-lives, 16.6 s
    # = 1661 picks here), and each answer puts it back up at once.
    assert 0 < slow[2] / 3000 < 0.10, slow
    latency[2] = 0.01  # it is fast now
    # It is probed again within 1700 picks (at most 1661 of decay, plus
    # margin), and from its first fast answer on it is as cheap as the others:
    # over the 3000 picks after these 2000 its share is back to a third.
    assert 2 in run(2000)[:1700]
    recovered = Counter(run(3000))
    assert abs(recovered[2] / 3000 - 1 / 3) < 0.05, recovered


def test_equal_latency_spreads_by_weight_under_load(ewma: ModuleType) -> None:
    clock = FakeClock()
    b = make(ewma, [3 * UNIT, 1 * UNIT], clock=clock)
    b.observe(0, 0.02)
    b.observe(1, 0.02)
    clock.advance(0.5)
    counts: Counter[int] = Counter()
    for _ in range(400):
        i = b.pick(None, None)
        b.take(i)  # requests held: the in-flight factor builds up
        counts[i] += 1
    assert 2.5 < counts[0] / counts[1] < 3.5, counts
    assert [b.active(0), b.active(1)] == [counts[0], counts[1]]


# -- the balancer contract ----------------------------------------------------------


def test_accept_refusals_and_offers(ewma: ModuleType) -> None:
    clock = FakeClock()
    b = make(ewma, [UNIT, 2 * UNIT, UNIT, 3 * UNIT], seed=12, clock=clock)
    for i in range(4):
        b.observe(i, 0.01 * (i + 1))
    for _ in range(300):
        log: list[int] = []
        got = b.pick(None, offering(log, {0, 1, 2}))
        assert got == 3
        assert len(log) == len(set(log))  # each index offered at most once
        clock.advance(0.1)
    log = []
    assert b.pick(None, offering(log, {0, 1, 2, 3})) == -1
    assert sorted(log) == [0, 1, 2, 3]


def test_pick_that_finds_nothing_or_raises_changes_nothing(ewma: ModuleType) -> None:
    def history(b: Any, clock: FakeClock) -> None:
        for i, seconds in enumerate([0.03, 0.01, 0.02]):
            b.observe(i, seconds)
            clock.advance(0.7)
        b.take(1)

    ca, cb = FakeClock(), FakeClock()
    a = make(ewma, [UNIT, 2 * UNIT, 3 * UNIT], seed=21, clock=ca)
    b = make(ewma, [UNIT, 2 * UNIT, 3 * UNIT], seed=21, clock=cb)
    history(a, ca)
    history(b, cb)
    reads = ca.calls
    assert a.pick(None, lambda i: False) == -1

    def boom(i: int) -> bool:
        raise RuntimeError("accept failed")

    with pytest.raises(RuntimeError):
        a.pick(None, boom)

    def boom_late(i: int) -> bool:
        if i == 2:
            raise RuntimeError("accept failed on the redraw")
        return False

    with pytest.raises(RuntimeError):
        a.pick(None, boom_late)
    assert ca.calls == reads  # no comparison, so no clock read
    # a's generator and estimates are where b's are: the same picks follow.
    assert picks(a, 50) == picks(b, 50)
    assert [a.ewma(i) for i in range(3)] == [b.ewma(i) for i in range(3)]
    assert ca.calls == cb.calls


def test_a_clock_that_raises_leaves_the_generator_alone(ewma: ModuleType) -> None:
    def broken() -> float:
        raise OSError("no clock")

    a = make(ewma, [UNIT, UNIT, UNIT], seed=5, clock=broken)
    b = make(ewma, [UNIT, UNIT, UNIT], seed=5, clock=FakeClock())
    with pytest.raises(OSError):
        a.pick(None, None)
    with pytest.raises(OSError):
        a.observe(0, 0.1)
    assert a.ewma(0) == 0.0
    # With one candidate no comparison is made and the clock is not read.
    a.set_weight(1, 0)
    a.set_weight(2, 0)
    b.set_weight(1, 0)
    b.set_weight(2, 0)
    assert picks(a, 5) == picks(b, 5) == [0] * 5


def test_the_clock_is_read_once_per_observe_and_per_comparison(ewma: ModuleType) -> None:
    clock = FakeClock()
    b = make(ewma, [UNIT, UNIT, 0], clock=clock)
    b.observe(0, 0.1)
    assert clock.calls == 1
    b.pick(None, None)  # two candidates: one comparison
    assert clock.calls == 2
    b.pick(None, lambda i: i == 1)  # one accepted: no comparison
    assert clock.calls == 2
    b.pick(None, lambda i: False)
    assert clock.calls == 2


def test_weight_zero_is_never_offered_nor_picked(ewma: ModuleType) -> None:
    clock = FakeClock()
    b = make(ewma, [0, UNIT, 0, UNIT], seed=1, clock=clock)
    offered: list[int] = []
    got = {b.pick(None, offering(offered, set())) for _ in range(500)}
    assert got == {1, 3}
    assert set(offered) == {1, 3}
    assert make(ewma, [0, 2 * UNIT]).pick(None, None) == 1
    assert make(ewma, [0, 0]).pick(None, None) == -1
    assert make(ewma, []).pick(None, None) == -1


def test_set_weight_keeps_the_latency_state(ewma: ModuleType) -> None:
    clock = FakeClock()
    b = make(ewma, [UNIT, UNIT], clock=clock)
    b.observe(0, 0.3)
    b.observe(1, 0.01)
    b.set_weight(0, 0)
    assert set(picks(b, 10)) == {1}
    b.set_weight(0, 5 * UNIT)
    assert b.ewma(0) == 0.3
    assert b.weight(0) == 5 * UNIT
    # Still slow per weight: 0.3 / 5 > 0.01 / 1.
    assert set(picks(b, 20)) == {1}


def test_the_real_clock_by_default(ewma: ModuleType) -> None:
    b = ewma.PeakEwma([UNIT, UNIT], 9, 2.5)  # the pool's positional call
    b.observe(0, 0.25)
    b.observe(1, 0.5)
    assert b.ewma(0) == 0.25
    assert set(picks(b, 20)) == {0}


def test_errors(ewma: ModuleType) -> None:
    clock = FakeClock()
    b = make(ewma, [UNIT, UNIT], clock=clock)
    for index in (-1, 2, 100):
        with pytest.raises(IndexError, match="out of range"):
            b.observe(index, 0.1)
        with pytest.raises(IndexError, match="out of range"):
            b.ewma(index)
        with pytest.raises(IndexError, match="out of range"):
            b.take(index)
    for seconds in (-0.001, -math.inf, math.nan, math.inf):
        with pytest.raises(ValueError, match="latency"):
            b.observe(0, seconds)
    with pytest.raises(TypeError):
        b.observe(0, "0.1")
    assert clock.calls == 0  # rejected before the clock is read
    assert b.ewma(0) == 0.0
    b.observe(0, 1)  # an int is a number of seconds
    assert b.ewma(0) == 1.0
    for half_life in (0, -1.0, math.nan, math.inf):
        with pytest.raises(ValueError, match="half_life"):
            make(ewma, [UNIT], half_life=half_life)
    with pytest.raises(TypeError):
        make(ewma, [UNIT], half_life="5")
    with pytest.raises(TypeError, match="clock"):
        make(ewma, [UNIT], clock=5.0)
    with pytest.raises(ValueError, match="between 0 and 1000000, got -1"):
        make(ewma, [UNIT, -1])
    with pytest.raises(TypeError):
        ewma.PeakEwma([1.5])
    with pytest.raises(ValueError, match="got 1000001"):
        b.set_weight(0, 1_000_001)
    with pytest.raises(TypeError):
        ewma.PeakEwma([UNIT], 1, 5.0, None, "extra")
    assert make(ewma, [UNIT], half_life=1e-9).pick(None, None) == 0


# -- compiled and pure give the same answers to the same calls ---------------------

Op = tuple[str, int, float]  # (operation, index, argument)


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[list[int], float, int, list[Op]]:
    weights = draw(st.lists(st.integers(0, 3 * UNIT), max_size=8))
    n = len(weights)
    half_life = draw(st.sampled_from([5.0, 0.5, 30.0]) | st.floats(0.01, 100.0))
    seed = draw(st.integers(0, 2**64))
    index = st.integers(0, n - 1) if n else st.just(0)
    mask = st.integers(-1, (1 << max(n, 1)) - 1)  # refused indices, -1: accept=None
    op = st.one_of(
        st.tuples(st.just("pick"), st.just(0), mask.map(float)),
        st.tuples(st.just("pick"), st.just(0), st.just(-1.0)),
        # accept raises on its offer number `index` (from 0)
        st.tuples(st.just("pick_raise"), st.integers(0, 3), mask.map(float)),
        st.tuples(st.just("observe"), index, st.floats(0.0, 2.0) | st.just(-1.0)),
        st.tuples(st.just("observe"), index, st.floats(0.0, 2.0)),
        st.tuples(st.just("advance"), st.just(0), st.floats(0.0, 20.0) | st.just(half_life)),
        st.tuples(st.just("advance"), st.just(0), st.floats(0.0, 3.0)),
        # a clock that steps back now and then: the twins clamp it alike
        st.tuples(st.just("advance"), st.just(0), st.floats(-5.0, 0.0)),
        st.tuples(st.just("set_weight"), index, st.integers(0, 3 * UNIT).map(float)),
        st.tuples(st.sampled_from(["take", "drop"]), index, st.just(0.0)),
    )
    ops = draw(st.lists(op, max_size=80))
    if not n:
        ops = [o for o in ops if o[0] in ("pick", "pick_raise", "advance")]
    return weights, half_life, seed, ops


def logged_accept(log: list[object], rejected: int, raise_at: int) -> Accept:
    """Logs each offer, refuses the indices in the ``rejected`` bitmask (-1:
    none) and raises after ``raise_at`` offers (-1: never)."""
    calls = 0

    def accept(i: int) -> bool:
        nonlocal calls
        log.append(("offer", i))
        if calls == raise_at:
            raise LookupError(i)
        calls += 1
        return rejected < 0 or not rejected & (1 << i)

    return accept


def run(
    module: ModuleType, weights: list[int], half_life: float, seed: int, ops: list[Op]
) -> list[object]:
    clock = FakeClock(1000.0)
    b = module.PeakEwma(weights, seed, half_life, clock)
    log: list[object] = []
    for name, index, arg in ops:
        if name in ("pick", "pick_raise"):
            rejected = int(arg)
            raise_at = index if name == "pick_raise" else -1
            accept = (
                None if rejected < 0 and raise_at < 0 else logged_accept(log, rejected, raise_at)
            )
            try:
                log.append(("pick", b.pick(None, accept)))
            except LookupError as exc:
                log.append(("raised", exc.args))
        elif name == "observe":
            try:
                b.observe(index, arg)
            except ValueError:
                log.append(("rejected", arg))
            log.append(("ewma", index, b.ewma(index)))
        elif name == "advance":
            clock.advance(arg)
        elif name == "set_weight":
            b.set_weight(index, int(arg))
        else:
            getattr(b, name)(index)
        log.append(("clock", clock.calls))
    n = len(weights)
    log.append(("ewma", [b.ewma(i) for i in range(n)]))
    log.append(("active", [b.active(i) for i in range(n)]))
    log.append(("weights", [b.weight(i) for i in range(n)]))
    log.append(("after", [b.pick(None, None) for _ in range(5)], clock.calls))
    return log


@settings(max_examples=400, deadline=None)
@given(scenarios())
def test_compiled_and_pure_twins_agree(
    compiled_impl: Callable[[str], ModuleType],
    scenario: tuple[list[int], float, int, list[Op]],
) -> None:
    weights, half_life, seed, ops = scenario
    compiled = run(compiled_impl("ewma"), weights, half_life, seed, ops)
    pure = run(_fast.load_pure("ewma"), weights, half_life, seed, ops)
    assert compiled == pure


def test_twins_agree_on_a_long_latency_run(compiled_impl: Callable[[str], ModuleType]) -> None:
    # Thousands of decays and peaks: the estimates must stay bit-equal.
    def drive(module: ModuleType) -> tuple[list[int], list[float]]:
        clock = FakeClock()
        b = module.PeakEwma([UNIT, 2 * UNIT, UNIT, 0, UNIT], 99, 3.0, clock)
        got = []
        estimates = []
        for k in range(5000):
            i = b.pick(None, None)
            b.take(i)
            clock.advance(0.0137 * ((k * 13) % 11))
            b.observe(i, 0.001 * ((k * 31 + i * 17) % 97))
            estimates.append(b.ewma(i))
            if k % 3:
                b.drop(i)
            got.append(i)
        return got, estimates

    assert drive(compiled_impl("ewma")) == drive(_fast.load_pure("ewma"))


def test_twins_export_the_same_names(compiled_impl: Callable[[str], ModuleType]) -> None:
    def public(module: ModuleType) -> set[str]:
        return {n for n in dir(module) if not n.startswith("_")} - {"annotations", "TYPE_CHECKING"}

    assert public(compiled_impl("ewma")) == public(_fast.load_pure("ewma")) == {"PeakEwma"}
