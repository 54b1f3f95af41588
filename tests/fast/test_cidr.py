"""``cidr``: longest-prefix match of client addresses. Both twins must agree
with each other and with a brute-force reference on ``ipaddress``, for any
table and any text, valid or not."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Sequence
from types import ModuleType

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from lbproxy import _fast
from lbproxy._fast.cidr_py import MAX_VALUE

FastImpl = Callable[[str], ModuleType]
Entries = Sequence[tuple[str, int]]
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

both = pytest.mark.parametrize("fast_impl", ["compiled", "pure"], indirect=True)
# fast_impl is a stateless getter: sharing it across examples is safe.
FIXTURE_OK = [HealthCheck.function_scoped_fixture]

MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")


# --- the reference: ipaddress, every network tried ---


def ref_address(ip: bytes | str) -> Address | None:
    """What the twins must read ``ip`` as: ``ipaddress.ip_address`` on ASCII
    text, mapped addresses as IPv4, the zone dropped."""
    if isinstance(ip, bytes):
        try:
            ip = ip.decode("ascii")
        except UnicodeDecodeError:
            return None
    if not ip.isascii():
        return None
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:
            return addr.ipv4_mapped
        return ipaddress.IPv6Address(int(addr))
    return addr


def ref_network(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    net = ipaddress.ip_network(text)
    if isinstance(net, ipaddress.IPv6Network) and net.prefixlen >= 96 and net.subnet_of(MAPPED):
        start = int(net.network_address) & 0xFFFFFFFF
        return ipaddress.IPv4Network((start, net.prefixlen - 96))
    return net


def ref_lookup(entries: Entries, ip: bytes | str) -> int:
    addr = ref_address(ip)
    if addr is None:
        return -1
    best, best_len = -1, -1
    for text, value in entries:
        net = ref_network(text)
        # ">=": the same network listed again replaces the earlier value.
        if net.version == addr.version and addr in net and net.prefixlen >= best_len:
            best, best_len = value, net.prefixlen
    return best


def ref_canonical(ip: bytes | str) -> str | None:
    addr = ref_address(ip)
    return None if addr is None else str(addr)


# --- strategies ---


def _network(version: int, start: int, plen: int) -> str:
    bits = 32 if version == 4 else 128
    start &= ~((1 << (bits - plen)) - 1) & ((1 << bits) - 1)
    return str(
        ipaddress.ip_network((start, plen))
        if version == 4
        else ipaddress.IPv6Network((start, plen))
    )


@st.composite
def tables(draw: st.DrawFn) -> tuple[list[tuple[str, int]], list[tuple[int, int]]]:
    """``(entries, seeds)``: networks mostly around a few seed addresses, so
    that they nest, repeat and share edges; the seeds make good addresses."""
    seeds = draw(
        st.lists(
            st.one_of(
                st.tuples(st.just(4), st.integers(0, 2**32 - 1)),
                st.tuples(st.just(6), st.integers(0, 2**128 - 1)),
                st.tuples(st.just(6), st.integers(0, 2**32 - 1).map(lambda v: 0xFFFF << 32 | v)),
                st.tuples(st.just(6), st.integers(0, 2**16 - 1)),  # near ::
            ),
            min_size=1,
            max_size=4,
        )
    )
    entries: list[tuple[str, int]] = []
    values = st.one_of(st.integers(0, 3), st.just(MAX_VALUE))
    for _ in range(draw(st.integers(0, 12))):
        version, seed = draw(st.sampled_from(seeds))
        bits = 32 if version == 4 else 128
        if version == 6 and seed >> 32 == 0xFFFF and draw(st.booleans()):
            plen = draw(st.integers(96, 128))  # a mapped network: stored as IPv4
        else:
            plen = draw(st.sampled_from([0, 1, bits // 2, bits - 1, bits]) | st.integers(0, bits))
        if draw(st.booleans()):
            seed = draw(st.integers(0, 2**bits - 1))  # some networks away from the seeds
        entries.append((_network(version, seed, plen), draw(values)))
    return entries, seeds


def _texts(version: int, n: int) -> list[str]:
    if version == 4:
        return [str(ipaddress.IPv4Address(n))]
    addr = ipaddress.IPv6Address(n)
    texts = [str(addr), addr.exploded.upper(), f"{addr}%eth0"]
    if addr.ipv4_mapped is not None:
        texts.append(f"::ffff:{addr.ipv4_mapped}")
        texts.append(f"::FFFF:{addr.ipv4_mapped}%1")
    return texts


@st.composite
def addresses(draw: st.DrawFn, seeds: list[tuple[int, int]]) -> str:
    version, seed = draw(st.sampled_from(seeds))
    bits = 32 if version == 4 else 128
    # Near a seed (the same networks), at an edge of a network, or anywhere.
    flip = draw(st.integers(0, bits))
    n = draw(
        st.sampled_from([seed, seed ^ (1 << flip >> 1), seed | ((1 << flip) - 1), seed - 1])
        | st.integers(0, 2**bits - 1)
    ) % (1 << bits)
    if version == 4 and draw(st.booleans()):
        version, n = 6, 0xFFFF << 32 | n
    return draw(st.sampled_from(_texts(version, n)))


def _mutate(text: str, at: int, edit: int, char: str) -> str:
    at %= len(text) + 1
    if edit == 0:
        return text[:at] + char + text[at:]
    if edit == 1:
        return text[:at] + text[at + 1 :]
    return text[:at] + char + text[at + 1 :]


_addr_char = st.sampled_from("0123456789abcdefABCDEF:.%/ x\x00é")
garbage = st.one_of(
    st.text(alphabet="0123456789abcdefABCDEF:.%/ []x", max_size=46),
    st.text(max_size=20),
    st.binary(max_size=46),
    # valid text one edit away from valid: where parsers disagree
    st.builds(
        _mutate,
        st.one_of(
            st.integers(0, 2**32 - 1).map(lambda n: str(ipaddress.IPv4Address(n))),
            st.integers(0, 2**128 - 1).map(lambda n: str(ipaddress.IPv6Address(n))),
            st.lists(st.sampled_from(["0", "1", "ffff", "abcd", ""]), min_size=2, max_size=10).map(
                ":".join
            ),
            st.integers(0, 2**32 - 1).map(lambda n: f"::ffff:{ipaddress.IPv4Address(n)}"),
            st.integers(0, 2**32 - 1).map(lambda n: f"1:2:3:4:5:6:{ipaddress.IPv4Address(n)}"),
        ),
        st.integers(0, 50),
        st.integers(0, 2),
        _addr_char,
    ),
)


# --- the twins against the reference ---


def _check(mod: ModuleType, table: object, entries: Entries, ip: bytes | str) -> None:
    expected = ref_lookup(entries, ip)
    assert table.lookup(ip) == expected, (ip, entries)  # type: ignore[attr-defined]
    assert mod.canonical(ip) == ref_canonical(ip), ip


@both
@settings(max_examples=250, deadline=None, suppress_health_check=FIXTURE_OK)
@given(data=st.data(), table=tables())
def test_lookup_matches_reference(
    fast_impl: FastImpl,
    data: st.DataObject,
    table: tuple[list[tuple[str, int]], list[tuple[int, int]]],
) -> None:
    mod = fast_impl("cidr")
    entries, seeds = table
    t = mod.CidrTable(entries)
    for _ in range(8):
        text = data.draw(addresses(seeds))
        _check(mod, t, entries, text)
        _check(mod, t, entries, text.encode())


GARBAGE_EXAMPLES = [
    "",
    ":",
    "::",
    ":::",
    "1::",
    "::1",
    "1:2:3:4:5:6:7::",
    "::2:3:4:5:6:7:8",
    "1:2:3:4:5:6:7:8:",
    ":1:2:3:4:5:6:7:8",
    "1:2:3:4:5:6:7:8::",
    "1::2::3",
    "1:2:3:4:5:6:1.2.3.4",
    "1:2:3:4:5::1.2.3.4",
    "1:2:3:4:5:6:7:1.2.3.4",
    "::1.2.3.4:5",
    "::1.2.3.4",
    "::ffff:1.2.3.04",
    "::ffff:1.2.3.4%",
    "::1%a%b",
    "::1%",
    "::1%/",
    "::1/128",
    "10.0.0.0/8",
    "01.2.3.4",
    "1.2.3.4.",
    ".1.2.3.4",
    "1.2.3",
    "1.2.3.4.5",
    "256.1.1.1",
    "1.2.3.4 ",
    " 1.2.3.4",
    "1.2.3.4%eth0",
    "[::1]",
    "12345::",
    "fffff::",
    "::ffff:1.2.3.4.5",
    "0x1.2.3.4",
    "1.2.3.٤",
    "::ffff:0.0.0.0",
    "::0:ffff:1.2.3.4",
    "0:0:0:0:0:ffff:102:304",
    "::fFfF:1.2.3.4",
    "1.2.3.4:80",
    "a%b:c",
]


@both
@settings(max_examples=1500, deadline=None, suppress_health_check=FIXTURE_OK)
@given(ip=garbage)
@example(ip="::ffff:10.1.2.3")
@example(ip=b"\xff1.2.3.4")
@example(ip="é")
def test_any_text_matches_reference(fast_impl: FastImpl, ip: bytes | str) -> None:
    mod = fast_impl("cidr")
    entries = [("0.0.0.0/0", 4), ("::/0", 6), ("10.0.0.0/8", 10), ("fe80::/10", 11)]
    _check(mod, mod.CidrTable(entries), entries, ip)


@both
@pytest.mark.parametrize("text", GARBAGE_EXAMPLES)
def test_edge_texts_match_reference(fast_impl: FastImpl, text: str) -> None:
    mod = fast_impl("cidr")
    entries = [("0.0.0.0/0", 4), ("::/0", 6), ("1.2.3.4", 1), ("::1", 2)]
    table = mod.CidrTable(entries)
    _check(mod, table, entries, text)
    _check(mod, table, entries, text.encode())


# --- behaviour the integrator relies on ---


@both
def test_longest_prefix_wins(fast_impl: FastImpl) -> None:
    t = fast_impl("cidr").CidrTable(
        [
            ("0.0.0.0/0", 0),
            ("10.0.0.0/8", 1),
            ("10.1.0.0/16", 2),
            ("10.1.2.3", 3),
            ("::/0", 4),
            ("2001:db8::/32", 5),
            ("2001:db8::1/128", 6),
        ]
    )
    assert t.lookup(b"10.1.2.3") == 3
    assert t.lookup(b"10.1.2.4") == 2
    assert t.lookup(b"10.2.0.0") == 1
    assert t.lookup(b"11.0.0.0") == 0
    assert t.lookup(b"255.255.255.255") == 0
    assert t.lookup(b"2001:db8::1") == 6
    assert t.lookup(b"2001:db8::2") == 5
    assert t.lookup(b"2001:db9::") == 4
    assert t.lookup(b"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff") == 4
    assert t.lookup("10.1.2.3") == 3  # str as well as bytes
    assert len(t) == 7


@both
def test_mapped_addresses_are_ipv4(fast_impl: FastImpl) -> None:
    t = fast_impl("cidr").CidrTable([("10.0.0.0/8", 1), ("::/0", 6), ("::ffff:192.0.2.0/120", 2)])
    assert t.lookup(b"::ffff:10.1.2.3") == 1
    assert t.lookup(b"::FFFF:a01:203") == 1  # hex spelling of the same address
    assert t.lookup(b"0:0:0:0:0:ffff:10.1.2.3") == 1
    assert t.lookup(b"192.0.2.9") == 2  # a mapped network is an IPv4 one
    assert t.lookup(b"::ffff:8.8.8.8") == -1  # ::/0 holds IPv6 clients only
    assert t.lookup(b"::10.1.2.3") == 6  # IPv4-compatible is not mapped
    assert t.lookup(b"8.8.8.8") == -1


@both
def test_zone_is_ignored(fast_impl: FastImpl) -> None:
    mod = fast_impl("cidr")
    t = mod.CidrTable([("fe80::/10", 1)])
    assert t.lookup(b"fe80::1%eth0") == 1
    assert mod.canonical(b"fe80::1%eth0") == "fe80::1"


@both
def test_empty_table_and_garbage(fast_impl: FastImpl) -> None:
    mod = fast_impl("cidr")
    empty = mod.CidrTable([])
    assert len(empty) == 0
    assert empty.lookup(b"1.2.3.4") == -1
    assert empty.lookup(b"::1") == -1
    t = mod.CidrTable([("0.0.0.0/0", 0), ("::/0", 1)])
    for bad in (b"", b"localhost", b"1.2.3.4:80", b"[::1]", b"01.2.3.4", "1.2.3.4\u00a0", b"\xff"):
        assert t.lookup(bad) == -1
        assert mod.canonical(bad) is None


@both
def test_later_duplicate_wins(fast_impl: FastImpl) -> None:
    t = fast_impl("cidr").CidrTable(
        [("10.0.0.0/8", 1), ("10.0.0.0/8", 2), ("::ffff:10.0.0.0/104", 3), ("::1", 4), ("::1", 5)]
    )
    assert t.lookup(b"10.9.9.9") == 3  # the mapped spelling is the same network
    assert t.lookup(b"::1") == 5
    assert len(t) == 2


@both
@pytest.mark.parametrize(
    ("entries", "error", "match"),
    [
        ([("10.0.0.1/8", 1)], ValueError, "not a network: '10.0.0.1/8'"),
        ([("10.0.0.0/33", 1)], ValueError, "not a network"),
        ([("eu", 1)], ValueError, "not a network"),
        ([("10.0.0.0/8", -1)], ValueError, r"must be 0\.\.2147483647, got -1"),
        ([("10.0.0.0/8", MAX_VALUE + 1)], ValueError, "must be 0"),
        ([("10.0.0.0/8", "1")], TypeError, "must be an int, got str"),
        ([("10.0.0.0/8", True)], TypeError, "must be an int, got bool"),
        ([(b"10.0.0.0/8", 1)], TypeError, "a network is text, got bytes"),
    ],
)
def test_bad_entries(
    fast_impl: FastImpl, entries: Entries, error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        fast_impl("cidr").CidrTable(entries)


@both
def test_wrong_address_type(fast_impl: FastImpl) -> None:
    mod = fast_impl("cidr")
    t = mod.CidrTable([])
    for bad in (None, 1, bytearray(b"1.2.3.4"), memoryview(b"1.2.3.4")):
        with pytest.raises(TypeError, match="an address is bytes or str, got"):
            t.lookup(bad)
        with pytest.raises(TypeError, match="an address is bytes or str, got"):
            mod.canonical(bad)


@both
def test_extremes(fast_impl: FastImpl) -> None:
    t = fast_impl("cidr").CidrTable(
        [
            ("255.255.255.255", 1),
            ("0.0.0.0", 2),
            ("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 3),
            ("::", 4),
            ("8000::/1", 5),
            ("128.0.0.0/1", 6),
        ]
    )
    assert t.lookup(b"255.255.255.255") == 1
    assert t.lookup(b"255.255.255.254") == 6
    assert t.lookup(b"0.0.0.0") == 2
    assert t.lookup(b"0.0.0.1") == -1
    assert t.lookup(b"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff") == 3
    assert t.lookup(b"ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe") == 5
    assert t.lookup(b"::") == 4
    assert t.lookup(b"7fff::") == -1
    assert t.lookup(b"::ffff:0.0.0.0") == 2


def test_twins_share_the_limit(compiled_impl: FastImpl) -> None:
    from lbproxy import _fast

    assert compiled_impl("cidr").MAX_VALUE == _fast.load_pure("cidr").MAX_VALUE == 2**31 - 1


def test_big_table_agrees(compiled_impl: FastImpl) -> None:
    """Thousands of random networks: the twins give the same answer everywhere."""
    import random

    from lbproxy import _fast

    rnd = random.Random(7)
    entries = []
    for i in range(3000):
        plen = rnd.randint(8, 32)
        entries.append((_network(4, rnd.getrandbits(32), plen), i % 50))
        plen = rnd.randint(16, 128)
        entries.append((_network(6, rnd.getrandbits(128), plen), i % 50))
    compiled = compiled_impl("cidr").CidrTable(entries)
    pure = _fast.load_pure("cidr").CidrTable(entries)
    for _ in range(3000):
        for ip in (
            str(ipaddress.IPv4Address(rnd.getrandbits(32))),
            str(ipaddress.IPv6Address(rnd.getrandbits(128))),
        ):
            assert compiled.lookup(ip) == pure.lookup(ip)
    # Network edges against the reference (on a slice: it tries every network).
    some = entries[:200]
    compiled = compiled_impl("cidr").CidrTable(some)
    for text, _ in some:
        net = ipaddress.ip_network(text)
        top = int(net.broadcast_address)
        for n in (int(net.network_address), top, (top + 1) % (1 << net.max_prefixlen)):
            addr = ipaddress.ip_address(n) if net.version == 4 else ipaddress.IPv6Address(n)
            edge = str(addr).encode()
            assert compiled.lookup(edge) == ref_lookup(some, edge)


# --- from_ranges: ready-made ranges ---


@both
@settings(max_examples=150, deadline=None, suppress_health_check=FIXTURE_OK)
@given(data=st.data(), table=tables())
def test_from_ranges_matches_reference(
    fast_impl: FastImpl,
    data: st.DataObject,
    table: tuple[list[tuple[str, int]], list[tuple[int, int]]],
) -> None:
    """The ranges a table of networks flattens into, given ready-made, make
    a table that answers alike."""
    from lbproxy._fast.cidr_py import ranges, split_networks

    mod = fast_impl("cidr")
    entries, seeds = table
    v4, v6 = split_networks(entries)
    r4, r6 = ranges(v4, 32), ranges(v6, 128)
    t = mod.CidrTable.from_ranges(r4, r6)
    assert len(t) == sum(v >= 0 for v in r4[1]) + sum(v >= 0 for v in r6[1])
    for _ in range(8):
        text = data.draw(addresses(seeds))
        _check(mod, t, entries, text)
        _check(mod, t, entries, text.encode())


@both
def test_from_ranges(fast_impl: FastImpl) -> None:
    mod = fast_impl("cidr")
    t = mod.CidrTable.from_ranges(
        ([0, 10 << 24, 11 << 24, 2**32 - 1], [-1, 2, -1, MAX_VALUE]),
        ([0, 1 << 127], [-1, 5]),
    )
    assert len(t) == 3
    assert t.lookup(b"9.255.255.255") == -1
    assert t.lookup(b"10.0.0.0") == t.lookup("10.255.255.255") == 2
    assert t.lookup(b"11.0.0.0") == -1
    assert t.lookup(b"255.255.255.255") == MAX_VALUE
    assert t.lookup(b"::ffff:10.1.2.3") == 2  # mapped: IPv4
    assert t.lookup(b"7fff::") == -1
    assert t.lookup(b"8000::") == t.lookup(b"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff") == 5
    assert t.lookup(b"garbage") == -1
    with pytest.raises(ValueError, match="range start 4294967296 is not ascending within 32 bits"):
        mod.CidrTable.from_ranges(([0, 2**32], [1, 2]), ([0], [-1]))
    empty = mod.CidrTable.from_ranges(([0], [-1]), ([0], [-1]))
    assert len(empty) == 0
    assert empty.lookup(b"1.2.3.4") == empty.lookup(b"::1") == -1


@both
@pytest.mark.parametrize(
    ("v4", "error", "match"),
    [
        (([0, 5], [1]), ValueError, "2 starts but 1 values"),
        (([], []), ValueError, "the first range must start at 0"),
        (([1], [1]), ValueError, "the first range must start at 0"),
        (([0, 5, 5], [1, 2, 3]), ValueError, "range start 5 is not ascending within 32 bits"),
        (([0, 6, 5], [1, 2, 3]), ValueError, "range start 5 is not ascending"),
        (([0, 2**128], [1, 2]), ValueError, "is not ascending within"),
        (([0], [-2]), ValueError, r"range value must be -1\.\.2147483647, got -2"),
        (([0], [MAX_VALUE + 1]), ValueError, "range value must be"),
        (([0], ["1"]), TypeError, "range starts and values must be ints"),
        (([0, 1.0], [1, 2]), TypeError, "range starts and values must be ints"),
        (([0], [True]), TypeError, "range starts and values must be ints"),
    ],
)
def test_from_ranges_bad(
    fast_impl: FastImpl, v4: tuple[list[object], list[object]], error: type[Exception], match: str
) -> None:
    mod = fast_impl("cidr")
    with pytest.raises(error, match=match):
        mod.CidrTable.from_ranges(v4, ([0], [-1]))
    with pytest.raises(error, match=match.replace("32 bits", "128 bits")):
        mod.CidrTable.from_ranges(([0], [-1]), v4)


# --- X-Forwarded-For: the nearest hop that is not a trusted proxy ---


def ref_forwarded(
    peer: bytes, headers: list[tuple[bytes, bytes]], trusted: Entries | None
) -> bytes:
    chain = [
        part.strip(b" \t")
        for name, value in headers
        if name.lower() == b"x-forwarded-for"
        for part in value.split(b",")
    ]
    found = peer
    for entry in reversed(chain):
        if not entry:
            continue
        if ref_address(entry) is None:
            break
        found = entry
        if trusted is None or ref_lookup(trusted, entry) < 0:
            break
    return found


_hop = st.one_of(
    st.sampled_from(["10.0.0.1", "10.9.9.9", "192.0.2.7", "::1", "2001:db8::5", "fd00::1"]),
    st.integers(0, 2**32 - 1).map(lambda n: str(ipaddress.IPv4Address(n))),
    st.sampled_from(["", " ", "unknown", "10.0.0.1:80", "[::1]", "10.0.0.01"]),
)
_xff_value = st.lists(_hop, max_size=5).flatmap(
    lambda hops: st.sampled_from([",", ", ", " ,\t"]).map(lambda sep: sep.join(hops).encode())
)
_xff_headers = st.lists(
    st.tuples(
        st.sampled_from([b"X-Forwarded-For", b"x-forwarded-for", b"X-Forwarded-Fo", b"Host"]),
        _xff_value,
    ),
    max_size=4,
)


@both
@settings(max_examples=300, deadline=None, suppress_health_check=FIXTURE_OK)
@given(
    headers=_xff_headers,
    trusted=st.sampled_from([None, [("10.0.0.0/8", 0)], [("10.0.0.0/8", 0), ("::1/128", 0)]]),
)
def test_forwarded_client_matches_reference(
    fast_impl: FastImpl, headers: list[tuple[bytes, bytes]], trusted: Entries | None
) -> None:
    mod = fast_impl("cidr")
    table = None if trusted is None else mod.CidrTable(trusted)
    got = mod.forwarded_client(b"127.0.0.1", headers, table)
    assert got == ref_forwarded(b"127.0.0.1", headers, trusted), headers


@both
def test_forwarded_client_examples(fast_impl: FastImpl) -> None:
    mod = fast_impl("cidr")
    proxies = mod.CidrTable([("10.0.0.0/8", 0)])
    xff = b"X-Forwarded-For"
    # The rightmost hop that is not a proxy; a forged hop left of it is ignored.
    assert mod.forwarded_client(b"10.0.0.2", [(xff, b"6.6.6.6, 1.2.3.4, 10.0.0.9")], proxies) == (
        b"1.2.3.4"
    )
    # Several fields are one list, in order.
    headers = [(xff, b"1.2.3.4"), (b"x-forwarded-for", b"10.1.1.1")]
    assert mod.forwarded_client(b"10.0.0.2", headers, proxies) == b"1.2.3.4"
    # Garbage ends the walk at the last good hop; no header: the peer.
    assert mod.forwarded_client(b"10.0.0.2", [(xff, b"1.2.3.4, junk, 10.0.0.9")], proxies) == (
        b"10.0.0.9"
    )
    assert mod.forwarded_client(b"10.0.0.2", [], proxies) == b"10.0.0.2"


@st.composite
def ipv6_spellings(draw: st.DrawFn) -> str:
    """One IPv6 address in any of the spellings a client may send: groups
    with or without leading zeros, in either case, with "::" for any run of
    zero groups (or a one-group slip the reader must refuse)."""
    words = draw(st.lists(st.integers(0, 0xFFFF), min_size=8, max_size=8))
    if draw(st.booleans()):  # a run of zeros for "::" to stand for
        at = draw(st.integers(0, 7))
        for k in range(at, min(8, at + draw(st.integers(1, 8)))):
            words[k] = 0
    groups = [
        format(w, "x").zfill(draw(st.integers(1, 5))) if draw(st.booleans()) else format(w, "X")
        for w in words
    ]
    zeros = [k for k, w in enumerate(words) if w == 0]
    if zeros and draw(st.booleans()):
        start = draw(st.sampled_from(zeros))
        end = start
        while end + 1 < 8 and words[end + 1] == 0 and draw(st.booleans()):
            end += 1
        # Occasionally "::" for nothing at all: not an address.
        cut = end + 1 if draw(st.integers(0, 9)) else start
        return ":".join(groups[:start]) + "::" + ":".join(groups[cut:])
    return ":".join(groups)


@both
@settings(max_examples=1500, deadline=None, suppress_health_check=FIXTURE_OK)
@given(text=ipv6_spellings())
@example(text="::")
@example(text="::1")
@example(text="1::")
@example(text="1:2:3:4:5:6:7::")
@example(text="::2:3:4:5:6:7:8")
@example(text="1::3:4:5:6:7:8")
@example(text="1:2:3:4:5:6:7:8::")
@example(text="1:2:3:4:5:6:7:8:9")
@example(text="::ffff:a01:203")
@example(text="00000::1")
def test_ipv6_spellings_match_reference(fast_impl: FastImpl, text: str) -> None:
    mod = fast_impl("cidr")
    assert mod.canonical(text) == ref_canonical(text), text
    assert mod.canonical(text.encode()) == ref_canonical(text), text


_tables = st.sampled_from(
    [
        None,
        [("203.0.113.0/24", 1), ("2001:db8::/32", 2)],
        [("0.0.0.0/0", 3), ("2001:db8:1::/48", 4)],
    ]
)


@both
@settings(max_examples=300, deadline=None, suppress_health_check=FIXTURE_OK)
@given(
    headers=_xff_headers,
    trusted=st.booleans(),
    peer=st.sampled_from([b"10.0.0.2", b"203.0.113.9", b"2001:db8::7", b"junk"]),
    proxies=st.sampled_from([None, [("10.0.0.0/8", 0)]]),
    first=_tables,
    second=_tables,
)
def test_locate_matches_reference(
    fast_impl: FastImpl,
    headers: list[tuple[bytes, bytes]],
    trusted: bool,
    peer: bytes,
    proxies: Entries | None,
    first: Entries | None,
    second: Entries | None,
) -> None:
    """One call: the client's address (the peer, or from a trusted peer the
    X-Forwarded-For walk), looked up in the first table, then the second."""
    mod = fast_impl("cidr")

    def table(entries: Entries | None) -> object:
        return None if entries is None else mod.CidrTable(entries)

    address = ref_forwarded(peer, headers, proxies) if trusted else peer
    expected = -1
    for entries in (first, second):
        if entries is not None and expected < 0:
            expected = ref_lookup(entries, address)
    got = mod.locate(peer, trusted, headers, table(proxies), table(first), table(second))
    assert got == expected, (peer, trusted, headers)
    # The same fields as a request head's lines, read in place.
    region = _as_lines(headers)
    if region is not None:
        got = mod.locate_lines(peer, trusted, *region, table(proxies), table(first), table(second))
        assert got == expected, (peer, trusted, region)


def _as_lines(headers: list[tuple[bytes, bytes]]) -> tuple[bytes, int, int] | None:
    """``headers`` as the field lines of a request head: ``(data, start,
    stop)``, or None when h1 would not read them back as they are."""
    for name, value in headers:
        if not name or any(c in name for c in b": \t\r\n") or b"\r" in value or b"\n" in value:
            return None
        if value != value.strip(b" \t"):
            return None
    head = b"GET / HTTP/1.1\r\n"
    lines = b"".join(n + b": " + v + b"\r\n" for n, v in headers)
    return head + lines + b"\r\n", len(head), len(head) + len(lines)


@both
def test_locate_examples(fast_impl: FastImpl) -> None:
    mod = fast_impl("cidr")
    proxies = mod.CidrTable([("10.0.0.0/8", 0)])
    networks = mod.CidrTable([("203.0.113.0/24", 7)])
    database = mod.CidrTable([("198.51.100.0/24", 8), ("2001:db8::/32", 9)])
    xff = b"X-Forwarded-For"
    # A trusted peer: the hop it names; networks win over the database.
    headers = [(xff, b"203.0.113.5, 10.0.0.3")]
    assert mod.locate(b"10.0.0.2", True, headers, proxies, networks, database) == 7
    headers = [(xff, b"2001:db8::1")]
    assert mod.locate(b"10.0.0.2", True, headers, proxies, networks, database) == 9
    # An untrusted peer is its own address, whatever it sends.
    assert mod.locate(b"198.51.100.1", False, headers, proxies, networks, database) == 8
    # No usable hop: the peer; nothing holds it: -1.
    assert mod.locate(b"10.0.0.2", True, [(xff, b"junk")], proxies, networks, database) == -1
    assert mod.locate(b"junk", False, [], proxies, networks, None) == -1


@both
def test_locate_lines_examples(fast_impl: FastImpl) -> None:
    mod = fast_impl("cidr")
    proxies = mod.CidrTable([("10.0.0.0/8", 0)])
    networks = mod.CidrTable([("203.0.113.0/24", 7)])
    database = mod.CidrTable([("198.51.100.0/24", 8), ("2001:db8::/32", 9)])
    head = (
        b"GET / HTTP/1.1\r\nHost: h\r\n"
        b"x-forwarded-for:198.51.100.9 , 203.0.113.5\r\n"
        b"Accept: */*\r\n"
        b"X-Forwarded-For:  \t10.0.0.3 \r\n"
        b"\r\n"
    )
    start, stop = 16, len(head) - 2
    # Lines in order, each walked from the right: 10.0.0.3 is a proxy, so
    # 203.0.113.5 (networks) is the client.
    assert mod.locate_lines(b"10.0.0.2", True, head, start, stop, proxies, networks, database) == 7
    # An untrusted peer: the lines are not read at all.
    assert mod.locate_lines(b"198.51.100.1", False, None, 0, 0, proxies, networks, database) == 8
    # Outside the contract (not bytes, out of range, the request line): the
    # compiled twin hands the call to the pure one, which answers it.
    pure = _fast.load_pure("cidr")
    pure_tables = [pure.CidrTable(e) for e in ([("10.0.0.0/8", 0)], [("203.0.113.0/24", 7)])]
    pure_db = pure.CidrTable([("198.51.100.0/24", 8), ("2001:db8::/32", 9)])
    for data, a, b in [(bytearray(head), start, stop), (head, start, 2**70), (head, 0, stop)]:
        outcomes = []
        for module, tables in (
            (mod, (proxies, networks, database)),
            (pure, (*pure_tables, pure_db)),
        ):
            try:
                outcomes.append(module.locate_lines(b"10.0.0.2", True, data, a, b, *tables))
            except Exception as exc:  # the error is part of the answer
                outcomes.append(type(exc).__name__)
        assert outcomes[0] == outcomes[1], (data, a, b)
    # More X-Forwarded-For lines than the compiled walk holds: the twin reads them.
    many = b"GET / HTTP/1.1\r\n" + b"X-Forwarded-For: 10.0.0.9\r\n" * 40
    many += b"X-Forwarded-For: 2001:db8::5\r\n\r\n"
    got = mod.locate_lines(b"10.0.0.2", True, many, 16, len(many) - 2, proxies, None, database)
    assert got == 9
