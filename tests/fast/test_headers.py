"""Header scanning: the compiled ``lbproxy._fast.headers`` and its pure twin
``headers_py`` run the same cases, and hypothesis checks that they agree on
random header lists, errors included."""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lbproxy import _fast
from lbproxy._fast import headers_py

_DISABLED = "LBPROXY_NO_EXTENSIONS=1: compiled modules disabled"


def _compiled() -> ModuleType:
    """The compiled module; not being built fails the test rather than skipping it."""
    try:
        return importlib.import_module("lbproxy._fast.headers")
    except ImportError as exc:
        pytest.fail(
            f"compiled lbproxy._fast.headers is not importable ({exc}); build it with "
            "`python setup.py build_ext --inplace`, or set LBPROXY_NO_EXTENSIONS=1"
        )


@pytest.fixture(
    params=[
        pytest.param("compiled", marks=pytest.mark.skipif(_fast.NO_EXTENSIONS, reason=_DISABLED)),
        "pure",
    ]
)
def hdr(request: pytest.FixtureRequest) -> ModuleType:
    return _compiled() if request.param == "compiled" else headers_py


@pytest.fixture(scope="module")
def compiled() -> ModuleType:
    if _fast.NO_EXTENSIONS:
        pytest.skip(_DISABLED)
    return _compiled()


H = list[tuple[bytes, bytes]]
IP = b"203.0.113.7"
VIA = b"1.1 lbproxy"


def req(
    hdr: ModuleType,
    headers: H,
    *,
    trusted: bool = False,
    proto: bytes = b"http",
) -> tuple[bytes, bytes, int, int, bytes]:
    result: tuple[bytes, bytes, int, int, bytes] = hdr.scan_request(
        headers, IP, trusted, proto, VIA
    )
    return result


def lines(block: bytes) -> list[bytes]:
    assert block == b"" or block.endswith(b"\r\n")
    return block.split(b"\r\n")[:-1]


def names(block: bytes) -> list[bytes]:
    return [line.split(b":", 1)[0].lower() for line in lines(block)]


# Added by the proxy to every request with no X-Forwarded-* or Via of its own.
ADDED = [
    b"X-Forwarded-For: " + IP,
    b"X-Forwarded-Proto: http",
    b"Via: " + VIA,
]


# --- the module surface ------------------------------------------------------


def test_exported_names_and_flag_values(hdr: ModuleType) -> None:
    flags = {
        "CHUNKED": 1,
        "EXPECT_CONTINUE": 2,
        "CONN_CLOSE": 4,
        "CONN_KEEP_ALIVE": 8,
        "UPGRADE": 16,
        "HAS_CONTENT_LENGTH": 32,
    }
    for name, value in flags.items():
        assert getattr(hdr, name) == value
    assert issubclass(hdr.FramingError, ValueError)
    assert callable(hdr.scan_request)
    assert callable(hdr.scan_response)


def test_twins_export_the_same_public_names(compiled: ModuleType) -> None:
    def public(module: ModuleType) -> set[str]:
        return {n for n in dir(module) if not n.startswith("_")} - {"annotations"}

    assert public(compiled) == public(headers_py)


# --- requests: what passes, what is dropped ------------------------------------


def test_end_to_end_headers_pass_in_order_with_their_case(hdr: ModuleType) -> None:
    headers = [
        (b"Host", b"example.com"),
        (b"user-AGENT", b"curl/8"),
        (b"Accept", b"*/*"),
        (b"X-Empty", b""),
        (b"Cookie", b"a=1; b=2"),
    ]
    block, host, clen, flags, upgrade = req(hdr, headers)
    assert lines(block) == [
        b"Host: example.com",
        b"user-AGENT: curl/8",
        b"Accept: */*",
        b"X-Empty: ",
        b"Cookie: a=1; b=2",
        b"X-Forwarded-For: " + IP,
        b"X-Forwarded-Proto: http",
        b"X-Forwarded-Host: example.com",
        b"Via: " + VIA,
    ]
    assert (host, clen, flags, upgrade) == (b"example.com", -1, 0, b"")


def test_no_headers_at_all(hdr: ModuleType) -> None:
    assert req(hdr, []) == (b"".join(x + b"\r\n" for x in ADDED), b"", -1, 0, b"")


@pytest.mark.parametrize(
    "name, value",
    [
        (b"Connection", b"keep-alive"),
        (b"connection", b"foo"),
        (b"Keep-Alive", b"timeout=5"),
        (b"TE", b"trailers"),
        (b"te", b"gzip"),
        (b"Trailer", b"Expires"),
        (b"Upgrade", b"websocket"),  # not listed in Connection: dropped
        (b"Proxy-Connection", b"keep-alive"),
        (b"PROXY-CONNECTION", b"x"),
        (b"Proxy-Authorization", b"Basic Zm9vOmJhcg=="),
        (b"proxy-authenticate", b"Basic"),
        (b"Proxy-", b"odd but still proxy-*"),
        (b"Proxy-Anything", b"1"),
    ],
)
def test_request_hop_by_hop_headers_are_dropped(hdr: ModuleType, name: bytes, value: bytes) -> None:
    block, *_ = req(hdr, [(b"A", b"1"), (name, value), (b"B", b"2")])
    assert lines(block) == [b"A: 1", b"B: 2", *ADDED]


def test_chunked_transfer_encoding_is_dropped_then_restated(hdr: ModuleType) -> None:
    block, _, clen, flags, _ = req(hdr, [(b"transfer-encoding", b"Chunked"), (b"A", b"1")])
    assert lines(block) == [b"A: 1", *ADDED, b"Transfer-Encoding: chunked"]
    assert clen == -1
    assert flags == hdr.CHUNKED


def test_names_listed_in_connection_are_dropped(hdr: ModuleType) -> None:
    headers = [
        (b"Connection", b" X-Secret ,, keep-alive,"),
        (b"x-secret", b"1"),
        (b"X-SECRET", b"2"),
        (b"X-Secret-Not", b"3"),
        (b"Connection", b"Foo"),
        (b"foo", b"4"),
        (b"Proxy-Connection", b"bar"),  # its tokens count as well
        (b"BAR", b"5"),
        (b"Baz", b"6"),
    ]
    block, _, _, flags, _ = req(hdr, headers)
    assert lines(block) == [b"X-Secret-Not: 3", b"Baz: 6", *ADDED]
    assert flags == hdr.CONN_KEEP_ALIVE


