"""``consistent_hash``: the hash ring with bounded loads, both twins, and the
promise that the compiled module and its pure twin behave identically."""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Callable, Sequence
from fractions import Fraction
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lbproxy import _fast
from lbproxy.balance.base import PickContext

FastImpl = Callable[[str], ModuleType]
Accept = Callable[[int], bool]
UNIT = 1000  # WEIGHT_UNIT: balancer weight of config weight 1

# Both twins take the function-scoped ``fast_impl`` getter; it holds no state.
BOTH_TWINS = settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture
def chash(fast_impl: FastImpl) -> ModuleType:
    return fast_impl("chash")


def addresses(n: int, start: int = 1) -> list[str]:
    return [f"10.0.0.{i}:8080" for i in range(start, start + n)]


def sample_keys(count: int, seed: int = 7) -> list[bytes]:
    rng = random.Random(seed)
    return [rng.randbytes(16) for _ in range(count)]


def ctx(key: bytes | None) -> PickContext:
    return PickContext(hash_key=key)


def owners(b: Any, names: Sequence[str], keys: Sequence[bytes]) -> list[str]:
    """The backend name each key goes to (accept=None)."""
    return [names[b.pick(ctx(k), None)] for k in keys]


def offering(log: list[int], refused: set[int] | frozenset[int]) -> Accept:
    def accept(i: int) -> bool:
        log.append(i)
        return i not in refused

    return accept


def clockwise(b: Any, key: bytes) -> list[int]:
    """Every weighted backend in the order a pick for ``key`` considers them:
    what an accept that refuses all is offered (no load bound: ``b`` has c=0)."""
    log: list[int] = []
    assert b.pick(ctx(key), offering(log, frozenset(range(len(b))))) == -1
    return log


# -- key_hash ---------------------------------------------------------------------

MASK = (1 << 64) - 1


def fnv1a(data: bytes) -> int:
    h = 0xCBF29CE484222325
    for byte in data:
        h = ((h ^ byte) * 0x100000001B3) & MASK
    return h


def finalize(z: int) -> int:
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return z ^ (z >> 31)


def test_reference_hash_parts_match_published_vectors() -> None:
    # FNV-1a 64 of "a" (Fowler/Noll/Vo test vectors); splitmix64's first
    # output from seed 0 is finalize(0 + golden gamma).
    assert fnv1a(b"") == 0xCBF29CE484222325
    assert fnv1a(b"a") == 0xAF63DC4C8601EC8C
    assert finalize(0x9E3779B97F4A7C15) == 0xE220A8397B1DCDAF


KNOWN = {
    b"": 0xF52A15E9A9B5E89B,
    b"a": 0x02C0BDBF481420F8,
    b"127.0.0.1:9001": 0x1282911294B0F0DE,
}


@pytest.mark.parametrize("data", list(KNOWN))
def test_key_hash_known_values(chash: ModuleType, data: bytes) -> None:
    assert chash.key_hash(data) == KNOWN[data] == finalize(fnv1a(data))


@pytest.mark.parametrize("bad", ["a", None, bytearray(b"a"), 5])
def test_key_hash_takes_bytes_only(chash: ModuleType, bad: object) -> None:
    with pytest.raises(TypeError, match="must be bytes"):
        chash.key_hash(bad)
    if bad is not None:  # a None key is no key: round robin
        b = chash.ConsistentHash([UNIT], ["a:1"])
        with pytest.raises(TypeError, match="must be bytes"):
            b.pick(PickContext(hash_key=bad), None)  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_key_hash_twins_agree(compiled_impl: FastImpl, data: bytes) -> None:
    expected = finalize(fnv1a(data))
    assert compiled_impl("chash").key_hash(data) == expected
    assert _fast.load_pure("chash").key_hash(data) == expected


# -- the ring ---------------------------------------------------------------------


def test_points_per_weight(chash: ModuleType) -> None:
    b = chash.ConsistentHash([UNIT, 3 * UNIT, 1, 7, 0, 999], addresses(6))
    # ceil(w * 160 / 1000): config weight 1 -> 160, 3 -> 480; any w > 0 gets one.
    assert [b.ring_points(i) for i in range(6)] == [160, 480, 1, 2, 0, 160]
    b.set_weight(4, 2 * UNIT)
    assert b.ring_points(4) == 320
    with pytest.raises(IndexError, match="out of range"):
        b.ring_points(6)


