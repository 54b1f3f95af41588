"""``headers.host_is_valid``: the Host value must be ``uri-host [":" port]``.

Both twins run the same table of valid and invalid values; hypothesis checks
that they agree with each other, and with a regular expression written from
the grammar (RFC 9110 7.2, RFC 3986 3.2.2), on arbitrary bytes; and that
``scan_request`` refuses a request's single Host exactly when the validator
does.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from types import ModuleType

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lbproxy import _fast

FastImpl = Callable[[str], ModuleType]

IP = b"203.0.113.7"
VIA = b"1.1 lbproxy"

# The grammar the proxy means, written independently of both twins:
#   uri-host = IP-literal / reg-name      (an IPv4 address is a reg-name here)
#   reg-name = *( unreserved / pct-encoded / sub-delims )
#   IP-literal = "[" ( IPv6 characters / IPvFuture ) "]", where IPv6
#     characters are hex digits, ":" and "." (no zone identifier: RFC 6874's
#     "%25zone" names an interface of the sender, meaningless in a Host), and
#     IPvFuture = "v" 1*HEXDIG "." 1*( unreserved / sub-delims / ":" )
#   port = at most 5 digits, possibly none ("host:" is valid, RFC 3986 3.2.3)
_CHARS = rb"A-Za-z0-9\-._~!$&'()*+,;="
_PCT = rb"%[0-9A-Fa-f]{2}"
_REFERENCE = re.compile(
    rb"(?:\[(?:[0-9A-Fa-f:.]+|[vV][0-9A-Fa-f]+\.[" + _CHARS + rb":]+)\]"
    rb"|(?:[" + _CHARS + rb"]|" + _PCT + rb")*)"
    rb"(?::[0-9]{0,5})?"
)


def reference(host: bytes) -> bool:
    return _REFERENCE.fullmatch(host) is not None


VALID = [
    b"",
    b"example.com",
    b"Example.COM",
    b"localhost",
    b"x",
    b"0",
    b"a-b_c.d~e",
    b"xn--bcher-kva.example",
    b"host.example.",
    b"a!$&'()*+,;=b",
    b"example.com:80",
    b"example.com:65535",
    b"example.com:99999",  # 5 digits: syntactically a port
    b"example.com:0",
    b"host:",  # empty port
    b"127.0.0.1",
    b"127.0.0.1:8080",
    b"[::1]",
    b"[::1]:8080",
    b"[::1]:",
    b"[2001:db8::7]:443",
    b"[::ffff:192.0.2.1]",
    b"[v1.fe80::a+en1]",
    b"%41%42",
    b"ex%2dample",
    b"ex%2Dample:81",
]

INVALID = [
    # not an IPv6 address or IPvFuture literal inside the brackets
    b"[evil.com]",
    b"[fe80::1%25eth0]",  # a zone identifier
    b"[v1.]",
    b"[v.x]",
    b"[vz.x]",
    # whitespace
    b"a b",
    b" a",
    b"a ",
    b"host: 80",
    b"host:80 ",
    # characters that split a URI
    b"x@evil",
    b"user@host:80",
    b"a/b",
    b"host/path",
    b"a?b",
    b"a#b",
    b"a\\b",
    # other characters outside reg-name
    b'"a"',
    b"a<b>",
    b"a`b",
    b"a{b}",
    b"a|b",
    b"a^b",
    b"a]b",
    b"a[b",
    b"a[::1]",
    # non-ASCII and control bytes
    "é".encode(),
    b"caf\xc3\xa9.example",
    b"\x80",
    b"\xff",
    b"a\x00b",
    b"\x00",
    b"a\tb",
    b"a\rb",
    b"a\nb",
    b"a\x1bb",
    b"a\x7fb",
    b"\x1f",
    # IP literals
    b"[::1",
    b"[",
    b"[]",
    b"[]:80",
    b"[::1]x",
    b"[::1]]",
    b"[[::1]]",
    b"[::1]:80x",
    b"[::1]:abc",
    b"[::1]:123456",
    b"[::1]:80:80",
    b"[a b]",
    b"[::1/64]",
    b"[::1%eth0]",
    b"::1",  # unbracketed IPv6
    b"2001:db8::1",
    # ports
    b"host:8o",
    b"host:abc",
    b"host:123456",
    b"host:99999999",
    b"host:-1",
    b"host:+80",
    b"host:1:2",
    b"host:\xd9\xa5",  # ARABIC-INDIC DIGIT FIVE: a digit, not an ASCII one
    b"host:\xef\xbc\x98",  # FULLWIDTH DIGIT EIGHT
    # percent escapes
    b"%",
    b"a%",
    b"%4",
    b"%4:80",
    b"%zz",
    b"a%4g",
    b"%%41",
    b"[%]",
    b"[%4]",
]


def test_the_reference_grammar_reads_the_tables_as_intended() -> None:
    assert all(reference(h) for h in VALID)
    assert not any(reference(h) for h in INVALID)


@pytest.mark.parametrize("host", VALID)
def test_valid_hosts(fast_impl: FastImpl, host: bytes) -> None:
    assert fast_impl("headers").host_is_valid(host) is True


@pytest.mark.parametrize("host", INVALID)
def test_invalid_hosts(fast_impl: FastImpl, host: bytes) -> None:
    assert fast_impl("headers").host_is_valid(host) is False


# Mostly bytes from the host grammar's edges, so that valid values come up too.
_PIECES = [
    b"a",
    b"Z",
    b"0",
    b"9",
    b"4",
    b"f",
    b"g",
    b".",
    b"-",
    b"~",
    b"!",
    b"'",
    b":",
    b"[",
    b"]",
    b"%",
    b"%41",
    b"@",
    b"/",
    b"?",
    b"#",
    b" ",
    b"\t",
    b'"',
    b"\\",
    b"\x00",
    b"\x7f",
    b"\xc3",
    b"\xa9",
]
hosts_st = st.one_of(
    st.binary(max_size=24),
    st.lists(st.sampled_from(_PIECES), max_size=16).map(b"".join),
    st.tuples(
        st.sampled_from([b"[::1]", b"example.com", b"[", b""]),
        st.sampled_from([b"", b":", b":8", b":80", b":65535", b":123456", b"::", b":8a"]),
    ).map(b"".join),
)


@settings(max_examples=3000, deadline=None)
@given(host=hosts_st)
def test_compiled_and_pure_agree_with_the_grammar(compiled_impl: FastImpl, host: bytes) -> None:
    compiled = compiled_impl("headers").host_is_valid(host)
    pure = _fast.load_pure("headers").host_is_valid(host)
    assert compiled is pure
    assert pure is reference(host)


@settings(
    max_examples=1500,
    deadline=None,
    # fast_impl only hands out a module getter: nothing to reset between examples.
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(host=hosts_st, before=st.booleans())
def test_scan_request_refuses_exactly_the_invalid_hosts(
    fast_impl: FastImpl, host: bytes, before: bool
) -> None:
    hdr = fast_impl("headers")
    other = (b"Accept", b"*/*")
    headers = [other, (b"Host", host)] if before else [(b"Host", host), other]
    if host and not reference(host):
        with pytest.raises(hdr.FramingError, match=r"^invalid Host header$"):
            hdr.scan_request(headers, IP, False, b"http", VIA)
    else:
        block, got, clen, _flags, _upgrade = hdr.scan_request(headers, IP, False, b"http", VIA)
        assert (got, clen) == (host, -1)
        # Forwarded as sent, but for an empty Host, which reads as none.
        kept = [(n, v) for n, v in headers if v or n != b"Host"]
        assert block.startswith(b"".join(n + b": " + v + b"\r\n" for n, v in kept))


@pytest.mark.parametrize("host", [b"a b", b"x@evil", b"[::1", b"host:99999999", b"%zz"])
def test_invalid_host_is_refused_even_from_a_trusted_peer(fast_impl: FastImpl, host: bytes) -> None:
    hdr = fast_impl("headers")
    with pytest.raises(hdr.FramingError, match=r"^invalid Host header$"):
        hdr.scan_request([(b"Host", host)], IP, True, b"http", VIA)
