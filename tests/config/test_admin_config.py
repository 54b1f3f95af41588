"""The ``admin`` section: where the admin API listens and which environment
variable holds its token (the server itself is tested in tests/admin)."""

from __future__ import annotations

import dataclasses

import pytest

from lbproxy.config import Address, ConfigError, parse_config
from lbproxy.config.model import Admin

# Lines 1-9; an appended "admin:" section starts at line 10.
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


def admin(extra: str) -> Admin | None:
    return parse_config(MINIMAL + extra).admin


def errors(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    return info.value.errors


# --- valid ---------------------------------------------------------------------------


def test_dataclass_defaults() -> None:
    assert dataclasses.asdict(Admin()) == {
        "bind": {"host": "127.0.0.1", "port": 9901},
        "token_env": "LBPROXY_ADMIN_TOKEN",
    }


def test_no_admin_section_means_no_admin_server() -> None:
    assert parse_config(MINIMAL).admin is None
    assert admin("admin:\n") is None
    assert admin("admin: null\n") is None


def test_empty_section_takes_every_default() -> None:
    assert admin("admin: {}\n") == Admin()
    assert admin("admin: {bind: null, token_env: null}\n") == Admin()


def test_contract_example() -> None:
    text = 'admin:\n  bind: "127.0.0.1:9901"\n  token_env: LBPROXY_ADMIN_TOKEN\n'
    assert admin(text) == Admin(Address("127.0.0.1", 9901), "LBPROXY_ADMIN_TOKEN")


def test_bind_and_token_env_are_read() -> None:
    assert admin('admin: {bind: "[::1]:7000", token_env: _My_Token2}\n') == Admin(
        Address("::1", 7000), "_My_Token2"
    )
    assert admin('admin: {bind: "Admin.Internal:7000"}\n') == Admin(Address("admin.internal", 7000))


def test_port_zero_is_allowed() -> None:
    # The OS picks a free port (tests, embedders); it never clashes with a listener.
    assert admin('admin: {bind: "127.0.0.1:0"}\n') == Admin(Address("127.0.0.1", 0))
    zero = MINIMAL.replace("127.0.0.1:8080", "127.0.0.1:0")
    assert parse_config(zero + 'admin: {bind: "127.0.0.1:0"}\n').admin == Admin(
        Address("127.0.0.1", 0)
    )


def test_token_env_is_a_name_not_read_at_parse_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOT_SET_ANYWHERE_42", raising=False)
    assert admin("admin: {token_env: NOT_SET_ANYWHERE_42}\n") == Admin(
        token_env="NOT_SET_ANYWHERE_42"
    )


def test_same_port_on_another_host_is_fine() -> None:
    assert admin('admin: {bind: "127.0.0.2:8080"}\n') == Admin(Address("127.0.0.2", 8080))


# --- errors --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("admin: [x]\n", "admin: must be a mapping, got a list (line 10)"),
        ("admin: on\n", "admin: must be a mapping, got on (a boolean) (line 10)"),
        (
            "admin: {bnd: x}\n",
            'admin.bnd: unknown key (did you mean "bind"?) (line 10)',
        ),
        (
            "admin: {port: 9901}\n",
            "admin.port: unknown key (known keys: bind, token_env) (line 10)",
        ),
        (
            "admin:\n  bind: localhost\n",
            'admin.bind: not host:port, got "localhost" (line 11)',
        ),
        (
            'admin:\n  token_env: LBPROXY_ADMIN_TOKEN\n  bind: "127.0.0.1:99999"\n',
            'admin.bind: port must be from 0 to 65535, got "127.0.0.1:99999" (line 12)',
        ),
        ("admin:\n  bind: [a]\n", "admin.bind: must be a string, got a list (line 11)"),
        (
            "admin:\n  token_env: 1TOKEN\n",
            "admin.token_env: must be the name of an environment variable (letters, digits"
            ' and "_", not starting with a digit), got "1TOKEN" (line 11)',
        ),
        (
            'admin:\n  token_env: "MY-TOKEN"\n',
            "admin.token_env: must be the name of an environment variable (letters, digits"
            ' and "_", not starting with a digit), got "MY-TOKEN" (line 11)',
        ),
        (
            'admin:\n  token_env: ""\n',
            "admin.token_env: must be the name of an environment variable (letters, digits"
            ' and "_", not starting with a digit), got "" (line 11)',
        ),
        (
            'admin:\n  token_env: "$TOKEN"\n',
            "admin.token_env: must be the name of an environment variable (letters, digits"
            ' and "_", not starting with a digit), got "$TOKEN" (line 11)',
        ),
        (
            "admin:\n  token_env: {a: 1}\n",
            "admin.token_env: must be a string, got a mapping (line 11)",
        ),
        (
            "admin: {bind: '127.0.0.1:1'}\nadmin: {}\n",
            "admin: duplicate key (first at line 10) (line 11)",
        ),
    ],
)
def test_admin_errors(extra: str, message: str) -> None:
    assert errors(MINIMAL + extra) == [message]