def test_many_connection_tokens_and_many_headers(hdr: ModuleType) -> None:
    # Past the compiled scanner's small fixed buffers (64 headers, 16 tokens).
    listed = [b"X-L%d" % i for i in range(0, 200, 2)]
    headers = [(b"Connection", b", ".join(listed).lower())]
    headers += [(b"x-l%d" % i, b"v%d" % i) for i in range(200)]
    block, *_ = req(hdr, headers)
    assert lines(block) == [b"x-l%d: v%d" % (i, i) for i in range(1, 200, 2)] + ADDED


@pytest.mark.parametrize(
    "token, flag", [(b"close", "CONN_CLOSE"), (b" Keep-Alive ", "CONN_KEEP_ALIVE")]
)
def test_connection_close_and_keep_alive_flags(hdr: ModuleType, token: bytes, flag: str) -> None:
    _, _, _, flags, _ = req(hdr, [(b"Connection", b"x, " + token)])
    assert flags == getattr(hdr, flag)
    _, _, _, flags, _ = req(hdr, [(b"Proxy-Connection", token)])
    assert flags == getattr(hdr, flag)


# --- requests: X-Forwarded-* and Via ---------------------------------------------


@pytest.mark.parametrize("trusted", [False, True])
@pytest.mark.parametrize(
    "listed", [b"x-forwarded-for", b"X-Forwarded-Proto", b"x-forwarded-host", b"VIA"]
)
def test_connection_cannot_remove_the_headers_the_proxy_writes(
    hdr: ModuleType, trusted: bool, listed: bytes
) -> None:
    headers = [
        (b"Host", b"h"),
        (b"Connection", listed),
        (b"X-Forwarded-For", b"10.0.0.1"),
        (b"X-Forwarded-Proto", b"https"),
        (b"X-Forwarded-Host", b"fh"),
        (b"Via", b"1.0 fred"),
    ]
    block, *_ = req(hdr, headers, trusted=trusted)
    if trusted:
        assert lines(block) == [
            b"Host: h",
            b"X-Forwarded-For: 10.0.0.1, " + IP,
            b"X-Forwarded-Proto: https",
            b"X-Forwarded-Host: fh",
            b"Via: 1.0 fred, " + VIA,
        ]
    else:
        assert lines(block) == [
            b"Host: h",
            b"X-Forwarded-For: " + IP,
            b"X-Forwarded-Proto: http",
            b"X-Forwarded-Host: h",
            b"Via: 1.0 fred, " + VIA,
        ]


FORGED = [(b"Forwarded", b"for=10.0.0.1;proto=https"), (b"x-real-ip", b"10.0.0.1")]


def test_untrusted_peer_forwarded_and_x_real_ip_are_dropped(hdr: ModuleType) -> None:
    headers = [(b"Host", b"h"), FORGED[0], (b"A", b"1"), FORGED[1], (b"X-REAL-IP", b"2")]
    block, *_ = req(hdr, headers, trusted=False)
    assert lines(block) == [
        b"Host: h",
        b"A: 1",
        b"X-Forwarded-For: " + IP,
        b"X-Forwarded-Proto: http",
        b"X-Forwarded-Host: h",
        b"Via: " + VIA,
    ]


def test_trusted_peer_forwarded_and_x_real_ip_are_kept(hdr: ModuleType) -> None:
    headers = [(b"Host", b"h"), FORGED[0], (b"A", b"1"), FORGED[1]]
    block, *_ = req(hdr, headers, trusted=True)
    assert lines(block) == [
        b"Host: h",
        b"Forwarded: for=10.0.0.1;proto=https",
        b"A: 1",
        b"x-real-ip: 10.0.0.1",
        b"X-Forwarded-For: " + IP,
        b"X-Forwarded-Proto: http",
        b"X-Forwarded-Host: h",
        b"Via: " + VIA,
    ]
    # Not protected from Connection like the proxy's own headers are.
    block, *_ = req(hdr, [(b"Connection", b"forwarded, X-Real-IP"), *FORGED], trusted=True)
    assert lines(block) == ADDED


def test_forwarded_and_x_real_ip_pass_in_responses(hdr: ModuleType) -> None:
    assert hdr.scan_response(FORGED) == (
        b"Forwarded: for=10.0.0.1;proto=https\r\nx-real-ip: 10.0.0.1\r\n",
        -1,
        0,
    )


def test_untrusted_peer_cannot_forge_forwarded_headers(hdr: ModuleType) -> None:
    headers = [
        (b"Host", b"example.com"),
        (b"X-Forwarded-For", b"10.0.0.1"),
        (b"x-forwarded-proto", b"https"),
        (b"X-Forwarded-Host", b"evil.example"),
    ]
    block, *_ = req(hdr, headers, trusted=False, proto=b"http")
    assert lines(block) == [
        b"Host: example.com",
        b"X-Forwarded-For: " + IP,
        b"X-Forwarded-Proto: http",
        b"X-Forwarded-Host: example.com",
        b"Via: " + VIA,
    ]


def test_trusted_peer_forwarded_headers_are_kept_and_extended(hdr: ModuleType) -> None:
    headers = [
        (b"Host", b"internal"),
        (b"X-Forwarded-For", b"198.51.100.1"),
        (b"X-Forwarded-Proto", b"https"),
        (b"X-Forwarded-Host", b"www.example.com"),
        (b"x-forwarded-for", b"10.0.0.1, 10.0.0.2"),
    ]
    block, host, *_ = req(hdr, headers, trusted=True, proto=b"http")
    assert lines(block) == [
        b"Host: internal",
        b"X-Forwarded-For: 198.51.100.1, 10.0.0.1, 10.0.0.2, " + IP,
        b"X-Forwarded-Proto: https",
        b"X-Forwarded-Host: www.example.com",
        b"Via: " + VIA,
    ]
    assert host == b"internal"


