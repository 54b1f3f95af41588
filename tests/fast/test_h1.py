"""HTTP/1.x head parsing and chunked decoding: the compiled ``lbproxy._fast.h1``
and its pure twin ``h1_py`` run the same cases; hypothesis checks that they
agree on HTTP-looking junk, errors included, and that valid heads and chunked
bodies survive a round trip through each."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from itertools import pairwise
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lbproxy import _fast

FastImpl = Callable[[str], ModuleType]
Fields = list[tuple[bytes, bytes]]

# The fixtures hand out modules, which are the same for every example.
FIXTURE_OK = settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture
def h1(fast_impl: FastImpl) -> ModuleType:
    return fast_impl("h1")


@pytest.fixture(scope="module")
def pair(compiled_impl: FastImpl) -> tuple[ModuleType, ModuleType]:
    return compiled_impl("h1"), _fast.load_pure("h1")


def is_pure(h1: ModuleType) -> bool:
    return h1.__name__.endswith("_py")


def req(h1: ModuleType, data: bytes, pos: int = 0) -> Any:
    """``parse_request_head``, after checking that ``parse_request_lines`` and
    ``field_list`` come to the same: the same error, or the same head with the
    field lines where ``field_list`` reads the same fields."""
    head = _outcome(h1.parse_request_head, h1, data, pos)
    lines = _outcome(h1.parse_request_lines, h1, data, pos)
    if head[0] == "ok" and head[1] is not None:
        end, method, target, minor, fields = head[1]
        assert lines[0] == "ok"
        assert lines[1][:4] == (end, method, target, minor)
        at, count = lines[1][4:]
        start = pos
        while data.startswith(b"\r\n", start):
            start += 2
        assert at == data.index(b"\r\n", start) + 2
        assert count == len(fields)
        assert h1.field_list(data, at, end - 2) == fields
    else:
        assert lines == head
    return h1.parse_request_head(data, pos)


def resp(h1: ModuleType, data: bytes, pos: int = 0) -> Any:
    """``parse_response_head``, after checking that ``parse_response_lines``
    and ``field_list`` come to the same: the same error, or the same head with
    the field lines where ``field_list`` reads the same fields."""
    head = _outcome(h1.parse_response_head, h1, data, pos)
    lines = _outcome(h1.parse_response_lines, h1, data, pos)
    if head[0] == "ok" and head[1] is not None:
        end, status, reason, minor, fields = head[1]
        assert lines[0] == "ok"
        assert lines[1][:4] == (end, status, reason, minor)
        at = lines[1][4]
        assert at == data.index(b"\r\n", pos) + 2
        assert h1.field_list(data, at, end - 2) == fields
    else:
        assert lines == head
    return h1.parse_response_head(data, pos)


def refused(
    h1: ModuleType, parse: Callable[..., Any], data: bytes, pos: int = 0
) -> tuple[str, int]:
    """``(message, status)`` of the ParseError that ``parse`` raises."""
    with pytest.raises(h1.ParseError) as info:
        parse(h1, data, pos)
    return str(info.value), info.value.status


# --- the module surface -------------------------------------------------------------


def test_constants_and_error_class(h1: ModuleType) -> None:
    assert h1.MAX_LEADING_EMPTY_LINES == 8
    assert h1.MAX_CHUNK_LINE == 4096
    assert h1.MAX_CHUNK_SIZE_DIGITS == 15
    assert issubclass(h1.ParseError, ValueError)
    err = h1.ParseError("boom")
    assert (str(err), err.status) == ("boom", 400)
    err = h1.ParseError("old", 505)
    assert (str(err), err.status, err.args) == ("old", 505, ("old",))
    assert sorted(h1.__all__) == [
        "ChunkedDecoder",
        "ParseError",
        "field_list",
        "parse_request_head",
        "parse_request_lines",
        "parse_response_head",
        "parse_response_lines",
    ]


def test_each_twin_raises_its_own_error_class(pair: tuple[ModuleType, ModuleType]) -> None:
    compiled, pure = pair
    assert compiled.ParseError is not pure.ParseError
    for module in pair:
        with pytest.raises(module.ParseError):
            module.parse_request_head(b"GET / HTTP/1.1\n\n", 0)
        with pytest.raises(module.ParseError):
            module.parse_response_head(b"HTTP/1.1 20 OK\r\n\r\n", 0)
        with pytest.raises(module.ParseError):
            module.ChunkedDecoder(10).feed(b"x\r\n", 0)


# --- requests: accepted --------------------------------------------------------------

BROWSER = (
    b"GET /index.html?q=1 HTTP/1.1\r\n"
    b"Host: www.example.com\r\n"
    b"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n"
    b"Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n"
    b"Accept-Language: en-US,en;q=0.5\r\n"
    b"Accept-Encoding: gzip, deflate, br, zstd\r\n"
    b"Connection: keep-alive\r\n"
    b"\r\n"
)


def test_typical_request(h1: ModuleType) -> None:
    assert req(h1, BROWSER) == (
        len(BROWSER),
        b"GET",
        b"/index.html?q=1",
        1,
        [
            (b"Host", b"www.example.com"),
            (
                b"User-Agent",
                b"Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
            ),
            (b"Accept", b"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
            (b"Accept-Language", b"en-US,en;q=0.5"),
            (b"Accept-Encoding", b"gzip, deflate, br, zstd"),
            (b"Connection", b"keep-alive"),
        ],
    )


def test_request_without_fields(h1: ModuleType) -> None:
    assert req(h1, b"OPTIONS * HTTP/1.1\r\n\r\n") == (22, b"OPTIONS", b"*", 1, [])


@pytest.mark.parametrize(
    "method, target",
    [
        (b"GET", b"/"),
        (b"POST", b"/upload"),
        (b"HEAD", b"/x"),
        (b"PUT", b"/y"),
        (b"get", b"/lower-case-is-another-method"),
        (b"M-SEARCH", b"*"),
        (b"!#$%&'*+-.^_`|~09azAZ", b"/"),
        (b"CONNECT", b"example.com:443"),
        (b"GET", b"http://example.com/a?b=c&d=%20#frag"),
        (b"GET", b"/!\"$&'()*+,;=:@[]{}|\\^`~<>"),
    ],
)
def test_request_line_forms(h1: ModuleType, method: bytes, target: bytes) -> None:
    head = method + b" " + target + b" HTTP/1.1\r\nHost: h\r\n\r\n"
    assert req(h1, head) == (len(head), method, target, 1, [(b"Host", b"h")])


@pytest.mark.parametrize(
    "version, minor", [(b"HTTP/1.0", 0), (b"HTTP/1.1", 1), (b"HTTP/1.2", 1), (b"HTTP/1.9", 1)]
)
def test_request_versions(h1: ModuleType, version: bytes, minor: int) -> None:
    head = b"GET / " + version + b"\r\n\r\n"
    assert req(h1, head) == (len(head), b"GET", b"/", minor, [])


def test_field_values_are_trimmed_of_ows_only(h1: ModuleType) -> None:
    head = (
        b"GET / HTTP/1.1\r\n"
        b"A:x\r\n"
        b"B:   spaced  \r\n"
        b"C:\t\ttabbed\t \r\n"
        b"D: inner  space\tand tab \r\n"
        b"E:\r\n"
        b"F:    \t \r\n"
        b"G: \x80\xff obs-text \xe9\r\n"
        b"H: a:b: c\r\n"
        b"\r\n"
    )
    assert req(h1, head)[4] == [
        (b"A", b"x"),
        (b"B", b"spaced"),
        (b"C", b"tabbed"),
        (b"D", b"inner  space\tand tab"),
        (b"E", b""),
        (b"F", b""),
        (b"G", b"\x80\xff obs-text \xe9"),
        (b"H", b"a:b: c"),
    ]


def test_repeated_and_odd_field_names_are_kept_in_order(h1: ModuleType) -> None:
    head = b"GET / HTTP/1.1\r\nX: 1\r\nx: 2\r\nX: 3\r\n~!#$%&'*+-.^_`|: 4\r\n\r\n"
    assert req(h1, head)[4] == [
        (b"X", b"1"),
        (b"x", b"2"),
        (b"X", b"3"),
        (b"~!#$%&'*+-.^_`|", b"4"),
    ]


@pytest.mark.parametrize("empty_lines", range(9))
def test_up_to_eight_empty_lines_before_a_request_are_skipped(
    h1: ModuleType, empty_lines: int
) -> None:
    data = b"\r\n" * empty_lines + b"GET / HTTP/1.1\r\n\r\n"
    assert req(h1, data) == (len(data), b"GET", b"/", 1, [])
    assert req(h1, b"\r\n" * empty_lines) is None


def test_a_ninth_empty_line_is_refused(h1: ModuleType) -> None:
    message = ("too many empty lines before the request line", 400)
    assert refused(h1, req, b"\r\n" * 9 + b"GET / HTTP/1.1\r\n\r\n") == message
    assert refused(h1, req, b"\r\n" * 9) == message
    assert refused(h1, req, b"xx" + b"\r\n" * 9, 2) == message
    assert req(h1, b"\r\n" * 8 + b"\r") is None


def test_request_at_an_offset_with_bytes_after_it(h1: ModuleType) -> None:
    head = b"POST /p HTTP/1.0\r\nContent-Length: 3\r\n\r\n"
    data = b"previous body" + head + b"abcGET / HTTP/1.1\r\n"
    assert req(h1, data, 13) == (13 + len(head), b"POST", b"/p", 0, [(b"Content-Length", b"3")])
    assert req(h1, data, len(data)) is None
    assert req(h1, data, len(data) + 5) is None


def test_pipelined_requests_parse_one_after_another(h1: ModuleType) -> None:
    one = b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\n"
    two = b"\r\nGET /2 HTTP/1.1\r\nHost: b\r\n\r\n"
    data = one + two
    end, _, target, _, _ = req(h1, data)
    assert (end, target) == (len(one), b"/1")
    assert req(h1, data, end) == (len(data), b"GET", b"/2", 1, [(b"Host", b"b")])


# --- responses: accepted -------------------------------------------------------------

RESPONSE = (
    b"HTTP/1.1 200 OK\r\n"
    b"Date: Tue, 02 Dec 2025 10:15:00 GMT\r\n"
    b"Server: nginx/1.27.0\r\n"
    b"Content-Type: text/html; charset=utf-8\r\n"
    b"Content-Length: 18734\r\n"
    b"Connection: keep-alive\r\n"
    b"\r\n"
)


def test_typical_response(h1: ModuleType) -> None:
    assert resp(h1, RESPONSE) == (
        len(RESPONSE),
        200,
        b"OK",
        1,
        [
            (b"Date", b"Tue, 02 Dec 2025 10:15:00 GMT"),
            (b"Server", b"nginx/1.27.0"),
            (b"Content-Type", b"text/html; charset=utf-8"),
            (b"Content-Length", b"18734"),
            (b"Connection", b"keep-alive"),
        ],
    )


@pytest.mark.parametrize(
    "line, status, reason, minor",
    [
        (b"HTTP/1.1 204", 204, b"", 1),  # no reason, no space
        (b"HTTP/1.1 204 ", 204, b"", 1),
        (b"HTTP/1.0 404 Not Found", 404, b"Not Found", 0),
        (b"HTTP/1.2 100 Continue", 100, b"Continue", 1),
        (b"HTTP/1.1 599  two\tspaces, tab ", 599, b" two\tspaces, tab ", 1),
        (b"HTTP/1.1 999 \x80\xff", 999, b"\x80\xff", 1),
        (b"HTTP/1.1 101 Switching Protocols", 101, b"Switching Protocols", 1),
        (b"HTTP/1.1 200 O", 200, b"O", 1),
        (b"HTTP/1.1 200 OKAY", 200, b"OKAY", 1),
    ],
)
def test_status_lines(h1: ModuleType, line: bytes, status: int, reason: bytes, minor: int) -> None:
    head = line + b"\r\nA: b\r\n\r\n"
    assert resp(h1, head) == (len(head), status, reason, minor, [(b"A", b"b")])


def test_response_at_an_offset_without_fields(h1: ModuleType) -> None:
    data = b"junk" + b"HTTP/1.1 304 Not Modified\r\n\r\n" + b"trailing"
    assert resp(h1, data, 4) == (len(data) - 8, 304, b"Not Modified", 1, [])
    assert resp(h1, data, len(data)) is None
    assert resp(h1, data, len(data) + 1) is None


# --- incomplete heads ---------------------------------------------------------------

VALID_REQUESTS = [
    BROWSER,
    b"GET / HTTP/1.0\r\n\r\n",
    b"\r\n\r\nPOST /x HTTP/1.1\r\nA:\r\nB: \t c \t\r\n\r\n",
    b"GET / HTTP/1.1\r\nX: \x80\xff\r\n\r\n",
]
VALID_RESPONSES = [
    RESPONSE,
    b"HTTP/1.1 204\r\n\r\n",
    b"HTTP/1.0 500 Internal \t Error \xe9\r\nA:  \r\nB:c\r\n\r\n",
]


@pytest.mark.parametrize(
    "parse, head", [(req, h) for h in VALID_REQUESTS] + [(resp, h) for h in VALID_RESPONSES]
)
def test_every_prefix_of_a_head_is_incomplete(
    h1: ModuleType, parse: Callable[..., Any], head: bytes
) -> None:
    expected = parse(h1, head)
    assert expected is not None and expected[0] == len(head)
    for i in range(len(head)):
        assert parse(h1, head[:i]) is None, i
        assert parse(h1, b"xyz" + head[:i], 3) is None, i
    shifted = parse(h1, b"xyz" + head + b"HTTP/1.1 GET\r\n\n\x00", 3)
    assert shifted == (len(head) + 3, *expected[1:])


def test_incomplete_heads_are_not_checked_beyond_line_ends(h1: ModuleType) -> None:
    # Only bare CR and LF are refused before the head is complete.
    assert req(h1, b"G@T  /\x00 HTTP/9.9\r\n") is None
    assert req(h1, b"GET / HTTP/1.1\r\n folded\x01\r\n\r") is None
    assert resp(h1, b"HTTP/2.0 2000\r\n") is None


# --- refused heads ------------------------------------------------------------------

REQUEST_ERRORS = [
    # line ends, anywhere up to the end of the head, or of the data if incomplete
    (b"GET / HTTP/1.1\nHost: x\r\n\r\n", "bare LF in the message head"),
    (b"GET / HTTP/1.1\n\n", "bare LF in the message head"),
    (b"GET / HTTP/1.1\r\nA: b\n", "bare LF in the message head"),
    (b"GET / HTTP/1.1\r\n\n\r\n", "bare LF in the message head"),
    (b"\nGET / HTTP/1.1\r\n\r\n", "bare LF in the message head"),
    (b"GET / HTTP/1.1\rHost: x\r\n\r\n", "bare CR in the message head"),
    (b"GET / HT\rTP", "bare CR in the message head"),
    (b"GET / HTTP/1.1\r\nA: b\r\r\n\r\n", "bare CR in the message head"),
    (b"GET / HTTP/1.1\r\n\r\r\n", "bare CR in the message head"),
    # a bare LF is reported before a bare CR, and both before any other error
    (b"GET / HTTP/1.1\r\nA: \rb\r\nC: \nd\r\n\r\n", "bare LF in the message head"),
    (b"G@T / HTTP/1.1\r\nA: b\rc\r\n\r\n", "bare CR in the message head"),
    (b"GET / HTTP/2.0\r\nA: b\nc\r\n\r\n", "bare LF in the message head"),
    # the request line
    (b"GET  / HTTP/1.1\r\n\r\n", "invalid request line"),
    (b"GET / HTTP/1.1 \r\n\r\n", "invalid request line"),
    (b"GET /\r\n\r\n", "invalid request line"),
    (b"GET\r\n\r\n", "invalid request line"),
    (b"GET\t/\tHTTP/1.1\r\n\r\n", "invalid request line"),
    (b"G@T  / HTTP/1.1\r\n\r\n", "invalid request line"),
    (b" / HTTP/1.1\r\n\r\n", "invalid method"),
    (b"G@T / HTTP/1.1\r\n\r\n", "invalid method"),
    (b"GE(T) / HTTP/1.1\r\n\r\n", "invalid method"),
    (b"G\x00T / HTTP/1.1\r\n\r\n", "invalid method"),
    (b"G\x7fT / HTTP/1.1\r\n\r\n", "invalid method"),
    (b"G\xc3\x89T / HTTP/1.1\r\n\r\n", "invalid method"),
    (b"G@T /\x00 HTTP/2.0\r\n\r\n", "invalid method"),
    (b"GET  HTTP/1.1\r\n\r\n", "invalid request target"),  # an empty target
    (b"GET /\x00 HTTP/1.1\r\n\r\n", "invalid request target"),
    (b"GET /\x7f HTTP/1.1\r\n\r\n", "invalid request target"),
    (b"GET /\x1f HTTP/1.1\r\n\r\n", "invalid request target"),
    (b"GET /caf\xc3\xa9 HTTP/1.1\r\n\r\n", "invalid request target"),
    (b"GET /\x80 HTTP/9.9\r\n\r\n", "invalid request target"),
    (b"GET / HTTP/1\r\n\r\n", "invalid HTTP version"),
    (b"GET / HTTP/1.\r\n\r\n", "invalid HTTP version"),
    (b"GET / HTTP/1.1.1\r\n\r\n", "invalid HTTP version"),
    (b"GET / HTTP/11.1\r\n\r\n", "invalid HTTP version"),
    (b"GET / HTTP/1.x\r\n\r\n", "invalid HTTP version"),
    (b"GET / http/1.1\r\n\r\n", "invalid HTTP version"),
    (b"GET / HTTP/1,1\r\n\r\n", "invalid HTTP version"),
    (b"GET / HTTPS/1.1\r\n\r\n", "invalid HTTP version"),
    (b"GET / HTTP/\xd9\xa1.1\r\n\r\n", "invalid HTTP version"),
    (b"GET / HTTP/1.1\x00\r\n\r\n", "invalid HTTP version"),
    (b"GET / HTTP/2\r\n\r\n", "invalid HTTP version"),
    # the fields, one line at a time
    (b"GET / HTTP/1.1\r\nHost : x\r\n\r\n", "invalid header name"),
    (b"GET / HTTP/1.1\r\nHost\t: x\r\n\r\n", "invalid header name"),
    (b"GET / HTTP/1.1\r\n: x\r\n\r\n", "invalid header name"),
    (b"GET / HTTP/1.1\r\nA\x00: x\r\n\r\n", "invalid header name"),
    (b"GET / HTTP/1.1\r\nA\x7f: x\r\n\r\n", "invalid header name"),
    (b"GET / HTTP/1.1\r\nA\x80: x\r\n\r\n", "invalid header name"),
    (b"GET / HTTP/1.1\r\nA(B): x\r\n\r\n", "invalid header name"),
    (b"GET / HTTP/1.1\r\nA b: x\r\n\r\n", "invalid header name"),
    (b"GET / HTTP/1.1\r\nHost\r\n\r\n", "header line without a colon"),
    (b"GET / HTTP/1.1\r\nHost x\x00\r\n\r\n", "header line without a colon"),
    (b"GET / HTTP/1.1\r\nA: b\r\n c\r\n\r\n", "obsolete line folding in the message head"),
    (b"GET / HTTP/1.1\r\nA: b\r\n\tc\r\n\r\n", "obsolete line folding in the message head"),
    (b"GET / HTTP/1.1\r\n Host: x\r\n\r\n", "obsolete line folding in the message head"),
    (b"GET / HTTP/1.1\r\nA: b\x00\r\n\r\n", "invalid character in a header value"),
    (b"GET / HTTP/1.1\r\nA: \x00b\r\n\r\n", "invalid character in a header value"),
    (b"GET / HTTP/1.1\r\nA: b\x7f\r\n\r\n", "invalid character in a header value"),
    (b"GET / HTTP/1.1\r\nA: b\x01c\r\n\r\n", "invalid character in a header value"),
    (b"GET / HTTP/1.1\r\nA: \x0bb\r\n\r\n", "invalid character in a header value"),
    (b"GET / HTTP/1.1\r\nA: b \x0c\r\n\r\n", "invalid character in a header value"),
    (b"GET / HTTP/1.1\r\nA: b\x1f \r\n\r\n", "invalid character in a header value"),
    # the first error in field order wins
    (b"GET / HTTP/1.1\r\nA: \x00\r\nB c\r\n\r\n", "invalid character in a header value"),
    (b"GET / HTTP/1.1\r\nB c\r\nA: \x00\r\n\r\n", "header line without a colon"),
    (
        b"GET / HTTP/1.0\r\nA: b\r\n c\r\nB\x00: x\r\n\r\n",
        "obsolete line folding in the message head",
    ),
]


@pytest.mark.parametrize("data, message", REQUEST_ERRORS)
def test_refused_requests(h1: ModuleType, data: bytes, message: str) -> None:
    assert refused(h1, req, data) == (message, 400)
    assert refused(h1, req, b"GET / HTTP/1.1\r\n\r\n" + data, 18) == (message, 400)


def test_every_byte_at_every_offset_of_long_values_and_targets(h1: ModuleType) -> None:
    # Long runs are checked eight bytes at a time in the compiled twin.
    for byte in range(256):
        for i in range(0, 41, 3):
            value = b"v" * i + bytes([byte]) + b"w" * (40 - i)
            head = b"GET / HTTP/1.1\r\nA: " + value + b"\r\n\r\n"
            target = b"/" + b"t" * i + bytes([byte]) + b"u" * (40 - i)
            request_line = b"GET " + target + b" HTTP/1.1\r\n\r\n"
            if byte in (10, 13):
                continue  # line ends: checked above
            if byte == 9 or (byte >= 32 and byte != 127):
                assert req(h1, head)[4] == [(b"A", value.strip(b" \t"))]
            else:
                assert refused(h1, req, head)[0] == "invalid character in a header value"
            if 33 <= byte <= 126:
                assert req(h1, request_line)[2] == target
            elif byte == 32:
                assert refused(h1, req, request_line)[0] == "invalid request line"
            else:
                assert refused(h1, req, request_line)[0] == "invalid request target"


@pytest.mark.parametrize("version", [b"HTTP/2.0", b"HTTP/0.9", b"HTTP/3.0", b"HTTP/9.1"])
def test_other_major_versions_are_answered_505(h1: ModuleType, version: bytes) -> None:
    message = ("HTTP version not supported", 505)
    assert refused(h1, req, b"GET / " + version + b"\r\nHost: x\r\n\r\n") == message
    assert refused(h1, resp, version + b" 200 OK\r\n\r\n") == message
    # Checked before the fields, after the rest of the start line.
    assert refused(h1, req, b"GET / " + version + b"\r\nA b\r\n\r\n") == message
    assert refused(h1, req, b"GET /\x00 " + version + b"\r\n\r\n")[0] == "invalid request target"


def test_a_lf_at_pos_is_bare_whatever_comes_before_pos(h1: ModuleType) -> None:
    data = b"\r\nGET / HTTP/1.1\r\n\r\n"
    assert refused(h1, req, data, 1) == ("bare LF in the message head", 400)
    assert refused(h1, resp, b"\r\nHTTP/1.1 200 OK\r\n\r\n", 1) == (
        "bare LF in the message head",
        400,
    )


RESPONSE_ERRORS = [
    (b"HTTP/1.1 20 OK\r\n\r\n", "invalid status code"),
    (b"HTTP/1.1 2000 OK\r\n\r\n", "invalid status code"),
    (b"HTTP/1.1 2000\r\n\r\n", "invalid status code"),
    (b"HTTP/1.1 099 Odd\r\n\r\n", "invalid status code"),
    (b"HTTP/1.1 000\r\n\r\n", "invalid status code"),
    (b"HTTP/1.1 abc OK\r\n\r\n", "invalid status code"),
    (b"HTTP/1.1 2a0 OK\r\n\r\n", "invalid status code"),
    (b"HTTP/1.1 200OK\r\n\r\n", "invalid status code"),
    (b"HTTP/1.1  200 OK\r\n\r\n", "invalid status code"),
    (b"HTTP/1.1 \r\n\r\n", "invalid status code"),
    (b"HTTP/1.1 -20 OK\r\n\r\n", "invalid status code"),
    (b"HTTP/1.1 \xd9\xa1\xd9\xa2 OK\r\n\r\n", "invalid status code"),
    (b"HTTP/1.1\t200 OK\r\n\r\n", "invalid HTTP version"),  # the version is "HTTP/1.1\t200"
    (b"HTTP/1.1\r\n\r\n", "invalid status line"),
    (b"\r\n\r\n", "invalid status line"),
    (b"\r\nHTTP/1.1 200 OK\r\n\r\n", "invalid status line"),
    (b"HTTP/1.1 200 OK\x00\r\n\r\n", "invalid character in the reason phrase"),
    (b"HTTP/1.1 200 O\x7fK\r\n\r\n", "invalid character in the reason phrase"),
    (b"HTTP/1.1 200 \x01\r\n\r\n", "invalid character in the reason phrase"),
    (b"HTTP/1.1 2000 \x01\r\n\r\n", "invalid status code"),
    (b"ICY 200 OK\r\n\r\n", "invalid HTTP version"),
    (b"HTTP/1 200 OK\r\n\r\n", "invalid HTTP version"),
    (b"HTTP/2 200 OK\r\n\r\n", "invalid HTTP version"),
    (b"HTTP/1.1.1 200 OK\r\n\r\n", "invalid HTTP version"),
    (b"http/1.1 200 OK\r\n\r\n", "invalid HTTP version"),
    (b"HTTP/1.x 20 OK\r\n\r\n", "invalid HTTP version"),
    (b"HTTP/1.1 200 OK\nA: b\r\n\r\n", "bare LF in the message head"),
    (b"HTTP/1.1 200 OK\r\nA: b\rc\r\n\r\n", "bare CR in the message head"),
    (b"HTTP/1.1 20 OK\r\nA: b\rc\r\n\r\n", "bare CR in the message head"),
    (b"HTTP/1.1 200 OK\r\nA : b\r\n\r\n", "invalid header name"),
    (b"HTTP/1.1 200 OK\r\nA: b\r\n  c\r\n\r\n", "obsolete line folding in the message head"),
    (b"HTTP/1.1 200 OK\r\nAb\r\n\r\n", "header line without a colon"),
    (b"HTTP/1.1 200 OK\r\nA: \x7f\r\n\r\n", "invalid character in a header value"),
]


@pytest.mark.parametrize("data, message", RESPONSE_ERRORS)
def test_refused_responses(h1: ModuleType, data: bytes, message: str) -> None:
    assert refused(h1, resp, data) == (message, 400)
    assert refused(h1, resp, b"xx" + data + b"HTTP/1.1 200 OK\r\n\r\n", 2) == (message, 400)


def test_responses_do_not_skip_empty_lines(h1: ModuleType) -> None:
    assert resp(h1, b"\r\n") is None
    assert refused(h1, resp, b"\r\n\r\n")[0] == "invalid status line"


# --- inputs outside the contract -----------------------------------------------------


@pytest.mark.parametrize(
    "data, pos",
    [
        (bytearray(b"GET / HTTP/1.1\r\nA: b\r\n\r\n"), 0),
        (b"GET / HTTP/1.1\r\n\r\n", True),
        (b"GET / HTTP/1.1\r\n\r\n", -3),
        (b"GET / HTTP/1.1\r\n\r\n", 2**70),
        (b"\r\n\r\nHTTP/1.1 200 OK\r\n\r\n", -20),
        (bytearray(b"GET / HTTP/1.1\r\nA b\r\n\r\n"), 0),
        (memoryview(b"GET / HTTP/1.1\r\n\r\n"), 0),
        (None, 0),
        (b"GET / HTTP/1.1\r\n\r\n", 1.0),
    ],
)
def test_off_contract_arguments_agree(
    pair: tuple[ModuleType, ModuleType], data: Any, pos: Any
) -> None:
    for name in (
        "parse_request_head",
        "parse_request_lines",
        "parse_response_head",
        "parse_response_lines",
    ):
        results = [_outcome(getattr(module, name), module, data, pos) for module in pair]
        assert results[0] == results[1]


FIELDS = b"HTTP/1.1 200 OK\r\nA: b\r\nC:\td \r\n\r\n"


@pytest.mark.parametrize(
    "data, start, stop",
    [
        (FIELDS, 17, 31),
        (bytearray(FIELDS), 17, 31),
        (FIELDS, 17, 30),  # not at the blank line
        (FIELDS, 17, 33),  # past it
        (FIELDS, 18, 31),  # inside a line
        (FIELDS, 0, 31),  # the status line
        (FIELDS, 31, 17),
        (FIELDS, -3, 31),
        (FIELDS, 17, 2**70),
        (FIELDS, True, 31),
        (FIELDS, 17.0, 31),
        (b"HTTP/1.1 200 OK\r\nA: \x01\r\n\r\n", 17, 24),  # a bad value
        (None, 0, 0),
    ],
)
def test_field_list_off_contract_agrees(
    pair: tuple[ModuleType, ModuleType], data: Any, start: Any, stop: Any
) -> None:
    results = [_outcome(module.field_list, module, data, start, stop) for module in pair]
    assert results[0] == results[1]
    if data is FIELDS and type(start) is int and (start, stop) == (17, 31):
        assert results[0] == ("ok", [(b"A", b"b"), (b"C", b"d")])


# --- chunked bodies ------------------------------------------------------------------


def decode(
    h1: ModuleType, pieces: Sequence[bytes], max_trailer_bytes: int = 1024, pos: int = 0
) -> tuple[bytes, Fields, int, bool]:
    """Feeds ``pieces`` (the first from ``pos``) until the decoder is done;
    returns the payload, the trailers, the end of the body as an index into
    the pieces joined, and whether it was done."""
    dec = h1.ChunkedDecoder(max_trailer_bytes)
    payload = b""
    offset = 0
    end = 0
    for data in pieces:
        assert not dec.done
        end, part, done = dec.feed(data, pos)
        assert type(part) is bytes
        assert 0 <= end <= len(data)
        payload += part
        pos = 0
        if done:
            assert dec.done
            # Once done nothing more is consumed.
            assert dec.feed(data, end) == (end, b"", True)
            return payload, dec.trailers, offset + end, True
        assert end == len(data)
        offset += len(data)
    return payload, dec.trailers, offset + end, dec.done


def splits(body: bytes) -> list[list[bytes]]:
    """The body whole, byte by byte, and cut once at each index."""
    out = [[body], [body[i : i + 1] for i in range(len(body))]]
    out += [[body[:i], body[i:]] for i in range(1, len(body))]
    return out


CHUNKED = (
    b"5\r\nhello\r\n"
    b'1;ext=1;quoted="a b"\r\n,\r\n'
    b"A\r\n world\t\x00\xff!\r\n"
    b"00b;\t\x80\r\n0123456789a\r\n"
    b"0\r\n"
    b"Expires:  never \r\n"
    b"X-Sum:\r\n"
    b"\r\n"
)
CHUNKED_PAYLOAD = b"hello, world\t\x00\xff!0123456789a"
CHUNKED_TRAILERS = [(b"Expires", b"never"), (b"X-Sum", b"")]


def test_chunked_body_at_every_split(h1: ModuleType) -> None:
    data = CHUNKED + b"GET / HTTP/1.1\r\n\r\n"
    for pieces in splits(data):
        assert decode(h1, pieces) == (CHUNKED_PAYLOAD, CHUNKED_TRAILERS, len(CHUNKED), True)


def test_chunked_body_from_an_offset(h1: ModuleType) -> None:
    head = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
    dec = h1.ChunkedDecoder(100)
    assert dec.feed(head + CHUNKED + b"next", len(head)) == (
        len(head) + len(CHUNKED),
        CHUNKED_PAYLOAD,
        True,
    )
    assert dec.trailers == CHUNKED_TRAILERS
    assert dec.done


def test_chunk_data_of_a_whole_read_is_returned_as_is(h1: ModuleType) -> None:
    dec = h1.ChunkedDecoder(0)
    assert dec.feed(b"10\r\n", 0) == (4, b"", False)
    assert dec.feed(b"0123456789", 0) == (10, b"0123456789", False)
    assert dec.feed(b"xxabcdef", 2) == (8, b"abcdef", False)
    assert not dec.done
    assert dec.feed(b"\r\n0\r\n\r\n", 0) == (7, b"", True)
    assert dec.trailers == []


def test_sizes_in_hex_either_case_with_leading_zeros(h1: ModuleType) -> None:
    body = b"a\r\n" + b"x" * 10 + b"\r\nB\r\n" + b"y" * 11 + b"\r\n000000000000010\r\n"
    body += b"z" * 16 + b"\r\n000000000000000\r\n\r\n"
    assert decode(h1, [body]) == (b"x" * 10 + b"y" * 11 + b"z" * 16, [], len(body), True)


def test_largest_chunk_size(h1: ModuleType) -> None:
    dec = h1.ChunkedDecoder(0)
    assert dec.feed(b"fffffffffffffff\r\nabc", 0) == (20, b"abc", False)
    assert dec.feed(b"d" * 1000, 0) == (1000, b"d" * 1000, False)
    assert not dec.done


@pytest.mark.parametrize(
    "data, message",
    [
        (b"0000000000000005\r\nhello\r\n0\r\n\r\n", "invalid chunk size"),  # 16 digits
        (b"10000000000000000\r\n", "invalid chunk size"),
        (b"\r\n", "invalid chunk size"),
        (b";ext\r\n", "invalid chunk size"),
        (b"5 \r\n", "invalid chunk size"),
        (b" 5\r\n", "invalid chunk size"),
        (b"5\t;x\r\n", "invalid chunk size"),
        (b"+5\r\n", "invalid chunk size"),
        (b"-5\r\n", "invalid chunk size"),
        (b"0x5\r\n", "invalid chunk size"),
        (b"g\r\n", "invalid chunk size"),
        (b"\xd9\xa1\r\n", "invalid chunk size"),
        (b"5;\r\n", "invalid chunk extension"),
        (b"5;a=\x00\r\n", "invalid chunk extension"),
        (b"5;a\x7f\r\n", "invalid chunk extension"),
        (b"5;\x1b\r\n", "invalid chunk extension"),
        (b"5\n", "bare LF or CR in chunked framing"),
        (b"\n", "bare LF or CR in chunked framing"),
        (b"5\rx", "bare LF or CR in chunked framing"),
        (b"5\r\r\n", "bare LF or CR in chunked framing"),
        (b"5;a\nb\r\n", "bare LF or CR in chunked framing"),
        (b"5;a\rb", "bare LF or CR in chunked framing"),
        (b"5\r\nhelloX", "chunk data not followed by CRLF"),
        (b"5\r\nhello\n", "chunk data not followed by CRLF"),
        (b"5\r\nhello\rX", "chunk data not followed by CRLF"),
        (b"5\r\nhello\r\r\n", "chunk data not followed by CRLF"),
        (b"5\r\nhello\r\n0\r\nA : b\r\n\r\n", "invalid header name"),
        (b"5\r\nhello\r\n0\r\nA\r\n\r\n", "header line without a colon"),
        (b"0\r\nA: b\r\n c\r\n\r\n", "obsolete line folding in the message head"),
        (b"0\r\nA: \x00\r\n\r\n", "invalid character in a header value"),
        (b"0\r\nA: b\nc\r\n\r\n", "bare LF or CR in chunked framing"),
        (b"0\r\nA: b\rc\r\n\r\n", "bare LF or CR in chunked framing"),
        (b"0\r\n\n", "bare LF or CR in chunked framing"),
        (b"0\r\n\r\r", "bare LF or CR in chunked framing"),
    ],
)
def test_refused_chunked_framing(h1: ModuleType, data: bytes, message: str) -> None:
    for pieces in splits(data):
        with pytest.raises(h1.ParseError) as info:
            decode(h1, pieces)
        assert (str(info.value), info.value.status) == (message, 400), pieces


def test_longest_chunk_size_line(h1: ModuleType) -> None:
    line = b"1;" + b"x" * (h1.MAX_CHUNK_LINE - 2)
    body = line + b"\r\na\r\n0\r\n\r\n"
    for cut in (1, 2, 100, len(line) - 1, len(line), len(line) + 1, len(line) + 2):
        assert decode(h1, [body[:cut], body[cut:]]) == (b"a", [], len(body), True)


@pytest.mark.parametrize("tail", [b"\r\na\r\n0\r\n\r\n", b"x", b"\r", b"xxxxxxxxxx\r\n"])
def test_a_size_line_too_long_is_refused(h1: ModuleType, tail: bytes) -> None:
    body = b"1;" + b"x" * (h1.MAX_CHUNK_LINE - 1) + tail
    for pieces in ([body], [body[i : i + 1] for i in range(len(body))]):
        with pytest.raises(h1.ParseError, match=r"^chunk size line too long$") as info:
            decode(h1, pieces)
        assert info.value.status == 400


def test_a_size_line_too_long_is_refused_before_its_end_arrives(h1: ModuleType) -> None:
    dec = h1.ChunkedDecoder(0)
    # A line of MAX_CHUNK_LINE bytes may still come with a CR: held.
    assert dec.feed(b"1;" + b"x" * (h1.MAX_CHUNK_LINE - 2) + b"\r", 0)[1:] == (b"", False)
    dec = h1.ChunkedDecoder(0)
    dec.feed(b"1;" + b"x" * (h1.MAX_CHUNK_LINE - 2), 0)
    dec.feed(b"x", 0)
    with pytest.raises(h1.ParseError, match=r"^chunk size line too long$"):
        dec.feed(b"x", 0)


def trailer_body(fields: Fields) -> tuple[bytes, int]:
    """A chunked body with those trailers, and the trailers' size as limited."""
    lines = [name + b": " + value + b"\r\n" for name, value in fields]
    return b"3\r\nabc\r\n0\r\n" + b"".join(lines) + b"\r\n", sum(map(len, lines))


