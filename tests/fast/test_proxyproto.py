"""``proxyproto``: PROXY protocol v1/v2 headers. Both twins must return equal
results and raise the same errors, with the same messages, for every input."""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Callable, Sequence
from types import ModuleType

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from lbproxy import _fast
from lbproxy._fast.proxyproto_py import ProxyInfo, ProxyProtocolError

FastImpl = Callable[[str], ModuleType]

both = pytest.mark.parametrize("fast_impl", ["compiled", "pure"], indirect=True)
# fast_impl is a stateless getter: sharing it across examples is safe.
FIXTURE_OK = [HealthCheck.function_scoped_fixture]

SIG = b"\r\n\r\n\x00\r\nQUIT\n"
HTTP = b"GET / HTTP/1.1\r\nHost: site.test\r\n\r\n"


def v2(
    command: int = 1,
    fam: int = 0x11,
    block: bytes = b"",
    tlvs: bytes = b"",
    version: int = 2,
    length: int | None = None,
) -> bytes:
    payload = block + tlvs
    size = len(payload) if length is None else length
    return SIG + bytes([version << 4 | command, fam]) + struct.pack("!H", size) + payload


def tlv(kind: int, value: bytes) -> bytes:
    return bytes([kind]) + struct.pack("!H", len(value)) + value


def v4_block(src: str, dst: str, sport: int, dport: int) -> bytes:
    return (
        ipaddress.IPv4Address(src).packed
        + ipaddress.IPv4Address(dst).packed
        + struct.pack("!HH", sport, dport)
    )


def v6_block(src: str, dst: str, sport: int, dport: int) -> bytes:
    return (
        ipaddress.IPv6Address(src).packed
        + ipaddress.IPv6Address(dst).packed
        + struct.pack("!HH", sport, dport)
    )


def canonical6(packed: bytes) -> bytes:
    """RFC 5952 text: ipaddress's, with IPv4-mapped addresses in mixed notation
    (Python 3.13's ipaddress writes them so; 3.11 writes pure hex)."""
    addr = ipaddress.IPv6Address(packed)
    if addr.ipv4_mapped is not None:
        return f"::ffff:{addr.ipv4_mapped}".encode()
    return str(addr).encode()


def _ids(cases: Sequence[tuple[bytes, object]]) -> list[str]:
    return [f"{i}-{'v2' if data[:1] == SIG[:1] else 'v1'}" for i, (data, _) in enumerate(cases)]


TLVS = tlv(0x01, b"h2") + tlv(0x02, b"site.test") + tlv(0x04, b"\0" * 5) + tlv(0x30, b"")

