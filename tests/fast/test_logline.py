"""``logline``: JSON access-log lines. Both twins must write the same bytes;
the line must be valid JSON that reads back as the values given."""

from __future__ import annotations

import json
from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lbproxy import _fast

FastImpl = Callable[[str], ModuleType]

WHERE = b'","listener":"l","route":"*","pool":"p","backend":"127.0.0.1:1","client":'


def _args(**over: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "stamp": b"2026-11-29T05:00:00+0000",
        "where": WHERE,
        "client": b"127.0.0.1",
        "method": b"GET",
        "host": b"site.test",
        "path": b"/a?x=1",
        "status": 200,
        "resp_bytes": 13,
        "body_in": 0,
        "duration_ms": 1.5,
        "connect_ms": 0.0,
        "response_ms": -1.0,
        "user_agent": b"",
        "referer": b"",
        "request_id": b"",
        "traceparent": b"",
        "tries": 1,
        "reason": b"",
    }
    args.update(over)
    return args


@pytest.mark.parametrize("fast_impl", ["compiled", "pure"], indirect=True)
def test_minimal_line(fast_impl: FastImpl) -> None:
    line = fast_impl("logline").json_line(**_args())
    assert line == (
        b'{"time":"2026-11-29T05:00:00+0000","listener":"l","route":"*","pool":"p",'
        b'"backend":"127.0.0.1:1","client":"127.0.0.1","method":"GET","host":"site.test",'
        b'"path":"/a?x=1","status":200,"bytes":13,"bytes_in":0,"duration_ms":1.500}'
    )


@pytest.mark.parametrize("fast_impl", ["compiled", "pure"], indirect=True)
def test_optional_fields_and_escapes(fast_impl: FastImpl) -> None:
    line = fast_impl("logline").json_line(
        **_args(
            path=b'/q?a="b"\\c\n\r\t\x08\x0c\x01\x7f\xe9',
            connect_ms=0.25,
            response_ms=0.0,
            user_agent=b'probe "1"',
            referer=b"http://r/",
            request_id=b"rid-1",
            traceparent=b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            tries=3,
            reason=b'"retried after: 127.0.0.1:1 answered 503"',
        )
    )
    assert line.isascii()
    obj = json.loads(line)
    assert obj["path"] == '/q?a="b"\\c\n\r\t\x08\x0c\x01\x7f\xe9'
    assert b"\\u0001" in line and b"\\u007f" in line and b"\\u00e9" in line
    assert obj["connect_ms"] == 0.25 and obj["response_ms"] == 0.0
    assert obj["user_agent"] == 'probe "1"' and obj["referer"] == "http://r/"
    assert obj["request_id"] == "rid-1" and obj["tries"] == 3
    assert obj["traceparent"].startswith("00-4bf9")
    assert obj["reason"] == "retried after: 127.0.0.1:1 answered 503"
    assert list(obj)[-1] == "reason"


@pytest.mark.parametrize("fast_impl", ["compiled", "pure"], indirect=True)
@pytest.mark.parametrize(
    ("ms", "text"),
    [
        (0.0, b"0.000"),
        (-1e-9, b"0.000"),
        (float("nan"), b"0.000"),
        (0.0004999, b"0.000"),
        (0.0005001, b"0.001"),
        (1.5, b"1.500"),
        (999.9996, b"1000.000"),
        (123456.789, b"123456.789"),
        (float("inf"), b"9000000000000.000"),
    ],
)
def test_milliseconds(fast_impl: FastImpl, ms: float, text: bytes) -> None:
    line = fast_impl("logline").json_line(**_args(duration_ms=ms))
    assert line.endswith(b'"duration_ms":' + text + b"}")


@pytest.mark.parametrize("fast_impl", ["compiled", "pure"], indirect=True)
def test_json_str_matches_json_dumps(fast_impl: FastImpl) -> None:
    mod = fast_impl("logline")
    every = bytes(range(256))
    assert mod.json_str(every) == json.dumps(every.decode("latin-1")).encode()
    assert mod.json_str(b"") == b'""'


_bytes = st.binary(max_size=300)
_ms = st.one_of(st.floats(min_value=-1.0, max_value=1e6), st.floats())  # NaN, inf, huge


@settings(max_examples=400, deadline=None)
@given(
    client=_bytes,
    method=_bytes,
    host=_bytes,
    path=_bytes,
    status=st.integers(0, 999),
    resp_bytes=st.integers(-(2**63), 2**63 - 1),
    body_in=st.integers(0, 2**62),
    duration_ms=_ms,
    connect_ms=_ms,
    response_ms=_ms,
    user_agent=_bytes,
    referer=_bytes,
    request_id=_bytes,
    traceparent=_bytes,
    tries=st.integers(0, 10),
    reason=st.text(max_size=50).map(lambda s: json.dumps(s).encode() if s else b""),
)
def test_twins_agree(compiled_impl: FastImpl, **kw: Any) -> None:
    args = _args(**kw)
    compiled = compiled_impl("logline").json_line(**args)
    pure = _fast.load_pure("logline").json_line(**args)
    assert compiled == pure
    obj = json.loads(compiled)
    assert obj["path"] == kw["path"].decode("latin-1")
    assert obj["bytes"] == kw["resp_bytes"]
    d = kw["duration_ms"]
    if 0 <= d <= 1e12:  # written to the thousandth, rounded half up
        assert abs(obj["duration_ms"] - d) <= 0.0005 + d * 1e-15
    assert obj["status"] == kw["status"] and obj["bytes_in"] == kw["body_in"]
    assert ("connect_ms" in obj) == (kw["connect_ms"] > 0)
    assert ("tries" in obj) == (kw["tries"] > 1)
    assert ("user_agent" in obj) == bool(kw["user_agent"])