def test_trailers_up_to_the_limit(h1: ModuleType) -> None:
    fields = [(b"A", b"1"), (b"Server-Timing", b"total;dur=12.5"), (b"Empty", b"")]
    body, size = trailer_body(fields)
    for pieces in splits(body + b"rest"):
        assert decode(h1, pieces, size) == (b"abc", fields, len(body), True)


def test_trailers_over_the_limit_are_answered_431(h1: ModuleType) -> None:
    fields = [(b"A", b"1"), (b"Server-Timing", b"total;dur=12.5"), (b"Empty", b"")]
    body, size = trailer_body(fields)
    for limit in (size - 1, size - 2, size - 3, 10, 3, 0):
        for pieces in ([body], [body[i : i + 1] for i in range(len(body))]):
            with pytest.raises(h1.ParseError, match=r"^trailer section too large$") as info:
                decode(h1, pieces, limit)
            assert info.value.status == 431


def test_no_trailers_fit_a_zero_limit(h1: ModuleType) -> None:
    assert decode(h1, [b"0\r\n\r\n"], 0) == (b"", [], 5, True)


def test_a_line_too_long_is_refused_as_such_however_it_is_split(h1: ModuleType) -> None:
    size_line = b"1;" + b"x" * h1.MAX_CHUNK_LINE + b"\r\na\r\n0\r\n\r\n"
    trailers, size = trailer_body([(b"A", b"1"), (b"Server-Timing", b"total;dur=12.5")])
    cases = [(size_line, 0, "chunk size line too long")]
    cases += [(trailers, limit, "trailer section too large") for limit in (size - 1, 10, 3, 0)]
    for body, limit, message in cases:
        for pieces in splits(body):
            with pytest.raises(h1.ParseError) as info:
                decode(h1, pieces, limit)
            assert str(info.value) == message, pieces


