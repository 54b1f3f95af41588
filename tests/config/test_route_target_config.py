"""Config for route targets other than a pool (``shard``, ``read_write``,
``split``, ``geo``) and the top-level ``cookie_key``: what loads, and the
errors, each naming its key path and line like every other loader error."""

from __future__ import annotations

from pathlib import Path

import pytest

from lbproxy.config import ConfigError, HashKey, load_config, parse_config
from lbproxy.config.model import (
    GeoRegion,
    GeoTarget,
    ReadWriteTarget,
    ShardRange,
    ShardTarget,
    SplitTarget,
    Sticky,
)

# The route under test replaces ROUTE on line 5.
BASE = """\
listeners:
  - name: public
    bind: "127.0.0.1:8080"
    routes:
      - ROUTE
pools:
  shard-1: {backends: [{address: "127.0.0.1:9001"}]}
  shard-2: {backends: [{address: "127.0.0.1:9002"}]}
  primary: {backends: [{address: "127.0.0.1:9003"}]}
  replicas: {backends: [{address: "127.0.0.1:9004"}]}
"""
GEO = "geo: {networks: {'10.1.0.0/16': eu, '10.2.0.0/16': us}}\n"
R = "listeners[0].routes[0]"


def errors_of(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    return info.value.errors


def route_errors(route: str, extra: str = "") -> list[str]:
    return errors_of(BASE.replace("ROUTE", route) + extra)


def target_of(route: str, extra: str = "") -> object:
    return parse_config(BASE.replace("ROUTE", route) + extra).listeners[0].routes[0].target


# --- what loads ----------------------------------------------------------------------------


def test_shard_targets_build_the_model(tmp_path: Path) -> None:
    assert target_of(
        "{shard: {key: 'header:X-User-Id', strategy: hash, pools: [shard-1, shard-2]}}"
    ) == ShardTarget(
        key=HashKey("header", "x-user-id"), strategy="hash", pools=("shard-1", "shard-2")
    )
    assert target_of(
        "{shard: {key: 'query:id', strategy: range,"
        " ranges: [{upto: 100, pool: shard-1}, {upto: 200, pool: shard-2}, {pool: primary}]}}"
    ) == ShardTarget(
        key=HashKey("query", "id"),
        strategy="range",
        ranges=(
            ShardRange(100, "shard-1"),
            ShardRange(200, "shard-2"),
            ShardRange(None, "primary"),
        ),
    )
    csv = tmp_path / "shards.csv"
    csv.write_text("# comment\nacme, shard-1\n\nglobex,shard-2\n")
    assert target_of(
        f"{{shard: {{key: 'path_segment:1', strategy: directory, directory: '{csv}'}}}}"
    ) == ShardTarget(key=HashKey("path_segment", "1"), strategy="directory", directory=str(csv))


def test_a_closed_last_range_is_allowed() -> None:
    target = target_of("{shard: {key: path, strategy: range, ranges: [{upto: 10, pool: shard-1}]}}")
    assert isinstance(target, ShardTarget) and target.ranges == (ShardRange(10, "shard-1"),)


@pytest.mark.parametrize(
    ("text", "index"),
    [("path_segment:0", "0"), ("path_segment: 07", "7"), ("path_segment:63", "63")],
)
def test_path_segment_index_is_normalised(text: str, index: str) -> None:
    target = target_of(f"{{shard: {{key: '{text}', strategy: hash, pools: [shard-1]}}}}")
    assert isinstance(target, ShardTarget)
    assert target.key == HashKey("path_segment", index)


def test_path_segment_is_a_pool_hash_key_too() -> None:
    config = parse_config(
        BASE.replace("ROUTE", "{pool: primary}").replace(
            "replicas: {", "replicas: {balance: consistent_hash, hash_key: 'path_segment:2', "
        )
    )
    assert config.pools["replicas"].hash_key == HashKey("path_segment", "2")


def test_read_write_target_and_its_defaults() -> None:
    assert target_of("{read_write: {read: replicas, write: primary}}") == ReadWriteTarget(
        read="replicas", write="primary", stick_after_write=0.0, cookie="lbp_rw"
    )
    assert target_of(
        "{read_write: {read: replicas, write: primary, stick_after_write: 1500ms, cookie: rw}}"
    ) == ReadWriteTarget(read="replicas", write="primary", stick_after_write=1.5, cookie="rw")


def test_split_target_as_a_list_or_a_mapping() -> None:
    assert target_of(
        "{split: [{pool: shard-1, weight: 95}, {pool: shard-2, weight: 5}]}"
    ) == SplitTarget(pools=(("shard-1", 95), ("shard-2", 5)))
    assert target_of(
        "{split: {pools: [{pool: shard-1, weight: 1}, {pool: shard-2, weight: 0}],"
        " sticky: true, cookie: canary}}"
    ) == SplitTarget(pools=(("shard-1", 1), ("shard-2", 0)), sticky=True, cookie="canary")


def test_geo_target() -> None:
    assert target_of(
        "{geo: {regions: {eu: {pool: shard-1, failover: [us]}, us: {pool: shard-2}}, default: us}}",
        GEO,
    ) == GeoTarget(
        regions=(GeoRegion("eu", "shard-1", ("us",)), GeoRegion("us", "shard-2")), default="us"
    )


def test_route_pools_lists_every_pool_a_target_can_use() -> None:
    config = parse_config(
        BASE.replace(
            "ROUTE",
            "{split: [{pool: shard-2, weight: 1}, {pool: shard-1, weight: 1}]}\n"
            "      - {read_write: {read: replicas, write: primary}}\n"
            "      - {shard: {key: path, strategy: range,"
            " ranges: [{upto: 5, pool: shard-1}, {pool: shard-1}]}}",
        )
    )
    assert [r.pools() for r in config.listeners[0].routes] == [
        ("shard-2", "shard-1"),
        ("replicas", "primary"),
        ("shard-1",),
    ]


def test_cookie_key_and_sticky_pools() -> None:
    text = (
        BASE.replace("ROUTE", "{pool: primary}").replace(
            "replicas: {", "replicas: {sticky: {cookie: srv, secure: false, ttl: 10m}, "
        )
        + "cookie_key: 0123456789abcdef\n"
    )
    config = parse_config(text)
    assert config.cookie_key == "0123456789abcdef"
    assert config.pools["replicas"].sticky == Sticky(cookie="srv", ttl=600.0, secure=False)
    assert parse_config(BASE.replace("ROUTE", "{pool: primary}")).cookie_key is None


# --- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("route", "expected"),
    [
        # Unknown pools, in every kind of target, with a hint when one is close.
        (
            "{shard: {key: path, strategy: hash, pools: [shard-1, shard-3]}}",
            f'{R}.shard.pools[1]: no pool named "shard-3" (did you mean "shard-2"?) (line 5)',
        ),
        (
            "{shard: {key: path, strategy: range, ranges: [{upto: 9, pool: shard-1},"
            " {pool: shard3}]}}",
            f'{R}.shard.ranges[1].pool: no pool named "shard3" (did you mean "shard-2"?) (line 5)',
        ),
        (
            "{read_write: {read: replica, write: primary}}",
            f'{R}.read_write.read: no pool named "replica" (did you mean "replicas"?) (line 5)',
        ),
        (
            "{read_write: {read: replicas, write: primry}}",
            f'{R}.read_write.write: no pool named "primry" (did you mean "primary"?) (line 5)',
        ),
        (
            "{split: [{pool: shard-1, weight: 1}, {pool: primery, weight: 1}]}",
            f'{R}.split[1].pool: no pool named "primery" (did you mean "primary"?) (line 5)',
        ),
        (
            "{split: {pools: [{pool: zzz, weight: 1}], sticky: true}}",
            f'{R}.split.pools[0].pool: no pool named "zzz" (line 5)',
        ),
        # Exactly one target.
        (
            "{pool: primary, split: [{pool: primary, weight: 1}]}",
            f"{R}: has 2 targets (pool, split); a route has exactly one (line 5)",
        ),
        (
            "{read_write: {read: replicas, write: primary},"
            " shard: {key: path, strategy: hash, pools: [shard-1]}}",
            f"{R}: has 2 targets (read_write, shard); a route has exactly one (line 5)",
        ),
        # A strategy without its key, or with another strategy's.
        ("{shard: {key: path, strategy: hash}}", f"{R}.shard: strategy hash needs pools (line 5)"),
        (
            "{shard: {key: path, strategy: range}}",
            f"{R}.shard: strategy range needs ranges (line 5)",
        ),
        (
            "{shard: {key: path, strategy: directory}}",
            f"{R}.shard: strategy directory needs directory (line 5)",
        ),
        (
            "{shard: {key: path, strategy: hash, pools: [shard-1], ranges: [{pool: shard-1}]}}",
            f"{R}.shard.ranges: only used with strategy: range (line 5)",
        ),
        (
            "{shard: {key: path, strategy: range, ranges: [{pool: shard-1}],"
            " directory: shards.csv}}",
            f"{R}.shard.directory: only used with strategy: directory (line 5)",
        ),
        (
            "{shard: {key: path, strategy: hsah, pools: [shard-1]}}",
            f'{R}.shard.strategy: must be one of hash, range, directory, got "hsah"'
            ' (did you mean "hash"?) (line 5)',
        ),
        (
            "{shard: {strategy: hash, pools: [shard-1]}}",
            f"{R}.shard.key: required key is missing (line 5)",
        ),
        (
            "{shard: {key: path, pools: [shard-1]}}",
            f"{R}.shard.strategy: required key is missing (line 5)",
        ),
        (
            "{shard: {key: path, strategy: hash, pools: [shard-1], pool: shard-2}}",
            f'{R}.shard.pool: unknown key (did you mean "pools"?) (line 5)',
        ),
        (
            "{shard: {key: path, strategy: hash, pools: []}}",
            f"{R}.shard.pools: must name at least one pool (line 5)",
        ),
        (
            "{shard: {key: path, strategy: hash, pools: [shard-1, shard-1]}}",
            f'{R}.shard.pools[1]: pool "shard-1" is listed twice (line 5)',
        ),
        # Ranges ascend; only the last may leave out upto.
        (
            "{shard: {key: path, strategy: range, ranges: [{upto: 10, pool: shard-1},"
            " {upto: 10, pool: shard-2}, {pool: primary}]}}",
            f"{R}.shard.ranges[1].upto: ranges go up: 10 is not above the previous upto (10)"
            " (line 5)",
        ),
        (
            "{shard: {key: path, strategy: range, ranges: [{upto: 10, pool: shard-1},"
            " {upto: 5, pool: shard-2}]}}",
            f"{R}.shard.ranges[1].upto: ranges go up: 5 is not above the previous upto (10)"
            " (line 5)",
        ),
        (
            "{shard: {key: path, strategy: range, ranges: [{pool: shard-1},"
            " {upto: 5, pool: shard-2}]}}",
            f"{R}.shard.ranges[0]: only the last range may leave out upto (open-ended) (line 5)",
        ),
        (
            "{shard: {key: path, strategy: range, ranges: [{upto: 0, pool: shard-1}]}}",
            f"{R}.shard.ranges[0].upto: must be a positive integer, got 0 (line 5)",
        ),
        (
            "{shard: {key: path, strategy: range, ranges: [{upto: 1e3, pool: shard-1}]}}",
            f'{R}.shard.ranges[0].upto: must be a positive integer, got "1e3" (line 5)',
        ),
        (
            "{shard: {key: path, strategy: range, ranges: []}}",
            f"{R}.shard.ranges: must list at least one range (line 5)",
        ),
        (
            "{shard: {key: path, strategy: directory, directory: /nonexistent/shards.csv}}",
            f'{R}.shard.directory: file "/nonexistent/shards.csv" does not exist (line 5)',
        ),
        # Keys.
        (
            "{shard: {key: 'path_segment:x', strategy: hash, pools: [shard-1]}}",
            f'{R}.shard.key: path_segment needs an index from 0 to 63, got "x" (line 5)',
        ),
        (
            "{shard: {key: 'path_segment:-1', strategy: hash, pools: [shard-1]}}",
            f'{R}.shard.key: path_segment needs an index from 0 to 63, got "-1" (line 5)',
        ),
        (
            "{shard: {key: 'path_segment:64', strategy: hash, pools: [shard-1]}}",
            f'{R}.shard.key: path_segment needs an index from 0 to 63, got "64" (line 5)',
        ),
        (
            "{shard: {key: 'path_segment:', strategy: hash, pools: [shard-1]}}",
            f'{R}.shard.key: path_segment needs an index from 0 to 63, got "" (line 5)',
        ),
        (
            "{shard: {key: body, strategy: hash, pools: [shard-1]}}",
            f"{R}.shard.key: must be client_ip, path, path_segment:N, header:NAME, cookie:NAME"
            ' or query:NAME, got "body" (line 5)',
        ),
        # Splits.
        (
            "{split: [{pool: shard-1, weight: 0}, {pool: shard-2, weight: 0}]}",
            f"{R}.split: at least one weight must be above 0 (line 5)",
        ),
        (
            "{split: {pools: [{pool: shard-1, weight: 0}]}}",
            f"{R}.split.pools: at least one weight must be above 0 (line 5)",
        ),
        (
            "{split: [{pool: shard-1, weight: 1}, {pool: shard-1, weight: 2}]}",
            f'{R}.split[1].pool: pool "shard-1" is listed twice (line 5)',
        ),
        (
            "{split: [{pool: shard-1, weight: -1}]}",
            f"{R}.split[0].weight: must be an integer from 0 to 1000, got -1 (line 5)",
        ),
        ("{split: [{pool: shard-1}]}", f"{R}.split[0].weight: required key is missing (line 5)"),
        ("{split: []}", f"{R}.split: must list at least one pool (line 5)"),
        (
            "{split: {pools: [{pool: shard-1, weight: 1}], cookie: 'a b'}}",
            f'{R}.split.cookie: "a b" is not a valid cookie name (line 5)',
        ),
        # Read/write.
        (
            "{read_write: {read: replicas}}",
            f"{R}.read_write.write: required key is missing (line 5)",
        ),
        (
            "{read_write: {read: replicas, write: primary, stick_after_write: soon}}",
            f"{R}.read_write.stick_after_write: not a duration (like 250ms, 2s, 1m, 1h30m),"
            ' got "soon" (line 5)',
        ),
        (
            "{read_write: {read: replicas, write: primary, stick: 5s}}",
            f'{R}.read_write.stick: unknown key (did you mean "stick_after_write"?) (line 5)',
        ),
        (
            "{read_write: {read: replicas, write: primary, cookie: 'a;b'}}",
            f'{R}.read_write.cookie: "a;b" is not a valid cookie name (line 5)',
        ),
    ],
)
def test_route_target_errors(route: str, expected: str) -> None:
    assert route_errors(route) == [expected]


