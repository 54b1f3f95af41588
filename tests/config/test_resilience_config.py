"""Pool resilience settings: health_check, outlier_detection, circuit_breaker,
panic_threshold, limits and retries (validation only; behaviour is tested with
the proxy)."""

from __future__ import annotations

import dataclasses

import pytest

from lbproxy.config import (
    CircuitBreaker,
    ConfigError,
    HealthCheck,
    OutlierDetection,
    Pool,
    PoolLimits,
    Retries,
    parse_config,
)
from lbproxy.config.model import Sticky

# Lines 1-9; pool-level lines appended for "web" start at line 10.
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

KEYS = (
    "health_check",
    "outlier_detection",
    "circuit_breaker",
    "panic_threshold",
    "limits",
    "retries",
)


def pool(extra: str) -> Pool:
    return parse_config(MINIMAL + extra).pools["web"]


def pool_errors(extra: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(MINIMAL + extra)
    return info.value.errors


# --- defaults ------------------------------------------------------------------------


def test_dataclass_defaults() -> None:
    assert dataclasses.asdict(HealthCheck()) == {
        "path": "/healthz",
        "interval": 2.0,
        "timeout": 1.0,
        "healthy_threshold": 2,
        "unhealthy_threshold": 3,
        "expect_status": (200, 399),
        "expect_body": None,
        "host": None,
    }
    assert dataclasses.asdict(OutlierDetection()) == {
        "consecutive_failures": 5,
        "base_ejection_time": 30.0,
        "max_ejection_time": 300.0,
        "max_ejection_percent": 50,
    }
    assert dataclasses.asdict(CircuitBreaker()) == {
        "failure_rate": 0.5,
        "minimum_requests": 20,
        "window": 10.0,
        "open_duration": 30.0,
        "half_open_requests": 3,
    }
    assert dataclasses.asdict(PoolLimits()) == {
        "max_connections": 1000,
        "max_pending": 100,
        "queue_timeout": 1.0,
    }
    assert dataclasses.asdict(Retries()) == {
        "attempts": 2,
        "on": ("connect_failure", "reset", "502", "503", "504"),
        "budget_ratio": 0.2,
        "non_idempotent": False,
        "per_try_timeout": None,
    }


def test_a_pool_without_the_keys_gets_the_defaults() -> None:
    web = pool("")
    assert web.health_check is None
    assert web.outlier_detection is None
    assert web.circuit_breaker is None
    assert web.panic_threshold == 0.5
    assert web.limits is None
    assert web.retries == Retries()  # retries are on by default
    assert Pool("p", ()).retries == Retries()


@pytest.mark.parametrize("key", KEYS)
@pytest.mark.parametrize("null", ["null", "~", ""])
def test_null_is_the_default(key: str, null: str) -> None:
    assert parse_config(MINIMAL + f"    {key}: {null}\n") == parse_config(MINIMAL)


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("health_check", HealthCheck()),
        ("outlier_detection", OutlierDetection()),
        ("circuit_breaker", CircuitBreaker()),
        ("limits", PoolLimits()),
        ("retries", Retries()),
    ],
)
def test_an_empty_mapping_turns_a_feature_on_with_its_defaults(key: str, expected: object) -> None:
    assert getattr(pool(f"    {key}: {{}}\n"), key) == expected


@pytest.mark.parametrize("key", ["health_check", "outlier_detection", "circuit_breaker", "limits"])
def test_null_fields_inside_a_section_are_the_defaults(key: str) -> None:
    fields = [f.name for f in dataclasses.fields(getattr(pool(f"    {key}: {{}}\n"), key))]
    spelled_out = "".join(f"      {name}: null\n" for name in fields)
    assert pool(f"    {key}:\n{spelled_out}") == pool(f"    {key}: {{}}\n")


def test_retries_fields_null_are_the_defaults() -> None:
    text = "    retries:\n" + "".join(f"      {f.name}: ~\n" for f in dataclasses.fields(Retries))
    assert pool(text).retries == Retries()


def test_model_objects_are_frozen_and_hashable() -> None:
    for value in (HealthCheck(), OutlierDetection(), CircuitBreaker(), PoolLimits(), Retries()):
        with pytest.raises(dataclasses.FrozenInstanceError):
            value.__setattr__(dataclasses.fields(value)[0].name, None)
        assert hash(value) == hash(dataclasses.replace(value))


# --- every key set -------------------------------------------------------------------

