"""Shard strategies (hash, range, directory) and the split route's weighted choice."""

from __future__ import annotations

import hashlib
import logging
import os
import random
import stat
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lbproxy.config.model import HashKey, ShardRange, ShardTarget
from lbproxy.routing.shard import (
    Directory,
    DirectoryError,
    RangeTable,
    ShardChooser,
    WeightedChoice,
    hash_pool,
    jump_hash,
    key_hash,
    parse_range_key,
)

KEYS = [key_hash(b"user-%d" % i) for i in range(10_000)]

# --- jump hash ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "buckets", "expected"),
    [
        # The reference vectors every port of the algorithm checks against.
        (1, 1, 0),
        (42, 57, 43),
        (0xDEAD10CC, 1, 0),
        (0xDEAD10CC, 666, 361),
        (256, 1024, 520),
        (2**64 + 42, 57, 43),  # keys are taken mod 2**64
    ],
)
def test_jump_hash_reference_vectors(key: int, buckets: int, expected: int) -> None:
    assert jump_hash(key, buckets) == expected


@pytest.mark.parametrize("buckets", [0, -1])
def test_jump_hash_needs_a_bucket(buckets: int) -> None:
    with pytest.raises(ValueError, match="buckets"):
        jump_hash(1, buckets)


@settings(max_examples=300, deadline=None)
@given(key=st.integers(0, 2**64 - 1), buckets=st.integers(1, 5000))
def test_jump_hash_stays_in_range_and_is_stable(key: int, buckets: int) -> None:
    b = jump_hash(key, buckets)
    assert 0 <= b < buckets
    assert jump_hash(key, buckets) == b


@pytest.mark.parametrize("n", [1, 2, 3, 5, 9, 20])
def test_adding_a_bucket_moves_keys_only_to_it_and_about_a_fair_share(n: int) -> None:
    moved = 0
    for k in KEYS:
        before, after = jump_hash(k, n), jump_hash(k, n + 1)
        if before != after:
            assert after == n, "a key moved between old buckets"
            moved += 1
    assert abs(moved / len(KEYS) - 1 / (n + 1)) < 0.02


def test_jump_hash_spreads_keys_evenly() -> None:
    counts = Counter(jump_hash(k, 10) for k in KEYS)
    assert sorted(counts) == list(range(10))
    assert all(abs(c - 1000) < 100 for c in counts.values()), counts


# --- hash strategy ---------------------------------------------------------------


def test_key_hash_is_the_documented_frozen_formula() -> None:
    # A migration script computes this to find a key's shard: it must never change.
    digest = hashlib.blake2b(b"user-42", digest_size=8).digest()
    assert key_hash(b"user-42") == int.from_bytes(digest, "little") == 0xA6EFE67B4DCAA06F
    pools = ["shard-1", "shard-2", "shard-3"]
    assert [hash_pool(b"user-%d" % i, pools) for i in range(8)] == [
        "shard-1", "shard-2", "shard-1", "shard-1", "shard-1", "shard-1", "shard-2", "shard-3",
    ]  # fmt: skip


def test_appending_a_pool_moves_keys_only_to_it() -> None:
    old, new = ["s1", "s2", "s3"], ["s1", "s2", "s3", "s4"]
    keys = [b"acct-%d" % i for i in range(5000)]
    moved = [k for k in keys if hash_pool(k, old) != hash_pool(k, new)]
    assert all(hash_pool(k, new) == "s4" for k in moved)
    assert abs(len(moved) / len(keys) - 0.25) < 0.03


# --- range strategy -------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        (b"0", 0),
        (b"007", 7),
        (b"1234567890123456789", 1234567890123456789),  # 19 digits
        (b"12345678901234567890", None),  # 20
        (b"", None),
        (b"-1", None),
        (b"+1", None),
        (b" 1", None),
        (b"1 ", None),
        (b"1_000", None),
        (b"1.0", None),
        (b"0x10", None),
        (b"abc", None),
        ("\u0661\u0662".encode(), None),  # Arabic-Indic digits, which int() would take
    ],
)
def test_range_keys_are_plain_ascii_digits(key: bytes, expected: int | None) -> None:
    assert parse_range_key(key) == expected


