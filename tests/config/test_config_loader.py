from __future__ import annotations

import pickle
import textwrap
from pathlib import Path

import pytest

from lbproxy.config import (
    AccessLog,
    Address,
    Backend,
    Config,
    ConfigError,
    HashKey,
    Keepalive,
    Listener,
    ListenerLimits,
    ListenerTimeouts,
    Pool,
    PoolTimeouts,
    Route,
    RouteMatch,
    load_config,
    parse_config,
)
from lbproxy.config.model import Sticky

# Lines 1-9; tests append to it, so an appended key's line is 9 + its offset.
MINIMAL = """\
listeners:
  - name: public
    bind: "127.0.0.1:8080"
    routes:
      - pool: web
pools:
  web:
    backends:
      - address: "127.0.0.1:9001"
"""


def errors_of(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(textwrap.dedent(text))
    return info.value.errors


def error_of(text: str) -> str:
    errors = errors_of(text)
    assert len(errors) == 1, errors
    return errors[0]


# --- valid configs -----------------------------------------------------------------

FULL = """\
workers: 1
shutdown_timeout: 45s
listeners:
  - name: public
    bind: "0.0.0.0:8080"
    redirect_http_to: null
    hsts: null
    proxy_protocol: false
    trusted_proxies: ["10.0.0.0/8", "192.168.1.7/24", "2001:db8::/32", "127.0.0.1"]
    limits: {max_connections: 500, max_header_bytes: 32KiB, max_headers: 50,
             max_body_bytes: 1MB}
    timeouts: {header: 5s, body: 1m, idle: 250ms}
    routes:
      - match: {host: "API.Example.com", path_prefix: "/users",
                methods: [get, POST], headers: {X-Canary: "1", x-version: 2}}
        pool: users
      - match: {host: "*.example.com"}
        pool: web
      - match: {path_prefix: "/"}
        pool: web
  - name: internal
    bind: "[::1]:9000"
    routes:
      - pool: web
pools:
  users:
    balance: weighted_round_robin
    backends:
      - {address: "10.0.0.1:80", weight: 3, zone: eu-1}
      - {address: "[2001:db8::5]:80", backup: true}
    timeouts: {connect: 500ms, response: 2m}
    keepalive: {max_idle_per_backend: 0, idle_timeout: 90s}
    upstream_tls: null
  web:
    backends:
      - {address: "127.0.0.1:9001"}
access_log: {format: combined, path: /var/log/lbproxy.log}
"""


def test_full_config_builds_the_model() -> None:
    users = Pool(
        name="users",
        balance="weighted_round_robin",
        backends=(
            Backend(Address("10.0.0.1", 80), weight=3, zone="eu-1"),
            Backend(Address("2001:db8::5", 80), backup=True),
        ),
        timeouts=PoolTimeouts(connect=0.5, response=120.0),
        keepalive=Keepalive(max_idle_per_backend=0, idle_timeout=90.0),
    )
    web = Pool(name="web", backends=(Backend(Address("127.0.0.1", 9001)),))
    public = Listener(
        name="public",
        bind=Address("0.0.0.0", 8080),
        trusted_proxies=("10.0.0.0/8", "192.168.1.0/24", "2001:db8::/32", "127.0.0.1/32"),
        limits=ListenerLimits(
            max_connections=500, max_header_bytes=32768, max_headers=50, max_body_bytes=1_000_000
        ),
        timeouts=ListenerTimeouts(header=5.0, body=60.0, idle=0.25),
        routes=(
            Route(
                RouteMatch(
                    host="api.example.com",
                    path_prefix="/users",
                    methods=("GET", "POST"),
                    headers=(("x-canary", "1"), ("x-version", "2")),
                ),
                pool="users",
            ),
            Route(RouteMatch(host="*.example.com"), pool="web"),
            Route(RouteMatch(path_prefix="/"), pool="web"),
        ),
    )
    internal = Listener(
        name="internal", bind=Address("::1", 9000), routes=(Route(RouteMatch(), pool="web"),)
    )
    assert parse_config(FULL, source="lb.yaml") == Config(
        listeners=(public, internal),
        pools={"users": users, "web": web},
        workers=1,
        shutdown_timeout=45.0,
        access_log=AccessLog(format="combined", path="/var/log/lbproxy.log"),
        source="lb.yaml",
    )


def test_minimal_config_takes_the_model_defaults() -> None:
    config = parse_config(MINIMAL)
    assert config == Config(
        listeners=(
            Listener(
                name="public",
                bind=Address("127.0.0.1", 8080),
                routes=(Route(RouteMatch(), pool="web"),),
            ),
        ),
        pools={"web": Pool(name="web", backends=(Backend(Address("127.0.0.1", 9001)),))},
    )
    assert config.source is None
    assert isinstance(config.listeners, tuple)
    assert isinstance(config.listeners[0].routes, tuple)


def test_null_means_default_for_optional_keys() -> None:
    config = parse_config(
        MINIMAL
        + "    balance: null\n    timeouts: ~\n    keepalive:\n"
        + "workers: null\nshutdown_timeout: null\naccess_log: null\nsample_backends: null\n"
    )
    assert config == parse_config(MINIMAL)


def test_listener_sections_may_be_null_or_empty() -> None:
    config = parse_config(
        MINIMAL.replace(
            "    routes:\n",
            "    limits: null\n    timeouts: {}\n    trusted_proxies: null\n    routes:\n",
        ).replace("      - pool: web\n", "      - pool: web\n        match: {}\n")
    )
    assert config == parse_config(MINIMAL)


@pytest.mark.parametrize(("value", "count"), [("auto", None), ("4", 4), ("1", 1)])
def test_workers(value: str, count: int | None) -> None:
    assert parse_config(MINIMAL + f"workers: {value}\n").workers == count


def test_too_many_workers() -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(MINIMAL + "workers: 5000\n")
    assert err.value.errors == [
        f"workers: must be at most 1024, got 5000 (line {MINIMAL.count(chr(10)) + 1})"
    ]


def test_access_log_in_a_missing_directory_is_a_config_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "access.log"
    with pytest.raises(ConfigError) as err:
        parse_config(MINIMAL + f"access_log: {{format: json, path: '{missing}'}}\n")
    (message,) = err.value.errors
    assert message.startswith(f'access_log.path: directory "{missing.parent}" does not exist')


def test_plain_numbers_are_seconds_and_bytes() -> None:
    config = parse_config(
        MINIMAL.replace(
            "    routes:\n",
            "    timeouts: {header: 3, body: 1.5}\n"
            "    limits: {max_header_bytes: 8192, max_body_bytes: 0}\n"
            "    routes:\n",
        )
        + "shutdown_timeout: 0\n"
    )
    listener = config.listeners[0]
    assert listener.timeouts == ListenerTimeouts(header=3.0, body=1.5, idle=60.0)
    assert listener.limits.max_header_bytes == 8192
    assert listener.limits.max_body_bytes == 0
    assert config.shutdown_timeout == 0.0


def test_yaml_1_1_words_stay_as_written_in_string_keys() -> None:
    config = parse_config(
        MINIMAL.replace('"127.0.0.1:9001"', '"127.0.0.1:9001", zone: no')
        .replace("      - address:", "      - {address:")
        .replace("no\n", "no}\n")
        + "access_log: {format: off}\n"
    )
    assert config.access_log.format == "off"
    assert config.pools["web"].backends[0].zone == "no"


def test_match_details_are_normalised() -> None:
    config = parse_config(
        MINIMAL.replace(
            "      - pool: web\n",
            "      - pool: web\n"
            "        match:\n"
            '          host: "*"\n'
            "          methods: [get, GET, Post, PURGE]\n"
            '          headers: {X-Debug: "", X-N: 010}\n',
        )
    )
    match = config.listeners[0].routes[0].match
    assert match.host is None
    assert match.methods == ("GET", "POST", "PURGE")
    assert match.headers == (("x-debug", ""), ("x-n", "010"))


def test_ipv6_literal_host_in_match() -> None:
    config = parse_config(
        MINIMAL.replace("      - pool: web\n", '      - {pool: web, match: {host: "[::1]"}}\n')
    )
    assert config.listeners[0].routes[0].match.host == "[::1]"


# --- sample backends ---------------------------------------------------------------


def test_sample_backends_create_the_samples_pool() -> None:
    config = parse_config(
        """\
sample_backends: 3
listeners:
  - name: try
    bind: "127.0.0.1:8080"
    routes: [{pool: samples}]
"""
    )
    assert config.sample_backends == 3
    assert config.pools == {
        "samples": Pool(
            name="samples",
            balance="round_robin",
            backends=(
                Backend(Address("127.0.0.1", 9101)),
                Backend(Address("127.0.0.1", 9102)),
                Backend(Address("127.0.0.1", 9103)),
            ),
        )
    }


def test_sample_backends_join_user_pools() -> None:
    config = parse_config(MINIMAL + "sample_backends: 1\n")
    assert list(config.pools) == ["web", "samples"]


def test_sample_backends_zero_creates_no_pool() -> None:
    assert "samples" not in parse_config(MINIMAL + "sample_backends: 0\n").pools
    assert error_of(MINIMAL.replace("pool: web", "pool: samples") + "sample_backends: 0\n") == (
        'listeners[0].routes[0].pool: no pool named "samples" (line 5)'
    )


def test_samples_pool_name_is_reserved_when_sample_backends_is_set() -> None:
    assert error_of(
        MINIMAL + "  samples:\n    backends: [{address: 'a:1'}]\nsample_backends: 2\n"
    ) == (
        'pools.samples: the name "samples" is taken by the pool that sample_backends creates'
        " (line 10)"
    )
    assert (
        "samples" in parse_config(MINIMAL + "  samples:\n    backends: [{address: 'a:1'}]\n").pools
    )


def test_sample_backends_range_and_no_cascade() -> None:
    text = MINIMAL.replace("pool: web", "pool: samples") + "sample_backends: 51\n"
    assert error_of(text) == "sample_backends: must be an integer from 0 to 50, got 51 (line 10)"


def test_listener_port_clashing_with_sample_backends() -> None:
    text = MINIMAL.replace("127.0.0.1:8080", "0.0.0.0:9102") + "sample_backends: 2\n"
    assert error_of(text) == (
        "listeners[0].bind: port 9102 is taken by the sample backends (127.0.0.1:9101-9102)"
        " (line 3)"
    )
    parse_config(MINIMAL.replace("127.0.0.1:8080", "10.1.2.3:9102") + "sample_backends: 2\n")


# --- error format --------------------------------------------------------------------


def test_bad_backend_address_message() -> None:
    text = """\
workers: 1
listeners:
  - name: public
    bind: "127.0.0.1:8080"
    routes:
      - pool: web
pools:
  api:
    backends:
      - address: "127.0.0.1:9001"
  web:
    backends:
      - address: "127.0.0.1:9002"
      - address: "localhost"
"""
    assert error_of(text) == (
        'pools.web.backends[1].address: not host:port, got "localhost" (line 14)'
    )


def test_unknown_key_with_did_you_mean() -> None:
    text = """\
listeners:
  - name: public
    bind: "127.0.0.1:8080"

    rotes:
      - pool: web
pools:
  web:
    backends: [{address: "127.0.0.1:9001"}]
"""
    # The typo's hint already covers "routes" being missing: one error, not two.
    assert errors_of(text) == ['listeners[0].rotes: unknown key (did you mean "routes"?) (line 5)']


def test_unknown_key_without_a_close_match_lists_the_known_ones() -> None:
    assert error_of(MINIMAL + "      zzz: 1\n".replace("      ", "    ")) == (
        "pools.web.zzz: unknown key (known keys: balance, backends, hash_key,"
        " hash_balance_factor, ewma_half_life, slow_start, health_check, outlier_detection,"
        " circuit_breaker, panic_threshold, limits, retries, timeouts, keepalive, upstream_tls,"
            " sticky)"
        " (line 10)"
    )


def test_did_you_mean_ignores_case() -> None:
    assert error_of(MINIMAL + "Workers: 2\n") == (
        'Workers: unknown key (did you mean "workers"?) (line 10)'
    )


def test_several_errors_are_reported_at_once_in_file_order() -> None:
    text = """\
workers: 0
listeners:
  - name: public
    bind: "localhost"
    routes:
      - match: {path_prefix: "users", methods: []}
        pool: wbe
      - pool: web
        split: [{pool: web, weight: 1}]
  - name: public
    bind: "[::1]:80"
    routes: [{}]
pools:
  web:
    balance: least_connection
    health_check: {path: healthz}
    backends:
      - {address: "127.0.0.1:9001", weight: -1}
      - {address: "127.0.0.1:9001", weight: "3"}
      - 127.0.0.1:9004
    keepalive: {idle_timeout: 5 sec}
geo: {networks: []}
access_log: {format: xml}
"""
    assert errors_of(text) == [
        "workers: must be a positive integer, got 0 (line 1)",
        'listeners[0].bind: not host:port, got "localhost" (line 4)',
        'listeners[0].routes[0].match.path_prefix: must start with "/", got "users" (line 6)',
        "listeners[0].routes[0].match.methods: must list at least one method"
        " (leave methods out to match any) (line 6)",
        'listeners[0].routes[0].pool: no pool named "wbe" (did you mean "web"?) (line 7)',
        "listeners[0].routes[1]: has 2 targets (pool, split); a route has exactly one (line 8)",
        'listeners[1].name: listener name "public" is already used by listeners[0] (line 10)',
        'listeners[1].routes[0]: has no target (add "pool: NAME") (line 12)',
        "pools.web.balance: must be one of round_robin, weighted_round_robin, least_connections,"
        ' power_of_two, peak_ewma, consistent_hash, random, first, got "least_connection"'
        ' (did you mean "least_connections"?) (line 15)',
        'pools.web.health_check.path: must start with "/", got "healthz" (line 16)',
        "pools.web.backends[0].weight: must be an integer from 0 to 1000, got -1 (line 18)",
        'pools.web.backends[1].address: "127.0.0.1:9001" is already used by'
        " pools.web.backends[0] (line 19)",
        'pools.web.backends[1].weight: must be an integer from 0 to 1000, got "3" (line 19)',
        'pools.web.backends[2]: must be a mapping, got "127.0.0.1:9004"'
        ' (write {address: "127.0.0.1:9004"}) (line 20)',
        "pools.web.keepalive.idle_timeout: not a duration (like 250ms, 2s, 1m, 1h30m),"
        ' got "5 sec" (line 21)',
        "geo.networks: must be a mapping, got a list (line 22)",
        'access_log.format: must be one of json, combined, off, got "xml" (line 23)',
    ]


def test_config_error_str_is_one_error_per_line() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(MINIMAL + "workers: 0\nshutdown_timeout: soon\n")
    assert str(info.value) == (
        "workers: must be a positive integer, got 0 (line 10)\n"
        "shutdown_timeout: not a duration (like 250ms, 2s, 1m, 1h30m), got"
        ' "soon" (line 11)'
    )


def test_config_error_survives_pickling() -> None:
    error = ConfigError(["a: bad (line 1)", "b: worse (line 2)"])
    copy = pickle.loads(pickle.dumps(error))
    assert copy.errors == error.errors
    assert str(copy) == str(error)


# --- YAML-level problems ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("listeners:\n  - name: a\n    bind: [\n", 4),
        ("workers: 1\nlisteners: a: b\n", 2),
        ("workers: 1\n---\nworkers: 2\n", 2),
        ("workers: 'unterminated\n", 2),
        ("workers: *nowhere\n", 1),
        ("workers: 1\nshutdown_timeout: \x07\n", 2),
    ],
)
def test_invalid_yaml_names_the_line(text: str, line: int) -> None:
    message = error_of(text)
    assert message.startswith("invalid YAML: ")
    assert message.endswith(f" (line {line})")


