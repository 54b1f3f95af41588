"""The discrete-event model of bench/balance_sim.py: four backends, one ten
times slower than the others. The load-aware algorithms must send the slow
one a small share and keep the p99 well below round robin's; the figures for
the notes come from ``python bench/balance_sim.py``."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture(scope="module")
def sim() -> Iterator[ModuleType]:
    sys.path.insert(0, str(BENCH))
    try:
        yield importlib.import_module("balance_sim")
    finally:
        sys.path.remove(str(BENCH))


@pytest.fixture(scope="module")
def round_robin(sim: ModuleType) -> object:
    return sim.simulate("round_robin", requests=12_000)


@pytest.mark.parametrize("algorithm", ["least_connections", "power_of_two", "peak_ewma"])
def test_load_aware_algorithms_spare_the_slow_backend(
    sim: ModuleType, round_robin: object, algorithm: str
) -> None:
    result = sim.simulate(algorithm, requests=12_000)
    rr = round_robin
    assert rr.shares[-1] == pytest.approx(0.25, abs=0.01)  # type: ignore[attr-defined]
    assert result.shares[-1] < 0.10, result
    # Round robin's p99 is the slow backend's queue; theirs is well below it.
    assert result.p99 < 0.75 * rr.p99, (result, rr)  # type: ignore[attr-defined]


def test_the_model_is_deterministic(sim: ModuleType) -> None:
    a = sim.simulate("power_of_two", requests=2_000, seed=7)
    b = sim.simulate("power_of_two", requests=2_000, seed=7)
    assert a == b