def test_bind_equal_to_a_listener_is_an_error_naming_it() -> None:
    assert errors(MINIMAL + 'admin:\n  bind: "127.0.0.1:8080"\n') == [
        'admin.bind: "127.0.0.1:8080" is already used by listener "public"'
        ' (listeners[0].bind "127.0.0.1:8080"); the admin API needs an address of its own'
        " (line 11)"
    ]


def test_bind_clashes_with_a_wildcard_listener_on_the_same_port() -> None:
    text = MINIMAL.replace("127.0.0.1:8080", "0.0.0.0:9901")
    assert errors(text + 'admin: {bind: "127.0.0.1:9901"}\n') == [
        'admin.bind: "127.0.0.1:9901" is already used by listener "public"'
        ' (listeners[0].bind "0.0.0.0:9901"); the admin API needs an address of its own'
        " (line 10)"
    ]
    text = MINIMAL.replace("127.0.0.1:8080", "127.0.0.1:9901")
    assert errors(text + 'admin: {bind: "[::]:9901"}\n') == [
        'admin.bind: "[::]:9901" is already used by listener "public"'
        ' (listeners[0].bind "127.0.0.1:9901"); the admin API needs an address of its own'
        " (line 10)"
    ]


def test_default_bind_clashing_with_a_listener_points_at_the_section() -> None:
    text = MINIMAL.replace("127.0.0.1:8080", "127.0.0.1:9901")
    assert errors(text + "admin:\n  token_env: T\n") == [
        'admin.bind: "127.0.0.1:9901" is already used by listener "public"'
        ' (listeners[0].bind "127.0.0.1:9901"); the admin API needs an address of its own'
        " (line 11)"
    ]


def test_bind_clash_names_the_second_listener() -> None:
    text = MINIMAL.replace(
        "    routes:\n      - pool: web\n",
        "    routes:\n      - pool: web\n"
        '  - name: internal\n    bind: "127.0.0.1:9000"\n    routes:\n      - pool: web\n',
        1,
    )
    assert errors(text + 'admin: {bind: "127.0.0.1:9000"}\n') == [
        'admin.bind: "127.0.0.1:9000" is already used by listener "internal"'
        ' (listeners[1].bind "127.0.0.1:9000"); the admin API needs an address of its own'
        " (line 14)"
    ]


def test_bind_clashing_with_sample_backends() -> None:
    text = "sample_backends: 3\n" + MINIMAL
    assert errors(text + 'admin: {bind: "127.0.0.1:9102"}\n') == [
        "admin.bind: port 9102 is taken by the sample backends (127.0.0.1:9101-9103) (line 11)"
    ]


def test_admin_errors_are_reported_with_the_others_in_file_order() -> None:
    text = MINIMAL.replace('bind: "127.0.0.1:8080"', "bind: nope") + (
        "admin:\n  bind: also-nope\n  token_env: 9\n"
    )
    assert errors(text) == [
        'listeners[0].bind: not host:port, got "nope" (line 3)',
        'admin.bind: not host:port, got "also-nope" (line 11)',
        "admin.token_env: must be the name of an environment variable (letters, digits"
        ' and "_", not starting with a digit), got 9 (line 12)',
    ]


# --- tracing (a top-level section of its own; small enough to live here) -------------


def test_tracing_defaults_off() -> None:
    t = parse_config(MINIMAL).tracing
    assert (t.request_id, t.request_id_header, t.traceparent) == (False, "X-Request-ID", False)


def test_tracing_values() -> None:
    t = parse_config(
        MINIMAL + "tracing: {request_id: true, request_id_header: X-Trace-Id, traceparent: true}\n"
    ).tracing
    assert (t.request_id, t.request_id_header, t.traceparent) == (True, "X-Trace-Id", True)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("tracing: {request_id: 1}\n", "tracing.request_id: must be true or false"),
        ("tracing: {request_id_header: Content-Length}\n", "manages itself"),
        ("tracing: {request_id_header: 'a b'}\n", "is not a valid header name"),
        ("tracing: {traceparnt: true}\n", 'did you mean "traceparent"'),
        ("tracing: [1]\n", "tracing: must be a mapping"),
    ],
)
def test_tracing_errors(extra: str, message: str) -> None:
    (error,) = errors(MINIMAL + extra)
    assert message in error and "(line 10)" in error