def test_decoder_attributes(h1: ModuleType) -> None:
    dec = h1.ChunkedDecoder(max_trailer_bytes=77)
    assert dec.max_trailer_bytes == 77
    assert dec.trailers == []
    assert dec.done is False
    dec.max_trailer_bytes = 6  # "A: b" and its CRLF
    assert dec.feed(b"0\r\nA: b\r\n\r\n", 0) == (11, b"", True)
    assert dec.done is True
    assert dec.trailers == [(b"A", b"b")]
    with pytest.raises(AttributeError):
        dec.done = False


def test_feeding_nothing_changes_nothing(h1: ModuleType) -> None:
    dec = h1.ChunkedDecoder(10)
    assert dec.feed(b"", 0) == (0, b"", False)
    assert dec.feed(b"abc", 3) == (3, b"", False)
    assert dec.feed(b"abc", 7) == (7, b"", False)
    assert dec.feed(b"3\r\nabc\r\n0\r\n\r\n", 0) == (13, b"abc", True)


# --- hypothesis: compiled and pure agree ---------------------------------------------


def _outcome(fn: Callable[..., Any], module: ModuleType, *args: Any) -> tuple[Any, ...]:
    """What a call returned, or its error as (type name, message, status)."""
    try:
        return ("ok", fn(*args))
    except module.ParseError as exc:
        return ("ParseError", str(exc), exc.status)
    except Exception as exc:
        return (type(exc).__name__, str(exc))