FULL = """\
    health_check:
      path: /status?full=1
      interval: 5s
      timeout: 500ms
      healthy_threshold: 1
      unhealthy_threshold: 100
      expect_status: "200-204"
      expect_body: ok
      host: Internal.Example.com:8443
    outlier_detection: {consecutive_failures: 1000, base_ejection_time: 10s,
                        max_ejection_time: 10s, max_ejection_percent: "100%"}
    circuit_breaker: {failure_rate: 25%, minimum_requests: 100000, window: 1m,
                      open_duration: 2s, half_open_requests: 1000}
    panic_threshold: 0
    limits: {max_connections: 1, max_pending: 0, queue_timeout: 250ms}
    retries: {attempts: 10, on: [timeout, 500, "599", connect_failure],
              budget_ratio: 1, non_idempotent: true, per_try_timeout: 1.5}
"""


def test_every_key_is_read() -> None:
    web = pool(FULL)
    assert web.health_check == HealthCheck(
        path="/status?full=1",
        interval=5.0,
        timeout=0.5,
        healthy_threshold=1,
        unhealthy_threshold=100,
        expect_status=(200, 204),
        expect_body="ok",
        host="Internal.Example.com:8443",
    )
    assert web.outlier_detection == OutlierDetection(
        consecutive_failures=1000,
        base_ejection_time=10.0,
        max_ejection_time=10.0,
        max_ejection_percent=100,
    )
    assert web.circuit_breaker == CircuitBreaker(
        failure_rate=0.25,
        minimum_requests=100000,
        window=60.0,
        open_duration=2.0,
        half_open_requests=1000,
    )
    assert web.panic_threshold == 0.0
    assert web.limits == PoolLimits(max_connections=1, max_pending=0, queue_timeout=0.25)
    assert web.retries == Retries(
        attempts=10,
        on=("timeout", "500", "599", "connect_failure"),
        budget_ratio=1.0,
        non_idempotent=True,
        per_try_timeout=1.5,
    )


def test_the_contract_example_is_valid() -> None:
    # The pool example of CONFIG.md.
    web = pool(
        "    sticky: {cookie: lbp_sticky, ttl: 1h, secure: true, strict: false}\n"
        "    health_check: {path: /healthz, interval: 2s, timeout: 1s, healthy_threshold: 2,\n"
        '                   unhealthy_threshold: 3, expect_status: "200-399", host: null}\n'
        "    outlier_detection: {consecutive_failures: 5, base_ejection_time: 30s,\n"
        "                        max_ejection_time: 5m, max_ejection_percent: 50}\n"
        "    circuit_breaker: {failure_rate: 0.5, minimum_requests: 20, window: 10s,\n"
        "                      open_duration: 30s, half_open_requests: 3}\n"
        "    panic_threshold: 50%          # below this share of healthy backends, use all\n"
        "    limits: {max_connections: 1000, max_pending: 100, queue_timeout: 1s}\n"
        "    retries: {attempts: 2, on: [connect_failure, reset, 502, 503, 504],\n"
        "              budget_ratio: 0.2, non_idempotent: false, per_try_timeout: 5s}\n"
    )
    assert web.health_check == HealthCheck()
    assert web.outlier_detection == OutlierDetection()
    assert web.circuit_breaker == CircuitBreaker()
    assert web.panic_threshold == 0.5
    assert web.limits == PoolLimits()
    assert web.retries == Retries(per_try_timeout=5.0)
    assert web.sticky == Sticky()


def test_sections_work_with_merge_keys() -> None:
    text = (
        "x-retries: &retries {attempts: 3, on: [reset]}\n"
        + MINIMAL
        + ("    retries: {<<: *retries, attempts: 4}\n")
    )
    assert parse_config(text).pools["web"].retries == Retries(attempts=4, on=("reset",))


def test_retries_attempts_1_turns_retries_off() -> None:
    assert pool("    retries: {attempts: 1}\n").retries == Retries(attempts=1)


# --- valid forms ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('"200-399"', (200, 399)),
        ("200-399", (200, 399)),
        ('"200 - 204"', (200, 204)),
        ('"200"', (200, 200)),
        ("200", (200, 200)),
        ("100-599", (100, 599)),
        ("599", (599, 599)),
        ('"204-204"', (204, 204)),
    ],
)
def test_expect_status_forms(value: str, expected: tuple[int, int]) -> None:
    check = pool(f"    health_check: {{expect_status: {value}}}\n").health_check
    assert check is not None
    assert check.expect_status == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("/", "/"),
        ("/healthz", "/healthz"),
        ("/status?verbose=1&x=%20", "/status?verbose=1&x=%20"),
        ("/a/b;c", "/a/b;c"),
    ],
)
def test_health_check_paths(value: str, expected: str) -> None:
    check = pool(f"    health_check: {{path: '{value}'}}\n").health_check
    assert check is not None
    assert check.path == expected