def test_tab_indentation_gets_a_hint() -> None:
    message = error_of("listeners:\n\t- name: a\n")
    # The parser's own words differ between libyaml and pure-Python PyYAML.
    assert message.startswith("invalid YAML: found character")
    assert message.endswith("(YAML does not allow tabs for indentation) (line 2)")


@pytest.mark.parametrize("text", ["", "# only a comment\n", "---\n"])
def test_empty_file(text: str) -> None:
    assert error_of(text) == 'config: the file is empty; it needs at least "listeners"'


def test_top_level_must_be_a_mapping() -> None:
    assert error_of("- listeners\n") == "config: must be a mapping, got a list (line 1)"


def test_duplicate_keys_are_an_error() -> None:
    assert error_of(
        MINIMAL.replace("    routes:\n", '    bind: "127.0.0.1:8081"\n    routes:\n')
    ) == ("listeners[0].bind: duplicate key (first at line 3) (line 4)")


def test_keys_must_be_names() -> None:
    assert error_of(MINIMAL + "[a, b]: 1\n") == "config: keys must be names, got a list (line 10)"
    assert error_of(MINIMAL + "~: 1\n") == "config: keys must be names, got null (line 10)"


def test_merge_keys_and_x_extensions() -> None:
    text = """\
x-backend: &backend {weight: 2, zone: eu-1}
listeners:
  - name: public
    bind: "127.0.0.1:8080"
    routes: [{pool: web}]
pools:
  web:
    backends:
      - {<<: *backend, address: "127.0.0.1:9001"}
      - {<<: *backend, address: "127.0.0.1:9002", weight: 5}
"""
    backends = parse_config(text).pools["web"].backends
    assert backends == (
        Backend(Address("127.0.0.1", 9001), weight=2, zone="eu-1"),
        Backend(Address("127.0.0.1", 9002), weight=5, zone="eu-1"),
    )