@pytest.mark.parametrize(
    ("route", "expected"),
    [
        (
            "{geo: {regions: {eu: {pool: shard-1, failover: [us, asai]}, us: {pool: shard-2},"
            " asia: {pool: primary}}, default: us}}",
            f'{R}.geo.regions.eu.failover[1]: no region named "asai" (did you mean "asia"?)'
            " (line 5)",
        ),
        (
            "{geo: {regions: {eu: {pool: shard-1}, us: {pool: shard-2}}, default: uss}}",
            f'{R}.geo.default: no region named "uss" (did you mean "us"?) (line 5)',
        ),
        (
            "{geo: {regions: {eu: {pool: shard-0}, us: {pool: shard-2}}, default: us}}",
            f'{R}.geo.regions.eu.pool: no pool named "shard-0" (did you mean "shard-2"?) (line 5)',
        ),
        (
            "{geo: {regions: {eu: {pool: shard-1, failover: [eu]}}, default: eu}}",
            f"{R}.geo.regions.eu.failover[0]: a region does not fail over to itself (line 5)",
        ),
    ],
)
def test_geo_route_errors(route: str, expected: str) -> None:
    assert route_errors(route, GEO) == [expected]


def test_geo_route_needs_the_top_level_geo_section() -> None:
    route = "{geo: {regions: {eu: {pool: shard-1}, us: {pool: shard-2}}, default: us}}"
    assert route_errors(route) == [
        f"{R}.geo: a geo route needs the top-level geo section (how a client's region is found)"
        " (line 5)"
    ]