@pytest.mark.parametrize(
    "host",
    [
        "api.example.com",
        "API.Example.com",
        "backend_1",
        "api.example.com:8080",
        "10.0.0.1",
        "10.0.0.1:80",
        "[::1]",
        "[2001:db8::1]:8443",
    ],
)
def test_health_check_hosts_are_kept_as_written(host: str) -> None:
    check = pool(f"    health_check: {{host: '{host}'}}\n").health_check
    assert check is not None
    assert check.host == host


def test_expect_body_is_taken_as_written() -> None:
    check = pool("    health_check: {expect_body: 'status: \"up\"'}\n").health_check
    assert check is not None
    assert check.expect_body == 'status: "up"'
    numeric = pool("    health_check: {expect_body: 010}\n").health_check
    assert numeric is not None
    assert numeric.expect_body == "010"
    largest = pool(f"    health_check: {{expect_body: {'a' * 65536}}}\n").health_check
    assert largest is not None
    assert largest.expect_body is not None
    assert len(largest.expect_body) == 65536


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("50%", 0.5),
        ('"50 %"', 0.5),
        ("0%", 0.0),
        ("100%", 1.0),
        ("12.5%", 0.125),
        ("0.5", 0.5),
        ("0", 0.0),
        ("1", 1.0),
        ("0.0", 0.0),
        ('"0.25"', 0.25),
        (".3", 0.3),
    ],
)
def test_panic_threshold_forms(value: str, expected: float) -> None:
    assert pool(f"    panic_threshold: {value}\n").panic_threshold == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [("0.5", 0.5), ("1", 1.0), ("100%", 1.0), ("0.1%", 0.001), ("5%", 0.05), ("0.01", 0.01)],
)
def test_failure_rate_forms(value: str, expected: float) -> None:
    breaker = pool(f"    circuit_breaker: {{failure_rate: {value}}}\n").circuit_breaker
    assert breaker is not None
    assert breaker.failure_rate == expected


@pytest.mark.parametrize(
    ("value", "expected"), [("0", 0.0), ("1", 1.0), ("0.5", 0.5), ("20%", 0.2), ("0%", 0.0)]
)
def test_budget_ratio_forms(value: str, expected: float) -> None:
    assert pool(f"    retries: {{budget_ratio: {value}}}\n").retries.budget_ratio == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [("0", 0), ("100", 100), ("50%", 50), ('"0 %"', 0), ("100%", 100), ("25", 25)],
)
def test_max_ejection_percent_forms(value: str, expected: int) -> None:
    outlier = pool(f"    outlier_detection: {{max_ejection_percent: {value}}}\n").outlier_detection
    assert outlier is not None
    assert outlier.max_ejection_percent == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("[reset]", ("reset",)),
        ("[503]", ("503",)),
        ('["503"]', ("503",)),
        ("[timeout, connect_failure]", ("timeout", "connect_failure")),
        (
            "[500, 599, reset, timeout, connect_failure]",
            ("500", "599", "reset", "timeout", "connect_failure"),
        ),
        ("[0503]", ("503",)),
    ],
)
def test_retry_on_forms(value: str, expected: tuple[str, ...]) -> None:
    assert pool(f"    retries: {{on: {value}}}\n").retries.on == expected


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ("    retries: {per_try_timeout: null}\n", None),
        ("    retries: {per_try_timeout: 250ms}\n", 0.25),
        ("    retries: {per_try_timeout: 2}\n", 2.0),
    ],
)
def test_per_try_timeout(extra: str, expected: float | None) -> None:
    assert pool(extra).retries.per_try_timeout == expected


def test_timeouts_just_inside_their_bounds() -> None:
    check = pool("    health_check: {interval: 1s, timeout: 999ms}\n").health_check
    assert check is not None
    assert (check.interval, check.timeout) == (1.0, 0.999)
    assert pool("    health_check: {timeout: 1999ms}\n").health_check == HealthCheck(timeout=1.999)
    assert pool("    outlier_detection: {base_ejection_time: 5m}\n").outlier_detection == (
        OutlierDetection(base_ejection_time=300.0)
    )
    assert pool("    outlier_detection: {max_ejection_time: 30s}\n").outlier_detection == (
        OutlierDetection(max_ejection_time=30.0)
    )


# --- errors ----------------------------------------------------------------------------

