"""Balancer pick cost: every algorithm, compiled against its pure twin.

    python setup.py build_ext --inplace   (or pip install -e .)
    python bench/bench_balance.py [--sizes 3,100,1000] [--seconds 0.3] [--repeat 5]

Each cell is nanoseconds per ``pick(ctx, None)`` called from a plain Python
loop, as the pool calls it, best of ``--repeat`` runs of about ``--seconds``
each. Backends have mixed weights (1, 2, 3 x WEIGHT_UNIT) and some requests in
flight (every third backend holds one to three), so least-connections and the
two-choice algorithms compare real loads; peak_ewma has seen a latency from
every backend; consistent_hash gets a new 16-byte key per pick from a ring of
1024. "loop floor" is the same loop calling a Python no-op function: a
compiled method call can come out below it.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from types import ModuleType

from lbproxy import _fast
from lbproxy.balance.base import PickContext

ALGORITHMS = (
    ("round_robin", "balance", "RoundRobin"),
    ("weighted_round_robin", "balance", "SmoothWeightedRoundRobin"),
    ("random", "balance", "Random"),
    ("first", "balance", "First"),
    ("power_of_two", "balance", "PowerOfTwo"),
    ("least_connections", "leastconn", "LeastConnections"),
    ("peak_ewma", "ewma", "PeakEwma"),
    ("consistent_hash", "chash", "ConsistentHash"),
)

Pick = Callable[[PickContext | None, None], int]


def _build(algorithm: str, module: ModuleType, cls: str, n: int) -> object:
    unit = _fast.load_pure("balance").WEIGHT_UNIT
    weights = [unit * (1 + i % 3) for i in range(n)]
    factory = getattr(module, cls)
    if algorithm == "consistent_hash":
        b = factory(weights, [f"10.0.{i // 250}.{i % 250}:80" for i in range(n)], 0.0)
    elif algorithm in ("random", "power_of_two", "peak_ewma"):
        b = factory(weights, 1)
    else:
        b = factory(weights)
    for i in range(0, n, 3):
        for _ in range(1 + i % 3):
            b.take(i)
    if algorithm == "peak_ewma":
        for i in range(n):
            b.observe(i, 0.001 * (1 + i % 7))
    return b


def _contexts(algorithm: str) -> list[PickContext | None]:
    if algorithm != "consistent_hash":
        return [None] * 1024
    return [PickContext(hash_key=i.to_bytes(16, "little")) for i in range(1024)]


def _run(pick: Pick, ctxs: list[PickContext | None], rounds: int) -> float:
    start = time.perf_counter_ns()
    for _ in range(rounds):
        for ctx in ctxs:
            pick(ctx, None)
    return (time.perf_counter_ns() - start) / (rounds * len(ctxs))


def _time(pick: Pick, ctxs: list[PickContext | None], seconds: float, repeat: int) -> float:
    once = _run(pick, ctxs, 1)  # calibrate: rounds of 1024 picks to fill ``seconds``
    rounds = max(1, int(seconds * 1e9 / (once * len(ctxs))))
    return min(_run(pick, ctxs, rounds) for _ in range(repeat))


def _noop(ctx: PickContext | None, accept: None) -> int:
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--sizes", default="3,100,1000")
    parser.add_argument("--seconds", type=float, default=0.3)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    floor = _time(_noop, [None] * 1024, args.seconds, args.repeat)
    print(f"ns per pick, best of {args.repeat}; loop floor {floor:.0f} ns")
    print()
    head = " | ".join(f"{n} compiled | {n} pure | {n} ratio" for n in sizes)
    print(f"| algorithm | {head} |")
    print("|---|" + "---|" * (3 * len(sizes)))
    for algorithm, module_name, cls in ALGORITHMS:
        pure = _fast.load_pure(module_name)
        try:
            compiled: ModuleType | None = _fast.load_compiled(module_name)
        except ImportError:
            compiled = None
        cells = []
        ctxs = _contexts(algorithm)
        for n in sizes:
            t_pure = _time(
                _build(algorithm, pure, cls, n).pick,  # type: ignore[attr-defined]
                ctxs,
                args.seconds,
                args.repeat,
            )
            if compiled is None:
                cells += ["-", f"{t_pure:.0f}", "-"]
                continue
            t_comp = _time(
                _build(algorithm, compiled, cls, n).pick,  # type: ignore[attr-defined]
                ctxs,
                args.seconds,
                args.repeat,
            )
            cells += [f"{t_comp:.0f}", f"{t_pure:.0f}", f"{t_pure / t_comp:.1f}x"]
        print(f"| {algorithm} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