def test_trusted_peer_without_forwarded_headers(hdr: ModuleType) -> None:
    block, *_ = req(hdr, [(b"Host", b"h")], trusted=True, proto=b"https")
    assert lines(block) == [
        b"Host: h",
        b"X-Forwarded-For: " + IP,
        b"X-Forwarded-Proto: https",
        b"X-Forwarded-Host: h",
        b"Via: " + VIA,
    ]


def test_last_forwarded_proto_and_host_win_and_empty_ones_fall_back(
    hdr: ModuleType,
) -> None:
    headers = [
        (b"X-Forwarded-Proto", b"wss"),
        (b"X-Forwarded-Proto", b"https"),
        (b"X-Forwarded-Host", b"a"),
        (b"X-Forwarded-Host", b"b"),
    ]
    block, *_ = req(hdr, headers, trusted=True)
    assert b"X-Forwarded-Proto: https" in lines(block)
    assert b"X-Forwarded-Host: b" in lines(block)
    headers = [(b"Host", b"h"), (b"X-Forwarded-Proto", b""), (b"X-Forwarded-Host", b"")]
    block, *_ = req(hdr, headers, trusted=True, proto=b"http")
    assert b"X-Forwarded-Proto: http" in lines(block)
    assert b"X-Forwarded-Host: h" in lines(block)


def test_no_forwarded_host_without_host(hdr: ModuleType) -> None:
    block, host, *_ = req(hdr, [(b"A", b"1")])
    assert host == b""
    assert b"x-forwarded-host" not in names(block)


def test_via_is_appended_to_the_incoming_chain(hdr: ModuleType) -> None:
    headers = [(b"Via", b"1.0 fred"), (b"A", b"1"), (b"VIA", b"1.1 p.example")]
    block, *_ = req(hdr, headers)
    assert lines(block)[0] == b"A: 1"
    assert lines(block)[-1] == b"Via: 1.0 fred, 1.1 p.example, " + VIA


# --- requests: framing --------------------------------------------------------------


def test_host_is_captured_and_kept(hdr: ModuleType) -> None:
    block, host, *_ = req(hdr, [(b"hOsT", b"example.com:8080")])
    assert host == b"example.com:8080"
    assert lines(block)[0] == b"hOsT: example.com:8080"


@pytest.mark.parametrize(
    "first, second", [(b"a", b"b"), (b"", b"evil"), (b"a", b""), (b"", b""), (b"a", b"a")]
)
def test_more_than_one_host_is_a_framing_error(
    hdr: ModuleType, first: bytes, second: bytes
) -> None:
    # An empty first Host still counts: seen is not the same as non-empty.
    with pytest.raises(hdr.FramingError, match=r"^more than one Host header$"):
        req(hdr, [(b"Host", first), (b"X", b"1"), (b"host", second)])


def test_one_empty_host_is_not_forwarded(hdr: ModuleType) -> None:
    # An empty Host reads as none: the caller sends the backend's address
    # instead, and two Host lines must never reach the backend.
    block, host, *_ = req(hdr, [(b"Host", b"")])
    assert host == b""
    assert lines(block) == ADDED


@pytest.mark.parametrize(
    "listed", [b"content-length", b"Content-Length", b"host", b"HOST, x-a", b"close, host"]
)
def test_connection_cannot_remove_host_or_content_length(hdr: ModuleType, listed: bytes) -> None:
    # Dropping Content-Length while forwarding the body would let the body be
    # read by the backend as the next request (request smuggling).
    headers = [
        (b"Host", b"h"),
        (b"Content-Length", b"5"),
        (b"Connection", listed),
        (b"X-A", b"1"),
    ]
    block, host, clen, flags, _ = req(hdr, headers)
    assert (host, clen) == (b"h", 5)
    assert flags & hdr.HAS_CONTENT_LENGTH
    kept = lines(block)[:-4]
    assert kept[:2] == [b"Host: h", b"Content-Length: 5"]
    assert (b"X-A: 1" in kept) == (b"x-a" not in listed)


def test_connection_cannot_remove_transfer_encoding(hdr: ModuleType) -> None:
    headers = [(b"Connection", b"transfer-encoding"), (b"Transfer-Encoding", b"chunked")]
    block, _, clen, flags, _ = req(hdr, headers)
    assert (clen, flags) == (-1, hdr.CHUNKED)
    assert lines(block) == [*ADDED, b"Transfer-Encoding: chunked"]


@pytest.mark.parametrize(
    "value, expected",
    [
        (b"0", 0),
        (b"42", 42),
        (b"007", 7),
        (b"999999999999999999", 999999999999999999),
        (b"000000000000000001", 1),
    ],
)
def test_content_length_is_parsed(hdr: ModuleType, value: bytes, expected: int) -> None:
    block, _, clen, flags, _ = req(hdr, [(b"content-length", value)])
    assert clen == expected
    assert type(clen) is int
    assert flags == hdr.HAS_CONTENT_LENGTH
    assert lines(block)[0] == b"content-length: " + value


# More than 18 digits, leading zeros included: past what always fits an int64.
TOO_LONG = [
    b"9223372036854775807",
    b"0000000000000000001",
    b"18446744073709551616",
    b"123456789012345678901234567890",
    b"1" * 5000,  # past int()'s own digit limit
]


@pytest.mark.parametrize(
    "value",
    [b"", b"-1", b"+1", b" 1", b"1 ", b"1.0", b"0x10", b"1,1", b"1 2", b"\xd9\xa1", *TOO_LONG],
)
def test_invalid_content_length(hdr: ModuleType, value: bytes) -> None:
    with pytest.raises(hdr.FramingError, match=r"^invalid Content-Length$"):
        req(hdr, [(b"Content-Length", value)])


@pytest.mark.parametrize("second", [b"5", b"6", b"x"])
def test_more_than_one_content_length(hdr: ModuleType, second: bytes) -> None:
    with pytest.raises(hdr.FramingError, match=r"^more than one Content-Length$"):
        req(hdr, [(b"Content-Length", b"5"), (b"CONTENT-LENGTH", second)])


@pytest.mark.parametrize("value", [b"chunked", b"CHUNKED", b" chunked\t"])
def test_transfer_encoding_chunked(hdr: ModuleType, value: bytes) -> None:
    _, _, clen, flags, _ = req(hdr, [(b"Transfer-Encoding", value)])
    assert (clen, flags) == (-1, hdr.CHUNKED)


