"""Sealed cookie values, finding a cookie in a request, Set-Cookie lines."""

from __future__ import annotations

import base64
import hashlib
import hmac
import string
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lbproxy.cookies import CookieSigner, find_cookie, make_key, set_cookie_line

KEY = make_key("a test key that is long enough")
NOW = 1_700_000_000.0
LATER = 1_700_003_600
PURPOSE = b"sticky:web"
COOKIE_SAFE = set((string.ascii_letters + string.digits + "-_").encode())


@pytest.fixture
def signer() -> CookieSigner:
    return CookieSigner(KEY)


@settings(max_examples=200, deadline=None)
@given(payload=st.binary(max_size=64), expires=st.sampled_from([0, LATER, 2**32 - 1]))
def test_round_trip(payload: bytes, expires: int) -> None:
    signer = CookieSigner(KEY)
    value = signer.seal(PURPOSE, payload, expires)
    assert set(value) <= COOKIE_SAFE  # base64url, no padding
    assert signer.unseal(PURPOSE, value, NOW) == payload


def test_the_format_is_the_documented_one(signer: CookieSigner) -> None:
    value = signer.seal(PURPOSE, b"tok", LATER)
    raw = base64.urlsafe_b64decode(value + b"=" * (-len(value) % 4))
    body, tag = raw[:-16], raw[-16:]
    assert body == b"\x01" + LATER.to_bytes(4, "big") + b"tok"
    sub = hmac.digest(KEY, b"lbproxy cookie purpose\x00" + PURPOSE, "sha256")
    assert tag == hmac.digest(sub, body, "sha256")[:16]


def test_changing_any_character_is_refused(signer: CookieSigner) -> None:
    value = signer.seal(PURPOSE, b"backend-token", LATER)
    alphabet = sorted(COOKIE_SAFE)
    for i in range(len(value)):
        for c in alphabet:
            if c != value[i]:
                forged = value[:i] + bytes([c]) + value[i + 1 :]
                assert signer.unseal(PURPOSE, forged, NOW) is None, (i, chr(c))


@pytest.mark.parametrize(
    "mangle",
    [
        lambda v: v[:-1],  # truncated
        lambda v: v[1:],
        lambda v: v + b"A",  # lengthened
        lambda v: v + b"AA",
        lambda v: v + b"=",  # padding is never written, so never accepted
        lambda v: v[:10] + b"+" + v[11:],  # standard-alphabet characters
        lambda v: v[:10] + b" " + v[10:],  # characters a lenient decoder would skip
        lambda v: v.replace(v[5:6], b"\n", 1),
        lambda v: b"",
        lambda v: b"A" * 28,
        lambda v: b"A" * 5000,
        lambda v: b"\xff" * 40,
    ],
)
def test_malformed_values_are_refused(
    signer: CookieSigner, mangle: Callable[[bytes], bytes]
) -> None:
    value = signer.seal(PURPOSE, b"tok", LATER)
    assert signer.unseal(PURPOSE, mangle(value), NOW) is None


def test_only_canonical_base64_is_accepted(signer: CookieSigner) -> None:
    # Payload lengths that leave spare bits in the last character: each
    # spelling that decodes to the same bytes but is not ours is refused.
    for n in range(6):
        value = signer.seal(PURPOSE, b"x" * n, 0)
        assert signer.unseal(PURPOSE, value, NOW) == b"x" * n
        if len(value) % 4:
            last = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
            # Flip the lowest bit of the last character: always a spare one.
            twin = value[:-1] + bytes([last[last.index(value[-1]) ^ 1]])
            assert base64.urlsafe_b64decode(twin + b"=" * (-len(twin) % 4)) == (
                base64.urlsafe_b64decode(value + b"=" * (-len(value) % 4))
            )
            assert signer.unseal(PURPOSE, twin, NOW) is None


def test_a_forged_tag_with_valid_layout_is_refused(signer: CookieSigner) -> None:
    body = b"\x01" + (0).to_bytes(4, "big") + b"chosen-by-client"
    forged = base64.urlsafe_b64encode(body + b"\x00" * 16).rstrip(b"=")
    assert signer.unseal(PURPOSE, forged, NOW) is None