HC = "pools.web.health_check"
OD = "pools.web.outlier_detection"
CB = "pools.web.circuit_breaker"
LIM = "pools.web.limits"
RT = "pools.web.retries"
PATH_RULE = 'must be a URL path of visible ASCII characters, without spaces or "#"'
STATUS_RULE = 'must be a status like 200 or a range like "200-399", from 100 to 599'
HOST_RULE = (
    'must be a host name or address with an optional port (like "api.example.com",'
    ' "api.example.com:8080" or "[::1]:8080")'
)
FRACTION = 'must be a number from 0 to 1 or a percentage like "50%"'
RATE = 'must be a number above 0 and at most 1, or a percentage like "50%"'
PERCENT = 'must be an integer from 0 to 100 or a percentage like "50%"'
ON_RULE = "must be connect_failure, reset, timeout or a status from 500 to 599"
ATTEMPTS = (
    "must be an integer from 1 to 10 (every try counts, the first included: 1 means no retries)"
)


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        # -- health_check: shape and keys
        (
            "    health_check: [path]\n",
            f"{HC}: must be a mapping, got a list (line 10)",
        ),
        (
            "    health_check: /healthz\n",
            f'{HC}: must be a mapping, got "/healthz" (line 10)',
        ),
        (
            "    health_check: true\n",
            f"{HC}: must be a mapping, got true (a boolean) (write {{}} for the defaults)"
            " (line 10)",
        ),
        (
            "    health_check: off\n",
            f"{HC}: must be a mapping, got off (a boolean) (leave it out or write null for"
            " none) (line 10)",
        ),
        (
            "    health_check: {intervall: 1s}\n",
            f'{HC}.intervall: unknown key (did you mean "interval"?) (line 10)',
        ),
        (
            "    health_check: {method: HEAD}\n",
            f"{HC}.method: unknown key (known keys: path, interval, timeout, healthy_threshold,"
            " unhealthy_threshold, expect_status, expect_body, host) (line 10)",
        ),
        # -- health_check.path
        (
            "    health_check: {path: healthz}\n",
            f'{HC}.path: must start with "/", got "healthz" (line 10)',
        ),
        (
            "    health_check: {path: ''}\n",
            f'{HC}.path: must start with "/", got "" (line 10)',
        ),
        (
            "    health_check: {path: '/a b'}\n",
            f'{HC}.path: {PATH_RULE}, got "/a b" (line 10)',
        ),
        (
            "    health_check: {path: '/a#top'}\n",
            f'{HC}.path: {PATH_RULE}, got "/a#top" (line 10)',
        ),
        (
            "    health_check: {path: '/caf\u00e9'}\n",
            f'{HC}.path: {PATH_RULE}, got "/caf\u00e9" (line 10)',
        ),
        (
            '    health_check: {path: "/a\\tb"}\n',
            f'{HC}.path: {PATH_RULE}, got "/a\\tb" (line 10)',
        ),
        (
            "    health_check: {path: [/]}\n",
            f"{HC}.path: must be a string, got a list (line 10)",
        ),
        # -- health_check.interval / timeout
        (
            "    health_check: {interval: 0s}\n",
            f'{HC}.interval: must be longer than zero, got "0s" (line 10)',
        ),
        (
            "    health_check: {interval: soon}\n",
            f'{HC}.interval: not a duration (like 250ms, 2s, 1m, 1h30m), got "soon" (line 10)',
        ),
        (
            "    health_check: {timeout: 0}\n",
            f"{HC}.timeout: must be longer than zero, got 0 (line 10)",
        ),
        (
            "    health_check: {timeout: -1s}\n",
            f'{HC}.timeout: a duration cannot be negative, got "-1s" (line 10)',
        ),
        (
            "    health_check: {timeout: 2s}\n",
            f'{HC}.timeout: must be shorter than interval (2s, the default), got "2s" (line 10)',
        ),
        (
            "    health_check: {interval: 1s, timeout: 1s}\n",
            f'{HC}.timeout: must be shorter than interval (1s), got "1s" (line 10)',
        ),
        (
            "    health_check: {interval: 500ms, timeout: 3s}\n",
            f'{HC}.timeout: must be shorter than interval (500ms), got "3s" (line 10)',
        ),
        (
            "    health_check: {interval: 500ms}\n",
            f'{HC}.interval: must be longer than timeout (1s, the default), got "500ms" (line 10)',
        ),
        (
            "    health_check: {interval: 1s}\n",
            f'{HC}.interval: must be longer than timeout (1s, the default), got "1s" (line 10)',
        ),
        # -- health_check thresholds
        (
            "    health_check: {healthy_threshold: 0}\n",
            f"{HC}.healthy_threshold: must be an integer from 1 to 100, got 0 (line 10)",
        ),
        (
            "    health_check: {healthy_threshold: 101}\n",
            f"{HC}.healthy_threshold: must be an integer from 1 to 100, got 101 (line 10)",
        ),
        (
            "    health_check: {unhealthy_threshold: 0}\n",
            f"{HC}.unhealthy_threshold: must be an integer from 1 to 100, got 0 (line 10)",
        ),
        (
            "    health_check: {unhealthy_threshold: '3'}\n",
            f'{HC}.unhealthy_threshold: must be an integer from 1 to 100, got "3" (line 10)',
        ),
        (
            "    health_check: {unhealthy_threshold: 2.5}\n",
            f"{HC}.unhealthy_threshold: must be an integer from 1 to 100, got 2.5 (line 10)",
        ),
        # -- health_check.expect_status
        (
            "    health_check: {expect_status: 600}\n",
            f"{HC}.expect_status: {STATUS_RULE}, got 600 (line 10)",
        ),
        (
            "    health_check: {expect_status: 99}\n",
            f"{HC}.expect_status: {STATUS_RULE}, got 99 (line 10)",
        ),
        (
            "    health_check: {expect_status: 200-600}\n",
            f'{HC}.expect_status: {STATUS_RULE}, got "200-600" (line 10)',
        ),
        (
            "    health_check: {expect_status: 399-200}\n",
            f"{HC}.expect_status: must be a range from the lower status to the higher"
            ' (like "200-399"), got "399-200" (line 10)',
        ),
        (
            "    health_check: {expect_status: 2xx}\n",
            f'{HC}.expect_status: {STATUS_RULE}, got "2xx" (did you mean "200-299"?) (line 10)',
        ),
        (
            "    health_check: {expect_status: 200..399}\n",
            f'{HC}.expect_status: {STATUS_RULE}, got "200..399" (line 10)',
        ),
        (
            "    health_check: {expect_status: [200, 204]}\n",
            f"{HC}.expect_status: {STATUS_RULE}, got a list (line 10)",
        ),
        (
            "    health_check: {expect_status: 200.0}\n",
            f"{HC}.expect_status: {STATUS_RULE}, got 200.0 (line 10)",
        ),
        (
            "    health_check: {expect_status: true}\n",
            f"{HC}.expect_status: {STATUS_RULE}, got true (a boolean) (line 10)",
        ),
        # -- health_check.expect_body
        (
            "    health_check: {expect_body: ''}\n",
            f"{HC}.expect_body: must not be empty (line 10)",
        ),
        (
            f"    health_check: {{expect_body: {'a' * 65537}}}\n",
            f"{HC}.expect_body: must be at most 64 KiB (only the first 64 KiB of the body are"
            " searched) (line 10)",
        ),
        (
            "    health_check: {expect_body: [ok]}\n",
            f"{HC}.expect_body: must be a string, got a list (line 10)",
        ),
        # -- health_check.host
        (
            "    health_check: {host: ''}\n",
            f"{HC}.host: must not be empty (line 10)",
        ),
        (
            "    health_check: {host: 'a b'}\n",
            f'{HC}.host: {HOST_RULE}, got "a b" (line 10)',
        ),
        (
            "    health_check: {host: 'api.example.com:'}\n",
            f'{HC}.host: {HOST_RULE}, got "api.example.com:" (line 10)',
        ),
        (
            "    health_check: {host: 'api.example.com:0'}\n",
            f'{HC}.host: {HOST_RULE}, got "api.example.com:0" (line 10)',
        ),
        (
            "    health_check: {host: '::1'}\n",
            f'{HC}.host: {HOST_RULE}, got "::1" (line 10)',
        ),
        (
            "    health_check: {host: 'http://api.example.com'}\n",
            f'{HC}.host: {HOST_RULE}, got "http://api.example.com" (line 10)',
        ),
        (
            '    health_check: {host: "api\\r\\nX: 1"}\n',
            f'{HC}.host: {HOST_RULE}, got "api\\r\\nX: 1" (line 10)',
        ),
        # -- outlier_detection
        (
            "    outlier_detection: yes\n",
            f"{OD}: must be a mapping, got yes (a boolean) (write {{}} for the defaults) (line 10)",
        ),
        (
            "    outlier_detection: false\n",
            f"{OD}: must be a mapping, got false (a boolean) (leave it out or write null to"
            " turn it off) (line 10)",
        ),
        (
            "    outlier_detection: {consecutive_errors: 3}\n",
            f'{OD}.consecutive_errors: unknown key (did you mean "consecutive_failures"?)'
            " (line 10)",
        ),
        (
            "    outlier_detection: {consecutive_failures: 0}\n",
            f"{OD}.consecutive_failures: must be an integer from 1 to 1000, got 0 (line 10)",
        ),
        (
            "    outlier_detection: {consecutive_failures: 1001}\n",
            f"{OD}.consecutive_failures: must be an integer from 1 to 1000, got 1001 (line 10)",
        ),
        (
            "    outlier_detection: {base_ejection_time: 0s}\n",
            f'{OD}.base_ejection_time: must be longer than zero, got "0s" (line 10)',
        ),
        (
            "    outlier_detection: {max_ejection_time: 0}\n",
            f"{OD}.max_ejection_time: must be longer than zero, got 0 (line 10)",
        ),
        (
            "    outlier_detection: {base_ejection_time: 1m, max_ejection_time: 10s}\n",
            f'{OD}.max_ejection_time: must be at least base_ejection_time (1m), got "10s"'
            " (line 10)",
        ),
        (
            "    outlier_detection: {max_ejection_time: 10s}\n",
            f"{OD}.max_ejection_time: must be at least base_ejection_time (30s, the default),"
            ' got "10s" (line 10)',
        ),
        (
            "    outlier_detection: {base_ejection_time: 10m}\n",
            f"{OD}.base_ejection_time: must be at most max_ejection_time (5m, the default),"
            ' got "10m" (line 10)',
        ),
        (
            "    outlier_detection: {max_ejection_percent: 101}\n",
            f"{OD}.max_ejection_percent: {PERCENT}, got 101 (line 10)",
        ),
        (
            "    outlier_detection: {max_ejection_percent: -1}\n",
            f"{OD}.max_ejection_percent: {PERCENT}, got -1 (line 10)",
        ),
        (
            "    outlier_detection: {max_ejection_percent: 101%}\n",
            f'{OD}.max_ejection_percent: {PERCENT}, got "101%" (line 10)',
        ),
        (
            "    outlier_detection: {max_ejection_percent: 12.5%}\n",
            f'{OD}.max_ejection_percent: {PERCENT}, got "12.5%" (line 10)',
        ),
        (
            "    outlier_detection: {max_ejection_percent: 0.5}\n",
            f"{OD}.max_ejection_percent: {PERCENT}, got 0.5 (line 10)",
        ),
        (
            "    outlier_detection: {max_ejection_percent: half}\n",
            f'{OD}.max_ejection_percent: {PERCENT}, got "half" (line 10)',
        ),
        # -- circuit_breaker
        (
            "    circuit_breaker: [1]\n",
            f"{CB}: must be a mapping, got a list (line 10)",
        ),
        (
            "    circuit_breaker: {failure_ratio: 0.5}\n",
            f'{CB}.failure_ratio: unknown key (did you mean "failure_rate"?) (line 10)',
        ),
        (
            "    circuit_breaker: {failure_rate: 0}\n",
            f"{CB}.failure_rate: {RATE}, got 0 (line 10)",
        ),
        (
            "    circuit_breaker: {failure_rate: 0%}\n",
            f'{CB}.failure_rate: {RATE}, got "0%" (line 10)',
        ),
        (
            "    circuit_breaker: {failure_rate: 1.5}\n",
            f"{CB}.failure_rate: {RATE}, got 1.5 (line 10)",
        ),
        (
            "    circuit_breaker: {failure_rate: 50}\n",
            f'{CB}.failure_rate: {RATE}, got 50 (did you mean "50%"?) (line 10)',
        ),
        (
            "    circuit_breaker: {failure_rate: 150%}\n",
            f'{CB}.failure_rate: {RATE}, got "150%" (line 10)',
        ),
        (
            "    circuit_breaker: {failure_rate: -0.5}\n",
            f"{CB}.failure_rate: {RATE}, got -0.5 (line 10)",
        ),
        (
            "    circuit_breaker: {failure_rate: .nan}\n",
            f"{CB}.failure_rate: {RATE}, got .nan (line 10)",
        ),
        (
            "    circuit_breaker: {failure_rate: half}\n",
            f'{CB}.failure_rate: {RATE}, got "half" (line 10)',
        ),
        (
            "    circuit_breaker: {minimum_requests: 0}\n",
            f"{CB}.minimum_requests: must be an integer from 1 to 100000, got 0 (line 10)",
        ),
        (
            "    circuit_breaker: {minimum_requests: 100001}\n",
            f"{CB}.minimum_requests: must be an integer from 1 to 100000, got 100001 (line 10)",
        ),
        (
            "    circuit_breaker: {window: 0s}\n",
            f'{CB}.window: must be longer than zero, got "0s" (line 10)',
        ),
        (
            "    circuit_breaker: {open_duration: 0ms}\n",
            f'{CB}.open_duration: must be longer than zero, got "0ms" (line 10)',
        ),
        (
            "    circuit_breaker: {half_open_requests: 0}\n",
            f"{CB}.half_open_requests: must be an integer from 1 to 1000, got 0 (line 10)",
        ),
        (
            "    circuit_breaker: {half_open_requests: 1001}\n",
            f"{CB}.half_open_requests: must be an integer from 1 to 1000, got 1001 (line 10)",
        ),
        # -- panic_threshold
        (
            "    panic_threshold: 1.5\n",
            f"pools.web.panic_threshold: {FRACTION}, got 1.5 (line 10)",
        ),
        (
            "    panic_threshold: 50\n",
            f'pools.web.panic_threshold: {FRACTION}, got 50 (did you mean "50%"?) (line 10)',
        ),
        (
            "    panic_threshold: 101%\n",
            f'pools.web.panic_threshold: {FRACTION}, got "101%" (line 10)',
        ),
        (
            "    panic_threshold: -10%\n",
            f'pools.web.panic_threshold: {FRACTION}, got "-10%" (line 10)',
        ),
        (
            "    panic_threshold: -0.1\n",
            f"pools.web.panic_threshold: {FRACTION}, got -0.1 (line 10)",
        ),
        (
            "    panic_threshold: off\n",
            f"pools.web.panic_threshold: {FRACTION}, got off (a boolean) (line 10)",
        ),
        (
            "    panic_threshold: [50%]\n",
            f"pools.web.panic_threshold: {FRACTION}, got a list (line 10)",
        ),
        (
            "    panic_threshold: 50 percent\n",
            f'pools.web.panic_threshold: {FRACTION}, got "50 percent" (line 10)',
        ),
        # -- limits
        (
            "    limits: 100\n",
            f"{LIM}: must be a mapping, got 100 (line 10)",
        ),
        (
            "    limits: false\n",
            f"{LIM}: must be a mapping, got false (a boolean) (leave it out or write null for"
            " no limits) (line 10)",
        ),
        (
            "    limits: {max_requests: 10}\n",
            f"{LIM}.max_requests: unknown key (known keys: max_connections, max_pending,"
            " queue_timeout) (line 10)",
        ),
        (
            "    limits: {max_connections: 0}\n",
            f"{LIM}.max_connections: must be a positive integer, got 0 (line 10)",
        ),
        (
            "    limits: {max_pending: -1}\n",
            f"{LIM}.max_pending: must be an integer >= 0, got -1 (line 10)",
        ),
        (
            "    limits: {queue_timeout: 0}\n",
            f"{LIM}.queue_timeout: must be longer than zero, got 0 (line 10)",
        ),
        # -- retries
        (
            "    retries: 3\n",
            f"{RT}: must be a mapping, got 3 (line 10)",
        ),
        (
            "    retries: false\n",
            f"{RT}: must be a mapping, got false (a boolean) (write {{attempts: 1}} to turn"
            " retries off) (line 10)",
        ),
        (
            "    retries: {attempt: 3}\n",
            f'{RT}.attempt: unknown key (did you mean "attempts"?) (line 10)',
        ),
        (
            "    retries: {attempts: 0}\n",
            f"{RT}.attempts: {ATTEMPTS}, got 0 (line 10)",
        ),
        (
            "    retries: {attempts: 11}\n",
            f"{RT}.attempts: {ATTEMPTS}, got 11 (line 10)",
        ),
        (
            "    retries: {on: reset}\n",
            f'{RT}.on: must be a list, got "reset" (line 10)',
        ),
        (
            "    retries: {on: []}\n",
            f"{RT}.on: must list at least one failure to retry on (write attempts: 1 to turn"
            " retries off) (line 10)",
        ),
        (
            "    retries: {on: [conect_failure]}\n",
            f'{RT}.on[0]: {ON_RULE}, got "conect_failure" (did you mean "connect_failure"?)'
            " (line 10)",
        ),
        (
            "    retries: {on: [reset, 404]}\n",
            f"{RT}.on[1]: {ON_RULE}, got 404 (line 10)",
        ),
        (
            "    retries: {on: ['600']}\n",
            f'{RT}.on[0]: {ON_RULE}, got "600" (line 10)',
        ),
        (
            "    retries: {on: [5xx]}\n",
            f'{RT}.on[0]: {ON_RULE}, got "5xx" (line 10)',
        ),
        (
            "    retries: {on: [Reset]}\n",
            f'{RT}.on[0]: {ON_RULE}, got "Reset" (did you mean "reset"?) (line 10)',
        ),
        (
            "    retries: {on: [[503]]}\n",
            f"{RT}.on[0]: {ON_RULE}, got a list (line 10)",
        ),
        (
            "    retries: {on: [503.0]}\n",
            f"{RT}.on[0]: {ON_RULE}, got 503.0 (line 10)",
        ),
        (
            "    retries: {on: [503, reset, '503']}\n",
            f'{RT}.on[2]: "503" is already listed at {RT}.on[0] (line 10)',
        ),
        (
            "    retries: {on: [reset, reset]}\n",
            f'{RT}.on[1]: "reset" is already listed at {RT}.on[0] (line 10)',
        ),
        (
            "    retries: {budget_ratio: 1.5}\n",
            f"{RT}.budget_ratio: {FRACTION}, got 1.5 (line 10)",
        ),
        (
            "    retries: {budget_ratio: -0.1}\n",
            f"{RT}.budget_ratio: {FRACTION}, got -0.1 (line 10)",
        ),
        (
            "    retries: {non_idempotent: 'yes'}\n",
            f'{RT}.non_idempotent: must be true or false, got "yes" (line 10)',
        ),
        (
            "    retries: {non_idempotent: 1}\n",
            f"{RT}.non_idempotent: must be true or false, got 1 (line 10)",
        ),
        (
            "    retries: {per_try_timeout: 0}\n",
            f"{RT}.per_try_timeout: must be longer than zero, got 0 (line 10)",
        ),
        (
            "    retries: {per_try_timeout: 5 s}\n",
            f'{RT}.per_try_timeout: not a duration (like 250ms, 2s, 1m, 1h30m), got "5 s"'
            " (line 10)",
        ),
    ],
)
def test_errors(extra: str, expected: str) -> None:
    assert pool_errors(extra) == [expected]