@pytest.mark.parametrize(
    "values",
    [
        [b"gzip"],
        [b"gzip, chunked"],
        [b"chunked, gzip"],
        [b"chunked,chunked"],
        [b""],
        [b"identity"],
        [b"chunked", b"chunked"],
        [b"chunked", b"gzip"],
    ],
)
def test_other_transfer_encodings_are_framing_errors(hdr: ModuleType, values: list[bytes]) -> None:
    with pytest.raises(hdr.FramingError, match=r"^unsupported Transfer-Encoding$"):
        req(hdr, [(b"Transfer-Encoding", v) for v in values])


@pytest.mark.parametrize(
    "headers",
    [
        [(b"Content-Length", b"3"), (b"Transfer-Encoding", b"chunked")],
        [(b"transfer-encoding", b"chunked"), (b"content-length", b"0")],
    ],
)
def test_content_length_with_transfer_encoding(hdr: ModuleType, headers: H) -> None:
    with pytest.raises(hdr.FramingError, match=r"^both Content-Length and Transfer-Encoding$"):
        req(hdr, headers)


def test_errors_are_raised_in_header_order(hdr: ModuleType) -> None:
    with pytest.raises(hdr.FramingError, match=r"^invalid Content-Length$"):
        req(hdr, [(b"Content-Length", b"x"), (b"Host", b"a"), (b"Host", b"b")])
    with pytest.raises(hdr.FramingError, match=r"^more than one Host header$"):
        req(hdr, [(b"Host", b"a"), (b"Host", b"b"), (b"Content-Length", b"x")])


@pytest.mark.parametrize("value", [b"100-continue", b"100-Continue", b" 100-CONTINUE "])
def test_expect_100_continue(hdr: ModuleType, value: bytes) -> None:
    block, _, _, flags, _ = req(hdr, [(b"Expect", value)])
    assert flags == hdr.EXPECT_CONTINUE
    assert lines(block)[0] == b"Expect: " + value  # passes on: the backend answers it


@pytest.mark.parametrize("value", [b"", b"100-continue-ish", b"200-ok"])
def test_other_expectations_set_no_flag(hdr: ModuleType, value: bytes) -> None:
    _, _, _, flags, _ = req(hdr, [(b"Expect", value)])
    assert flags == 0


def test_upgrade_with_connection_upgrade(hdr: ModuleType) -> None:
    headers = [
        (b"Host", b"h"),
        (b"Connection", b"keep-alive, Upgrade"),
        (b"Upgrade", b"websocket"),
        (b"Sec-WebSocket-Key", b"k"),
    ]
    block, _, _, flags, upgrade = req(hdr, headers)
    assert upgrade == b"websocket"
    assert flags == hdr.UPGRADE | hdr.CONN_KEEP_ALIVE
    assert lines(block) == [
        b"Host: h",
        b"Sec-WebSocket-Key: k",
        b"X-Forwarded-For: " + IP,
        b"X-Forwarded-Proto: http",
        b"X-Forwarded-Host: h",
        b"Via: " + VIA,
        b"Upgrade: websocket",
        b"Connection: upgrade",
    ]


@pytest.mark.parametrize(
    "headers",
    [
        [(b"Upgrade", b"websocket")],
        [(b"Upgrade", b"websocket"), (b"Connection", b"close")],
        [(b"Connection", b"upgrade")],
        [(b"Connection", b"upgrade"), (b"Upgrade", b"")],
    ],
)
def test_no_upgrade_without_both_headers(hdr: ModuleType, headers: H) -> None:
    block, _, _, flags, upgrade = req(hdr, headers)
    assert upgrade == b""
    assert not flags & hdr.UPGRADE
    assert b"upgrade" not in names(block)
    assert b"connection" not in names(block)


# --- responses --------------------------------------------------------------------


def test_response_content_length(hdr: ModuleType) -> None:
    headers = [(b"Content-Type", b"text/plain"), (b"Content-Length", b"12")]
    assert hdr.scan_response(headers) == (
        b"Content-Type: text/plain\r\nContent-Length: 12\r\n",
        12,
        hdr.HAS_CONTENT_LENGTH,
    )


def test_response_without_framing(hdr: ModuleType) -> None:
    assert hdr.scan_response([(b"Server", b"x")]) == (b"Server: x\r\n", -1, 0)
    assert hdr.scan_response([]) == (b"", -1, 0)


def test_response_equal_duplicate_content_lengths_are_forwarded_as_one(hdr: ModuleType) -> None:
    headers = [
        (b"Content-Length", b"5"),
        (b"A", b"1"),
        (b"content-length", b"005"),
        (b"CONTENT-LENGTH", b"5"),
    ]
    assert hdr.scan_response(headers) == (
        b"Content-Length: 5\r\nA: 1\r\n",
        5,
        hdr.HAS_CONTENT_LENGTH,
    )


def test_response_conflicting_content_length(hdr: ModuleType) -> None:
    with pytest.raises(hdr.FramingError, match=r"^conflicting Content-Length$"):
        hdr.scan_response([(b"Content-Length", b"5"), (b"Content-Length", b"6")])


@pytest.mark.parametrize("value", [b"", b"-1", b"1.5", b" 5", *TOO_LONG])
def test_response_invalid_content_length(hdr: ModuleType, value: bytes) -> None:
    with pytest.raises(hdr.FramingError, match=r"^invalid Content-Length$"):
        hdr.scan_response([(b"Content-Length", value)])
    # Even where Transfer-Encoding would override it.
    with pytest.raises(hdr.FramingError, match=r"^invalid Content-Length$"):
        hdr.scan_response([(b"Transfer-Encoding", b"chunked"), (b"Content-Length", value)])