def test_errors_inside_a_merged_mapping_point_at_the_anchor() -> None:
    text = """\
x-defaults: &defaults
  weigth: 2
listeners:
  - name: public
    bind: "127.0.0.1:8080"
    routes: [{pool: web}]
pools:
  web:
    backends:
      - {<<: *defaults, address: "127.0.0.1:9001"}
"""
    assert error_of(text) == (
        'pools.web.backends[0].weigth: unknown key (did you mean "weight"?) (line 2)'
    )


def test_merge_of_a_scalar_is_an_error() -> None:
    text = MINIMAL.replace('      - address: "127.0.0.1:9001"', '      - {<<: 5, address: "a:1"}')
    assert error_of(text) == (
        'pools.web.backends[0]["<<"]: must be a mapping or a list of mappings to merge, got 5'
        " (line 9)"
    )


def test_self_merging_anchor_does_not_loop() -> None:
    text = MINIMAL.replace(
        '      - address: "127.0.0.1:9001"', '      - &b {<<: *b, address: "127.0.0.1:9001"}'
    )
    assert parse_config(text) == parse_config(MINIMAL)


# --- required keys and types ---------------------------------------------------------


def test_listeners_are_required() -> None:
    assert error_of("pools: {}\n") == "listeners: required key is missing (line 1)"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("listeners: []\n", "listeners: must list at least one listener (line 1)"),
        ("listeners: {}\n", "listeners: must be a list, got a mapping (line 1)"),
        ("listeners:\n", "listeners: required, got null (line 1)"),
        ("listeners: [public]\n", 'listeners[0]: must be a mapping, got "public" (line 1)'),
    ],
)
def test_listeners_shape(text: str, expected: str) -> None:
    assert error_of(text) == expected


