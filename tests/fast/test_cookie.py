"""lbproxy._fast.cookie: both twins find the same cookie in any Cookie fields."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import FastImpl

both = pytest.mark.parametrize("fast_impl", ["compiled", "pure"], indirect=True)
FIXTURE_OK = [HealthCheck.function_scoped_fixture]

_piece = st.sampled_from(
    [b"sid", b"lbp", b"lbp_sticky", b"=", b";", b" ", b"\t", b'"', b"\r", b"\x0b", b"abc", b"x=1"]
)
_value = st.lists(_piece, max_size=12).map(b"".join) | st.binary(max_size=40)
_fields = st.lists(
    st.tuples(st.sampled_from([b"Cookie", b"cookie", b"COOKIE", b"Cookies", b"Host", b"cook1e"]),
              _value),
    max_size=4,
)  # fmt: skip


@both
@settings(max_examples=500, deadline=None, suppress_health_check=FIXTURE_OK)
@given(headers=_fields, name=st.sampled_from([b"lbp", b"lbp_sticky", b"sid", b"x", b""]))
def test_twins_agree(fast_impl: FastImpl, headers: list[tuple[bytes, bytes]], name: bytes) -> None:
    from lbproxy._fast import cookie_py

    want = cookie_py.find_cookie(headers, name)
    assert fast_impl("cookie").find_cookie(headers, name) == want
    # The same fields as a request head's lines, read in place, where h1
    # would read them back unchanged (no CR/LF, no SP/HTAB at the ends).
    if all(b"\r" not in v and b"\n" not in v and v == v.strip(b" \t") for _, v in headers):
        head = b"GET / HTTP/1.1\r\n"
        lines = b"".join(n + b": " + v + b"\r\n" for n, v in headers)
        data = head + lines + b"\r\n"
        got = fast_impl("cookie").find_cookie_lines(data, len(head), len(head) + len(lines), name)
        assert got == want


@both
def test_examples(fast_impl: FastImpl) -> None:
    find = fast_impl("cookie").find_cookie
    assert find([(b"Cookie", b"a=1; lbp = \"v\" ; b=2")], b"lbp") == b"v"
    assert find([(b"Cookie", b"lbpx=1"), (b"cookie", b"lbp=2")], b"lbp") == b"2"
    assert find([(b"Cookie", b"lbp")], b"lbp") is None  # no "=": not a pair
    assert find([(b"Cookie", b"lbp=")], b"lbp") == b""
    assert find([(b"Host", b"lbp=1")], b"lbp") is None
    assert find([(b"Cookie", b"LBP=1")], b"lbp") is None  # names are case-sensitive


@both
def test_cookie_cache_resolves_each_value_once_and_checks_expiry(fast_impl: FastImpl) -> None:
    import time

    calls: list[bytes] = []
    now = int(time.time())

    def resolve(value: bytes) -> tuple[object, int]:
        calls.append(value)
        return {b"good": ("b1", 0), b"old": ("b2", now - 10), b"soon": ("b3", now + 3600)}.get(
            value, (None, 0)
        )

    cache = fast_impl("cookie").CookieCache(b"s", resolve, 2)
    h = lambda v: [(b"Cookie", b"s=" + v)]  # noqa: E731
    assert [cache.lookup(h(b"good")) for _ in range(3)] == ["b1"] * 3
    assert cache.lookup(h(b"old")) is None  # expired: no backend, however often asked
    assert cache.lookup(h(b"old")) is None
    assert cache.lookup(h(b"soon")) == "b3"
    assert cache.lookup(h(b"forged")) is None
    assert cache.lookup([(b"Host", b"x")]) is None
    assert calls == [b"good", b"old", b"soon", b"forged"]
    # Two generations of 2: "good" is still in the older one...
    assert cache.lookup(h(b"good")) == "b1"
    assert calls[-1] == b"forged"
    # ...(and back in the newer one), until four more values push it out;
    # then it is resolved again.
    for v in (b"n1", b"n2", b"n3", b"n4"):
        cache.lookup(h(v))
    assert cache.lookup(h(b"good")) == "b1"
    assert calls[-1] == b"good"


@both
def test_cookie_lines_examples(fast_impl: FastImpl) -> None:
    mod = fast_impl("cookie")
    data = (
        b"GET / HTTP/1.1\r\nHost: h\r\nCOOKIE:\t a=1; lbp = \"v\" \r\n"
        b"Cookie: lbp=2\r\n\r\nbody"
    )
    start, stop = 16, data.index(b"\r\n\r\n") + 2
    assert mod.find_cookie_lines(data, start, stop, b"lbp") == b"v"  # the first wins
    assert mod.find_cookie_lines(data, start, stop, b"a") == b"1"
    assert mod.find_cookie_lines(data, start, stop, b"b") is None
    assert mod.find_cookie_lines(data, start, start, b"lbp") is None
    cache = mod.CookieCache(b"lbp", lambda v: (v.decode(), 0))
    assert cache.lookup_lines(data, start, stop) == "v"
    # Outside the contract the pure twin answers: the same as it would.
    from lbproxy._fast import cookie_py

    for args in [(bytearray(data), start, stop), (data, start, 2**70), (data, 0, stop)]:
        outcomes = []
        for find in (mod.find_cookie_lines, cookie_py.find_cookie_lines):
            try:
                outcomes.append(find(*args, b"lbp"))
            except Exception as exc:  # the error is part of the answer
                outcomes.append(type(exc).__name__)
        assert outcomes[0] == outcomes[1], args
