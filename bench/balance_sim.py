"""Discrete-event simulation: how each balancing algorithm copes with one slow backend.

    python bench/balance_sim.py [--requests 20000] [--rate 120] [--seed 1]

Model: Poisson arrivals at ``--rate`` requests/s; each backend is a server with
``--workers`` parallel workers and a FIFO queue, and serves a request in an
exponentially distributed time with its own mean (by default three backends
at 10 ms and one at 100 ms: ten times slower). Each arrival asks the real
balancer (the compiled module, or the pure twin under
LBPROXY_NO_EXTENSIONS=1) for a backend, tells it ``take`` when the request
starts and ``drop`` when it ends, and peak_ewma also gets the response time
through ``observe`` on a clock that is the simulation's own. A request's
latency is its queueing plus service time. Everything is seeded: the same
arguments give the same table.

At the default rate round robin gives the slow backend a quarter of the
requests, 75% of what it can serve, so its queue makes the p99; the
load-aware algorithms notice its requests pile up and send it less.
"""

from __future__ import annotations

import argparse
import heapq
import random
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from lbproxy._fast import load
from lbproxy.balance import WEIGHT_UNIT, BalanceOptions, make_balancer
from lbproxy.balance.base import Balancer, PickContext

ALGORITHMS = (
    "round_robin",
    "weighted_round_robin",
    "random",
    "consistent_hash",
    "least_connections",
    "power_of_two",
    "peak_ewma",
)
DEFAULT_SERVICE = (0.010, 0.010, 0.010, 0.100)  # mean seconds per backend; the last is slow


@dataclass(frozen=True)
class SimResult:
    algorithm: str
    p50: float
    p99: float
    p999: float
    shares: tuple[float, ...]  # fraction of requests per backend


def _percentile(sorted_values: Sequence[float], q: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def simulate(
    algorithm: str,
    *,
    service: Sequence[float] = DEFAULT_SERVICE,
    workers: int = 4,
    rate: float = 120.0,
    requests: int = 20_000,
    seed: int = 1,
) -> SimResult:
    n = len(service)
    rng = random.Random(seed)
    now = 0.0

    def clock() -> float:
        return now

    weights = [WEIGHT_UNIT] * n
    balancer: Balancer
    if algorithm == "peak_ewma":
        balancer = load("ewma").PeakEwma(weights, seed, 5.0, clock)
    else:
        options = BalanceOptions(names=[f"10.0.0.{i + 1}:80" for i in range(n)], seed=seed)
        balancer = make_balancer(algorithm, weights, options)
    observe = getattr(balancer, "observe", None)
    ctx = PickContext()
    busy = [0] * n
    queues: list[deque[float]] = [deque() for _ in range(n)]
    served = [0] * n
    latencies: list[float] = []
    # Events: (time, seq, backend or -1 for an arrival, arrival time).
    events: list[tuple[float, int, int, float]] = [(rng.expovariate(rate), 0, -1, 0.0)]
    seq = 1
    arrivals = 0
    while events:
        now, _, backend, arrived = heapq.heappop(events)
        if backend < 0:
            arrivals += 1
            if arrivals < requests:
                heapq.heappush(events, (now + rng.expovariate(rate), seq, -1, 0.0))
                seq += 1
            ctx.hash_key = rng.getrandbits(64).to_bytes(8, "little")  # many clients
            i = balancer.pick(ctx, None)
            balancer.take(i)
            served[i] += 1
            if busy[i] < workers:
                busy[i] += 1
                heapq.heappush(events, (now + rng.expovariate(1 / service[i]), seq, i, now))
                seq += 1
            else:
                queues[i].append(now)
        else:
            latency = now - arrived
            latencies.append(latency)
            balancer.drop(backend)
            if observe is not None:
                observe(backend, latency)
            if queues[backend]:
                start = queues[backend].popleft()
                done = now + rng.expovariate(1 / service[backend])
                heapq.heappush(events, (done, seq, backend, start))
                seq += 1
            else:
                busy[backend] -= 1
    latencies.sort()
    return SimResult(
        algorithm,
        _percentile(latencies, 0.50),
        _percentile(latencies, 0.99),
        _percentile(latencies, 0.999),
        tuple(s / requests for s in served),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--rate", type=float, default=120.0)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    print(
        f"{args.requests} requests at {args.rate:g}/s; backends {args.workers} workers each,"
        f" mean service {', '.join(f'{s * 1000:g} ms' for s in DEFAULT_SERVICE)}"
    )
    print()
    print("| algorithm | p50 ms | p99 ms | p99.9 ms | slow backend's share |")
    print("|---|---|---|---|---|")
    for algorithm in ALGORITHMS:
        r = simulate(
            algorithm,
            rate=args.rate,
            requests=args.requests,
            workers=args.workers,
            seed=args.seed,
        )
        print(
            f"| {algorithm} | {r.p50 * 1000:.1f} | {r.p99 * 1000:.1f} | {r.p999 * 1000:.1f}"
            f" | {r.shares[-1]:.1%} |"
        )


if __name__ == "__main__":
    main()