@pytest.mark.parametrize(
    "headers",
    [
        [(b"Content-Length", b"10"), (b"Transfer-Encoding", b"chunked")],
        [(b"transfer-encoding", b"gzip, Chunked "), (b"content-length", b"10")],
        [(b"Transfer-Encoding", b"chunked,")],
    ],
)
def test_response_chunked_drops_content_length(hdr: ModuleType, headers: H) -> None:
    block, clen, flags = hdr.scan_response([(b"Date", b"d"), *headers])
    assert block == b"Date: d\r\n"
    assert clen == -1
    # No HAS_CONTENT_LENGTH: Content-Length does not frame it; having had one
    # beside Transfer-Encoding, the response's connection is not to be reused.
    had_clen = any(n.lower() == b"content-length" for n, _ in headers)
    assert flags == hdr.CHUNKED | (hdr.FRAMING_CONFLICT if had_clen else 0)


@pytest.mark.parametrize(
    "values, chunked",
    [
        ([b"gzip", b"chunked"], True),
        ([b"chunked", b"gzip"], False),
        ([b"chunked", b""], True),
        ([b"chunked", b" , "], True),
        ([b"gzip", b"Chunked", b""], True),
        ([b"", b"chunked"], True),
        ([b"chunked", b"chunked, gzip"], False),
        ([b"gzip,", b"deflate, chunked", b","], True),
        ([b"chunked", b"identity"], False),
        ([b"", b""], False),
    ],
)
@pytest.mark.parametrize("with_clen", [False, True])
def test_response_transfer_encoding_lines_make_one_list(
    hdr: ModuleType, values: list[bytes], chunked: bool, with_clen: bool
) -> None:
    headers = [(b"Transfer-Encoding", v) for v in values]
    headers.insert(1, (b"Date", b"d"))
    if with_clen:
        headers.append((b"Content-Length", b"7"))
    block, clen, flags = hdr.scan_response(headers)
    assert block == b"Date: d\r\n"
    assert clen == -1
    conflict = hdr.FRAMING_CONFLICT if with_clen else 0
    assert flags == (hdr.CHUNKED if chunked else 0) | conflict


@pytest.mark.parametrize("te", [b"gzip", b"chunked, gzip", b"identity", b""])
@pytest.mark.parametrize("clen_first", [False, True])
def test_response_transfer_encoding_overrides_content_length(
    hdr: ModuleType, te: bytes, clen_first: bool
) -> None:
    # Not chunked at the end: the body runs until the backend closes (RFC
    # 9112 6.3), so Content-Length must neither frame it nor be forwarded.
    headers = [(b"Transfer-Encoding", te), (b"Content-Length", b"10"), (b"Date", b"d")]
    if clen_first:
        headers.reverse()
    block, clen, flags = hdr.scan_response(headers)
    assert block == b"Date: d\r\n"
    assert (clen, flags) == (-1, hdr.FRAMING_CONFLICT)


@pytest.mark.parametrize("value", [b"chunked, gzip", b"gzip", b"", b","])
def test_response_transfer_encoding_not_ending_in_chunked(hdr: ModuleType, value: bytes) -> None:
    block, clen, flags = hdr.scan_response([(b"Transfer-Encoding", value), (b"Date", b"d")])
    assert (block, clen, flags) == (b"Date: d\r\n", -1, 0)


@pytest.mark.parametrize(
    "value, close, keep_alive",
    [
        (b"close", True, False),
        (b"Keep-Alive, CLOSE ", True, True),
        (b"keep-alive", False, True),
        (b"upgrade", False, False),
    ],
)
def test_response_connection_flags(
    hdr: ModuleType, value: bytes, close: bool, keep_alive: bool
) -> None:
    # CONN_KEEP_ALIVE is what makes an HTTP/1.0 response's connection reusable.
    block, _, flags = hdr.scan_response([(b"Connection", value)])
    assert block == b""
    expected = (hdr.CONN_CLOSE if close else 0) | (hdr.CONN_KEEP_ALIVE if keep_alive else 0)
    assert flags == expected


def test_response_proxy_connection_close_is_not_read(hdr: ModuleType) -> None:
    assert hdr.scan_response([(b"Proxy-Connection", b"close")]) == (b"", -1, 0)


@pytest.mark.parametrize(
    "name",
    [
        b"Connection",
        b"Keep-Alive",
        b"TE",
        b"Trailer",
        b"Transfer-Encoding",
        b"Upgrade",
        b"Proxy-Connection",
        b"Proxy-Authenticate",
        b"proxy-x",
    ],
)
def test_response_hop_by_hop_headers_are_stripped(hdr: ModuleType, name: bytes) -> None:
    block, _, _ = hdr.scan_response([(b"A", b"1"), (name, b"v"), (b"B", b"2")])
    assert block == b"A: 1\r\nB: 2\r\n"


@pytest.mark.parametrize("clen_first", [False, True])
def test_response_connection_cannot_remove_content_length(
    hdr: ModuleType, clen_first: bool
) -> None:
    headers = [(b"Connection", b"Content-Length, close"), (b"A", b"1")]
    headers.insert(0 if clen_first else 2, (b"Content-Length", b"5"))
    block, clen, flags = hdr.scan_response(headers)
    assert lines(block) == (
        [b"Content-Length: 5", b"A: 1"] if clen_first else [b"A: 1", b"Content-Length: 5"]
    )
    assert (clen, flags) == (5, hdr.HAS_CONTENT_LENGTH | hdr.CONN_CLOSE)


def test_response_connection_cannot_remove_protected_names(hdr: ModuleType) -> None:
    headers = [
        (b"Connection", b"host, x-forwarded-for, X-Forwarded-Proto, x-forwarded-host, via, x-a"),
        (b"Host", b"h"),
        (b"X-Forwarded-For", b"1"),
        (b"X-Forwarded-Proto", b"2"),
        (b"X-Forwarded-Host", b"3"),
        (b"Via", b"4"),
        (b"X-A", b"5"),
        (b"Connection", b"transfer-encoding"),
        (b"Transfer-Encoding", b"chunked"),
    ]
    block, clen, flags = hdr.scan_response(headers)
    assert lines(block) == [
        b"Host: h",
        b"X-Forwarded-For: 1",
        b"X-Forwarded-Proto: 2",
        b"X-Forwarded-Host: 3",
        b"Via: 4",
    ]
    assert (clen, flags) == (-1, hdr.CHUNKED)