HEAD_FRAGMENTS = [
    b"GET ",
    b"POST",
    b"/",
    b"/index.html",
    b" HTTP/1.1",
    b" HTTP/1.0",
    b"HTTP/1.1 ",
    b"HTTP/1.1 200 OK",
    b"HTTP/2.0",
    b"HTTP/0.9",
    b"HTTP/1.",
    b"200",
    b" 204",
    b"0",
    b"\r\n",
    b"\r\n\r\n",
    b"\r\n",
    b":",
    b": ",
    b" ",
    b"  ",
    b"\t",
    b"\n",
    b"\r",
    b"Host",
    b"Host: example.com\r\n",
    b"X-A",
    b"value",
    b"a",
    b"\x00",
    b"\x7f",
    b"\x80",
    b"\xff",
    b"\x0b",
    b"@",
]
fragments_st = st.one_of(st.sampled_from(HEAD_FRAGMENTS), st.binary(max_size=3))
junk_st = st.lists(fragments_st, max_size=24).map(b"".join)


@st.composite
def mutated_st(draw: st.DrawFn, heads: list[bytes]) -> bytes:
    """A valid head with a few fragments inserted, or bytes replaced or deleted."""
    data = bytearray(draw(st.sampled_from(heads)))
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, len(data)))
        kind = draw(st.sampled_from(["insert", "replace", "delete"]))
        if kind == "insert":
            data[i:i] = draw(fragments_st)
        elif kind == "replace":
            data[i : i + 1] = draw(st.binary(min_size=1, max_size=1))
        else:
            del data[i : i + 1]
    return bytes(data)