def test_ring_past_the_cap_is_scaled_down_evenly(chash: ModuleType) -> None:
    if chash is _fast.load_pure("chash"):
        # Building 4M points in pure Python takes long; check the counts alone.
        counts = chash._ring_counts([10**6] * 27)
    else:
        b = chash.ConsistentHash([10**6] * 27, addresses(27))
        counts = [b.ring_points(i) for i in range(27)]
    # 27 x 160,000 points would pass 2**22: each is scaled by the same factor.
    assert counts == [160_000 * chash.MAX_POINTS // (27 * 160_000)] * 27
    assert sum(counts) <= chash.MAX_POINTS


def test_same_key_same_backend_whatever_the_list_order(chash: ModuleType) -> None:
    names = addresses(8)
    weights = [UNIT, 2 * UNIT, UNIT, 3 * UNIT, UNIT, 0, UNIT, 2 * UNIT]
    keys = sample_keys(3_000)
    b = chash.ConsistentHash(weights, names)
    first = owners(b, names, keys)
    assert owners(b, names, keys) == first  # repeat picks agree
    order = list(range(8))
    random.Random(3).shuffle(order)
    shuffled = chash.ConsistentHash([weights[i] for i in order], [names[i] for i in order])
    assert owners(shuffled, [names[i] for i in order], keys) == first
    assert names[5] not in first


# Adding or removing one backend of N: the expected share that moves is
# 1/(N+1) (about 0.091 for N=10); we allow [0.5/N, 1.6/N] for the spread of a
# 160-point ring. Measured with these keys: 0.077 for adding the 11th,
# 0.085 for removing one of 11.
N = 10
MOVED_LOW, MOVED_HIGH = 0.5 / N, 1.6 / N


def test_adding_a_backend_moves_keys_only_to_it(chash: ModuleType) -> None:
    names = addresses(N + 1)
    keys = sample_keys(20_000)
    before = owners(chash.ConsistentHash([UNIT] * N, names[:N]), names[:N], keys)
    after = owners(chash.ConsistentHash([UNIT] * (N + 1), names), names, keys)
    moved = [(a, b) for a, b in zip(before, after, strict=True) if a != b]
    assert MOVED_LOW <= len(moved) / len(keys) <= MOVED_HIGH
    assert {b for _, b in moved} == {names[N]}  # keys on other backends stay put


def test_removing_a_backend_moves_only_its_keys(chash: ModuleType) -> None:
    names = addresses(N + 1)
    keys = sample_keys(20_000, seed=8)
    removed = 4
    before = owners(chash.ConsistentHash([UNIT] * (N + 1), names), names, keys)
    rest = names[:removed] + names[removed + 1 :]
    after = owners(chash.ConsistentHash([UNIT] * N, rest), rest, keys)
    moved = [(a, b) for a, b in zip(before, after, strict=True) if a != b]
    assert MOVED_LOW <= len(moved) / len(keys) <= MOVED_HIGH
    assert {a for a, _ in moved} == {names[removed]}
    # Weight 0 takes a backend off the ring: the same placement as leaving it out.
    b = chash.ConsistentHash([UNIT] * (N + 1), names)
    b.set_weight(removed, 0)
    assert owners(b, names, keys) == after


def test_weighted_shares_follow_the_weights(chash: ModuleType) -> None:
    names = addresses(2)
    keys = sample_keys(20_000)
    counts = Counter(owners(chash.ConsistentHash([UNIT, 3 * UNIT], names), names, keys))
    # Within 20% of 25% / 75% (measured: 26.6% / 73.4%).
    assert abs(counts[names[0]] / len(keys) - 0.25) <= 0.25 * 0.2
    assert abs(counts[names[1]] / len(keys) - 0.75) <= 0.75 * 0.2


def test_equal_weights_share_evenly(chash: ModuleType) -> None:
    names = addresses(10)
    keys = sample_keys(20_000)
    counts = Counter(owners(chash.ConsistentHash([UNIT] * 10, names), names, keys))
    mean = len(keys) / 10
    # 160 points each: measured from 0.81 to 1.12 of the mean; we allow +-35%.
    assert len(counts) == 10
    for name in names:
        assert abs(counts[name] - mean) <= 0.35 * mean, counts


def test_ramping_a_weight_moves_keys_only_to_and_from_it(chash: ModuleType) -> None:
    names = addresses(6)
    keys = sample_keys(5_000)
    b = chash.ConsistentHash([UNIT] * 5 + [100], names)
    before = owners(b, names, keys)
    for w in range(200, 1001, 100):  # a slow-start ramp
        b.set_weight(5, w)
        now = owners(b, names, keys)
        assert {y for x, y in zip(before, now, strict=True) if x != y} <= {names[5]}
        before = now
    assert 0.1 < before.count(names[5]) / len(keys) < 0.25  # about 1/6 at full weight
    for w in (500, 0):  # and back down: keys only leave it
        b.set_weight(5, w)
        now = owners(b, names, keys)
        assert {x for x, y in zip(before, now, strict=True) if x != y} <= {names[5]}
        before = now
    assert names[5] not in before


def test_weight_changes_give_the_ring_a_fresh_build_gives(chash: ModuleType) -> None:
    # set_weight merges only the changed backend's points in or out; the ring
    # must be the one built from scratch, walk orders and all.
    names = addresses(5)
    weights = [UNIT, 2 * UNIT, 7, 0, UNIT]
    keys = sample_keys(200)
    b = chash.ConsistentHash(weights, names)
    rng = random.Random(5)
    for _ in range(25):
        i = rng.randrange(5)
        weights[i] = rng.choice([0, 1, 13, 500, UNIT, 2 * UNIT, 3 * UNIT + 7])
        b.set_weight(i, weights[i])
        fresh = chash.ConsistentHash(weights, names)
        assert [b.ring_points(j) for j in range(5)] == [fresh.ring_points(j) for j in range(5)]
        assert [clockwise(b, k) for k in keys] == [clockwise(fresh, k) for k in keys]


def test_equal_positions_are_ordered_by_name_in_every_rebuild() -> None:
    # Two backends' points at the same position are 1 in 2**64 apart from
    # each other's; to test the tie order, the pure twin's name hashes are
    # forced so that point k+1 of "b" is point k of "a" (white box).
    pure = _fast.load_pure("chash")
    golden = 0x9E3779B97F4A7C15

    def rigged(weights: list[int]) -> Any:
        b = pure.ConsistentHash(weights, ["b:1", "a:1", "c:1"])
        b._name_hash[1] = (b._name_hash[0] + golden) & MASK
        b._counts = []
        b._build()  # from scratch
        return b

    b = rigged([UNIT, UNIT, UNIT])
    ties = [j for j in range(len(b._points) - 1) if b._points[j] == b._points[j + 1]]
    assert len(ties) == 159
    assert all(b._owners[j : j + 2] == [1, 0] for j in ties)  # "a:1" before "b:1"
    for i, w in [(0, 3 * UNIT), (1, 2 * UNIT), (1, 500), (0, 100), (1, 0), (0, UNIT), (1, UNIT)]:
        b.set_weight(i, w)  # merged in or out
        fresh = rigged([b.weight(j) for j in range(3)])
        assert (b._points, b._owners) == (fresh._points, fresh._owners)


def test_bad_weight_leaves_the_ring_alone(chash: ModuleType) -> None:
    names = addresses(3)
    keys = sample_keys(500)
    b = chash.ConsistentHash([UNIT] * 3, names)
    first = owners(b, names, keys)
    with pytest.raises(ValueError, match="between 0 and"):
        b.set_weight(1, -1)
    with pytest.raises(IndexError, match="out of range"):
        b.set_weight(3, UNIT)
    assert owners(b, names, keys) == first
    assert b.ring_points(1) == 160


# -- accept, weight 0, no key -------------------------------------------------------


def test_refused_owner_falls_to_the_next_distinct_backend_clockwise(chash: ModuleType) -> None:
    b = chash.ConsistentHash([UNIT, 2 * UNIT, 0, UNIT, UNIT], addresses(5))
    for key in sample_keys(50):
        order = clockwise(b, key)
        assert sorted(order) == [0, 1, 3, 4]  # each weighted backend once, never 2
        assert b.pick(ctx(key), None) == order[0]
        for k in range(1, 4):
            log: list[int] = []
            assert b.pick(ctx(key), offering(log, set(order[:k]))) == order[k]
            assert log == order[: k + 1]


def test_walks_are_rotations_of_the_ring(chash: ModuleType) -> None:
    # Weight 1 (of 1000) is one point each: every key's walk is the ring's
    # order, started at the key's point and wrapping past the top.
    b = chash.ConsistentHash([1] * 6, addresses(6))
    assert [b.ring_points(i) for i in range(6)] == [1] * 6
    walks = {tuple(clockwise(b, key)) for key in sample_keys(300)}
    ring = next(iter(walks))
    assert sorted(ring) == list(range(6))
    assert walks == {ring[k:] + ring[:k] for k in range(6)}  # every start is hit


def test_all_refused_returns_minus_one_and_changes_nothing(chash: ModuleType) -> None:
    b = chash.ConsistentHash([UNIT, UNIT, UNIT], addresses(3))
    assert b.pick(None, None) == 0
    log: list[int] = []
    assert b.pick(ctx(b"k"), offering(log, {0, 1, 2})) == -1
    assert sorted(log) == [0, 1, 2]
    assert b.pick(None, offering([], {0, 1, 2})) == -1
    # The round-robin cursor did not move: the next no-key pick is still 1.
    assert [b.pick(None, None) for _ in range(3)] == [1, 2, 0]
    assert [b.active(i) for i in range(3)] == [0, 0, 0]


def test_accept_raising_propagates_and_changes_nothing(chash: ModuleType) -> None:
    names = addresses(4)
    b = chash.ConsistentHash([UNIT] * 4, names, balance_factor=1.5)
    keys = sample_keys(200)
    first = owners(b, names, keys)

    def boom(i: int) -> bool:
        raise RuntimeError("accept failed")

    assert b.pick(None, None) == 0
    for key in (b"x", None):
        with pytest.raises(RuntimeError, match="accept failed"):
            b.pick(ctx(key), boom)
    assert b.pick(None, None) == 1  # cursor unchanged by the failed pick
    assert owners(b, names, keys) == first


def test_weight_zero_is_never_offered_nor_picked(chash: ModuleType) -> None:
    b = chash.ConsistentHash([UNIT, 0, UNIT], addresses(3))
    log: list[int] = []
    picked = {b.pick(ctx(k), offering(log, set())) for k in sample_keys(2_000)}
    picked |= {b.pick(None, offering(log, set())) for _ in range(10)}
    assert picked == {0, 2}
    assert 1 not in log
    none = chash.ConsistentHash([0, 0], addresses(2))
    calls: list[int] = []
    assert none.pick(ctx(b"k"), offering(calls, set())) == -1
    assert none.pick(None, offering(calls, set())) == -1
    assert calls == []
    assert chash.ConsistentHash([], []).pick(ctx(b"k"), None) == -1


def test_no_key_falls_back_to_round_robin(chash: ModuleType) -> None:
    b = chash.ConsistentHash([UNIT, 0, 3 * UNIT, UNIT], addresses(4))
    # No context and a context without a key alike; weights other than 0 are equal.
    got = [b.pick(None if i % 2 else ctx(None), None) for i in range(6)]
    assert got == [0, 2, 3, 0, 2, 3]
    log: list[int] = []
    assert [b.pick(None, offering(log, {2})) for _ in range(3)] == [0, 3, 0]
    assert log == [0, 2, 3, 0]  # each offered once per pick, weight 0 never


# -- validation ---------------------------------------------------------------------


def test_names_must_match_the_weights(chash: ModuleType) -> None:
    with pytest.raises(ValueError, match="one name per backend"):
        chash.ConsistentHash([UNIT, UNIT], ["a:1"])
    with pytest.raises(ValueError, match="one name per backend"):
        chash.ConsistentHash([UNIT], ["a:1", "b:1"])
    with pytest.raises(ValueError, match="distinct"):
        chash.ConsistentHash([UNIT, UNIT, UNIT], ["a:1", "b:1", "a:1"])
    with pytest.raises(TypeError, match="must be a str"):
        chash.ConsistentHash([UNIT, UNIT], ["a:1", b"b:1"])
    with pytest.raises(TypeError, match="sequence of str"):
        chash.ConsistentHash([UNIT, UNIT], "ab")
    with pytest.raises(ValueError, match="between 0 and"):
        chash.ConsistentHash([UNIT, -1], ["a:1", "b:1"])
    assert len(chash.ConsistentHash((w for w in [UNIT, 0]), ("a:1", "b:1"))) == 2


@pytest.mark.parametrize("factor", [0.5, 0.999, -1, math.nan, math.inf])
def test_bad_balance_factor(chash: ModuleType, factor: float) -> None:
    with pytest.raises(ValueError, match="balance_factor"):
        chash.ConsistentHash([UNIT], ["a:1"], factor)


@pytest.mark.parametrize("factor", [0, 0.0, 1, 1.0, 1.25, 10])
def test_good_balance_factor(chash: ModuleType, factor: float) -> None:
    b = chash.ConsistentHash([UNIT], ["a:1"], balance_factor=factor)
    assert b.balance_factor == float(factor)
    with pytest.raises(TypeError, match="balance_factor"):
        chash.ConsistentHash([UNIT], ["a:1"], "2")


def test_take_drop_and_index_errors(chash: ModuleType) -> None:
    b = chash.ConsistentHash([UNIT, 0], addresses(2))
    b.take(0)
    b.take(1)  # in flight on a disabled backend still counts
    b.drop(0)
    b.drop(0)  # stray: stays at 0
    assert [b.active(0), b.active(1), b.weight(0), len(b)] == [0, 1, UNIT, 2]
    for method in ("take", "drop", "active", "weight"):
        with pytest.raises(IndexError, match="out of range"):
            getattr(b, method)(-1)


# -- bounded loads ------------------------------------------------------------------


def within_bound(b: Any, i: int, c: float) -> bool:
    """active[i] + 1 <= ceil(c * (T + 1) * w_i / W), exactly."""
    n = len(b)
    total = sum(b.active(j) for j in range(n))
    weight_sum = sum(b.weight(j) for j in range(n))
    limit = math.ceil(Fraction(c) * (total + 1) * b.weight(i) / weight_sum)
    return bool(b.active(i) + 1 <= limit)


def test_a_hot_key_overflows_clockwise(chash: ModuleType) -> None:
    names = addresses(4)
    b = chash.ConsistentHash([UNIT] * 4, names, balance_factor=1.25)
    plain = chash.ConsistentHash([UNIT] * 4, names)
    order = clockwise(plain, b"hot")
    got = []
    for _ in range(40):
        i = b.pick(ctx(b"hot"), None)
        assert within_bound(b, i, 1.25)
        b.take(i)
        got.append(i)
    # Bounds ceil(1.25 * (T + 1) / 4) for T = 0, 1, 2, 3 are 1, 1, 1, 2: the
    # owner, two overflows clockwise, then the owner has room again.
    assert got[:4] == [order[0], order[1], order[2], order[0]]
    counts = Counter(got)
    assert max(counts.values()) <= math.ceil(1.25 * 40 / 4)
    assert counts[order[0]] >= counts[order[3]]


@st.composite
def load_scenarios(draw: st.DrawFn) -> tuple[float, list[int], list[tuple[str, int]]]:
    c = draw(st.sampled_from([1.25, 1.5, 2.0]))
    weights = draw(
        st.lists(st.sampled_from([UNIT, 2 * UNIT, 3 * UNIT, 500]), min_size=2, max_size=6)
    )
    n = len(weights)
    op = st.one_of(
        st.tuples(st.just("pick"), st.integers(0, 30)),  # one of 31 keys: hot ones repeat
        st.tuples(st.just("pick"), st.integers(0, 30)),
        st.tuples(st.just("pick"), st.integers(0, 30)),
        st.tuples(st.just("drop"), st.integers(0, n - 1)),
    )
    return c, weights, draw(st.lists(op, min_size=1, max_size=80))


@BOTH_TWINS
@given(load_scenarios())
def test_bounded_load_keeps_every_backend_under_its_bound(
    fast_impl: FastImpl, scenario: tuple[float, list[int], list[tuple[str, int]]]
) -> None:
    chash = fast_impl("chash")
    c, weights, ops = scenario
    names = addresses(len(weights))
    b = chash.ConsistentHash(weights, names, c)
    plain = chash.ConsistentHash(weights, names)  # its walk order, unbounded
    for op, arg in ops:
        if op == "drop":
            b.drop(arg)
            continue
        key = b"key-%d" % arg
        # Reference: the first backend clockwise that is under its bound.
        expected = next(i for i in clockwise(plain, key) if within_bound(b, i, c))
        i = b.pick(ctx(key), None)
        assert i == expected
        b.take(i)


# -- compiled and pure give the same answers to the same calls -----------------------

Op = tuple[str, int, int]  # (operation, index or key, argument)


@st.composite
def twin_scenarios(draw: st.DrawFn) -> tuple[list[int], list[str], float, list[Op]]:
    n = draw(st.integers(0, 7))
    names = draw(st.lists(st.text(max_size=12), min_size=n, max_size=n, unique=True))
    weight = st.one_of(st.integers(0, 4 * UNIT), st.integers(0, 20))  # 20: one point
    weights = draw(st.lists(weight, min_size=n, max_size=n))
    factor = draw(st.sampled_from([0.0, 1.0, 1.25, 3.0]))
    index = st.integers(0, n - 1) if n else st.just(0)
    op = st.one_of(
        # argument = bitmask of refused indices, -1 for accept=None; key -1 = no key
        st.tuples(st.just("pick"), st.integers(-1, 40), st.integers(-1, (1 << max(n, 1)) - 1)),
        st.tuples(st.just("pick"), st.integers(0, 10**6), st.just(-1)),
        st.tuples(st.just("set_weight"), index, st.integers(0, 4 * UNIT)),
        st.tuples(st.sampled_from(["take", "take", "drop"]), index, st.just(0)),
    )
    ops = draw(st.lists(op, max_size=60))
    if not n:
        ops = [o for o in ops if o[0] == "pick"]
    return weights, names, factor, ops


def run(
    module: ModuleType, weights: list[int], names: list[str], factor: float, ops: list[Op]
) -> list[object]:
    b = module.ConsistentHash(weights, names, factor)
    log: list[object] = [("points", [b.ring_points(i) for i in range(len(weights))])]
    for name, arg1, arg2 in ops:
        if name == "pick":
            accept = None
            if arg2 >= 0:

                def accept(i: int, refused: int = arg2) -> bool:
                    log.append(("offer", i))
                    return not refused & (1 << i)

            key = None if arg1 < 0 else str(arg1).encode()
            log.append(("pick", b.pick(ctx(key), accept)))
        elif name == "set_weight":
            b.set_weight(arg1, arg2)
            log.append(("points", b.ring_points(arg1)))
        else:
            getattr(b, name)(arg1)
            log.append(("active", b.active(arg1)))
    log.append(("weights", [b.weight(i) for i in range(len(weights))]))
    return log


@settings(max_examples=150, deadline=None)
@given(twin_scenarios())
def test_compiled_and_pure_twins_agree(
    compiled_impl: FastImpl, scenario: tuple[list[int], list[str], float, list[Op]]
) -> None:
    weights, names, factor, ops = scenario
    compiled = run(compiled_impl("chash"), weights, names, factor, ops)
    pure = run(_fast.load_pure("chash"), weights, names, factor, ops)
    assert compiled == pure


def test_twins_agree_on_a_large_pool(compiled_impl: FastImpl) -> None:
    names = [f"192.168.{i // 250}.{i % 250}:80" for i in range(300)]
    weights = [(1 + i % 5) * UNIT if i % 17 else 0 for i in range(300)]
    keys = sample_keys(2_000, seed=11)
    c = compiled_impl("chash").ConsistentHash(weights, names, 1.5)
    p = _fast.load_pure("chash").ConsistentHash(weights, names, 1.5)
    for i, key in enumerate(keys):
        got = c.pick(ctx(key), None)
        assert got == p.pick(ctx(key), None)
        if i % 3:
            c.take(got)
            p.take(got)


def test_twins_export_the_same_names(compiled_impl: FastImpl) -> None:
    def public(module: ModuleType) -> set[str]:
        return {n for n in dir(module) if not n.startswith("_")} - {
            "annotations",
            "TYPE_CHECKING",
        }

    compiled = compiled_impl("chash")
    pure = _fast.load_pure("chash")
    expected = {"ConsistentHash", "key_hash", "MAX_POINTS", "POINTS_PER_UNIT", "WEIGHT_UNIT"}
    assert public(compiled) == public(pure) == expected
    for name in ("MAX_POINTS", "POINTS_PER_UNIT", "WEIGHT_UNIT"):
        assert getattr(compiled, name) == getattr(pure, name)
    assert compiled.WEIGHT_UNIT == UNIT