@pytest.mark.parametrize("value", ["short", "''", "123456789012345"])
def test_cookie_key_too_short(value: str) -> None:
    assert errors_of(BASE.replace("ROUTE", "{pool: primary}") + f"cookie_key: {value}\n") == [
        "cookie_key: must be at least 16 characters (line 11)"
    ]


def test_errors_point_at_the_line_of_the_nested_key() -> None:
    text = BASE.replace(
        "      - ROUTE",
        "      - match: {path_prefix: /accounts}\n"  # line 5
        "        shard:\n"
        "          key: header:X-User-Id\n"
        "          strategy: range\n"
        "          ranges:\n"
        "            - {upto: 100, pool: shard-1}\n"  # line 10
        "            - {pool: shard-2}\n"  # not last, no upto
        "            - {upto: 500, pool: shard-9}\n",  # line 12: unknown pool
    )
    assert errors_of(text) == [
        f"{R}.shard.ranges[1]: only the last range may leave out upto (open-ended) (line 11)",
        f'{R}.shard.ranges[2].pool: no pool named "shard-9" (did you mean "shard-2"?) (line 12)',
    ]


def test_every_error_of_a_file_is_reported_at_once() -> None:
    text = BASE.replace(
        "ROUTE",
        "{split: [{pool: v1, weight: 1}]}\n"
        "      - {read_write: {read: replicas}}\n"
        "      - {shard: {key: 'path_segment:x', strategy: hash, pools: [shard-1]}}",
    )
    assert errors_of(text) == [
        f'{R}.split[0].pool: no pool named "v1" (line 5)',
        "listeners[0].routes[1].read_write.write: required key is missing (line 6)",
        "listeners[0].routes[2].shard.key: path_segment needs an index from 0 to 63,"
        ' got "x" (line 7)',
    ]