# Mutated, these reach every check; the last two are refused as they are (505).
REQUEST_HEADS = [
    *VALID_REQUESTS,
    b"\r\n" * 8 + b"GET / HTTP/1.1\r\n\r\n",
    b"GET / HTTP/2.0\r\nA: b\r\n\r\n",
]
RESPONSE_HEADS = [*VALID_RESPONSES, b"HTTP/0.9 200 OK\r\nA: b\r\n\r\n"]


@settings(max_examples=1500, deadline=None)
@given(
    data=st.one_of(junk_st, mutated_st(REQUEST_HEADS), mutated_st(RESPONSE_HEADS)),
    prefix=st.sampled_from([b"", b"x", b"\r\n", b"\r"]),
    extra=st.integers(0, 2),
)
def test_compiled_and_pure_agree_on_heads(
    pair: tuple[ModuleType, ModuleType], data: bytes, prefix: bytes, extra: int
) -> None:
    data = prefix + data
    for pos in {0, len(prefix), min(len(data), len(prefix) + extra)}:
        for name in (
            "parse_request_head",
            "parse_request_lines",
            "parse_response_head",
            "parse_response_lines",
        ):
            compiled, pure = (_outcome(getattr(m, name), m, data, pos) for m in pair)
            assert compiled == pure
        for module in pair:
            # req() and resp() check the *_lines parsers and field_list
            # against the heads.
            with contextlib.suppress(module.ParseError):
                req(module, data, pos)
            with contextlib.suppress(module.ParseError):
                resp(module, data, pos)