def test_range_bounds_are_exclusive() -> None:
    table = RangeTable(
        [ShardRange(100, "a"), ShardRange(200, "b"), ShardRange(None, "c")],
    )
    assert [table.pool_for(k) for k in (b"0", b"99", b"100", b"199", b"200", b"9" * 19)] == [
        "a", "a", "b", "b", "c", "c",
    ]  # fmt: skip
    assert table.pool_for(b"x") is None


def test_a_closed_last_range_leaves_big_keys_unmapped() -> None:
    table = RangeTable([ShardRange(100, "a"), ShardRange(200, "b")])
    assert table.pool_for(b"199") == "b"
    assert table.pool_for(b"200") is None
    assert RangeTable([ShardRange(None, "all")]).pool_for(b"0") == "all"


@pytest.mark.parametrize(
    ("ranges", "match"),
    [
        ([], "at least one"),
        ([ShardRange(None, "a"), ShardRange(100, "b")], r"ranges\[0\]: only the last"),
        ([ShardRange(200, "a"), ShardRange(100, "b")], r"ranges\[1\]: upto 100 must be above"),
        ([ShardRange(100, "a"), ShardRange(100, "b")], r"ranges\[1\]"),
        ([ShardRange(0, "a")], r"ranges\[0\]: upto must be positive"),
    ],
)
def test_bad_range_tables_are_refused(ranges: list[ShardRange], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        RangeTable(ranges)


# --- directory strategy -----------------------------------------------------------


def write(path: Path, text: str) -> None:
    """Replace the file's content and make sure its signature changes even
    where the file system's clock is coarse."""
    old = path.stat().st_mtime_ns if path.exists() else 0
    path.write_text(text)
    st_ = path.stat()
    if st_.st_mtime_ns == old:
        os.utime(path, ns=(st_.st_atime_ns, old + 1_000_000))


@pytest.fixture
def csv(tmp_path: Path) -> Path:
    path = tmp_path / "shards.csv"
    path.write_text("# tenants moved by hand\n\nacme,shard-1\n  globex , shard-2  \n#x,shard-3\n")
    return path


POOLS = {"shard-1", "shard-2", "shard-3"}


def test_directory_loads_and_looks_up(csv: Path) -> None:
    d = Directory(str(csv), known_pools=POOLS)
    assert d.pool_for(b"acme") == "shard-1"
    assert d.pool_for(b"globex") == "shard-2"  # spaces around both stripped
    assert d.pool_for(b"#x") is None  # a comment
    assert d.pool_for(b"initech") is None
    assert d.entries() == {"acme": "shard-1", "globex": "shard-2"}
    assert len(d) == 2


@pytest.mark.parametrize(
    ("text", "line", "match"),
    [
        ("a,shard-1\nb\n", 2, "expected 'key,pool', got 'b'"),
        ("a,shard-1,shard-2\n", 1, "expected 'key,pool'"),
        ("# c\n,shard-1\n", 2, "expected 'key,pool'"),
        ("a,\n", 1, "expected 'key,pool'"),
        ("a,shard-1\n\nb,shard-9\n", 3, r"unknown pool 'shard-9' \(known pools: shard-1, shard-2"),
        ("a,shard-1\nb,shard-2\na,shard-3\n", 3, "key 'a' is already mapped on line 1"),
    ],
)
def test_directory_errors_name_file_and_line(
    tmp_path: Path, text: str, line: int, match: str
) -> None:
    path = tmp_path / "d.csv"
    path.write_text(text)
    with pytest.raises(DirectoryError, match=match) as info:
        Directory(str(path), known_pools=POOLS)
    assert str(info.value).startswith(f"{path} line {line}: ")


def test_directory_without_known_pools_takes_any_pool(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text("a,anything\n")
    assert Directory(str(path)).pool_for(b"a") == "anything"


def test_a_missing_or_undecodable_file_is_a_directory_error(tmp_path: Path) -> None:
    with pytest.raises(DirectoryError, match=r"missing\.csv: cannot read"):
        Directory(str(tmp_path / "missing.csv"))
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"a,\xff\n")
    with pytest.raises(DirectoryError, match=r"bad\.csv: cannot read"):
        Directory(str(bad))


def test_directory_reloads_a_changed_file_at_most_every_poll(csv: Path) -> None:
    d = Directory(str(csv), known_pools=POOLS, poll=1.0)
    assert d.maybe_reload(100.0) is False  # unchanged
    write(csv, "acme,shard-3\n")
    assert d.maybe_reload(100.5) is False  # within the poll: not even looked at
    assert d.pool_for(b"acme") == "shard-1"
    assert d.maybe_reload(101.0) is True
    assert d.pool_for(b"acme") == "shard-3"
    assert d.pool_for(b"globex") is None
    assert d.maybe_reload(102.0) is False  # nothing new since


def test_a_same_size_edit_with_the_mtime_put_back_is_still_seen(csv: Path) -> None:
    d = Directory(str(csv), known_pools=POOLS)
    before = csv.stat()
    with open(csv, "r+") as f:  # in place: same inode, same size
        f.write(csv.read_text().replace("acme,shard-1", "acme,shard-3"))
    os.utime(csv, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert (csv.stat().st_ino, csv.stat().st_size) == (before.st_ino, before.st_size)
    assert d.maybe_reload(10.0) is True
    assert d.pool_for(b"acme") == "shard-3"


def test_a_file_replaced_by_rename_is_reloaded(csv: Path) -> None:
    d = Directory(str(csv), known_pools=POOLS)
    new = csv.with_name("new.csv")
    new.write_text("acme,shard-2\n")
    os.replace(new, csv)
    assert d.maybe_reload(10.0) is True
    assert d.pool_for(b"acme") == "shard-2"


def test_a_broken_file_keeps_the_old_mapping(csv: Path, caplog: pytest.LogCaptureFixture) -> None:
    d = Directory(str(csv), known_pools=POOLS)
    write(csv, "acme,shard-3\noops\n")
    with caplog.at_level(logging.WARNING, logger="lbproxy"):
        assert d.maybe_reload(10.0) is False
        assert d.maybe_reload(20.0) is False  # the same broken file: warned once
    assert d.pool_for(b"acme") == "shard-1"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and f"{csv} line 2" in warnings[0]
    write(csv, "acme,shard-3\n")
    assert d.maybe_reload(30.0) is True
    assert d.pool_for(b"acme") == "shard-3"


def test_a_vanished_file_keeps_the_old_mapping(csv: Path, caplog: pytest.LogCaptureFixture) -> None:
    d = Directory(str(csv), known_pools=POOLS)
    csv.unlink()
    with caplog.at_level(logging.WARNING, logger="lbproxy"):
        assert d.maybe_reload(10.0) is False
        assert d.maybe_reload(20.0) is False
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1
    assert d.pool_for(b"acme") == "shard-1"
    csv.write_text("acme,shard-2\n")
    assert d.maybe_reload(30.0) is True
    assert d.pool_for(b"acme") == "shard-2"


def test_set_and_delete_rewrite_the_file_in_place_of_the_old(csv: Path) -> None:
    csv.chmod(0o640)
    d = Directory(str(csv), known_pools=POOLS)
    ino = csv.stat().st_ino
    d.set("initech", "shard-3")
    assert csv.stat().st_ino != ino  # replaced by rename, never written in place
    d.set("acme", "shard-2")  # an existing key keeps its line
    assert d.pool_for(b"initech") == "shard-3" and d.pool_for(b"acme") == "shard-2"
    assert csv.read_text() == (
        "# tenants moved by hand\n\nacme,shard-2\n  globex , shard-2  \n#x,shard-3\n"
        "initech,shard-3\n"
    )
    assert stat.S_IMODE(csv.stat().st_mode) == 0o640
    assert d.delete("globex") is True
    assert d.delete("globex") is False
    assert d.pool_for(b"globex") is None
    assert csv.read_text() == (
        "# tenants moved by hand\n\nacme,shard-2\n#x,shard-3\ninitech,shard-3\n"
    )
    assert sorted(p.name for p in csv.parent.iterdir()) == ["shards.csv"]  # no temp files left
    # A restart, or another worker watching the file, sees the changes.
    assert Directory(str(csv), known_pools=POOLS).entries() == {
        "acme": "shard-2",
        "initech": "shard-3",
    }
    # Our own write is not news to our own poll.
    assert d.maybe_reload(1000.0) is False


def test_another_process_watching_the_file_sees_a_set(csv: Path) -> None:
    admin, worker = Directory(str(csv), known_pools=POOLS), Directory(str(csv), known_pools=POOLS)
    admin.set("initech", "shard-1")
    assert worker.maybe_reload(5.0) is True
    assert worker.pool_for(b"initech") == "shard-1"
    admin.delete("initech")
    assert worker.maybe_reload(10.0) is True
    assert worker.pool_for(b"initech") is None


def test_set_keeps_a_change_made_to_the_file_since_the_last_poll(csv: Path) -> None:
    d = Directory(str(csv), known_pools=POOLS)
    write(csv, csv.read_text() + "hooli,shard-3\n")
    d.set("acme", "shard-2")
    assert d.pool_for(b"hooli") == "shard-3"
    assert "hooli,shard-3\n" in csv.read_text()


def test_set_refuses_to_overwrite_a_broken_file(csv: Path) -> None:
    d = Directory(str(csv), known_pools=POOLS)
    write(csv, "half an edit\n")
    with pytest.raises(DirectoryError, match="line 1"):
        d.set("acme", "shard-2")
    assert csv.read_text() == "half an edit\n"
    assert d.pool_for(b"acme") == "shard-1"


def test_crlf_files_and_unusual_characters_survive_a_rewrite(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_bytes("a,shard-1\r\nb\u2028c,shard-2\r\nlast,shard-3".encode())
    d = Directory(str(path), known_pools=POOLS)
    assert d.entries() == {"a": "shard-1", "b\u2028c": "shard-2", "last": "shard-3"}
    d.set("z", "shard-1")
    assert path.read_bytes() == (
        "a,shard-1\r\nb\u2028c,shard-2\r\nlast,shard-3\nz,shard-1\n".encode()
    )
    assert Directory(str(path), known_pools=POOLS).pool_for("b\u2028c".encode()) == "shard-2"


def test_set_recreates_a_vanished_file_from_memory(csv: Path) -> None:
    d = Directory(str(csv), known_pools=POOLS)
    csv.unlink()
    d.set("initech", "shard-3")
    assert csv.read_text() == "acme,shard-1\nglobex,shard-2\ninitech,shard-3\n"


@pytest.mark.parametrize(
    ("key", "pool", "match"),
    [
        ("a", "shard-9", "unknown pool 'shard-9'"),
        ("", "shard-1", "empty key"),
        ("a,b", "shard-1", "comma"),
        ("a\nb", "shard-1", "control character"),
        ("a\x00b", "shard-1", "control character"),
        (" a", "shard-1", "surrounding spaces"),
        ("#a", "shard-1", "comment"),
        ("a", "", "empty pool"),
    ],
)
def test_set_refuses_what_the_file_could_not_hold(
    csv: Path, key: str, pool: str, match: str
) -> None:
    d = Directory(str(csv), known_pools=POOLS)
    before = csv.read_text()
    with pytest.raises(ValueError, match=match):
        d.set(key, pool)
    assert csv.read_text() == before


# --- the chooser ----------------------------------------------------------------


def test_chooser_hash() -> None:
    c = ShardChooser(ShardTarget(HashKey("header", "x-user-id"), "hash", pools=("a", "b", "c")))
    assert c.choose(b"user-7") == (hash_pool(b"user-7", ["a", "b", "c"]), "")
    assert c.choose(None) == (None, "no shard key (header x-user-id)")
    assert c.choose(b"") == (None, "no shard key (header x-user-id)")


def test_chooser_range_reasons() -> None:
    target = ShardTarget(
        HashKey("path_segment", "1"), "range", ranges=(ShardRange(100, "a"), ShardRange(200, "b"))
    )
    c = ShardChooser(target)
    key = c.key_of([], b"/accounts/150/orders", b"")
    assert key == b"150"
    assert c.choose(key) == ("b", "")
    assert c.choose(b"99") == ("a", "")
    assert c.choose(b"abc") == (None, "shard key 'abc' is not an integer")
    assert c.choose(b"250") == (None, "shard key '250' is in no range")
    assert c.choose(None) == (None, "no shard key (path_segment 1)")


def test_chooser_directory_reasons(csv: Path) -> None:
    d = Directory(str(csv), known_pools=POOLS)
    c = ShardChooser(ShardTarget(HashKey("client_ip"), "directory", directory=str(csv)), d)
    assert c.choose(b"acme") == ("shard-1", "")
    assert c.choose(b"k9") == (None, "shard key 'k9' is not in the directory")
    assert c.choose(None) == (None, "no shard key (client_ip)")


def test_reasons_quote_keys_safely() -> None:
    c = ShardChooser(ShardTarget(HashKey("header", "x"), "range", ranges=(ShardRange(None, "a"),)))
    _, why = c.choose(b"x\r\nInjected: 1")
    assert "\r" not in why and "\n" not in why and "\\r\\n" in why
    _, why = c.choose(b"y" * 1000)
    assert len(why) < 120 and "yyy...'" in why


@pytest.mark.parametrize(
    ("target", "match"),
    [
        (ShardTarget(HashKey("path"), "hash"), "needs pools"),
        (ShardTarget(HashKey("path"), "directory", directory="x.csv"), "needs a Directory"),
        (ShardTarget(HashKey("path"), "modulo", pools=("a",)), "unknown shard strategy"),
        (ShardTarget(HashKey("path"), "range"), "at least one range"),
    ],
)
def test_chooser_refuses_incomplete_targets(target: ShardTarget, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        ShardChooser(target)


# --- weighted choice (split) ---------------------------------------------------------


def test_weighted_choice_shares() -> None:
    w = WeightedChoice([("v1", 90), ("off", 0), ("v2", 10)])
    rng = random.Random(7)
    counts = Counter(w.pick(rng.random()) for _ in range(50_000))
    assert set(counts) == {"v1", "v2"}
    assert abs(counts["v2"] / 50_000 - 0.10) < 0.01
    assert w.share("v2") == 0.1 and w.share("off") == 0.0


def test_weighted_choice_edges_never_land_on_a_zero_weight() -> None:
    w = WeightedChoice([("off", 0), ("a", 1), ("b", 1), ("off2", 0)])
    assert w.pick(0.0) == "a"
    assert w.pick(0.4999) == "a"
    assert w.pick(0.5) == "b"
    assert w.pick(1.0 - 2**-53) == "b"
    for r in (-0.1, 1.0, float("nan")):
        with pytest.raises(ValueError, match="r must be"):
            w.pick(r)


def test_pick_stable_is_stable_and_shares_like_pick() -> None:
    w = WeightedChoice([("v1", 75), ("v2", 25)])
    keys = [b"client-%d" % i for i in range(20_000)]
    first = [w.pick_stable(k) for k in keys]
    assert first == [WeightedChoice([("v1", 75), ("v2", 25)]).pick_stable(k) for k in keys]
    assert abs(first.count("v2") / len(keys) - 0.25) < 0.02


def test_raising_the_canary_moves_clients_only_onto_it() -> None:
    before = WeightedChoice([("stable", 95), ("canary", 5)])
    after = before.with_weights({"canary": 20})
    assert after.items == (("stable", 95), ("canary", 20))
    assert before.items == (("stable", 95), ("canary", 5))  # unchanged: swapped whole
    keys = [b"client-%d" % i for i in range(10_000)]
    for k in keys:
        if before.pick_stable(k) == "canary":
            assert after.pick_stable(k) == "canary"


@pytest.mark.parametrize(
    ("items", "match"),
    [
        ([], "at least one weight"),
        ([("a", 0), ("b", 0)], "at least one weight"),
        ([("a", -1), ("b", 2)], "weight of 'a'"),
        ([("a", 1.5), ("b", 2)], "weight of 'a'"),
        ([("a", 1), ("a", 2)], "once"),
    ],
)
def test_weighted_choice_validation(items: list[tuple[str, int]], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        WeightedChoice(items)


def test_with_weights_validation() -> None:
    w = WeightedChoice([("a", 1), ("b", 1)])
    with pytest.raises(ValueError, match="unknown names"):
        w.with_weights({"c": 1})
    with pytest.raises(ValueError, match="at least one weight"):
        w.with_weights({"a": 0, "b": 0})
    assert w.with_weights({"a": 0}).pick(0.0) == "b"