def test_listener_required_keys() -> None:
    assert errors_of("listeners:\n  - tls: null\n") == [
        "listeners[0].name: required key is missing (line 2)",
        "listeners[0].bind: required key is missing (line 2)",
        "listeners[0].routes: required key is missing (line 2)",
    ]


def test_required_key_set_to_null() -> None:
    assert error_of(MINIMAL.replace('      - address: "127.0.0.1:9001"', "      - address:")) == (
        "pools.web.backends[0].address: required, got null (line 9)"
    )


@pytest.mark.parametrize(
    ("replace", "by", "expected"),
    [
        (
            "  - name: public",
            "  - name: [public]",
            "listeners[0].name: must be a string, got a list (line 2)",
        ),
        (
            "  - name: public",
            "  - name: pub lic",
            'listeners[0].name: must be 1-64 letters, digits, "_", "-" or ".", starting with a'
            ' letter or digit, got "pub lic" (line 2)',
        ),
        (
            "    routes:\n      - pool: web",
            "    routes: {pool: web}",
            "listeners[0].routes: must be a list, got a mapping (line 4)",
        ),
        (
            "    routes:\n      - pool: web",
            "    routes: []",
            "listeners[0].routes: must list at least one route (line 4)",
        ),
        (
            "      - pool: web",
            "      - pool: {name: web}",
            "listeners[0].routes[0].pool: must be a string, got a mapping (line 5)",
        ),
        (
            '    backends:\n      - address: "127.0.0.1:9001"',
            "    backends: []",
            "pools.web.backends: must list at least one backend (line 8)",
        ),
        (
            '    backends:\n      - address: "127.0.0.1:9001"',
            "    backends: 3",
            "pools.web.backends: must be a list, got 3 (line 8)",
        ),
        (
            '  web:\n    backends:\n      - address: "127.0.0.1:9001"',
            "  web:",
            "pools.web: must be a mapping, got null (line 7)",
        ),
    ],
)
def test_wrong_shapes(replace: str, by: str, expected: str) -> None:
    assert replace in MINIMAL
    assert error_of(MINIMAL.replace(replace, by)) == expected


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("workers: two", 'workers: must be a positive integer or auto, got "two" (line 10)'),
        ("workers: '3'", 'workers: must be a positive integer or auto, got "3" (line 10)'),
        ("workers: -1", "workers: must be a positive integer, got -1 (line 10)"),
        ("workers: 1.5", "workers: must be a positive integer or auto, got 1.5 (line 10)"),
        (
            "sample_backends: yes",
            "sample_backends: must be an integer from 0 to 50, got yes (a boolean) (line 10)",
        ),
        (
            "sample_backends: -1",
            "sample_backends: must be an integer from 0 to 50, got -1 (line 10)",
        ),
        (
            "shutdown_timeout: -5s",
            'shutdown_timeout: a duration cannot be negative, got "-5s" (line 10)',
        ),
        (
            "shutdown_timeout: [1]",
            "shutdown_timeout: must be a duration like 250ms, 2s or 1m, got a list (line 10)",
        ),
        (
            "shutdown_timeout: .inf",
            "shutdown_timeout: not a duration (like 250ms, 2s, 1m, 1h30m), got .inf (line 10)",
        ),
        (
            "shutdown_timeout: true",
            "shutdown_timeout: must be a duration like 250ms, 2s or 1m, got true (a boolean)"
            " (line 10)",
        ),
        ("access_log: [json]", "access_log: must be a mapping, got a list (line 10)"),
        (
            "access_log: {format: JSN}",
            'access_log.format: must be one of json, combined, off, got "JSN" (did you mean'
            ' "json"?) (line 10)',
        ),
        ("access_log: {path: ''}", "access_log.path: must not be empty (line 10)"),
        (
            "access_log: {path: /x, level: 1}",
            "access_log.level: unknown key (known keys: format, path) (line 10)",
        ),
        ("pools: [web]", "pools: must be a mapping, got a list (line 6)"),
        (
            "cluster: {redis: 'redis://x'}",
            "cluster: not supported yet in this version of lbproxy (line 10)",
        ),
        ("workers: !!int many", "workers: must be a positive integer, got many (line 10)"),
        (
            "workers: !custom 3",
            'workers: must be a positive integer or auto, got "3" tagged !custom (line 10)',
        ),
        (
            "workers: 2024-01-01",
            "workers: must be a positive integer or auto, got 2024-01-01 (a date) (line 10)",
        ),
    ],
)
def test_top_level_value_errors(line: str, expected: str) -> None:
    if line.startswith("pools:"):
        text = MINIMAL.split("pools:")[0] + line + "\n"
        assert expected in errors_of(text)
        return
    assert error_of(MINIMAL + line + "\n") == expected


def test_long_values_are_shortened_in_messages() -> None:
    message = error_of(MINIMAL + f"workers: {'x' * 200}\n")
    assert f'"{"x" * 77}..."' in message


# --- listener keys ---------------------------------------------------------------------