def test_response_connection_listed_names_are_stripped(hdr: ModuleType) -> None:
    headers = [
        (b"X-Internal", b"1"),
        (b"Connection", b"x-internal, Keep-Alive"),
        (b"keep-alive", b"timeout=5"),
        (b"Via", b"1.1 backend"),
        (b"X-Forwarded-For", b"kept as is"),
    ]
    block, _, flags = hdr.scan_response(headers)
    assert block == b"Via: 1.1 backend\r\nX-Forwarded-For: kept as is\r\n"
    assert flags == hdr.CONN_KEEP_ALIVE


# --- inputs outside the list-of-(bytes, bytes) contract ---------------------------


@pytest.mark.parametrize(
    "headers",
    [
        ((b"Host", b"h"), (b"Content-Length", b"1")),  # a tuple, not a list
        [(b"Host", bytearray(b"h")), (b"A", b"1")],
        [[b"Host", b"h"]],
        [(b"Host", b"a"), (b"Host", b"b"), (b"A", bytearray(b"1"))],
    ],
)
def test_off_contract_inputs_agree(compiled: ModuleType, headers: Any) -> None:
    assert_same_request(compiled, headers, IP, True, b"http", VIA)
    assert_same_response(compiled, headers)


@pytest.mark.parametrize(
    "args", [(IP, 1, b"http", VIA), (IP, 0, b"http", VIA), (bytearray(IP), True, b"h", VIA)]
)
def test_off_contract_arguments_agree(compiled: ModuleType, args: tuple[Any, ...]) -> None:
    headers = [(b"Host", b"h"), (b"X-Forwarded-For", b"1.2.3.4")]
    assert_same_request(compiled, headers, *args)


# --- compiled and pure agree on random header lists ------------------------------

POOL = [
    b"host",
    b"content-length",
    b"transfer-encoding",
    b"connection",
    b"proxy-connection",
    b"keep-alive",
    b"te",
    b"trailer",
    b"upgrade",
    b"expect",
    b"x-forwarded-for",
    b"x-forwarded-proto",
    b"x-forwarded-host",
    b"via",
    b"proxy-authorization",
    b"proxy-",
    b"proxy",
    b"close",
    b"forwarded",
    b"x-real-ip",
    b"x-foo",
    b"accept",
    b"t",
    b"",
]

TOKEN_CHARS = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _random_case(name: bytes, mask: int) -> bytes:
    flip = [97 <= c <= 122 and mask >> (i % 60) & 1 for i, c in enumerate(name)]
    return bytes(c ^ 0x20 if f else c for c, f in zip(name, flip, strict=True))


names_st = st.one_of(
    st.builds(_random_case, st.sampled_from(POOL), st.integers(0, 2**60)),
    st.text(TOKEN_CHARS, max_size=18).map(str.encode),
)
printable_st = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=20).map(
    str.encode
)
SPACE = st.sampled_from([b"", b" ", b"\t", b"  ", b"\x0b", b"\x0c", b"\r\n"])
values_st = st.one_of(
    printable_st,
    st.binary(max_size=10),
    st.sampled_from(
        [
            b"chunked",
            b"gzip, chunked",
            b"chunked, gzip",
            b"close",
            b"keep-alive",
            b"upgrade",
            b"100-continue",
            b"websocket",
            b"0",
            b"12",
            b"12345678901234567890123",
        ]
    ),
    st.builds(
        lambda a, v, b: a + v + b,
        SPACE,
        st.sampled_from([b"chunked", b"Close", b"100-Continue"]),
        SPACE,
    ),
    st.integers(0, 2**70).map(lambda n: b"%d" % n),
    # Connection-style lists that name headers from the pool.
    st.lists(st.tuples(SPACE, names_st, SPACE), max_size=6).map(
        lambda parts: b",".join(a + n + b for a, n, b in parts)
    ),
)


@st.composite
def headers_st(draw: st.DrawFn) -> H:
    """Random headers, often with Connection headers naming some of them."""
    headers = draw(st.lists(st.tuples(names_st, values_st), max_size=14))
    for _ in range(draw(st.integers(0, 2))):
        listed = draw(st.lists(st.sampled_from([n for n, _ in headers] or [b"x"]), max_size=5))
        listed = [_random_case(n, draw(st.integers(0, 2**60))) for n in listed]
        listed += draw(st.lists(st.sampled_from([b"close", b"keep-alive", b"upgrade"])))
        value = b",".join(draw(SPACE) + n + draw(SPACE) for n in listed)
        name = draw(st.sampled_from([b"Connection", b"connection", b"Proxy-Connection"]))
        headers.insert(draw(st.integers(0, len(headers))), (name, value))
    return headers


bytes_arg_st = st.one_of(st.sampled_from([b"", b"http", b"https", IP]), printable_st)


def _outcome(call: Any, *args: Any) -> tuple[str, object]:
    try:
        return "ok", call(*args)
    except ValueError as exc:  # FramingError, or any other ValueError (a bug)
        framing = type(exc).__name__ == "FramingError"
        return ("framing" if framing else type(exc).__name__), str(exc)
    except TypeError as exc:
        return "TypeError", str(exc)


def assert_same_request(compiled: ModuleType, headers: Any, *args: Any) -> None:
    got = _outcome(compiled.scan_request, headers, *args)
    want = _outcome(headers_py.scan_request, headers, *args)
    assert got == want
    # The same fields read in place from a head's lines, by either twin.
    for ows in (b"", b" ", b" \t "):
        region = as_lines(headers, ows)
        if region is not None:
            assert _outcome(compiled.scan_request_lines, *region, *args) == want
            assert _outcome(headers_py.scan_request_lines, *region, *args) == want


def as_lines(headers: Any, ows: bytes = b" ") -> tuple[bytes, int, int] | None:
    """``headers`` written as a response head's field lines with ``ows``
    around each value: ``(data, start, stop)`` for ``scan_response_lines``, or
    None when a name or value cannot be written so that h1 reads it back."""
    if not isinstance(headers, list) or not all(
        isinstance(h, tuple)
        and len(h) == 2
        and type(h[0]) is bytes
        and type(h[1]) is bytes
        and h[0]
        and not any(c in h[0] for c in b":\r\n \t")
        and not any(c in h[1] for c in b"\r\n")
        and h[1] == h[1].strip(b" \t")
        for h in headers
    ):
        return None
    start = len(b"HTTP/1.1 200 OK\r\n")
    data = b"HTTP/1.1 200 OK\r\n" + b"".join(n + b":" + ows + v + ows + b"\r\n" for n, v in headers)
    return data + b"\r\nbody", start, len(data)