CHUNK_FRAGMENTS = [
    b"0",
    b"1",
    b"5",
    b"a",
    b"F",
    b"10",
    b"0000000000000001",
    b"\r\n",
    b"\r\n\r\n",
    b"0\r\n",
    b"0\r\n\r\n",
    b";",
    b";x=y",
    b"hello",
    b"\n",
    b"\r",
    b"X: y",
    b"X-Long-Trailer-Name: value",
    b":",
    b" ",
    b"\t",
    b"\x00",
    b"\x7f",
    b"\x80",
]
chunk_fragments_st = st.one_of(st.sampled_from(CHUNK_FRAGMENTS), st.binary(max_size=3))
chunk_junk_st = st.lists(chunk_fragments_st, max_size=20).map(b"".join)


@st.composite
def chunked_st(draw: st.DrawFn) -> bytes:
    """A valid chunked body with trailers, perhaps with a fragment inserted."""
    chunks = draw(st.lists(st.binary(min_size=1, max_size=20), max_size=4))
    body = b""
    for chunk in chunks:
        size = b"%x" % len(chunk)
        if draw(st.booleans()):
            size = size.upper()
        if draw(st.booleans()):
            size += b";e=" + draw(st.sampled_from([b"1", b'"q s"', b"\x80"]))
        body += size + b"\r\n" + chunk + b"\r\n"
    body += b"0\r\n"
    for name, value in draw(st.lists(st.tuples(name_st, value_st), max_size=3)):
        body += name + b":" + value + b"\r\n"
    body += b"\r\n" + draw(st.sampled_from([b"", b"GET / HTTP/1.1\r\n"]))
    if draw(st.booleans()):
        i = draw(st.integers(0, len(body)))
        body = body[:i] + draw(chunk_fragments_st) + body[i:]
    return body