VALID: list[tuple[bytes, ProxyInfo | None]] = [
    (
        b"PROXY TCP4 203.0.113.7 198.51.100.1 56324 443\r\n",
        ProxyInfo("tcp4", b"203.0.113.7", 56324, b"198.51.100.1", 443),
    ),
    (
        b"PROXY TCP4 0.0.0.0 255.255.255.255 0 65535\r\n",
        ProxyInfo("tcp4", b"0.0.0.0", 0, b"255.255.255.255", 65535),
    ),
    (
        b"PROXY TCP6 2001:db8::1 2001:db8::2 1 2\r\n",
        ProxyInfo("tcp6", b"2001:db8::1", 1, b"2001:db8::2", 2),
    ),
    (  # non-canonical text comes back canonical
        b"PROXY TCP6 2001:0DB8:0000:0000:0000:0000:0000:0001 ::FFFF:192.0.2.1 80 8080\r\n",
        ProxyInfo("tcp6", b"2001:db8::1", 80, b"::ffff:192.0.2.1", 8080),
    ),
    (b"PROXY UNKNOWN\r\n", None),
    (b"PROXY UNKNOWN ffff:f...f:ffff 65535 65535\r\n", None),
    (b"PROXY UNKNOWN TCP4 whatever  \x01\r\n", None),
    (
        v2(block=v4_block("203.0.113.7", "198.51.100.1", 56324, 443)),
        ProxyInfo("tcp4", b"203.0.113.7", 56324, b"198.51.100.1", 443),
    ),
    (
        v2(block=v4_block("10.0.0.1", "10.0.0.2", 1, 2), tlvs=TLVS),
        ProxyInfo("tcp4", b"10.0.0.1", 1, b"10.0.0.2", 2),
    ),
    (
        v2(fam=0x21, block=v6_block("2001:db8::7", "::1", 5000, 80)),
        ProxyInfo("tcp6", b"2001:db8::7", 5000, b"::1", 80),
    ),
    (
        v2(fam=0x21, block=v6_block("::ffff:10.1.2.3", "fe80::1:0:0:0", 1, 2), tlvs=TLVS),
        ProxyInfo("tcp6", b"::ffff:10.1.2.3", 1, b"fe80::1:0:0:0", 2),  # first of tied runs
    ),
    (v2(command=0, fam=0x00), None),  # LOCAL, as health checks send it
    (v2(command=0, fam=0x11, block=bytes(12), tlvs=b"\xff"), None),  # LOCAL ignores it all
    (v2(command=0, fam=0x77, tlvs=b"junk"), None),
    (v2(fam=0x00), None),  # PROXY over UNSPEC
    (v2(fam=0x00, tlvs=b"not a tlv"), None),
    (v2(fam=0x31, block=b"/run/a.sock".ljust(108, b"\0") + bytes(108)), None),
    (v2(fam=0x31, block=bytes(216), tlvs=TLVS), None),
]


@both
@pytest.mark.parametrize(("header", "info"), VALID, ids=_ids(VALID))
def test_valid_headers(fast_impl: FastImpl, header: bytes, info: ProxyInfo | None) -> None:
    mod = fast_impl("proxyproto")
    result = mod.parse(header)
    assert result == (len(header), info)
    if info is not None:
        assert type(result[1]) is ProxyInfo
        assert result[1].family == info.family and result[1].src_ip == info.src_ip
    # What follows the header is the client's, not the header's.
    assert mod.parse(header + HTTP) == (len(header), info)


@both
@pytest.mark.parametrize(("header", "info"), VALID, ids=_ids(VALID))
def test_every_prefix_needs_more(fast_impl: FastImpl, header: bytes, info: object) -> None:
    parse = fast_impl("proxyproto").parse
    for end in range(len(header)):
        assert parse(header[:end]) == (0, None), header[:end]


@both
def test_v1_length_limit(fast_impl: FastImpl) -> None:
    parse = fast_impl("proxyproto").parse
    full = b"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"
    widest = b"PROXY TCP6 " + full + b" " + full + b" 65535 65535\r\n"
    assert parse(widest)[0] == len(widest)
    longest = b"PROXY UNKNOWN " + b"x" * 91 + b"\r\n"
    assert len(longest) == 107
    assert parse(longest) == (107, None)
    assert parse(longest[:-1]) == (0, None)
    too_long = b"PROXY UNKNOWN " + b"x" * 92 + b"\r\n"
    for data in (too_long, too_long[:-1], too_long[:107], too_long[:200] + b"y" * 50):
        with pytest.raises(ProxyProtocolError, match="no CRLF within 107 bytes"):
            parse(data)
    assert parse(too_long[:106]) == (0, None)


@both
def test_v1_streams_of_bytes(fast_impl: FastImpl) -> None:
    """A v1 header and a request arriving one byte at a time."""
    parse = fast_impl("proxyproto").parse
    stream = b"PROXY TCP4 192.0.2.1 192.0.2.2 1000 80\r\n" + HTTP
    buffer = b""
    for byte in stream:
        buffer += bytes([byte])
        consumed, info = parse(buffer)
        if consumed:
            break
    assert info == ProxyInfo("tcp4", b"192.0.2.1", 1000, b"192.0.2.2", 80)
    assert stream[consumed:] == HTTP


