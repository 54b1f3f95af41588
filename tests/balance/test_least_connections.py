"""``least_connections``: both twins against a plain O(n) model of the rule, and
the compiled twin against the pure one."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from fractions import Fraction
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lbproxy import _fast
from lbproxy.balance.base import PickContext

Accept = Callable[[int], bool]
MAX_WEIGHT = 1_000_000
UNIT = 1000  # the pool hands balancers config weight * 1000


@pytest.fixture
def leastconn(fast_impl: Callable[[str], ModuleType]) -> ModuleType:
    return fast_impl("leastconn")


def picks(balancer: Any, count: int, accept: Accept | None = None) -> list[int]:
    return [balancer.pick(None, accept) for _ in range(count)]


def offering(log: list[int], refused: set[int] | frozenset[int]) -> Accept:
    def accept(i: int) -> bool:
        log.append(i)
        return i not in refused

    return accept


class Boom(Exception):
    pass


# --- the reference model: the rule as written, by scanning ---


class Model:
    """Least active/weight among the weighted indices not refused yet; among the
    tied, the first at or after the cursor, wrapping. O(n) per offer."""

    def __init__(self, weights: list[int]) -> None:
        self._weights = list(weights)
        self._active = [0] * len(weights)
        self._cursor = 0

    def __len__(self) -> int:
        return len(self._weights)

    def pick(self, ctx: object, accept: Accept | None) -> int:
        n = len(self._weights)
        refused: set[int] = set()
        while True:
            best = -1
            for k in range(n):
                i = (self._cursor + k) % n
                if self._weights[i] == 0 or i in refused:
                    continue
                # Strictly less only: the earlier one in rotation order keeps a tie.
                if best < 0 or self._load(i) < self._load(best):
                    best = i
            if best < 0:
                return -1
            if accept is None or accept(best):
                self._cursor = (best + 1) % n
                return best
            refused.add(best)

    def _load(self, i: int) -> Fraction:
        return Fraction(self._active[i], self._weights[i])

    def take(self, i: int) -> None:
        self._active[i] += 1

    def drop(self, i: int) -> None:
        self._active[i] = max(0, self._active[i] - 1)

    def set_weight(self, i: int, w: int) -> None:
        self._weights[i] = w

    def active(self, i: int) -> int:
        return self._active[i]

    def weight(self, i: int) -> int:
        return self._weights[i]


# An operation: (name, index, argument).
#   pick:       argument = bitmask of refused indices, -1 for accept=None
#   pick_raise: like pick, and accept raises at its (index)-th call (0-based)
Op = tuple[str, int, int]

weight_st = st.one_of(
    st.integers(0, 4), st.sampled_from([UNIT, 3 * UNIT, MAX_WEIGHT - 1, MAX_WEIGHT])
)


@st.composite
def scenarios(draw: st.DrawFn, max_n: int = 19) -> tuple[list[int], list[Op]]:
    weights = draw(st.lists(weight_st, min_size=0, max_size=max_n))
    n = len(weights)
    index = st.integers(0, n - 1) if n else st.just(0)
    mask = st.integers(0, (1 << max(n, 1)) - 1)
    op = st.one_of(
        st.tuples(st.just("pick"), st.just(0), st.just(-1)),
        st.tuples(st.just("pick"), st.just(0), mask),
        # Refuse all but a few: the refusal path down the tree gets long.
        st.tuples(st.just("pick"), st.just(0), mask.map(lambda m: m | (m << 1) | (m >> 1))),
        st.tuples(st.just("pick_raise"), st.integers(0, 4), mask),
        st.tuples(st.sampled_from(["take", "take", "drop"]), index, st.just(0)),
        st.tuples(st.just("set_weight"), index, weight_st),
    )
    ops = draw(st.lists(op, max_size=80))
    if not n:
        ops = [o for o in ops if o[0] in ("pick", "pick_raise")]
    return weights, ops


def run(balancer: Any, ops: list[Op]) -> list[object]:
    """Apply ops, logging every result and every call to accept."""
    log: list[object] = []
    for name, index, arg in ops:
        if name in ("pick", "pick_raise"):
            accept: Accept | None = None
            if arg >= 0:
                raise_at = index if name == "pick_raise" else -1
                calls: list[int] = []

                def accept(
                    i: int, refused: int = arg, raise_at: int = raise_at, calls: list[int] = calls
                ) -> bool:
                    log.append(("offer", i))
                    if len(calls) == raise_at:
                        raise Boom
                    calls.append(i)
                    return not refused & (1 << i)

            try:
                log.append(("pick", balancer.pick(None, accept)))
            except Boom:
                log.append(("raised",))
        elif name == "set_weight":
            balancer.set_weight(index, arg)
        else:
            getattr(balancer, name)(index)
            log.append((name, index, balancer.active(index)))
    n = len(balancer)
    log.append(("end", [(balancer.weight(i), balancer.active(i)) for i in range(n)]))
    return log


@settings(
    max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(scenarios())
def test_matches_the_reference_model(
    leastconn: ModuleType, scenario: tuple[list[int], list[Op]]
) -> None:
    weights, ops = scenario
    assert run(leastconn.LeastConnections(weights), ops) == run(Model(weights), ops)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(scenarios(max_n=140))
def test_matches_the_reference_model_in_larger_pools(
    leastconn: ModuleType, scenario: tuple[list[int], list[Op]]
) -> None:
    # Deeper trees; masks over up to 140 indices.
    weights, ops = scenario
    assert run(leastconn.LeastConnections(weights), ops) == run(Model(weights), ops)


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(st.tuples(st.integers(0, 6), st.integers(0, 9)), min_size=1, max_size=24),
    st.integers(0, 40),
    st.data(),
)
def test_never_picks_a_more_loaded_backend_than_an_eligible_one(
    leastconn: ModuleType, backends: list[tuple[int, int]], warmup: int, data: st.DataObject
) -> None:
    weights = [w for w, _ in backends]
    b = leastconn.LeastConnections(weights)
    for i, (_, active) in enumerate(backends):
        for _ in range(active):
            b.take(i)
    picks(b, warmup)  # moves the cursor somewhere
    refused = data.draw(st.frozensets(st.integers(0, len(backends) - 1)))
    log: list[int] = []
    got = b.pick(None, offering(log, refused))
    eligible = [i for i, w in enumerate(weights) if w > 0 and i not in refused]
    if not eligible:
        assert got == -1
        return
    assert got in eligible
    for j in eligible:
        assert b.active(got) * weights[j] <= b.active(j) * weights[got]
    assert len(log) == len(set(log))
    assert all(weights[i] > 0 for i in log)


# --- compiled and pure give the same answers to the same calls ---


def run_with_errors(module: ModuleType, weights: list[object], ops: list[tuple[str, Any]]) -> Any:
    def outcome(call: Callable[..., object], *args: object) -> tuple[object, ...]:
        try:
            return ("ok", call(*args))
        except (IndexError, ValueError) as exc:
            return (type(exc).__name__, str(exc))
        except TypeError:
            return ("TypeError",)  # the messages come from different converters

    made = outcome(module.LeastConnections, weights)
    if made[0] != "ok":
        return made
    b = module.LeastConnections(weights)
    log: list[object] = []
    for name, arg in ops:
        if name == "pick":
            offered: list[int] = []
            refused = {i for i in range(len(b)) if arg & (1 << i)}
            log.append((outcome(b.pick, None, offering(offered, refused)), offered))
        elif name == "set_weight":
            log.append(outcome(b.set_weight, *arg))
        else:
            log.append(outcome(getattr(b, name), arg))
    log.append([(b.weight(i), b.active(i)) for i in range(len(b))])
    return log


# Not floats or ints past 2**63: there the base class's twins already differ
# (the compiled one converts to Py_ssize_t first: TypeError, OverflowError).
odd_index = st.one_of(st.integers(-3, 12), st.sampled_from(["1", None]))
odd_weight = st.one_of(
    weight_st, st.sampled_from([-1, MAX_WEIGHT + 1, 2**64, -(2**64), 2.0, "3", None, True])
)


@settings(max_examples=400, deadline=None)
@given(
    st.lists(st.one_of(weight_st, odd_weight), max_size=10),
    st.lists(
        st.one_of(
            st.tuples(st.just("pick"), st.integers(-1, 1023)),
            st.tuples(st.sampled_from(["take", "drop", "active", "weight"]), odd_index),
            st.tuples(st.just("set_weight"), st.tuples(odd_index, odd_weight)),
            st.tuples(st.sampled_from(["take", "take", "drop"]), st.integers(0, 9)),
        ),
        max_size=60,
    ),
)
def test_compiled_and_pure_twins_agree(
    compiled_impl: Callable[[str], ModuleType],
    weights: list[object],
    ops: list[tuple[str, Any]],
) -> None:
    pure = _fast.load_pure("leastconn")
    assert run_with_errors(compiled_impl("leastconn"), weights, ops) == run_with_errors(
        pure, weights, ops
    )


def test_twins_export_the_same_names(compiled_impl: Callable[[str], ModuleType]) -> None:
    def public(module: ModuleType) -> set[str]:
        return {n for n in dir(module) if not n.startswith("_")} - {"annotations", "TYPE_CHECKING"}

    assert public(compiled_impl("leastconn")) == public(_fast.load_pure("leastconn"))
    assert public(_fast.load_pure("leastconn")) == {"LeastConnections"}


# --- the rule, case by case ---


def test_ties_rotate_over_every_backend(leastconn: ModuleType) -> None:
    b = leastconn.LeastConnections([UNIT] * 4)
    assert picks(b, 8) == [0, 1, 2, 3, 0, 1, 2, 3]
    # Requests that come and go keep the load equal: still a rotation.
    b = leastconn.LeastConnections([UNIT] * 4)
    got = []
    for _ in range(8):
        i = b.pick(None, None)
        b.take(i)
        b.drop(i)
        got.append(i)
    assert Counter(got) == {0: 2, 1: 2, 2: 2, 3: 2}
    assert got == [0, 1, 2, 3, 0, 1, 2, 3]


def test_ties_go_to_the_first_after_the_last_pick(leastconn: ModuleType) -> None:
    b = leastconn.LeastConnections([1] * 5)
    assert picks(b, 2) == [0, 1]  # cursor at 2
    b.take(2)
    b.take(3)
    # 0, 1 and 4 tie at 0 in flight: the first at or after the cursor is 4,
    # then the rotation wraps to 0 and 1.
    assert picks(b, 3) == [4, 0, 1]
    # Different weights that tie on active/weight rotate as well.
    b = leastconn.LeastConnections([2, 1, 2])
    for i, count in ((0, 2), (1, 1), (2, 2)):
        for _ in range(count):
            b.take(i)
    assert picks(b, 6) == [0, 1, 2, 0, 1, 2]


def test_idle_pool_spreads_evenly_under_refusals(leastconn: ModuleType) -> None:
    # Refusing one backend must not make its neighbour the favourite.
    b = leastconn.LeastConnections([1] * 4)
    counts = Counter(picks(b, 300, lambda i: i != 1))
    assert counts == {0: 100, 2: 100, 3: 100}


def test_weights_share_held_requests(leastconn: ModuleType) -> None:
    b = leastconn.LeastConnections([3 * UNIT, 1 * UNIT])
    for _ in range(400):
        b.take(b.pick(None, None))
    assert (b.active(0), b.active(1)) == (300, 100)
    b = leastconn.LeastConnections([5, 0, 2, 3])
    for _ in range(1000):
        b.take(b.pick(None, None))
    assert [b.active(i) for i in range(4)] == [500, 0, 200, 300]


def test_picks_the_least_loaded(leastconn: ModuleType) -> None:
    b = leastconn.LeastConnections([1, 1, 1])
    for i, count in ((0, 3), (1, 1), (2, 2)):
        for _ in range(count):
            b.take(i)
    assert picks(b, 3) == [1, 1, 1]
    b.drop(0)
    b.drop(0)
    b.drop(0)
    assert b.pick(PickContext(), None) == 0  # ctx plays no part


def test_weight_zero_is_never_picked_nor_offered(leastconn: ModuleType) -> None:
    b = leastconn.LeastConnections([0, UNIT, 0, UNIT])
    log: list[int] = []
    assert picks(b, 6, offering(log, set())) == [1, 3, 1, 3, 1, 3]
    assert set(log) == {1, 3}
    assert leastconn.LeastConnections([0, 0]).pick(None, None) == -1
    assert leastconn.LeastConnections([]).pick(None, None) == -1


def test_set_weight_switches_backends_off_and_on(leastconn: ModuleType) -> None:
    b = leastconn.LeastConnections([1, 1, 1])
    b.take(1)  # in flight on 1 while it is disabled: still counted
    b.set_weight(0, 0)
    assert picks(b, 3) == [2, 2, 2]
    b.set_weight(0, 1)
    assert b.pick(None, None) == 0
    b.set_weight(2, 4)  # 0 in flight on 2 either way: the cursor decides ties
    b.take(0)
    b.take(2)
    # loads: 0 -> 1/1, 1 -> 1/1, 2 -> 1/4
    assert picks(b, 3) == [2, 2, 2]


def test_refused_backends_are_offered_in_load_order_once_each(leastconn: ModuleType) -> None:
    b = leastconn.LeastConnections([1, 1, 1, 1, 1])
    for i, count in ((0, 4), (1, 0), (2, 3), (3, 1), (4, 0)):
        for _ in range(count):
            b.take(i)
    log: list[int] = []
    assert b.pick(None, offering(log, {1, 4, 3})) == 2
    assert log == [1, 4, 3, 2]


def test_all_refused_returns_minus_one_and_changes_nothing(leastconn: ModuleType) -> None:
    a = leastconn.LeastConnections([1, 2, 1, 1])
    b = leastconn.LeastConnections([1, 2, 1, 1])
    for bal in (a, b):
        bal.take(1)
        assert picks(bal, 2) == [0, 2]
    log: list[int] = []
    assert a.pick(None, offering(log, {0, 1, 2, 3})) == -1
    assert sorted(log) == [0, 1, 2, 3]
    assert picks(a, 12) == picks(b, 12)
    assert [a.active(i) for i in range(4)] == [b.active(i) for i in range(4)]


def test_accept_that_raises_propagates_and_changes_nothing(leastconn: ModuleType) -> None:
    a = leastconn.LeastConnections([1, 1, 1, 1])
    b = leastconn.LeastConnections([1, 1, 1, 1])
    assert picks(a, 1) == picks(b, 1) == [0]
    offered: list[int] = []

    def refuse_two_then_raise(i: int) -> bool:
        offered.append(i)
        if len(offered) == 3:
            raise RuntimeError("accept failed")
        return False

    with pytest.raises(RuntimeError, match="accept failed"):
        a.pick(None, refuse_two_then_raise)
    assert offered == [1, 2, 3]
    # The refusals were undone and the cursor did not move.
    assert picks(a, 9) == picks(b, 9) == [1, 2, 3, 0, 1, 2, 3, 0, 1]


def test_stray_drop_never_goes_negative(leastconn: ModuleType) -> None:
    b = leastconn.LeastConnections([1, 1])
    b.drop(0)
    b.drop(0)
    assert b.active(0) == 0
    b.take(0)
    # Had 0 gone to -2, it would still look idle; it has one in flight.
    assert picks(b, 3) == [1, 1, 1]


def test_len_take_drop_and_weights(leastconn: ModuleType) -> None:
    b = leastconn.LeastConnections((3, 0, 7))
    assert len(b) == 3
    assert [b.weight(i) for i in range(3)] == [3, 0, 7]
    b.take(1)  # a disabled backend's in-flight requests still count
    b.take(2)
    b.take(2)
    assert [b.active(i) for i in range(3)] == [0, 1, 2]


@pytest.mark.parametrize("method", ["take", "drop", "active", "weight"])
@pytest.mark.parametrize("index", [-1, 2, 100])
def test_index_out_of_range(leastconn: ModuleType, method: str, index: int) -> None:
    b = leastconn.LeastConnections([1, 1])
    with pytest.raises(IndexError, match="out of range"):
        getattr(b, method)(index)
    with pytest.raises(IndexError, match="out of range"):
        b.set_weight(index, 1)
    assert picks(b, 2) == [0, 1]


def test_weight_validation(leastconn: ModuleType) -> None:
    factory = leastconn.LeastConnections
    with pytest.raises(ValueError, match="between 0 and 1000000, got -1"):
        factory([1, -1])
    with pytest.raises(ValueError, match="got 1000001"):
        factory([MAX_WEIGHT + 1])
    with pytest.raises(TypeError):
        factory([1.5])
    b = factory([1, 1])
    with pytest.raises(ValueError, match="got -3"):
        b.set_weight(0, -3)
    with pytest.raises(TypeError):
        b.set_weight(0, "2")
    assert b.weight(0) == 1
    assert picks(b, 2) == [0, 1]  # a refused set_weight left the tree alone
    assert factory([MAX_WEIGHT]).weight(0) == MAX_WEIGHT


def test_extreme_weights_compare_exactly(leastconn: ModuleType) -> None:
    # 3 / 999,999 and 1 / 333,333 are the same ratio, which floats need not
    # say: a tie, so the picks rotate.
    b = leastconn.LeastConnections([999_999, 333_333])
    for _ in range(3):
        b.take(0)
    b.take(1)
    assert picks(b, 4) == [0, 1, 0, 1]
    # 1 / 1,000,000 is less than 1 / 999,999, however little.
    b = leastconn.LeastConnections([MAX_WEIGHT - 1, MAX_WEIGHT])
    b.take(0)
    b.take(1)
    assert picks(b, 3) == [1, 1, 1]


def test_a_thousand_backends(leastconn: ModuleType) -> None:
    n = 1000
    b = leastconn.LeastConnections([UNIT] * n)
    assert picks(b, n) == list(range(n))  # idle: a full rotation
    for i in range(n):
        for _ in range(3 if i != 737 else 2):
            b.take(i)
    assert picks(b, 5) == [737] * 5
    b.take(737)
    # All at 3 again; the cursor sits after 737.
    assert picks(b, 3) == [738, 739, 740]
    b.set_weight(12, 2 * UNIT)  # 3 in flight on double weight: the least loaded
    assert b.pick(None, None) == 12
    log: list[int] = []
    # 12 is offered first (least loaded), then the rotation from the cursor (13).
    assert b.pick(None, offering(log, {12, 13})) == 14
    assert log == [12, 13, 14]
    # Holding every pick fills the pool evenly, 12 taking twice its share.
    for _ in range(2 * n):
        b.take(b.pick(None, None))
    loads = [Fraction(b.active(i), b.weight(i)) for i in range(n)]
    assert max(loads) - min(loads) <= Fraction(1, UNIT)
    assert sum(b.active(i) for i in range(n)) == 5 * n