def cut(data: bytes, points: list[int]) -> list[bytes]:
    bounds = [0, *sorted(p % (len(data) + 1) for p in points), len(data)]
    return [data[a:b] for a, b in pairwise(bounds)]


def feed_outcomes(module: ModuleType, pieces: list[bytes], limit: int) -> list[tuple[Any, ...]]:
    """Each feed's result (and the trailers and done after it) up to the first error."""
    dec = module.ChunkedDecoder(limit)
    out: list[tuple[Any, ...]] = []
    for piece in pieces:
        result = _outcome(dec.feed, module, piece, 0)
        out.append(result)
        if result[0] != "ok":
            break
        out.append((list(dec.trailers), dec.done))
        if dec.done:
            break
    return out


@settings(max_examples=1000, deadline=None)
@given(
    data=st.one_of(chunk_junk_st, chunked_st()),
    points=st.lists(st.integers(0, 10**6), max_size=6),
    limit=st.sampled_from([0, 3, 8, 20, 64, 4096]),
)
def test_compiled_and_pure_agree_on_chunked_bodies(
    pair: tuple[ModuleType, ModuleType], data: bytes, points: list[int], limit: int
) -> None:
    pieces = cut(data, points)
    compiled, pure = (feed_outcomes(m, pieces, limit) for m in pair)
    assert compiled == pure