MALFORMED: list[tuple[bytes, str]] = [
    (b"GET / HTTP/1.1\r\n", "no PROXY protocol header"),
    (b"G", "no PROXY protocol header"),
    (b"POST", "no PROXY protocol header"),
    (b"PROPFIND", "no PROXY protocol header"),
    (b"proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n", "no PROXY protocol header"),
    (b"PROXY\r\n", "no PROXY protocol header"),
    (b"\x16\x03\x01\x02\x00", "no PROXY protocol header"),  # a TLS ClientHello
    (b"\r\n\r\n\x00\r\nQUIX", "no PROXY protocol header"),
    (b"\r\nGET", "no PROXY protocol header"),
    (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", "LF without CR"),
    (b"PROXY TCP4 1.2.3.4\n", "LF without CR"),
    (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX", "CR not followed by LF"),
    (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\r\n", "CR not followed by LF"),
    (b"PROXY TCP4 " + b"1" * 200, "no CRLF within 107 bytes"),
    (b"PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n", "unknown protocol"),
    (b"PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n", "unknown protocol"),
    (b"PROXY UNKNOWNX\r\n", "unknown protocol"),
    (b"PROXY unknown\r\n", "unknown protocol"),
    (b"PROXY \r\n", "unknown protocol"),
    (b"PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n", "unknown protocol"),
    (b"PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n", "empty field"),
    (b"PROXY TCP4 1.2.3.4 5.6.7.8  1 2\r\n", "empty field"),
    (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n", "empty field"),
    (b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", "expected 4 fields"),
    (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n", "expected 4 fields"),
    (b"PROXY TCP4\r\n", "expected 4 fields"),
    (b"PROXY TCP4 1.2.3.4\t5.6.7.8 1 2\r\n", "expected 4 fields"),
    (b"PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n", "bad TCP4 source address"),
    (b"PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n", "bad TCP4 source address"),
    (b"PROXY TCP4 1.2.3.4.5 5.6.7.8 1 2\r\n", "bad TCP4 source address"),
    (b"PROXY TCP4 1.2..4 5.6.7.8 1 2\r\n", "bad TCP4 source address"),
    (b"PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n", "bad TCP4 source address"),
    (b"PROXY TCP4 1.2.3.-4 5.6.7.8 1 2\r\n", "bad TCP4 source address"),
    (b"PROXY TCP4 ::1 5.6.7.8 1 2\r\n", "bad TCP4 source address"),
    (b"PROXY TCP4 1.2.3.4 5.6.7.8. 1 2\r\n", "bad TCP4 destination address"),
    (b"PROXY TCP4 1.2.3.4 localhost 1 2\r\n", "bad TCP4 destination address"),
    (b"PROXY TCP6 1.2.3.4 ::1 1 2\r\n", "bad TCP6 source address"),
    (b"PROXY TCP6 ::1%eth0 ::1 1 2\r\n", "bad TCP6 source address"),
    (b"PROXY TCP6 [::1] ::1 1 2\r\n", "bad TCP6 source address"),
    (b"PROXY TCP6 1::2::3 ::1 1 2\r\n", "bad TCP6 source address"),
    (b"PROXY TCP6 12345::1 ::1 1 2\r\n", "bad TCP6 source address"),
    (b"PROXY TCP6 1:2:3:4:5:6:7 ::1 1 2\r\n", "bad TCP6 source address"),
    (b"PROXY TCP6 1:2:3:4:5:6:7:8:9 ::1 1 2\r\n", "bad TCP6 source address"),
    (b"PROXY TCP6 ::1 :1 1 2\r\n", "bad TCP6 destination address"),
    (b"PROXY TCP6 ::1 1: 1 2\r\n", "bad TCP6 destination address"),
    (b"PROXY TCP6 ::1 ::ffff:1.2.3.04 1 2\r\n", "bad TCP6 destination address"),
    (b"PROXY TCP4 1.2.3.4 5.6.7.8 70000 2\r\n", "bad source port"),
    (b"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n", "bad source port"),
    (b"PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n", "bad source port"),
    (b"PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n", "bad source port"),
    (b"PROXY TCP4 1.2.3.4 5.6.7.8 080 2\r\n", "bad source port"),
    (b"PROXY TCP4 1.2.3.4 5.6.7.8 0x50 2\r\n", "bad source port"),
    (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 000065535\r\n", "bad destination port"),
    (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 70000\r\n", "bad destination port"),
    (v2(version=1, block=bytes(12)), "unsupported version 1"),
    (v2(version=3, block=bytes(12)), "unsupported version 3"),
    (v2(command=2, block=bytes(12)), "unknown command 2"),
    (v2(command=15, block=bytes(12)), "unknown command 15"),
    (v2(fam=0x12, block=bytes(12)), "datagram \\(UDP\\) transport is not supported"),
    (v2(fam=0x22, block=bytes(36)), "datagram \\(UDP\\) transport is not supported"),
    (v2(fam=0x32, block=bytes(216)), "datagram \\(UDP\\) transport is not supported"),
    (v2(fam=0x13, block=bytes(12)), "unknown address family/transport 0x13"),
    (v2(fam=0x41, block=bytes(12)), "unknown address family/transport 0x41"),
    (v2(fam=0x01), "unknown address family/transport 0x01"),
    (v2(fam=0x11, block=bytes(11)), "length 11 is shorter than the 12-byte address block"),
    (v2(fam=0x21, block=bytes(12)), "length 12 is shorter than the 36-byte address block"),
    (v2(fam=0x31, block=bytes(108)), "length 108 is shorter than the 216-byte"),
    (v2(fam=0x11, length=4097), "length 4097 exceeds the 4096-byte cap"),
    (v2(command=0, fam=0x00, length=0xFFFF), "length 65535 exceeds the 4096-byte cap"),
    (v2(block=bytes(12), tlvs=b"\x01"), "truncated TLV"),
    (v2(block=bytes(12), tlvs=b"\x01\x00"), "truncated TLV"),
    (v2(block=bytes(12), tlvs=tlv(1, b"ab") + b"\x02\x00"), "truncated TLV"),
    (v2(block=bytes(12), tlvs=b"\x01\x00\x05abcd"), "TLV overruns the header"),
    (v2(fam=0x21, block=bytes(36), tlvs=b"\x01\xff\xff"), "TLV overruns the header"),
    (v2(fam=0x31, block=bytes(216), tlvs=b"\x01\x00\x01"), "TLV overruns the header"),
]


@both
@pytest.mark.parametrize(("data", "reason"), MALFORMED, ids=_ids(MALFORMED))
def test_malformed(fast_impl: FastImpl, data: bytes, reason: str) -> None:
    parse = fast_impl("proxyproto").parse
    with pytest.raises(ProxyProtocolError, match=reason):
        parse(data)
    with pytest.raises(ValueError, match=reason):  # a ProxyProtocolError is one
        parse(data + HTTP)


@both
@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (v2(version=3)[:13], "unsupported version 3"),
        (v2(command=3)[:13], "unknown command 3"),
        (v2(fam=0x22)[:14], "datagram"),
        (v2(fam=0x99)[:14], "unknown address family/transport 0x99"),
        (v2(length=5000)[:16], "exceeds the 4096-byte cap"),
        (v2(fam=0x21, length=35)[:16], "shorter than the 36-byte address block"),
    ],
)
def test_v2_fixed_fields_fail_on_arrival(fast_impl: FastImpl, data: bytes, reason: str) -> None:
    """A bad fixed field fails as soon as its byte is in, not once the header is."""
    with pytest.raises(ProxyProtocolError, match=reason):
        fast_impl("proxyproto").parse(data)


@both
def test_v2_length_cap_is_inclusive(fast_impl: FastImpl) -> None:
    parse = fast_impl("proxyproto").parse
    header = v2(block=v4_block("1.1.1.1", "2.2.2.2", 1, 2), tlvs=tlv(4, bytes(4096 - 15)))
    assert len(header) == 16 + 4096
    assert parse(header)[0] == len(header)
    assert parse(header[:-1]) == (0, None)


@both
def test_shared_types_and_errors(fast_impl: FastImpl) -> None:
    mod = fast_impl("proxyproto")
    assert mod.ProxyInfo is ProxyInfo
    assert mod.ProxyProtocolError is ProxyProtocolError
    assert issubclass(ProxyProtocolError, ValueError)
    assert (mod.V1_MAX_LENGTH, mod.V2_MAX_LENGTH, mod.V2_SIGNATURE) == (107, 4096, SIG)
    assert mod.parse(b"") == (0, None)

    class Subclass(bytes):
        pass

    for wrong in (bytearray(b"PROXY "), memoryview(b"PROXY "), "PROXY ", None, Subclass(b"P")):
        with pytest.raises(TypeError, match="expected bytes"):
            mod.parse(wrong)


# --- IPv6 text, against ipaddress ---

_packed6 = st.one_of(
    st.binary(min_size=16, max_size=16),
    # mostly zero groups, so that runs of zeros (and their ties) are common
    st.lists(st.sampled_from([0, 0, 0, 1, 0xFFFF, 0xABC]), min_size=8, max_size=8).map(
        lambda words: struct.pack("!8H", *words)
    ),
    st.binary(min_size=4, max_size=4).map(lambda v4: bytes(10) + b"\xff\xff" + v4),
)


@both
@settings(max_examples=300, deadline=None, suppress_health_check=FIXTURE_OK)
@given(src=_packed6, dst=_packed6)
@example(src=bytes(16), dst=b"\0\1" * 8)
def test_ipv6_text_is_rfc5952(fast_impl: FastImpl, src: bytes, dst: bytes) -> None:
    parse = fast_impl("proxyproto").parse
    info = parse(v2(fam=0x21, block=src + dst + b"\0\1\0\2"))[1]
    assert info == ProxyInfo("tcp6", canonical6(src), 1, canonical6(dst), 2)
    # v1 carrying any of ipaddress's spellings gives the same text back
    for spelling in (ipaddress.IPv6Address(src).exploded, str(ipaddress.IPv6Address(src))):
        line = f"PROXY TCP6 {spelling.upper()} {ipaddress.IPv6Address(dst)} 1 2\r\n"
        assert parse(line.encode()) == (len(line), info)


def _ipv6_reference(text: str) -> bytes | None:
    try:
        return canonical6(ipaddress.IPv6Address(text).packed)
    except ValueError:
        return None


@both
@settings(max_examples=500, deadline=None, suppress_health_check=FIXTURE_OK)
@given(text=st.text(alphabet="0123456789abcdefABCDEF:.", min_size=1, max_size=46))
@example(text="::")
@example(text="1:2:3:4:5:6:7::")
@example(text="::2:3:4:5:6:7:8")
@example(text="1:2:3:4:5:6:1.2.3.4")
@example(text="1:2:3:4:5::1.2.3.4")
@example(text="::1.2.3.4")
@example(text="::1.2.3.4:5")
@example(text="1:2:3:4:5:6:7:1.2.3.4")
def test_ipv6_acceptance_matches_ipaddress(fast_impl: FastImpl, text: str) -> None:
    line = f"PROXY TCP6 {text} ::1 1 2\r\n".encode()
    expected = _ipv6_reference(text)
    if expected is None:
        with pytest.raises(ProxyProtocolError, match="bad TCP6 source address"):
            fast_impl("proxyproto").parse(line)
    else:
        assert fast_impl("proxyproto").parse(line) == (
            len(line),
            ProxyInfo("tcp6", expected, 1, b"::1", 2),
        )


# --- the twins agree ---


def _outcome(mod: ModuleType, data: bytes) -> object:
    try:
        return mod.parse(data)
    except ProxyProtocolError as exc:
        return type(exc), str(exc)


_ipv4_text = st.one_of(
    st.tuples(*[st.integers(0, 255)] * 4).map(lambda q: ".".join(map(str, q))),
    st.text(alphabet="0123456789.", min_size=1, max_size=17),
)
_ipv6_text = st.one_of(
    st.binary(min_size=16, max_size=16).map(lambda b: str(ipaddress.IPv6Address(b))),
    st.binary(min_size=16, max_size=16).map(lambda b: ipaddress.IPv6Address(b).exploded),
    st.text(alphabet="0123456789abcdefABCDEF:.", min_size=1, max_size=46),
)
_port_text = st.one_of(st.integers(0, 70000).map(str), st.text("0123456789+-", max_size=6))
_v1 = st.one_of(
    st.builds(
        lambda s, d, sp, dp: f"PROXY TCP4 {s} {d} {sp} {dp}\r\n",
        _ipv4_text,
        _ipv4_text,
        _port_text,
        _port_text,
    ),
    st.builds(
        lambda s, d, sp, dp: f"PROXY TCP6 {s} {d} {sp} {dp}\r\n",
        _ipv6_text,
        _ipv6_text,
        _port_text,
        _port_text,
    ),
    st.text(max_size=100).map(lambda rest: f"PROXY UNKNOWN {rest}\r\n"),
).map(lambda line: line.encode("utf-8", "replace"))

_fam_block = st.sampled_from([(0x11, 12), (0x21, 36), (0x31, 216), (0x00, 0), (0x12, 12)])
_v2 = st.builds(
    lambda command, fb, block, tlvs, junk: v2(
        command=command,
        fam=fb[0],
        block=block[: fb[1]].ljust(fb[1], b"\0"),
        tlvs=b"".join(tlv(k, v) for k, v in tlvs) + junk,
    ),
    st.sampled_from([0, 1, 1, 1, 2]),
    _fam_block,
    st.binary(min_size=0, max_size=216),
    st.lists(st.tuples(st.integers(0, 255), st.binary(max_size=40)), max_size=4),
    st.one_of(st.just(b""), st.binary(max_size=4)),
)


@st.composite
def _mutated(draw: st.DrawFn, base: st.SearchStrategy[bytes]) -> bytes:
    data = bytearray(draw(base))
    how = draw(st.sampled_from(["as is", "cut", "flip", "insert", "extend"]))
    if how == "cut":
        del data[draw(st.integers(0, len(data))) :]
    elif how == "flip" and data:
        at = draw(st.integers(0, len(data) - 1))
        data[at] = draw(st.integers(0, 255))
    elif how == "insert":
        data.insert(draw(st.integers(0, len(data))), draw(st.sampled_from(b" \r\n:.0\x00")))
    elif how == "extend":
        data += draw(st.binary(max_size=64))
    return bytes(data)


@settings(max_examples=2000, deadline=None)
@given(
    data=st.one_of(
        st.binary(max_size=300),
        st.binary(max_size=120).map(lambda b: b"PROXY " + b),
        st.binary(max_size=120).map(lambda b: SIG + b),
        _mutated(_v1),
        _mutated(_v2),
    )
)
def test_twins_agree(compiled_impl: FastImpl, data: bytes) -> None:
    compiled = _outcome(compiled_impl("proxyproto"), data)
    pure = _outcome(_fast.load_pure("proxyproto"), data)
    assert compiled == pure
    if isinstance(pure, tuple) and isinstance(pure[0], int) and pure[0]:
        # a complete header: its every prefix needs more, and what follows is not read
        assert _outcome(_fast.load_pure("proxyproto"), data[: pure[0]]) == pure
        assert _outcome(compiled_impl("proxyproto"), data[: pure[0] - 1]) == (0, None)


@settings(max_examples=500, deadline=None)
@given(header=st.one_of(_v1, _v2), extra=st.binary(max_size=40))
def test_twins_agree_on_generated_headers(
    compiled_impl: FastImpl, header: bytes, extra: bytes
) -> None:
    pure = _outcome(_fast.load_pure("proxyproto"), header + extra)
    assert _outcome(compiled_impl("proxyproto"), header + extra) == pure
    for end in range(len(header)):
        prefix = header[:end]
        assert _outcome(compiled_impl("proxyproto"), prefix) == _outcome(
            _fast.load_pure("proxyproto"), prefix
        )