def listener_error(extra: str) -> str:
    """The one error from adding ``extra`` (listener-level lines) at line 4."""
    return error_of(MINIMAL.replace("    routes:\n", extra + "    routes:\n"))


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ('    bind: "127.0.0.1"\n', "listeners[0].bind: duplicate key (first at line 3) (line 4)"),
        (
            "    limits: {max_connections: 0}\n",
            "listeners[0].limits.max_connections: must be a positive integer, got 0 (line 4)",
        ),
        (
            "    limits: {max_headers: 1.5}\n",
            "listeners[0].limits.max_headers: must be a positive integer, got 1.5 (line 4)",
        ),
        (
            "    limits: {max_header_bytes: 0}\n",
            "listeners[0].limits.max_header_bytes: must be more than zero bytes, got 0 (line 4)",
        ),
        (
            "    limits: {max_header_bytes: 16 kilobytes}\n",
            "listeners[0].limits.max_header_bytes: not a size (like 512, 16KiB, 10MiB, 1GB), got"
            ' "16 kilobytes" (line 4)',
        ),
        (
            "    limits: {max_body_bytes: 0.3KiB}\n",
            'listeners[0].limits.max_body_bytes: not a whole number of bytes, got "0.3KiB" (line'
            " 4)",
        ),
        (
            "    limits: {max_body_bytes: 1.5}\n",
            "listeners[0].limits.max_body_bytes: must be a size like 512, 16KiB or 10MiB, got 1.5"
            " (line 4)",
        ),
        (
            "    limits: {max_conections: 5}\n",
            'listeners[0].limits.max_conections: unknown key (did you mean "max_connections"?)'
            " (line 4)",
        ),
        (
            "    timeouts: {idle: 0s}\n",
            'listeners[0].timeouts.idle: must be longer than zero, got "0s" (line 4)',
        ),
        (
            "    timeouts: {header: 0}\n",
            "listeners[0].timeouts.header: must be longer than zero, got 0 (line 4)",
        ),
        ("    timeouts: 5s\n", 'listeners[0].timeouts: must be a mapping, got "5s" (line 4)'),
        (
            "    trusted_proxies: 10.0.0.0/8\n",
            'listeners[0].trusted_proxies: must be a list, got "10.0.0.0/8" (line 4)',
        ),
        (
            "    trusted_proxies: [10.0.0.0/8, 10.0.0.0/33]\n",
            "listeners[0].trusted_proxies[1]: not a CIDR (like 10.0.0.0/8 or 2001:db8::/32), got"
            ' "10.0.0.0/33" (line 4)',
        ),
        (
            "    tls: {certificates: []}\n",
            "listeners[0].tls.certificates: must list at least one (line 4)",
        ),
        (
            "    tls: false\n",
            "listeners[0].tls: must be a mapping, got false (a boolean) (line 4)",
        ),
        (
            "    tls: {certificates: [{cert: /etc/hostname, key: /nonexistent.key}]}\n",
            'listeners[0].tls.certificates[0].key: file "/nonexistent.key" does not exist'
            " (line 4)",
        ),
        (
            "    tls: {certificates: [{cert: /etc/hostname, key: /etc/hostname}], alpn: [h2]}\n",
            "listeners[0].tls.alpn[0]: lbproxy speaks http/1.1 (and http/1.0) only (line 4)",
        ),
        (
            "    tls: {certificates: [{cert: /etc/hostname, key: /etc/hostname}],"
            " client_subject_header: X-Subject}\n",
            "listeners[0].tls.client_subject_header: needs client_ca (there is no verified"
            " client certificate without it) (line 4)",
        ),
        (
            "    tls: {certificates: [{cert: /etc/hostname, key: /etc/hostname}],"
            " min_version: '1.1'}\n",
            'listeners[0].tls.min_version: must be one of 1.2, 1.3, got "1.1" (did you mean "1.3"?)'
            " (line 4)",
        ),
        (
            '    redirect_http_to: "http://{host}:8443"\n',
            'listeners[0].redirect_http_to: must be an https:// URL such as "https://{host}:8443"'
            " (line 4)",
        ),
        (
            '    redirect_http_to: "https://{hots}"\n',
            "listeners[0].redirect_http_to: may use only {host} and {path} as placeholders"
            " (line 4)",
        ),
        (
            '    hsts: "max-age=31536000"\n',
            "listeners[0].hsts: only on a listener with tls (line 4)",
        ),
        (
            "    proxy_protocol: 1\n",
            "listeners[0].proxy_protocol: must be true or false, got 1 (line 4)",
        ),
    ],
)
def test_listener_errors(extra: str, expected: str) -> None:
    assert listener_error(extra) == expected


def test_unsupported_listener_keys_set_to_their_default_are_accepted() -> None:
    extra = "    tls: null\n    redirect_http_to:\n    hsts: ~\n    proxy_protocol: false\n"
    config = parse_config(MINIMAL.replace("    routes:\n", extra + "    routes:\n"))
    assert config == parse_config(MINIMAL)


def test_trusted_proxies_are_normalised_and_deduplicated() -> None:
    extra = "    trusted_proxies: [10.1.2.3/8, 10.0.0.0/8, '::1', 192.168.0.1]\n"
    config = parse_config(MINIMAL.replace("    routes:\n", extra + "    routes:\n"))
    assert config.listeners[0].trusted_proxies == ("10.0.0.0/8", "::1/128", "192.168.0.1/32")


SECOND_LISTENER = """\
  - name: {name}
    bind: "{bind}"
    routes: [{{pool: web}}]
"""


def test_listener_binds_must_be_unique() -> None:
    text = MINIMAL.replace(
        "pools:", SECOND_LISTENER.format(name="other", bind="127.0.0.1:8080") + "pools:"
    )
    assert error_of(text) == (
        'listeners[1].bind: "127.0.0.1:8080" is already used by listeners[0] (line 7)'
    )


def test_ipv6_binds_compare_in_canonical_form() -> None:
    first = MINIMAL.replace("127.0.0.1:8080", "[::1]:8080")
    text = first.replace(
        "pools:", SECOND_LISTENER.format(name="b", bind="[0:0::1]:8080") + "pools:"
    )
    assert (
        error_of(text) == 'listeners[1].bind: "[::1]:8080" is already used by listeners[0] (line 7)'
    )


