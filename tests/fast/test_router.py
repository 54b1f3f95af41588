"""``router``: first-match routing by host, path prefix, method and headers.
Both twins must pick the same route for any routes and any request, and the
pure twin must pick what the rules say (a brute-force reference here)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from types import ModuleType

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lbproxy.config.model import Route, RouteMatch

FastImpl = Callable[[str], ModuleType]
Headers = list[tuple[bytes, bytes]]

both = pytest.mark.parametrize("fast_impl", ["compiled", "pure"], indirect=True)
FIXTURE_OK = [HealthCheck.function_scoped_fixture]

HOSTS = ["api.example.com", "*.example.com", "shop.test", "*.test"]
PREFIXES = ["/", "/api", "/api/v2", "/static/"]
METHODS = [("GET",), ("GET", "HEAD"), ("POST", "PUT", "DELETE")]
HEADER_RULES = [(("x-canary", "1"),), (("x-tenant", "acme"),), (("x-canary", "1"), ("x-b", "2"))]


def ref_match(
    routes: Sequence[Route], host: bytes, path: bytes, method: bytes, headers: Headers
) -> int:
    """The index of the first route that matches, -1 for none: the rules of
    the config contract, spelled out. ``path_prefix: /`` is the catch-all:
    it matches every target, ``*`` (OPTIONS) included."""
    bare = host.split(b":")[0].lower().rstrip(b".") if not host.startswith(b"[") else host.lower()
    first: dict[bytes, bytes] = {}
    for n, v in headers:
        first.setdefault(n.lower(), v)
    for i, r in enumerate(routes):
        m = r.match
        if m.host is not None:
            want = m.host.lower().encode()
            if want.startswith(b"*."):
                if not (bare.endswith(want[1:]) and len(bare) > len(want) - 1):
                    continue
            elif bare != want:
                continue
        if m.path_prefix not in (None, "", "/") and not path.startswith(m.path_prefix.encode()):
            continue
        if m.methods and method.decode() not in m.methods:
            continue
        if any(first.get(n.encode()) != v.encode() for n, v in m.headers):
            continue
        return i
    return -1


_route = st.builds(
    lambda host, prefix, methods, headers, i: Route(
        RouteMatch(host=host, path_prefix=prefix, methods=methods, headers=headers), f"pool-{i}"
    ),
    st.none() | st.sampled_from(HOSTS),
    st.none() | st.sampled_from(PREFIXES),
    st.none() | st.sampled_from(METHODS),
    st.just(()) | st.sampled_from(HEADER_RULES),
    st.integers(0, 99),
)
_host = st.sampled_from(
    [b"api.example.com", b"API.Example.com:8443", b"example.com", b"x.example.com.", b"shop.test",
     b"a.b.test", b"test", b"[::1]:80", b""]
)  # fmt: skip
_path = st.sampled_from([b"/", b"/api", b"/api/v2/x", b"/apix", b"/static/a.css", b"/static", b"*"])
_method = st.sampled_from([b"GET", b"HEAD", b"POST", b"PUT", b"OPTIONS"])
_headers = st.lists(
    st.tuples(
        st.sampled_from([b"X-Canary", b"x-canary", b"X-Tenant", b"x-b", b"Accept"]),
        st.sampled_from([b"1", b"2", b"acme", b""]),
    ),
    max_size=4,
)


@both
@settings(max_examples=400, deadline=None, suppress_health_check=FIXTURE_OK)
@given(
    routes=st.lists(_route, max_size=6),
    host=_host,
    path=_path,
    method=_method,
    headers=_headers,
)
def test_match_agrees_with_the_reference(
    fast_impl: FastImpl,
    routes: list[Route],
    host: bytes,
    path: bytes,
    method: bytes,
    headers: Headers,
) -> None:
    mod = fast_impl("router")
    router = mod.Router([(r, i) for i, r in enumerate(routes)])
    got = router.match(host, path, method, headers)
    want = ref_match(routes, host, path, method, headers)
    if want < 0:
        assert got is None
    else:
        assert got == (routes[want], want)


@both
def test_examples(fast_impl: FastImpl) -> None:
    mod = fast_impl("router")
    api = Route(RouteMatch(host="api.example.com", path_prefix="/v1"), "api")
    wild = Route(RouteMatch(host="*.example.com"), "wild")
    canary = Route(RouteMatch(path_prefix="/", headers=(("x-canary", "1"),)), "canary")
    posts = Route(RouteMatch(methods=("POST",)), "posts")
    rest = Route(RouteMatch(path_prefix="/"), "rest")
    router = mod.Router([(r, r.pool) for r in (api, wild, canary, posts, rest)])
    assert router.match(b"API.example.com:443", b"/v1/x", b"GET", []) == (api, "api")
    assert router.match(b"api.example.com", b"/v2", b"GET", []) == (wild, "wild")
    assert router.match(b"example.com", b"/", b"GET", [(b"X-Canary", b"1")]) == (canary, "canary")
    # The first of repeated headers counts.
    assert router.match(b"x.test", b"/", b"GET", [(b"x-canary", b"0"), (b"x-canary", b"1")]) == (
        rest,
        "rest",
    )
    assert router.match(b"x.test", b"/", b"POST", []) == (posts, "posts")
    assert mod.Router([(api, "api")]).match(b"x.test", b"/v1", b"GET", []) is None
    # The answer is made once per route: matching allocates nothing.
    assert router.match(b"x.test", b"/", b"GET", []) is router.match(b"y.test", b"/a", b"PUT", [])
    # Absolute-form targets are served only for hosts some route names.
    assert router.serves_host(b"api.example.com")
    assert router.serves_host(b"deep.sub.example.com")
    assert not router.serves_host(b"example.com")
    assert not router.serves_host(b"evil.test")
    assert mod.normalise_host(b"API.Example.COM.:8080") == b"api.example.com"
    assert mod.normalise_host(b"[::1]:80") == b"[::1]"


@both
def test_headers_are_needed_only_by_routes_on_headers(fast_impl: FastImpl) -> None:
    # The data path reads a request's fields into a list only when the router
    # (or something else) needs them: needs_headers tells it, and without
    # header rules match() never reads them.
    mod = fast_impl("router")
    api = Route(RouteMatch(host="api.example.com", path_prefix="/v1"), "api")
    rest = Route(RouteMatch(path_prefix="/"), "rest")
    plain = mod.Router([(r, r.pool) for r in (api, rest)])
    assert plain.needs_headers is False
    assert plain.match(b"api.example.com", b"/v1/x", b"GET", None) == (api, "api")
    assert plain.match(b"x.test", b"/", b"GET", None) == (rest, "rest")
    canary = Route(RouteMatch(path_prefix="/", headers=(("x-canary", "1"),)), "canary")
    by_header = mod.Router([(r, r.pool) for r in (canary, rest)])
    assert by_header.needs_headers is True
    assert by_header.match(b"x.test", b"/", b"GET", [(b"X-Canary", b"1")]) == (canary, "canary")
    with pytest.raises(TypeError, match="matches on headers"):
        by_header.match(b"x.test", b"/", b"GET", None)