# --- directory files ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (
            "# tenants\nacme,shard-1\n\nglobex shard-2\n",
            "line 4: expected 'key,pool', got 'globex shard-2'",
        ),
        ("acme,shard-1,x\n", "line 1: expected 'key,pool', got 'acme,shard-1,x'"),
        ("acme,\n", "line 1: expected 'key,pool', got 'acme,'"),
        ("acme,shard-1\nglobex,shard-9\n", "line 2: unknown pool 'shard-9'"),
        ("acme,shard-1\nacme,shard-2\n", "line 2: key 'acme' is already mapped on line 1"),
    ],
)
def test_malformed_directory_file_names_the_file_line(
    tmp_path: Path, content: str, problem: str
) -> None:
    csv = tmp_path / "shards.csv"
    csv.write_text(content)
    errors = route_errors(
        f"{{shard: {{key: 'header:X-Tenant', strategy: directory, directory: '{csv}'}}}}"
    )
    assert len(errors) == 1, errors
    assert errors[0].startswith(f"{R}.shard.directory: {csv} {problem}"), errors[0]
    assert errors[0].endswith("(line 5)")


def test_an_empty_directory_file_is_valid(tmp_path: Path) -> None:
    csv = tmp_path / "shards.csv"
    csv.write_text("# no tenants yet\n")
    target = target_of(f"{{shard: {{key: path, strategy: directory, directory: '{csv}'}}}}")
    assert isinstance(target, ShardTarget) and target.directory == str(csv)


def test_check_mode_reports_a_broken_directory_file(tmp_path: Path) -> None:
    """``load_config`` (what ``--check`` and reloads use) reads the file too."""
    csv = tmp_path / "shards.csv"
    csv.write_text("acme,shard-1\nbroken\n")
    cfg = tmp_path / "lb.yaml"
    cfg.write_text(
        BASE.replace(
            "ROUTE",
            f"{{shard: {{key: 'header:X-Tenant', strategy: directory, directory: '{csv}'}}}}",
        )
    )
    with pytest.raises(ConfigError) as info:
        load_config(cfg)
    assert info.value.errors == [
        f"{R}.shard.directory: {csv} line 2: expected 'key,pool', got 'broken' (line 5)"
    ]
