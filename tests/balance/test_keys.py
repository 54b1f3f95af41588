"""Hash keys read from a request, as ``hash_key`` names them."""

from __future__ import annotations

import pytest

from lbproxy.balance.keys import key_extractor
from lbproxy.config.model import HashKey

HEADERS = [
    (b"Host", b"example.com"),
    (b"X-User-Id", b"42"),
    (b"x-user-id", b"43"),
    (b"Cookie", b"theme=dark; sid=abc123"),
    (b"cookie", b'cart="q 1"'),
    (b"X-Empty", b""),
]


@pytest.mark.parametrize(
    ("key", "target", "expected"),
    [
        (HashKey("client_ip"), b"/", b"192.0.2.7"),
        (HashKey("path"), b"/a/b?x=1", b"/a/b"),
        (HashKey("path"), b"/a/b", b"/a/b"),
        (HashKey("header", "x-user-id"), b"/", b"42"),  # the first of repeated fields
        (HashKey("header", "host"), b"/", b"example.com"),
        (HashKey("header", "x-empty"), b"/", None),  # empty is missing
        (HashKey("header", "x-absent"), b"/", None),
        (HashKey("cookie", "sid"), b"/", b"abc123"),
        (HashKey("cookie", "cart"), b"/", b"q 1"),  # quoted value, quotes dropped
        (HashKey("cookie", "Sid"), b"/", None),  # cookie names are case-sensitive
        (HashKey("cookie", "the"), b"/", None),
        (HashKey("query", "user"), b"/p?a=1&user=bob&user=eve", b"bob"),
        (HashKey("query", "user"), b"/p?user=", None),
        (HashKey("query", "user"), b"/p?username=bob", None),
        (HashKey("query", "user"), b"/p", None),
        (HashKey("query", "u"), b"/p?u=1#frag", b"1"),
        (HashKey("path_segment", "0"), b"/accounts/123/x", b"accounts"),
        (HashKey("path_segment", "1"), b"/accounts/123/x", b"123"),
        (HashKey("path_segment", "2"), b"/accounts/123/x?y=/z", b"x"),
        (HashKey("path_segment", "3"), b"/accounts/123/x?y=/z/w", None),  # not from the query
        (HashKey("path_segment", "1"), b"//accounts///123/", b"123"),  # empty segments skipped
        (HashKey("path_segment", "1"), b"/accounts?id=123", None),
        (HashKey("path_segment", "0"), b"/", None),
        (HashKey("path_segment", "0"), b"/?a=b", None),
        (HashKey("path_segment", "01"), b"/a/b", b"b"),
    ],
)
def test_key_sources(key: HashKey, target: bytes, expected: bytes | None) -> None:
    assert key_extractor(key)(HEADERS, target, b"192.0.2.7") == expected


def test_no_client_address_is_no_key() -> None:
    assert key_extractor(HashKey("client_ip"))([], b"/", b"") is None


def test_unknown_source_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown hash key source"):
        key_extractor(HashKey("body"))


@pytest.mark.parametrize("index", ["", "-1", "x", "1.5", " 1", "\u0661"])
def test_path_segment_index_must_be_a_plain_number(index: str) -> None:
    with pytest.raises(ValueError, match="path_segment index"):
        key_extractor(HashKey("path_segment", index))