# --- hypothesis: round trips -----------------------------------------------------------

TCHARS = b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
VCHARS = bytes(range(0x21, 0x7F))
VALUE_CHARS = b"\t " + VCHARS + bytes(range(0x80, 0x100))

token_st = st.lists(st.sampled_from(TCHARS), min_size=1, max_size=12).map(bytes)
name_st = token_st
target_st = st.lists(st.sampled_from(VCHARS), min_size=1, max_size=30).map(bytes)
# A value as parsed: no white space at either end.
value_st = st.lists(st.sampled_from(VALUE_CHARS), max_size=30).map(lambda b: bytes(b).strip(b" \t"))
ows_st = st.sampled_from([b"", b" ", b"\t", b"  \t "])
reason_st = st.lists(st.sampled_from(VALUE_CHARS), max_size=20).map(bytes)
fields_st = st.lists(st.tuples(name_st, value_st, ows_st, ows_st), max_size=8)


def field_lines(fields: list[tuple[bytes, bytes, bytes, bytes]]) -> bytes:
    return b"".join(n + b":" + left + v + right + b"\r\n" for n, v, left, right in fields)


@FIXTURE_OK
@given(
    method=token_st,
    target=target_st,
    minor=st.integers(0, 9),
    fields=fields_st,
    empty_lines=st.integers(0, 8),
    before=st.binary(max_size=4),
    after=st.binary(max_size=8),
)
def test_request_round_trip(
    h1: ModuleType,
    method: bytes,
    target: bytes,
    minor: int,
    fields: list[tuple[bytes, bytes, bytes, bytes]],
    empty_lines: int,
    before: bytes,
    after: bytes,
) -> None:
    head = b"\r\n" * empty_lines + b"%s %s HTTP/1.%d\r\n" % (method, target, minor)
    head += field_lines(fields) + b"\r\n"
    parsed = req(h1, before + head + after, len(before))
    expected_fields = [(n, v) for n, v, _, _ in fields]
    assert parsed == (len(before) + len(head), method, target, min(minor, 1), expected_fields)


@FIXTURE_OK
@given(
    status=st.integers(100, 999),
    reason=st.one_of(st.none(), reason_st),
    minor=st.integers(0, 9),
    fields=fields_st,
    before=st.binary(max_size=4),
    after=st.binary(max_size=8),
)
def test_response_round_trip(
    h1: ModuleType,
    status: int,
    reason: bytes | None,
    minor: int,
    fields: list[tuple[bytes, bytes, bytes, bytes]],
    before: bytes,
    after: bytes,
) -> None:
    line = b"HTTP/1.%d %d" % (minor, status) + (b"" if reason is None else b" " + reason)
    head = line + b"\r\n" + field_lines(fields) + b"\r\n"
    parsed = resp(h1, before + head + after, len(before))
    expected_fields = [(n, v) for n, v, _, _ in fields]
    assert parsed == (
        len(before) + len(head),
        status,
        reason or b"",
        min(minor, 1),
        expected_fields,
    )


@FIXTURE_OK
@given(
    chunks=st.lists(st.binary(min_size=1, max_size=40), max_size=6),
    trailers=st.lists(st.tuples(name_st, value_st), max_size=4),
    ext=st.sampled_from([b"", b";a", b';a=b;c="d e"']),
    points=st.lists(st.integers(0, 10**6), max_size=8),
    after=st.binary(max_size=8),
)
def test_chunked_round_trip(
    h1: ModuleType,
    chunks: list[bytes],
    trailers: Fields,
    ext: bytes,
    points: list[int],
    after: bytes,
) -> None:
    body = b"".join(b"%X%s\r\n%s\r\n" % (len(c), ext, c) for c in chunks)
    body += b"0" + ext + b"\r\n" + b"".join(n + b": " + v + b"\r\n" for n, v in trailers) + b"\r\n"
    payload, got_trailers, end, done = decode(h1, cut(body + after, points), len(body))
    assert (payload, got_trailers, end, done) == (b"".join(chunks), trailers, len(body), True)