def assert_same_response(compiled: ModuleType, headers: Any) -> None:
    want = _outcome(headers_py.scan_response, headers)
    assert _outcome(compiled.scan_response, headers) == want
    # The same fields read in place from a head's lines, by either twin.
    for ows in (b"", b" ", b" \t "):
        region = as_lines(headers, ows)
        if region is not None:
            assert _outcome(compiled.scan_response_lines, *region) == want
            assert _outcome(headers_py.scan_response_lines, *region) == want


@settings(max_examples=1500, deadline=None)
@given(
    headers=headers_st(),
    client_ip=bytes_arg_st,
    trusted=st.booleans(),
    proto=bytes_arg_st,
    via=bytes_arg_st,
)
def test_compiled_and_pure_agree_on_requests(
    compiled: ModuleType,
    headers: H,
    client_ip: bytes,
    trusted: bool,
    proto: bytes,
    via: bytes,
) -> None:
    assert_same_request(compiled, headers, client_ip, trusted, proto, via)


@settings(max_examples=1500, deadline=None)
@given(headers=headers_st())
def test_compiled_and_pure_agree_on_responses(compiled: ModuleType, headers: H) -> None:
    assert_same_response(compiled, headers)


@pytest.mark.parametrize(
    "headers",
    [
        [(b"Host", b""), (b"Host", b"b")],
        [(b"Host", b"a"), (b"Host", b"")],
        [(b"X-Forwarded-For", b""), (b"X-Forwarded-For", b"a"), (b"X-Forwarded-For", b"")],
        [(b"Via", b""), (b"Via", b""), (b"Via", b"a"), (b"Via", b"")],
        [(b"Upgrade", b"a"), (b"Upgrade", b""), (b"Connection", b"upgrade")],
        [(b"Content-Length", b"5"), (b"Content-Length", b"5")],
        [(b"Content-Length", b"5"), (b"Content-Length", b"05"), (b"Transfer-Encoding", b"x")],
        [(b"Transfer-Encoding", b"gzip"), (b"Transfer-Encoding", b"chunked")],
        [(b"Transfer-Encoding", b"chunked"), (b"Transfer-Encoding", b"gzip")],
        [(b"Transfer-Encoding", b"chunked"), (b"Content-Length", b"1"), (b"Content-Length", b"2")],
        [(b"Connection", b"host, content-length"), (b"Host", b"h"), (b"Content-Length", b"1")],
        [(b"Connection", b"x-forwarded-for, via, te"), (b"X-Forwarded-For", b"1.2.3.4")],
        [(b"Connection", b"close\x0b,\x0ckeep-alive\r\n")],
        [(b"Expect", b"\x0c100-continue\x0b")],
        [(b"Content-Length", b"99999999999999999999"), (b"content-length", b"1" + b"0" * 19)],
        [(b"Content-Length", b"999999999999999999"), (b"Content-Length", b"0999999999999999999")],
        [(b"Host", b""), (b"Host", b"")],
        [(b"Connection", b"content-length, transfer-encoding"), (b"Content-Length", b"5")],
        [(b"Content-Length", b"5"), (b"Transfer-Encoding", b""), (b"Content-Length", b"5")],
        [(b"Transfer-Encoding", b"chunked"), (b"Transfer-Encoding", b" ,")],
        [(b"Forwarded", b"for=x"), (b"X-Real-IP", b"y"), (b"Connection", b"forwarded")],
    ],
)
@pytest.mark.parametrize("trusted", [False, True])
def test_edge_cases_agree(compiled: ModuleType, headers: H, trusted: bool) -> None:
    # Agreement, not approval: some of these show the twin's quirks, which the
    # compiled module must share until the twin changes.
    assert_same_request(compiled, headers, IP, trusted, b"http", VIA)
    assert_same_response(compiled, headers)


# --- response field lines read in place --------------------------------------------

HEAD = (
    b"HTTP/1.1 200 OK\r\n"
    b"Server:nginx\r\n"
    b"Connection: keep-alive, X-Drop\r\n"
    b"X-Drop: 1\r\n"
    b"Content-Length:  6 \t\r\n"
    b"Keep-Alive: timeout=5\r\n"
    b"Set-Cookie: a=b;  c \r\n"
    b"\r\n"
    b"hello\n"
)
HEAD_START = HEAD.index(b"\r\n") + 2
HEAD_STOP = HEAD.index(b"\r\n\r\n") + 2


def test_response_lines_are_read_in_place(hdr: ModuleType) -> None:
    block, clen, flags = hdr.scan_response_lines(HEAD, HEAD_START, HEAD_STOP)
    assert block == b"Server: nginx\r\nContent-Length: 6\r\nSet-Cookie: a=b;  c\r\n"
    assert clen == 6
    assert flags == hdr.HAS_CONTENT_LENGTH | hdr.CONN_KEEP_ALIVE
    # Where the head sits in the read does not matter.
    shifted = b"previous response" + HEAD
    assert hdr.scan_response_lines(shifted, HEAD_START + 17, HEAD_STOP + 17) == (
        block,
        clen,
        flags,
    )
    assert hdr.scan_response_lines(HEAD, HEAD_START, HEAD_START) == (b"", -1, 0)


def test_response_lines_framing_errors(hdr: ModuleType) -> None:
    data = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"
    with pytest.raises(hdr.FramingError, match="conflicting Content-Length"):
        hdr.scan_response_lines(data, 17, len(data) - 2)


def test_response_lines_past_the_local_table(hdr: ModuleType) -> None:
    # More lines than the compiled scanner holds without a heap allocation.
    headers = [(b"X-%d" % i, b"v%d" % i) for i in range(150)] + [(b"Content-Length", b"3")]
    region = as_lines(headers)
    assert region is not None
    assert hdr.scan_response_lines(*region) == hdr.scan_response(headers)
    assert hdr.scan_response_lines(*region)[1] == 3