def test_other_purpose_is_refused(signer: CookieSigner) -> None:
    value = signer.seal(b"sticky:web", b"tok", 0)
    assert signer.unseal(b"sticky:api", value, NOW) is None
    assert signer.unseal(b"split:app", value, NOW) is None
    assert signer.unseal(b"sticky:web", value, NOW) == b"tok"


def test_other_key_is_refused(signer: CookieSigner) -> None:
    value = signer.seal(PURPOSE, b"tok", 0)
    assert CookieSigner(make_key("another key, just as long")).unseal(PURPOSE, value, NOW) is None
    assert CookieSigner(make_key(None)).unseal(PURPOSE, value, NOW) is None


def test_expiry(signer: CookieSigner) -> None:
    value = signer.seal(PURPOSE, b"tok", LATER)
    assert signer.unseal(PURPOSE, value, LATER - 0.001) == b"tok"
    assert signer.unseal(PURPOSE, value, LATER) is None
    assert signer.unseal(PURPOSE, value, LATER + 86400) is None
    forever = signer.seal(PURPOSE, b"tok", 0)
    assert signer.unseal(PURPOSE, forever, 4e9) == b"tok"


@pytest.mark.parametrize("expires", [-1, 2**32])
def test_expiry_out_of_range_is_refused(signer: CookieSigner, expires: int) -> None:
    with pytest.raises(ValueError, match="expires"):
        signer.seal(PURPOSE, b"tok", expires)


def test_many_purposes_do_not_break_sealing(signer: CookieSigner) -> None:
    values = [(b"p%d" % i, signer.seal(b"p%d" % i, b"x", 0)) for i in range(3000)]
    assert all(signer.unseal(p, v, NOW) == b"x" for p, v in values)


def test_backend_token_is_short_stable_and_opaque(signer: CookieSigner) -> None:
    token = signer.backend_token("web", "10.0.0.7:8080")
    assert len(token) == 12 and set(token) <= COOKIE_SAFE
    assert token == CookieSigner(KEY).backend_token("web", "10.0.0.7:8080")
    assert b"10.0.0.7" not in token and b"8080" not in token
    others = {
        signer.backend_token("web", "10.0.0.8:8080"),
        signer.backend_token("api", "10.0.0.7:8080"),
        signer.backend_token("we", "b10.0.0.7:8080"),  # no ambiguity at the boundary
        CookieSigner(make_key("another key, just as long")).backend_token("web", "10.0.0.7:8080"),
    }
    assert token not in others and len(others) == 4
    value = signer.seal(PURPOSE, token, 0)
    assert b"10.0.0.7" not in base64.urlsafe_b64decode(value + b"=" * (-len(value) % 4))


def test_make_key() -> None:
    assert make_key("secret text") == make_key("secret text")
    assert len(make_key("secret text")) == 32
    assert make_key("secret text") != make_key("secret text!")
    assert make_key("s") != hashlib.sha256(b"s").digest()  # domain-separated
    a, b = make_key(None), make_key(None)
    assert len(a) == 32 and a != b
    with pytest.raises(ValueError, match="cookie_key"):
        make_key("")
    with pytest.raises(ValueError):
        CookieSigner(b"")


@pytest.mark.parametrize(
    ("headers", "name", "expected"),
    [
        ([(b"Cookie", b"a=1; lbp=xyz; b=2")], b"lbp", b"xyz"),
        ([(b"cookie", b"lbp=xyz")], b"lbp", b"xyz"),
        ([(b"COOKIE", b"lbp=xyz")], b"lbp", b"xyz"),
        ([(b"Cookie", b'lbp="xyz"')], b"lbp", b"xyz"),  # quotes dropped
        ([(b"Cookie", b'lbp="')], b"lbp", b'"'),  # one quote is not a quoted value
        ([(b"Cookie", b"a=1"), (b"Cookie", b"lbp=second")], b"lbp", b"second"),
        ([(b"Cookie", b"lbp=first"), (b"Cookie", b"lbp=second")], b"lbp", b"first"),
        ([(b"Cookie", b"lbp=first; lbp=second")], b"lbp", b"first"),
        ([(b"Cookie", b"a=1;lbp=tight")], b"lbp", b"tight"),
        ([(b"Cookie", b"a=1;  lbp = spaced ")], b"lbp", b"spaced"),
        ([(b"Cookie", b"lbp=a=b")], b"lbp", b"a=b"),  # '=' inside a value
        ([(b"Cookie", b"lbp=")], b"lbp", b""),
        ([(b"Cookie", b"LBP=xyz")], b"lbp", None),  # names are case-sensitive
        ([(b"Cookie", b"xlbp=1; lbpx=2; lbp")], b"lbp", None),
        ([(b"X-Cookie", b"lbp=1"), (b"Set-Cookie", b"lbp=2")], b"lbp", None),
        ([(b"Cookies", b"lbp=1")], b"lbp", None),
        ([], b"lbp", None),
    ],
)
def test_find_cookie(
    headers: list[tuple[bytes, bytes]], name: bytes, expected: bytes | None
) -> None:
    assert find_cookie(headers, name) == expected