def test_errors_in_block_style_name_their_own_lines() -> None:
    text = (
        "    health_check:\n"  # 10
        "      path: /healthz\n"  # 11
        "      interval: 1s\n"  # 12
        "      timeout: 2s\n"  # 13
        "      expect_status: 700\n"  # 14
        "    outlier_detection:\n"  # 15
        "      base_ejection_time: 1m\n"  # 16
        "      max_ejection_time: 30s\n"  # 17
        "    retries:\n"  # 18
        "      attempts: 3\n"  # 19
        "      on:\n"  # 20
        "        - reset\n"  # 21
        "        - 404\n"  # 22
        "        - reset\n"  # 23
        "    limits:\n"  # 24
        "      max_pending: many\n"  # 25
        "    panic_threshold: 2\n"  # 26
    )
    assert pool_errors(text) == [
        f'{HC}.timeout: must be shorter than interval (1s), got "2s" (line 13)',
        f"{HC}.expect_status: {STATUS_RULE}, got 700 (line 14)",
        f'{OD}.max_ejection_time: must be at least base_ejection_time (1m), got "30s" (line 17)',
        f"{RT}.on[1]: {ON_RULE}, got 404 (line 22)",
        f'{RT}.on[2]: "reset" is already listed at {RT}.on[0] (line 23)',
        f'{LIM}.max_pending: must be an integer >= 0, got "many" (line 25)',
        f'pools.web.panic_threshold: {FRACTION}, got 2 (did you mean "2%"?) (line 26)',
    ]


def test_an_invalid_interval_is_not_compared_with_the_timeout() -> None:
    # One error for the bad value, not a second one comparing it with a default.
    assert pool_errors("    health_check: {interval: 0s, timeout: 5s}\n") == [
        f'{HC}.interval: must be longer than zero, got "0s" (line 10)'
    ]
    assert pool_errors(
        "    outlier_detection: {base_ejection_time: 10m, max_ejection_time: never}\n"
    ) == [
        f'{OD}.max_ejection_time: not a duration (like 250ms, 2s, 1m, 1h30m), got "never" (line 10)'
    ]


def test_sticky_parses_beside_the_other_pool_keys() -> None:
    extra = "    sticky: {cookie: lbp, strict: maybe}\n    upstream_tls: {verify: true}\n"
    assert pool_errors(extra) == [
        "pools.web.sticky.strict: must be true or false, got \"maybe\" (line 10)",
    ]