@pytest.mark.parametrize(
    "args",
    [
        (bytearray(HEAD), HEAD_START, HEAD_STOP),
        (HEAD, HEAD_START, HEAD_STOP - 1),  # the last line cut before its LF
        (HEAD, HEAD_START, HEAD_STOP - 2),  # ... before its CR
        (HEAD, HEAD_START + 1, HEAD_STOP),  # a line cut inside its name
        (HEAD, 0, HEAD_STOP),  # the status line: no colon
        (HEAD, HEAD_STOP, HEAD_STOP + 4),  # the blank line and the body
        (HEAD, -5, HEAD_STOP),
        (HEAD, HEAD_START, 2**70),
        (HEAD, HEAD_STOP, HEAD_START),
        (HEAD, True, HEAD_STOP),
        (HEAD, 1.0, HEAD_STOP),
        (b"x: 1\rA: 2\r\n", 0, 11),  # a bare CR
        (b": 1\r\n", 0, 5),  # an empty name
        (b"A: 1\nB: 2\r\n", 0, 12),  # a bare LF
        (None, 0, 0),
    ],
)
def test_response_lines_off_contract_agree(compiled: ModuleType, args: tuple[Any, ...]) -> None:
    got = _outcome(compiled.scan_response_lines, *args)
    assert got == _outcome(headers_py.scan_response_lines, *args)


# --- request field lines read in place ----------------------------------------------

REQUEST = (
    b"GET / HTTP/1.1\r\n"
    b"Host:  example.com \r\n"
    b"Connection: keep-alive, X-Drop, Upgrade\r\n"
    b"X-Drop: 1\r\n"
    b"Upgrade:\twebsocket\r\n"
    b"X-Forwarded-For: 198.51.100.1\r\n"
    b"Via: 1.0 edge\r\n"
    b"Accept: */*\r\n"
    b"\r\n"
)
REQUEST_START = REQUEST.index(b"\r\n") + 2
REQUEST_STOP = REQUEST.index(b"\r\n\r\n") + 2


@pytest.mark.parametrize("trusted", [False, True])
def test_request_lines_are_read_in_place(hdr: ModuleType, trusted: bool) -> None:
    got = hdr.scan_request_lines(REQUEST, REQUEST_START, REQUEST_STOP, IP, trusted, b"https", VIA)
    block, host, clen, flags, upgrade = got
    assert (host, clen, upgrade) == (b"example.com", -1, b"websocket")
    assert flags == hdr.CONN_KEEP_ALIVE | hdr.UPGRADE
    xff = b"198.51.100.1, " + IP if trusted else IP
    via = b"1.0 edge, " + VIA  # Via is extended whoever sent it
    assert lines(block) == [
        b"Host: example.com",
        b"Accept: */*",
        b"X-Forwarded-For: " + xff,
        b"X-Forwarded-Proto: https",
        b"X-Forwarded-Host: example.com",
        b"Via: " + via,
        b"Upgrade: websocket",
        b"Connection: upgrade",
    ]
    # The same as the fields h1 reads from those lines.
    fields = [
        (b"Host", b"example.com"),
        (b"Connection", b"keep-alive, X-Drop, Upgrade"),
        (b"X-Drop", b"1"),
        (b"Upgrade", b"websocket"),
        (b"X-Forwarded-For", b"198.51.100.1"),
        (b"Via", b"1.0 edge"),
        (b"Accept", b"*/*"),
    ]
    assert got == hdr.scan_request(fields, IP, trusted, b"https", VIA)


def test_request_lines_framing_errors(hdr: ModuleType) -> None:
    data = b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"
    with pytest.raises(hdr.FramingError, match="more than one Host header"):
        hdr.scan_request_lines(data, 16, len(data) - 2, IP, False, b"http", VIA)


def test_request_lines_past_the_local_table(hdr: ModuleType) -> None:
    headers = [(b"X-%d" % i, b"v%d" % i) for i in range(150)] + [(b"Host", b"h")]
    region = as_lines(headers)
    assert region is not None
    got = hdr.scan_request_lines(*region, IP, False, b"http", VIA)
    assert got == hdr.scan_request(headers, IP, False, b"http", VIA)
    assert got[1] == b"h"


@pytest.mark.parametrize(
    "args",
    [
        (bytearray(REQUEST), REQUEST_START, REQUEST_STOP, IP, False, b"http", VIA),
        (REQUEST, REQUEST_START, REQUEST_STOP - 1, IP, False, b"http", VIA),
        (REQUEST, 0, REQUEST_STOP, IP, False, b"http", VIA),  # the request line
        (REQUEST, REQUEST_START, 2**70, IP, False, b"http", VIA),
        (REQUEST, REQUEST_START, REQUEST_STOP, bytearray(IP), False, b"http", VIA),
        (REQUEST, REQUEST_START, REQUEST_STOP, IP, 1, b"http", VIA),
        (REQUEST, REQUEST_START, REQUEST_STOP, IP, None, b"http", VIA),
        (REQUEST, -1, REQUEST_STOP, IP, True, b"http", VIA),
    ],
)
def test_request_lines_off_contract_agree(compiled: ModuleType, args: tuple[Any, ...]) -> None:
    got = _outcome(compiled.scan_request_lines, *args)
    assert got == _outcome(headers_py.scan_request_lines, *args)


def test_framing_errors_are_each_modules_own_class(compiled: ModuleType) -> None:
    with pytest.raises(compiled.FramingError):
        compiled.scan_request([(b"Host", b"a"), (b"Host", b"b")], IP, False, b"http", VIA)
    # Also when the compiled module hands an off-contract input to the twin.
    with pytest.raises(compiled.FramingError, match=r"^more than one Host header$"):
        compiled.scan_request(
            [(b"Host", b"a"), (b"Host", bytearray(b"b"))], IP, False, b"http", VIA
        )


def test_content_length_past_int_str_digits_limit_agrees(compiled: ModuleType) -> None:
    headers = [(b"Content-Length", b"1" * 5000)]
    assert_same_request(compiled, headers, IP, False, b"http", VIA)
    assert_same_response(compiled, headers)