@pytest.mark.parametrize(
    ("bind", "expected"),
    [
        ("localhost", 'not host:port, got "localhost"'),
        ("127.0.0.1:70000", 'port must be from 0 to 65535, got "127.0.0.1:70000"'),
        (
            "::1:8080",
            'not host:port (write IPv6 addresses in brackets, like [::1]:8080), got "::1:8080"',
        ),
        ("[::g]:80", 'not a valid IPv6 address, got "[::g]:80"'),
        ("999.0.0.1:80", 'not a valid IPv4 address, got "999.0.0.1:80"'),
    ],
)
def test_bad_binds(bind: str, expected: str) -> None:
    assert (
        error_of(MINIMAL.replace("127.0.0.1:8080", bind))
        == f"listeners[0].bind: {expected} (line 3)"
    )


def test_bind_port_zero_lets_the_os_choose() -> None:
    text = MINIMAL.replace("127.0.0.1:8080", "127.0.0.1:0").replace(
        "pools:", SECOND_LISTENER.format(name="other", bind="127.0.0.1:0") + "pools:"
    )
    assert [listener.bind for listener in parse_config(text).listeners] == [
        Address("127.0.0.1", 0),
        Address("127.0.0.1", 0),
    ]


def test_backend_port_zero_is_refused() -> None:
    assert error_of(MINIMAL.replace("127.0.0.1:9001", "127.0.0.1:0")) == (
        'pools.web.backends[0].address: port must be from 1 to 65535, got "127.0.0.1:0" (line 9)'
    )


def test_bind_given_as_a_number() -> None:
    assert error_of(MINIMAL.replace('"127.0.0.1:8080"', "8080")) == (
        "listeners[0].bind: not host:port, got 8080 (line 3)"
    )


# --- routes ----------------------------------------------------------------------------


def route_errors(route: str) -> list[str]:
    """Errors from replacing the route (line 5) with ``route`` lines."""
    return errors_of(MINIMAL.replace("      - pool: web\n", route))


@pytest.mark.parametrize(
    ("route", "expected"),
    [
        (
            "      - match: {path_prefix: /}\n",
            'listeners[0].routes[0]: has no target (add "pool: NAME") (line 5)',
        ),
        (
            "      - {geo: {regions: {}, default: eu}}\n",
            "listeners[0].routes[0].geo.regions: must name at least one region (line 5)",
        ),
        (
            "      - {shard: {key: path}}\n",
            "listeners[0].routes[0].shard.strategy: required key is missing (line 5)",
        ),
        (
            "      - {read_write: {read: a, write: web}}\n",
            'listeners[0].routes[0].read_write.read: no pool named "a" (line 5)',
        ),
        (
            "      - {split: [{pool: web, weight: 0}]}\n",
            "listeners[0].routes[0].split: at least one weight must be above 0 (line 5)",
        ),
        (
            "      - {pool: webb}\n",
            'listeners[0].routes[0].pool: no pool named "webb" (did you mean "web"?) (line 5)',
        ),
        ("      - {pool: zzz}\n", 'listeners[0].routes[0].pool: no pool named "zzz" (line 5)'),
        (
            "      - {pool: web, match: [/]}\n",
            "listeners[0].routes[0].match: must be a mapping, got a list (line 5)",
        ),
        (
            "      - {pool: web, match: {path: /}}\n",
            'listeners[0].routes[0].match.path: unknown key (did you mean "path_prefix"?) (line 5)',
        ),
        (
            "      - {pool: web, match: {host: 'api.example.com:8080'}}\n",
            'listeners[0].routes[0].match.host: must be a host name like "api.example.com" or'
            ' "*.example.com" (without a port), got "api.example.com:8080" (line 5)',
        ),
        (
            "      - {pool: web, match: {host: 'api.*.com'}}\n",
            'listeners[0].routes[0].match.host: must be a host name like "api.example.com" or'
            ' "*.example.com", got "api.*.com" (line 5)',
        ),
        (
            "      - {pool: web, match: {host: '*.[::1]'}}\n",
            'listeners[0].routes[0].match.host: must be a host name like "api.example.com" or'
            ' "*.example.com", got "*.[::1]" (line 5)',
        ),
        (
            "      - {pool: web, match: {path_prefix: '/a b'}}\n",
            'listeners[0].routes[0].match.path_prefix: must be a URL path without spaces, "?" or'
            ' "#", got "/a b" (line 5)',
        ),
        (
            "      - {pool: web, match: {path_prefix: '/a?b=1'}}\n",
            'listeners[0].routes[0].match.path_prefix: must be a URL path without spaces, "?" or'
            ' "#", got "/a?b=1" (line 5)',
        ),
        (
            "      - {pool: web, match: {methods: GET}}\n",
            'listeners[0].routes[0].match.methods: must be a list, got "GET" (line 5)',
        ),
        (
            "      - {pool: web, match: {methods: [GET, 'GET POST']}}\n",
            'listeners[0].routes[0].match.methods[1]: not an HTTP method, got "GET POST" (line 5)',
        ),
        (
            "      - {pool: web, match: {headers: [x-a]}}\n",
            "listeners[0].routes[0].match.headers: must be a mapping, got a list (line 5)",
        ),
        (
            "      - {pool: web, match: {headers: {'x a': '1'}}}\n",
            'listeners[0].routes[0].match.headers["x a"]: not an HTTP header name, got "x a"'
            " (line 5)",
        ),
        (
            "      - {pool: web, match: {headers: {x-a: }}}\n",
            "listeners[0].routes[0].match.headers.x-a: must be a string, got null (line 5)",
        ),
        (
            "      - {pool: web, match: {headers: {x-a: [1]}}}\n",
            "listeners[0].routes[0].match.headers.x-a: must be a string, got a list (line 5)",
        ),
        ("      - web\n", 'listeners[0].routes[0]: must be a mapping, got "web" (line 5)'),
    ],
)
def test_route_errors(route: str, expected: str) -> None:
    assert route_errors(route) == [expected]


def test_route_with_two_targets() -> None:
    assert route_errors("      - {pool: web, shard: {key: path}}\n") == [
        "listeners[0].routes[0]: has 2 targets (pool, shard); a route has exactly one (line 5)",
    ]


def test_null_route_target_counts_as_absent() -> None:
    config = parse_config(
        MINIMAL.replace("      - pool: web\n", "      - {pool: web, split: null}\n")
    )
    assert config == parse_config(MINIMAL)


