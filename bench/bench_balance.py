"""Balancer pick cost: compiled ``lbproxy._fast.balance`` against its pure twin.

    python setup.py build_ext --inplace
    python bench/bench_balance.py [--picks 1000000] [--repeat 5]

Each row times ``--picks`` calls of ``pick`` from a plain Python loop (as the
pool will call it), best of ``--repeat``, and prints ns per pick for both
implementations and pure/compiled. "loop floor" is the same loop calling a
Python no-op function; a compiled method call costs less than that, so the
compiled rows can come out below it.

Where ``accept`` is given, most of the time goes into calling it: once per
backend per pick for the weighted algorithm.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from types import ModuleType

from lbproxy import _fast

Accept = Callable[[int], bool] | None


def _time_picks(pick: Callable[[None, Accept], int], accept: Accept, picks: int) -> float:
    start = time.perf_counter_ns()
    for _ in range(picks):
        pick(None, accept)
    return (time.perf_counter_ns() - start) / picks


def _best(
    module: ModuleType, cls: str, weights: list[int], accept: Accept, picks: int, repeat: int
) -> float:
    results = []
    for _ in range(repeat):
        balancer = getattr(module, cls)(weights)
        results.append(_time_picks(balancer.pick, accept, picks))
    return min(results)


def _noop(ctx: None, accept: Accept) -> int:
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--picks", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    pure = _fast.load_pure("balance")
    try:
        compiled: ModuleType | None = _fast.load_compiled("balance")
    except ImportError as exc:
        print(f"compiled module not built ({exc}); timing the pure twin only")
        compiled = None

    def allow_all(i: int) -> bool:
        return True

    def reject_first(i: int) -> bool:
        return i != 0

    cases = [
        ("RoundRobin", [1, 1, 1], None, "3 backends, accept=None"),
        ("RoundRobin", [1] * 16, reject_first, "16 backends, 1 rejected"),
        ("SmoothWeightedRoundRobin", [5, 1, 1], None, "3 backends, accept=None"),
        ("SmoothWeightedRoundRobin", [5, 1, 1], allow_all, "3 backends, accept all"),
        ("SmoothWeightedRoundRobin", [3, 2] * 8, None, "16 backends, accept=None"),
        ("SmoothWeightedRoundRobin", [3, 2] * 8, reject_first, "16 backends, 1 rejected"),
        ("Random", [5, 1, 1], None, "3 backends, accept=None"),
        ("Random", [3, 2] * 50, None, "100 backends, accept=None"),
        ("Random", [3, 2] * 8, reject_first, "16 backends, 1 rejected"),
        ("First", [1] * 16, reject_first, "16 backends, 1 rejected"),
        ("PowerOfTwo", [5, 1, 1], None, "3 backends, accept=None"),
        ("PowerOfTwo", [3, 2] * 50, None, "100 backends, accept=None"),
        ("PowerOfTwo", [3, 2] * 8, reject_first, "16 backends, 1 rejected"),
    ]
    loop = min(_time_picks(_noop, None, args.picks) for _ in range(args.repeat))
    print(f"{args.picks} picks, best of {args.repeat}; loop floor {loop:.1f} ns/pick")
    print(f"{'algorithm':26} {'case':26} {'compiled':>10} {'pure':>10} {'pure/compiled':>14}")
    for cls, weights, accept, label in cases:
        t_pure = _best(pure, cls, weights, accept, args.picks, args.repeat)
        if compiled is None:
            print(f"{cls:26} {label:26} {'-':>10} {t_pure:9.1f}n {'-':>14}")
            continue
        t_comp = _best(compiled, cls, weights, accept, args.picks, args.repeat)
        print(f"{cls:26} {label:26} {t_comp:9.1f}n {t_pure:9.1f}n {t_pure / t_comp:13.1f}x")


if __name__ == "__main__":
    main()
