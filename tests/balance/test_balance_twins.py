"""What every balancer shares (accounting, validation), and the promise that the
compiled module and its pure twin behave identically."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lbproxy import _fast

CLASSES = ["RoundRobin", "SmoothWeightedRoundRobin", "First", "Random", "PowerOfTwo"]


@pytest.fixture
def balance(fast_impl: Callable[[str], ModuleType]) -> ModuleType:
    return fast_impl("balance")


@pytest.mark.parametrize("cls", CLASSES)
def test_take_and_drop_count_in_flight_per_index(balance: ModuleType, cls: str) -> None:
    b = getattr(balance, cls)([1, 1, 1])
    b.take(0)
    b.take(0)
    b.take(2)
    assert [b.active(i) for i in range(3)] == [2, 0, 1]
    b.drop(0)
    assert [b.active(i) for i in range(3)] == [1, 0, 1]


@pytest.mark.parametrize("cls", CLASSES)
def test_stray_drop_never_goes_negative(balance: ModuleType, cls: str) -> None:
    b = getattr(balance, cls)([1, 1])
    b.drop(1)
    assert b.active(1) == 0
    b.take(1)
    assert b.active(1) == 1


@pytest.mark.parametrize("cls", CLASSES)
def test_take_on_a_disabled_backend_still_counts(balance: ModuleType, cls: str) -> None:
    # Requests already in flight on a backend outlive its disabling.
    b = getattr(balance, cls)([1, 0])
    b.take(1)
    assert b.active(1) == 1


@pytest.mark.parametrize("cls", CLASSES)
def test_weights_len_and_set_weight(balance: ModuleType, cls: str) -> None:
    b = getattr(balance, cls)((3, 0, 7))
    assert len(b) == 3
    assert [b.weight(i) for i in range(3)] == [3, 0, 7]
    b.set_weight(1, 2)
    assert b.weight(1) == 2


@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("method", ["take", "drop", "active", "weight"])
@pytest.mark.parametrize("index", [-1, 2, 100])
def test_index_out_of_range(balance: ModuleType, cls: str, method: str, index: int) -> None:
    b = getattr(balance, cls)([1, 1])
    with pytest.raises(IndexError, match="out of range"):
        getattr(b, method)(index)
    with pytest.raises(IndexError, match="out of range"):
        b.set_weight(index, 1)


@pytest.mark.parametrize("cls", CLASSES)
def test_weight_validation(balance: ModuleType, cls: str) -> None:
    factory = getattr(balance, cls)
    with pytest.raises(ValueError, match="between 0 and 1000000, got -1"):
        factory([1, -1])
    with pytest.raises(ValueError, match="got 1000001"):
        factory([balance.MAX_WEIGHT + 1])
    with pytest.raises(TypeError):
        factory([1.5])
    b = factory([1])
    with pytest.raises(ValueError, match="got -3"):
        b.set_weight(0, -3)
    with pytest.raises(TypeError):
        b.set_weight(0, "2")
    assert b.weight(0) == 1
    assert factory([balance.MAX_WEIGHT]).weight(0) == balance.MAX_WEIGHT


# --- compiled and pure give the same answers to the same calls ---

Op = tuple[str, int, int]  # (operation, index, argument)

weights_st = st.lists(st.integers(0, 12), min_size=0, max_size=9)


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[str, list[int], list[Op]]:
    cls = draw(st.sampled_from(CLASSES))
    weights = draw(weights_st)
    n = len(weights)
    index = st.integers(0, n - 1) if n else st.just(0)
    op = st.one_of(
        # argument = bitmask of rejected indices, -1 for accept=None
        st.tuples(st.just("pick"), st.just(0), st.integers(-1, (1 << max(n, 1)) - 1)),
        st.tuples(st.just("pick"), st.just(0), st.just(-1)),
        st.tuples(st.just("set_weight"), index, st.integers(0, 12)),
        st.tuples(st.sampled_from(["take", "drop"]), index, st.just(0)),
    )
    ops = draw(st.lists(op, max_size=60))
    if not n:
        ops = [o for o in ops if o[0] == "pick"]
    return cls, weights, ops


def run(module: ModuleType, cls: str, weights: list[int], ops: list[Op]) -> list[object]:
    # The random ones from the same seed: the twins must then draw the same picks.
    factory = getattr(module, cls)
    b = factory(weights, seed=2026) if cls in ("Random", "PowerOfTwo") else factory(weights)
    log: list[object] = []
    for name, index, arg in ops:
        if name == "pick":
            accept = None
            if arg >= 0:

                def accept(i: int, rejected: int = arg) -> bool:
                    log.append(("offer", i))
                    return not rejected & (1 << i)

            log.append(("pick", b.pick(None, accept)))
        elif name == "set_weight":
            b.set_weight(index, arg)
        else:
            getattr(b, name)(index)
            log.append(("active", b.active(index)))
    log.append(("weights", [b.weight(i) for i in range(len(weights))]))
    return log


@settings(max_examples=400, deadline=None)
@given(scenarios())
def test_compiled_and_pure_twins_agree(
    compiled_impl: Callable[[str], ModuleType],
    scenario: tuple[str, list[int], list[Op]],
) -> None:
    cls, weights, ops = scenario
    compiled = run(compiled_impl("balance"), cls, weights, ops)
    pure = run(_fast.load_pure("balance"), cls, weights, ops)
    assert compiled == pure


def test_twins_export_the_same_names(
    compiled_impl: Callable[[str], ModuleType],
) -> None:
    def public(module: ModuleType) -> set[str]:
        return {n for n in dir(module) if not n.startswith("_")} - {
            "annotations",
            "TYPE_CHECKING",
        }

    compiled = compiled_impl("balance")
    pure = _fast.load_pure("balance")
    assert public(compiled) == public(pure) == {"MAX_WEIGHT", "WEIGHT_UNIT", *CLASSES}
    assert compiled.MAX_WEIGHT == pure.MAX_WEIGHT