def test_header_names_are_compared_without_case() -> None:
    route = (
        "      - pool: web\n"
        "        match:\n"
        "          headers:\n"
        "            X-A: '1'\n"
        "            x-a: '2'\n"
    )
    assert route_errors(route) == [
        "listeners[0].routes[0].match.headers.x-a: duplicate header"
        " (first at line 8; header names ignore case) (line 9)"
    ]


# --- pools -----------------------------------------------------------------------------


def pool_errors(extra: str) -> list[str]:
    """Errors from adding pool-level lines for "web" at line 10."""
    return errors_of(MINIMAL + extra)


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (
            "    balance: rr\n",
            "pools.web.balance: must be one of round_robin, weighted_round_robin,"
            " least_connections, power_of_two, peak_ewma, consistent_hash, random, first,"
            ' got "rr" (line 10)',
        ),
        (
            "    balance: round_robbin\n",
            "pools.web.balance: must be one of round_robin, weighted_round_robin,"
            " least_connections, power_of_two, peak_ewma, consistent_hash, random, first,"
            ' got "round_robbin" (did you mean "round_robin"?) (line 10)',
        ),
        (
            "    balance: least_conections\n",
            "pools.web.balance: must be one of round_robin, weighted_round_robin,"
            " least_connections, power_of_two, peak_ewma, consistent_hash, random, first,"
            ' got "least_conections" (did you mean "least_connections"?) (line 10)',
        ),
        (
            "    timeouts: {connect: 0ms}\n",
            'pools.web.timeouts.connect: must be longer than zero, got "0ms" (line 10)',
        ),
        (
            "    timeouts: {read: 1s}\n",
            "pools.web.timeouts.read: unknown key (known keys: connect, response) (line 10)",
        ),
        (
            "    keepalive: {max_idle_per_backend: -1}\n",
            "pools.web.keepalive.max_idle_per_backend: must be an integer >= 0, got -1 (line 10)",
        ),
        (
            "    keepalive: {idle_timeout: 0}\n",
            "pools.web.keepalive.idle_timeout: must be longer than zero, got 0 (line 10)",
        ),
        (
            "      - {address: '127.0.0.1:9001'}\n",
            'pools.web.backends[1].address: "127.0.0.1:9001" is already used by'
            " pools.web.backends[0] (line 10)",
        ),
        (
            "      - {address: '127.0.0.1:9002', weight: 1001}\n",
            "pools.web.backends[1].weight: must be an integer from 0 to 1000, got 1001 (line 10)",
        ),
        (
            "      - {address: '127.0.0.1:9002', weight: 1.5}\n",
            "pools.web.backends[1].weight: must be an integer from 0 to 1000, got 1.5 (line 10)",
        ),
        (
            "      - {address: '127.0.0.1:9002', backup: 'yes'}\n",
            'pools.web.backends[1].backup: must be true or false, got "yes" (line 10)',
        ),
        (
            "      - {address: '127.0.0.1:9002', zone: ''}\n",
            "pools.web.backends[1].zone: must not be empty (line 10)",
        ),
        (
            "      - {address: '127.0.0.1:9002', wieght: 2}\n",
            'pools.web.backends[1].wieght: unknown key (did you mean "weight"?) (line 10)',
        ),
        (
            "      - {weight: 2}\n",
            "pools.web.backends[1].address: required key is missing (line 10)",
        ),
        (
            "      - [127.0.0.1:9002]\n",
            "pools.web.backends[1]: must be a mapping, got a list (line 10)",
        ),
    ],
)
def test_pool_errors(extra: str, expected: str) -> None:
    assert pool_errors(extra) == [expected]


@pytest.mark.parametrize(
    "algorithm",
    [
        "round_robin",
        "weighted_round_robin",
        "least_connections",
        "power_of_two",
        "peak_ewma",
        "consistent_hash",
        "random",
        "first",
    ],
)
def test_every_balance_algorithm_is_accepted(algorithm: str) -> None:
    config = parse_config(MINIMAL + f"    balance: {algorithm}\n")
    assert config.pools["web"].balance == algorithm


def test_balancing_settings_are_read() -> None:
    config = parse_config(
        MINIMAL
        + "    balance: consistent_hash\n"
        + "    hash_key: header:X-User-Id\n"
        + "    hash_balance_factor: 1.25\n"
        + "    slow_start: 30s\n"
    )
    pool = config.pools["web"]
    assert pool.hash_key == HashKey("header", "x-user-id")
    assert str(pool.hash_key) == "header:x-user-id"
    assert pool.hash_balance_factor == 1.25
    assert pool.slow_start == 30.0
    ewma = parse_config(MINIMAL + "    balance: peak_ewma\n    ewma_half_life: 2s\n")
    assert ewma.pools["web"].ewma_half_life == 2.0
    defaults = parse_config(MINIMAL).pools["web"]
    assert (defaults.hash_key, defaults.hash_balance_factor, defaults.slow_start) == (
        HashKey("client_ip"),
        0.0,
        0.0,
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("client_ip", HashKey("client_ip")),
        ("path", HashKey("path")),
        ("header:X-Tenant", HashKey("header", "x-tenant")),
        ("cookie:SESSION", HashKey("cookie", "SESSION")),
        ("query:user", HashKey("query", "user")),
    ],
)
def test_hash_key_sources(text: str, expected: HashKey) -> None:
    config = parse_config(MINIMAL + f"    balance: consistent_hash\n    hash_key: '{text}'\n")
    assert config.pools["web"].hash_key == expected


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (
            "    balance: consistent_hash\n    hash_key: ip\n",
            "pools.web.hash_key: must be client_ip, path, path_segment:N, header:NAME,"
            " cookie:NAME or"
            ' query:NAME, got "ip" (line 11)',
        ),
        (
            "    balance: consistent_hash\n    hash_key: 'header:'\n",
            "pools.web.hash_key: must be client_ip, path, path_segment:N, header:NAME,"
            " cookie:NAME or"
            ' query:NAME, got "header:" (line 11)',
        ),
        (
            "    balance: consistent_hash\n    hash_key: 'header:a b'\n",
            'pools.web.hash_key: "a b" is not a valid header name (line 11)',
        ),
        (
            "    balance: consistent_hash\n    hash_balance_factor: 0.9\n",
            "pools.web.hash_balance_factor: must be a number of at least 1 (1.25 lets a backend"
            " take 25% more than the average), got 0.9 (line 11)",
        ),
        (
            "    balance: least_connections\n    hash_key: path\n",
            "pools.web.hash_key: only used with balance: consistent_hash (this pool balances by"
            " least_connections) (line 11)",
        ),
        (
            "    hash_balance_factor: 2\n",
            "pools.web.hash_balance_factor: only used with balance: consistent_hash (this pool"
            " balances by round_robin, the default) (line 10)",
        ),
        (
            "    ewma_half_life: 2s\n",
            "pools.web.ewma_half_life: only used with balance: peak_ewma (this pool"
            " balances by round_robin, the default) (line 10)",
        ),
        (
            "    balance: peak_ewma\n    ewma_half_life: 0s\n",
            'pools.web.ewma_half_life: must be longer than zero, got "0s" (line 11)',
        ),
        (
            "    slow_start: fast\n",
            "pools.web.slow_start: not a duration (like 250ms, 2s, 1m, 1h30m),"
            ' got "fast" (line 10)',
        ),
    ],
)
def test_balancing_setting_errors(extra: str, expected: str) -> None:
    assert pool_errors(extra) == [expected]