def test_set_cookie_line_exact_bytes() -> None:
    assert set_cookie_line(b"lbp_sticky", b"abc-_1", 3600, True) == (
        b"Set-Cookie: lbp_sticky=abc-_1; Path=/; Max-Age=3600; Secure; HttpOnly; SameSite=Lax\r\n"
    )
    assert set_cookie_line(b"s", b"v", None, False) == (
        b"Set-Cookie: s=v; Path=/; HttpOnly; SameSite=Lax\r\n"
    )
    assert set_cookie_line(b"s", b"", 0, True) == (
        b"Set-Cookie: s=; Path=/; Max-Age=0; Secure; HttpOnly; SameSite=Lax\r\n"
    )
    assert set_cookie_line(
        b"s", b"v", 5, False, path=b"/app", http_only=False, same_site=b"Strict"
    ) == (b"Set-Cookie: s=v; Path=/app; Max-Age=5; SameSite=Strict\r\n")
    assert set_cookie_line(b"s", b"v", None, True, same_site=b"None") == (
        b"Set-Cookie: s=v; Path=/; Secure; HttpOnly; SameSite=None\r\n"
    )
    assert set_cookie_line(b"s", b"v", None, False, same_site=b"") == (
        b"Set-Cookie: s=v; Path=/; HttpOnly\r\n"
    )


def test_a_sealed_value_is_a_valid_cookie_value(signer: CookieSigner) -> None:
    value = signer.seal(PURPOSE, signer.backend_token("web", "127.0.0.1:1"), LATER)
    line = set_cookie_line(b"lbp", value, 60, True)
    assert find_cookie([(b"Cookie", line[len(b"Set-Cookie: ") :].split(b";")[0])], b"lbp") == value


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"name": b""}, "name"),
        ({"name": b"a b"}, "name"),
        ({"name": b"a=b"}, "name"),
        ({"name": b"a\r\nX-Evil: 1"}, "name"),
        ({"value": b"a;b"}, "value"),
        ({"value": b"a\r\nX-Evil: 1"}, "value"),
        ({"value": b'"quoted"'}, "value"),
        ({"value": b"a b"}, "value"),
        ({"path": b"/a;b"}, "path"),
        ({"path": b"/a\nb"}, "path"),
        ({"path": b""}, "path"),
        ({"max_age": -1}, "max_age"),
        ({"same_site": b"lax"}, "SameSite"),
        ({"same_site": b"None", "secure": False}, "Secure"),
    ],
)
def test_set_cookie_line_refuses_what_would_break_the_header(
    kwargs: dict[str, object], match: str
) -> None:
    args: dict[str, object] = {"name": b"n", "value": b"v", "max_age": None, "secure": True}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        set_cookie_line(**args)  # type: ignore[arg-type]


# --- the cache of verified values ---


