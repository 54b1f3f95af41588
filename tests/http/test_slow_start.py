"""Slow start in the pool: the effective weight's ramp, whatever the algorithm."""

from __future__ import annotations

import pytest

import lbproxy
from lbproxy.balance import WEIGHT_UNIT
from lbproxy.http.pool import PoolRuntime


def _pool(
    balance: str = "least_connections", slow_start: str = "10s", weight: int = 2
) -> PoolRuntime:
    config = lbproxy.parse_config(f"""
listeners:
  - {{name: t, bind: "127.0.0.1:0", routes: [{{pool: web}}]}}
pools:
  web:
    balance: {balance}
    slow_start: {slow_start}
    backends:
      - {{address: "127.0.0.1:9001", weight: {weight}}}
      - {{address: "127.0.0.1:9002", weight: 1}}
""")
    return PoolRuntime(config.pools["web"], joining=frozenset({"127.0.0.1:9001"}))


def test_ramp_is_linear_from_a_tenth_to_full_weight() -> None:
    pool = _pool()
    b = pool.backends[0]
    full = 2 * WEIGHT_UNIT
    start = b.ramp_since
    assert b.effective_weight() == full // 10
    seen = []
    for second in range(11):
        pool.tick(start + second)
        seen.append(b.effective_weight())
    # 10% + 90% * t/10s, in 2% steps (never ahead of the line, at most one step behind).
    for second, weight in enumerate(seen):
        exact = full * (0.1 + 0.09 * second)
        assert exact - full / 50 - 1 <= weight <= exact + 1e-6, (second, weight)
    assert seen == sorted(seen)
    assert seen[-1] == full
    assert pool.ramping == []
    # The other backend was not joining: full weight throughout.
    assert pool.backends[1].effective_weight() == WEIGHT_UNIT


@pytest.mark.parametrize(
    "balance",
    [
        "round_robin",
        "weighted_round_robin",
        "least_connections",
        "power_of_two",
        "peak_ewma",
        "consistent_hash",
        "random",
    ],
)
def test_every_algorithm_gives_a_ramping_backend_less(balance: str) -> None:
    # Requests held (picked, never finished), so that the load-aware
    # algorithms weigh them too; keys vary for consistent_hash.
    pool = _pool(balance, weight=1)
    counts = [0, 0]
    for i in range(220):
        b = pool.pick(None, b"key-%d" % i)
        assert b is not None
        b.balancer_take()
        counts[pool.backends.index(b)] += 1
    # 10% against 100%: about 20 of 220. Equal shares would be 110.
    assert counts[0] < 50, counts


def test_the_balancer_sees_the_ramped_weight() -> None:
    pool = _pool("weighted_round_robin")
    balancer = pool._primary.balancer
    assert balancer.weight(0) == 2 * WEIGHT_UNIT // 10  # type: ignore[attr-defined]
    pool.tick(pool.backends[0].ramp_since + 5)
    assert balancer.weight(0) == pool.backends[0].effective_weight()  # type: ignore[attr-defined]


def test_weight_back_from_zero_ramps_again() -> None:
    pool = _pool()
    pool.tick(pool.backends[0].ramp_since + 60)
    assert not pool.ramping
    pool.set_weight("127.0.0.1:9002", 0)
    assert pool.backends[1].effective_weight() == 0
    pool.set_weight("127.0.0.1:9002", 1)
    assert pool.ramping == [pool.backends[1]]
    assert pool.backends[1].effective_weight() == WEIGHT_UNIT // 10
    # A change between two non-zero weights is not a return: no ramp.
    pool.tick(pool.backends[1].ramp_since + 60)
    pool.set_weight("127.0.0.1:9001", 5)
    assert not pool.ramping
    assert pool.backends[0].effective_weight() == 5 * WEIGHT_UNIT


def test_without_slow_start_nothing_ramps() -> None:
    pool = _pool(slow_start="0s")
    assert not pool.ramping
    assert pool.backends[0].effective_weight() == 2 * WEIGHT_UNIT
    pool.set_weight("127.0.0.1:9001", 0)
    pool.set_weight("127.0.0.1:9001", 1)
    assert not pool.ramping


def test_start_ramp_is_the_hook_for_a_recovered_backend() -> None:
    pool = _pool()
    pool.tick(pool.backends[0].ramp_since + 60)
    pool.start_ramp(pool.backends[1], 100.0)
    assert pool.backends[1].effective_weight() == WEIGHT_UNIT // 10
    pool.tick(105.0)
    assert WEIGHT_UNIT // 2 < pool.backends[1].effective_weight() < WEIGHT_UNIT


async def test_a_reload_that_adds_a_backend_ramps_only_that_one() -> None:
    base = """
listeners:
  - {{name: t, bind: "127.0.0.1:0", routes: [{{pool: web}}]}}
pools:
  web:
    balance: random
    slow_start: 30s
    backends:
{backends}
access_log: {{format: "off"}}
"""
    one = '      - {address: "127.0.0.1:9001"}\n'
    two = one + '      - {address: "127.0.0.1:9002"}\n'
    proxy = lbproxy.Proxy(lbproxy.parse_config(base.format(backends=one)))
    await proxy.start()
    try:
        assert not proxy.pools["web"].ramping  # startup: everyone at once
        await proxy.reload(lbproxy.parse_config(base.format(backends=two)))
        pool = proxy.pools["web"]
        assert [b.label for b in pool.ramping] == ["127.0.0.1:9002"]
        assert pool.backends[0].effective_weight() == WEIGHT_UNIT
        assert pool.backends[1].effective_weight() == WEIGHT_UNIT // 10
    finally:
        await proxy.stop(timeout=2)