def test_weight_zero_is_a_backend_taking_no_new_requests() -> None:
    config = parse_config(
        MINIMAL.replace('"127.0.0.1:9001"', '"127.0.0.1:9001"\n        weight: 0')
    )
    assert config.pools["web"].backends[0].weight == 0


def test_sticky_null_or_false_is_off_and_true_takes_the_defaults() -> None:
    assert parse_config(MINIMAL + "    sticky: null\n") == parse_config(MINIMAL)
    assert parse_config(MINIMAL + "    sticky: false\n") == parse_config(MINIMAL)
    sticky = parse_config(MINIMAL + "    sticky: true\n").pools["web"].sticky
    assert sticky == Sticky(cookie="lbp_sticky", ttl=3600.0, secure=True, strict=False)
    assert pool_errors("    sticky: {cookie: 'a b', ttl: forever}\n") == [
        'pools.web.sticky.cookie: "a b" is not a valid cookie name (line 10)',
        'pools.web.sticky.ttl: not a duration (like 250ms, 2s, 1m, 1h30m), got "forever"'
        " (line 10)",
    ]


@pytest.mark.parametrize("key", ["cluster"])
def test_top_level_keys_not_supported_yet_unless_null(key: str) -> None:
    assert error_of(MINIMAL + f"{key}: {{x: 1}}\n") == (
        f"{key}: not supported yet in this version of lbproxy (line 10)"
    )
    assert parse_config(MINIMAL + f"{key}:\n") == parse_config(MINIMAL)


def test_backends_are_required() -> None:
    text = MINIMAL.replace(
        '    backends:\n      - address: "127.0.0.1:9001"\n', "    balance: round_robin\n"
    )
    # A missing key is reported where its mapping starts.
    assert error_of(text) == "pools.web.backends: required key is missing (line 8)"


def test_duplicate_backends_compare_normalised_addresses() -> None:
    text = (
        MINIMAL.replace("127.0.0.1:9001", "Web.Internal:80")
        + "      - {address: 'web.internal:80'}\n"
    )
    assert error_of(text) == (
        'pools.web.backends[1].address: "web.internal:80" is already used by pools.web.backends[0]'
        " (line 10)"
    )


def test_same_backend_in_two_pools_is_fine() -> None:
    text = MINIMAL + "  api:\n    backends: [{address: '127.0.0.1:9001'}]\n"
    assert list(parse_config(text).pools) == ["web", "api"]


def test_pool_names_are_checked() -> None:
    text = MINIMAL + "  'web eu':\n    backends: [{address: 'a:1'}]\n"
    assert error_of(text) == (
        'pools["web eu"]: pool names must be 1-64 letters, digits, "_", "-" or ".",'
        ' starting with a letter or digit, got "web eu" (line 10)'
    )


def test_pool_with_a_dotted_name() -> None:
    text = MINIMAL.replace("pool: web", "pool: web.eu").replace("  web:", "  web.eu:")
    assert list(parse_config(text).pools) == ["web.eu"]
    broken = text.replace("127.0.0.1:9001", "nope")
    assert error_of(broken) == (
        'pools["web.eu"].backends[0].address: not host:port, got "nope" (line 9)'
    )


# --- load_config -----------------------------------------------------------------------


def test_load_config_sets_source(tmp_path: Path) -> None:
    path = tmp_path / "lb.yaml"
    path.write_text(MINIMAL, encoding="utf-8")
    assert load_config(path).source == str(path)
    assert load_config(str(path)) == load_config(path)


def test_load_config_accepts_a_byte_order_mark(tmp_path: Path) -> None:
    path = tmp_path / "lb.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + MINIMAL.encode())
    assert load_config(path).listeners[0].name == "public"


def test_load_config_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.errors == [f"{path}: cannot read config file: No such file or directory"]


def test_load_config_on_a_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path)
    assert info.value.errors == [f"{tmp_path}: cannot read config file: Is a directory"]


def test_load_config_refuses_non_utf8(tmp_path: Path) -> None:
    path = tmp_path / "lb.yaml"
    path.write_bytes(MINIMAL.encode() + b"workers: \xff\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.errors == [f"{path}: not UTF-8 text (line 10)"]


def test_load_config_reports_errors_with_lines(tmp_path: Path) -> None:
    path = tmp_path / "lb.yaml"
    path.write_text(MINIMAL + "workers: 0\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.errors == ["workers: must be a positive integer, got 0 (line 10)"]


def test_nested_merges_expand_each_mapping_once() -> None:
    # Ten levels that each merge the previous one ten times: naive expansion is 10**10 pairs.
    anchors = ["x-l0: &l0 {weight: 2}"]
    for level in range(1, 11):
        merged = ", ".join([f"*l{level - 1}"] * 10)
        anchors.append(f"x-l{level}: &l{level} {{<<: [{merged}]}}")
    text = (
        "\n".join(anchors)
        + "\n"
        + MINIMAL.replace(
            '      - address: "127.0.0.1:9001"', '      - {<<: *l10, address: "127.0.0.1:9001"}'
        )
    )
    assert parse_config(text).pools["web"].backends[0].weight == 2