class _Counting:
    """Counts the tag verifications ``unseal`` does (patched onto the class)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        real = CookieSigner._verify

        def verify(signer: CookieSigner, purpose: bytes, value: bytes) -> object:
            self.calls += 1
            return real(signer, purpose, value)

        monkeypatch.setattr(CookieSigner, "_verify", verify)


def test_a_verified_value_is_not_verified_again(
    signer: CookieSigner, monkeypatch: pytest.MonkeyPatch
) -> None:
    value = signer.seal(PURPOSE, b"tok", LATER)
    counter = _Counting(monkeypatch)
    for _ in range(5):
        assert signer.unseal(PURPOSE, value, NOW) == b"tok"
    assert counter.calls == 1


def test_a_remembered_value_still_expires(signer: CookieSigner) -> None:
    value = signer.seal(PURPOSE, b"tok", LATER)
    assert signer.unseal(PURPOSE, value, NOW) == b"tok"
    assert signer.unseal(PURPOSE, value, LATER - 0.5) == b"tok"
    assert signer.unseal(PURPOSE, value, LATER) is None
    assert signer.unseal(PURPOSE, value, LATER + 10) is None
    # Expired when first seen: verified, remembered, and still refused.
    old = signer.seal(PURPOSE, b"tok", int(NOW) - 1)
    assert signer.unseal(PURPOSE, old, NOW) is None
    assert signer.unseal(PURPOSE, old, NOW) is None


def test_only_verified_values_are_remembered(
    signer: CookieSigner, monkeypatch: pytest.MonkeyPatch
) -> None:
    value = signer.seal(PURPOSE, b"tok", LATER)
    forged = value[:-1] + (b"A" if value[-1:] != b"A" else b"B")
    foreign = CookieSigner(make_key("another key, also long enough")).seal(PURPOSE, b"tok", LATER)
    assert signer.unseal(PURPOSE, value, NOW) == b"tok"
    counter = _Counting(monkeypatch)
    for _ in range(3):
        for bad in (forged, foreign, b"garbage", b"", value + value):
            assert signer.unseal(PURPOSE, bad, NOW) is None
    assert counter.calls == 3 * 5  # every time: nothing refused is remembered
    assert set(signer._seen) | set(signer._old) == {value}


def test_a_remembered_value_unseals_for_its_purpose_only(signer: CookieSigner) -> None:
    value = signer.seal(PURPOSE, b"tok", LATER)
    assert signer.unseal(PURPOSE, value, NOW) == b"tok"
    assert signer.unseal(b"split:web", value, NOW) is None
    assert signer.unseal(b"sticky:api", value, NOW) is None
    assert signer.unseal(PURPOSE, value, NOW) == b"tok"
    # And the other way round: refused for one purpose, then remembered for its own.
    other = signer.seal(b"split:web", b"a", 0)
    assert signer.unseal(PURPOSE, other, NOW) is None
    assert signer.unseal(b"split:web", other, NOW) == b"a"
    assert signer.unseal(PURPOSE, other, NOW) is None


def test_the_cache_is_per_signer() -> None:
    a, b = CookieSigner(KEY), CookieSigner(make_key("another key, also long enough"))
    value = a.seal(PURPOSE, b"tok", LATER)
    assert a.unseal(PURPOSE, value, NOW) == b"tok"
    assert b.unseal(PURPOSE, value, NOW) is None


def test_the_cache_is_bounded_and_stays_right(monkeypatch: pytest.MonkeyPatch) -> None:
    signer = CookieSigner(KEY, cache_size=3)
    values = [signer.seal(PURPOSE, b"%d" % i, LATER) for i in range(10)]
    counter = _Counting(monkeypatch)
    for _ in range(3):
        for i, value in enumerate(values):
            assert signer.unseal(PURPOSE, value, NOW) == b"%d" % i
            assert len(signer._seen) <= 3 and len(signer._old) <= 3
    assert counter.calls == 3 * len(values)  # a cycle longer than the cache always misses
    # A value in the old generation is found there and moves back.
    signer.unseal(PURPOSE, values[0], NOW)
    signer.unseal(PURPOSE, values[1], NOW)
    calls = counter.calls
    assert values[9] in signer._old
    assert signer.unseal(PURPOSE, values[9], NOW) == b"9"
    assert counter.calls == calls and values[9] in signer._seen


def test_no_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    signer = CookieSigner(KEY, cache_size=0)
    value = signer.seal(PURPOSE, b"tok", LATER)
    counter = _Counting(monkeypatch)
    for _ in range(3):
        assert signer.unseal(PURPOSE, value, NOW) == b"tok"
    assert counter.calls == 3
    assert not signer._seen and not signer._old


def test_negative_cache_size() -> None:
    with pytest.raises(ValueError, match="cache_size must be >= 0"):
        CookieSigner(KEY, cache_size=-1)


def test_find_cookie_name_as_part_of_another() -> None:
    # The name appears in the field, but only inside other cookies' names or values.
    headers = [(b"Cookie", b"xsrv=1; srvx=2; a=srv"), (b"cookie", b"b=srv=3")]
    assert find_cookie(headers, b"srv") is None
    assert find_cookie([*headers, (b"COOKIE", b"srv=4")], b"srv") == b"4"
