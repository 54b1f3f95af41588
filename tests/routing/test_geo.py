"""``GeoResolver``: trusted header, then networks, then the MaxMind DB, then
the default; each source, their precedence, and what is ignored. Every test
runs with the compiled ``cidr`` module and with its pure twin."""

from __future__ import annotations

import ipaddress
import random
import threading
import time
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import maxminddb
import pytest

from lbproxy.config.model import GeoLookup
from lbproxy.routing import geo
from lbproxy.routing.geo import GeoResolver
from tests.geo_db import TEST_NETWORKS, country_record, write_db

FastImpl = Callable[[str], ModuleType]
Headers = list[tuple[bytes, bytes]]

REGIONS = {"eu", "us", "asia"}
COUNTRIES = (("DE", "eu"), ("FR", "eu"), ("US", "us"), ("JP", "asia"), ("SG", "asia"))
CONTINENTS = (("EU", "eu"), ("AF", "eu"), ("NA", "us"), ("SA", "us"), ("AS", "asia"))
NETWORKS = (
    ("10.1.0.0/16", "eu"),
    ("10.2.0.0/16", "us"),
    ("2001:db8:1::/48", "asia"),
    ("81.2.3.0/24", "us"),  # inside the database's FR network: networks come first
    ("fe80::/10", "eu"),
)


@pytest.fixture(autouse=True)
def cidr_impl(fast_impl: FastImpl, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """The resolver's ``cidr`` module: compiled, then pure."""
    mod = fast_impl("cidr")
    monkeypatch.setattr(geo, "_cidr", mod)
    return mod


@pytest.fixture(scope="session")
def database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_db(tmp_path_factory.mktemp("geo") / "country.mmdb", TEST_NETWORKS)


@pytest.fixture
def lookup(database: Path) -> GeoLookup:
    return GeoLookup(
        trust_header="X-Client-Region",
        networks=NETWORKS,
        database=str(database),
        countries=COUNTRIES,
        continents=CONTINENTS,
    )


@pytest.fixture(params=["off", "now"])
def resolver(lookup: GeoLookup, request: pytest.FixtureRequest) -> Iterator[GeoResolver]:
    """A resolver reading the database per address, then one with it flattened."""
    r = GeoResolver(lookup, REGIONS, flatten=request.param)
    assert r.flattened == (request.param == "now")
    yield r
    r.close()


def hdr(value: bytes, name: bytes = b"X-Client-Region") -> Headers:
    return [(b"Host", b"site.test"), (name, value), (b"Accept", b"*/*")]


# --- each source ---


def test_trusted_header_wins(resolver: GeoResolver) -> None:
    # 10.1.2.3 is in eu's network, but a trusted edge said asia.
    assert resolver.region(b"10.1.2.3", True, hdr(b"asia")) == ("asia", "header")
    assert resolver.region(b"81.1.1.1", True, hdr(b"us")) == ("us", "header")


@pytest.mark.parametrize("name", [b"x-client-region", b"X-CLIENT-REGION", b"x-Client-Region"])
def test_header_name_is_case_insensitive(resolver: GeoResolver, name: bytes) -> None:
    assert resolver.region(b"10.1.2.3", True, hdr(b"us", name)) == ("us", "header")


def test_header_value_whitespace_is_trimmed(resolver: GeoResolver) -> None:
    assert resolver.region(b"10.1.2.3", True, hdr(b" us\t")) == ("us", "header")


def test_last_header_counts(resolver: GeoResolver) -> None:
    headers = [(b"X-Client-Region", b"us"), (b"x-client-region", b"asia")]
    assert resolver.region(b"10.1.2.3", True, headers) == ("asia", "header")


def test_untrusted_header_is_ignored(resolver: GeoResolver) -> None:
    assert resolver.region(b"10.1.2.3", False, hdr(b"asia")) == ("eu", "network")
    assert resolver.region(b"81.1.1.1", False, hdr(b"asia")) == ("eu", "database")


@pytest.mark.parametrize("value", [b"mars", b"", b"EU", b"eu,us", b"\xff"])
def test_unknown_region_in_header_is_ignored(resolver: GeoResolver, value: bytes) -> None:
    assert resolver.region(b"10.2.0.1", True, hdr(value)) == ("us", "network")


def test_header_names_only_regions_given(lookup: GeoLookup) -> None:
    # "asia" is a region in the config's networks but not one the targets define.
    r = GeoResolver(lookup, {"eu", "us"})
    try:
        assert r.region(b"10.2.0.1", True, hdr(b"asia")) == ("us", "network")
        assert r.region(b"10.2.0.1", True, hdr(b"eu")) == ("eu", "header")
    finally:
        r.close()


def test_no_trust_header_configured(lookup: GeoLookup) -> None:
    r = GeoResolver(GeoLookup(networks=lookup.networks), REGIONS)
    assert r.region(b"10.1.2.3", True, hdr(b"asia")) == ("eu", "network")


def test_networks(resolver: GeoResolver) -> None:
    assert resolver.region(b"10.1.255.255", False, []) == ("eu", "network")
    assert resolver.region(b"10.2.0.0", False, []) == ("us", "network")
    assert resolver.region(b"2001:db8:1:ffff::1", False, []) == ("asia", "network")
    assert resolver.region(b"fe80::1%eth0", False, []) == ("eu", "network")  # a zone is ignored


def test_networks_before_database(resolver: GeoResolver) -> None:
    assert resolver.region(b"81.2.3.4", False, []) == ("us", "network")
    assert resolver.region(b"81.2.4.4", False, []) == ("eu", "database")  # FR, outside it


@pytest.mark.parametrize(
    ("ip", "region"),
    [
        (b"81.1.1.1", "eu"),  # DE
        (b"81.2.200.1", "eu"),  # FR, the nested network
        (b"8.8.8.8", "us"),  # US
        (b"1.2.3.4", "asia"),  # JP
        (b"41.1.1.1", "eu"),  # ZA is no region's country: continent AF is eu's
        (b"200.1.1.1", "us"),  # BR: continent SA
        (b"198.51.100.7", "asia"),  # no country: registered_country SG
        (b"2001:db8:de::1", "eu"),  # IPv6: DE
        (b"2001:db8:5:1::1", "us"),
        (b"2001:db8:a5::1", "asia"),  # KR: continent AS
        (b"::ffff:81.1.1.1", "eu"),  # IPv4-mapped: looked up as IPv4
        (b"::FFFF:808:808", "us"),  # the same, hex spelling
    ],
)
def test_database(resolver: GeoResolver, ip: bytes, region: str) -> None:
    assert resolver.region(ip, False, []) == (region, "database")


def test_mapped_address_matches_ipv4_network(resolver: GeoResolver) -> None:
    assert resolver.region(b"::ffff:10.1.2.3", False, []) == ("eu", "network")


@pytest.mark.parametrize(
    "ip",
    [
        b"100.64.0.1",  # a record, nothing in it mapped
        b"9.9.9.9",  # no record
        b"2001:db8:ffff::1",  # no record, IPv6
        b"::1",
        b"not-an-address",
        b"",
        b"010.8.0.1",  # getaddrinfo would read octal 8.8.0.1 (US); ipaddress rejects it
        b"8.8.8.8:443",
    ],
)
def test_default(resolver: GeoResolver, ip: bytes) -> None:
    assert resolver.region(ip, False, []) == ("", "default")
    assert resolver.region(ip, True, hdr(b"nowhere")) == ("", "default")


def test_header_places_a_client_with_no_address(resolver: GeoResolver) -> None:
    assert resolver.region(b"garbage", True, hdr(b"eu")) == ("eu", "header")


def test_default_region_given(lookup: GeoLookup) -> None:
    r = GeoResolver(lookup, REGIONS, default="us")
    try:
        assert r.region(b"9.9.9.9", False, []) == ("us", "default")
    finally:
        r.close()


# --- configurations and lifecycle ---


@pytest.mark.parametrize("flatten", ["off", "now"])
def test_database_only(database: Path, flatten: geo.Flatten) -> None:
    r = GeoResolver(
        GeoLookup(database=str(database), countries=COUNTRIES), REGIONS, flatten=flatten
    )
    try:
        assert r.region(b"10.1.2.3", True, hdr(b"us")) == ("", "default")  # no header, no net
        assert r.region(b"81.1.1.1", False, []) == ("eu", "database")
        assert r.region(b"41.1.1.1", False, []) == ("", "default")  # no continents mapped
    finally:
        r.close()


def test_nothing_configured() -> None:
    r = GeoResolver(GeoLookup(), REGIONS, default="eu")
    assert r.region(b"8.8.8.8", True, hdr(b"us")) == ("eu", "default")
    r.close()


@pytest.mark.parametrize("flatten", ["off", "now"])
def test_ipv4_only_database(tmp_path: Path, flatten: geo.Flatten) -> None:
    path = write_db(tmp_path / "v4.mmdb", [("8.8.0.0/16", country_record("US", "NA"))], 4)
    r = GeoResolver(GeoLookup(database=str(path), countries=COUNTRIES), REGIONS, flatten=flatten)
    assert r.flattened == (flatten == "now")
    try:
        assert r.region(b"8.8.8.8", False, []) == ("us", "database")
        assert r.region(b"::ffff:8.8.8.8", False, []) == ("us", "database")
        assert r.region(b"2001:db8::1", False, []) == ("", "default")  # not an error
    finally:
        r.close()


def test_close_keeps_answering(resolver: GeoResolver) -> None:
    resolver.close()
    resolver.close()
    assert resolver.region(b"10.1.2.3", False, []) == ("eu", "network")
    assert resolver.region(b"81.1.1.1", False, []) == ("", "default")
    assert resolver.region(b"81.1.1.1", True, hdr(b"asia")) == ("asia", "header")


def test_a_resolver_per_config(lookup: GeoLookup) -> None:
    # Reload: the new resolver answers from the new config while the old one
    # is still open, then the old one is closed.
    old = GeoResolver(lookup, REGIONS)
    new = GeoResolver(GeoLookup(networks=(("10.1.0.0/16", "us"),)), REGIONS)
    assert old.region(b"10.1.2.3", False, []) == ("eu", "network")
    assert new.region(b"10.1.2.3", False, []) == ("us", "network")
    old.close()
    assert new.region(b"10.1.2.3", False, []) == ("us", "network")


def test_missing_database(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        GeoResolver(GeoLookup(database=str(tmp_path / "nope.mmdb")), REGIONS)


def test_not_a_database(tmp_path: Path) -> None:
    bad = tmp_path / "bad.mmdb"
    bad.write_bytes(b"not a MaxMind DB" * 100)
    with pytest.raises(ValueError, match="not a MaxMind DB"):
        GeoResolver(GeoLookup(database=str(bad)), REGIONS)


def test_bad_network() -> None:
    with pytest.raises(ValueError, match="not a network"):
        GeoResolver(GeoLookup(networks=(("10.1.0.0/33", "eu"),)), REGIONS)


def test_attributes(resolver: GeoResolver) -> None:
    assert resolver.regions == frozenset(REGIONS)
    assert resolver.default == ""


# --- the database cache ---


class CountingReader:
    """Wraps the resolver's reader to count the lookups that reach it."""

    def __init__(self, reader: object) -> None:
        self.reader = reader
        self.calls = 0

    def get(self, ip: str) -> object:
        self.calls += 1
        return self.reader.get(ip)  # type: ignore[attr-defined]

    def close(self) -> None:
        self.reader.close()  # type: ignore[attr-defined]


def _counting(resolver: GeoResolver) -> CountingReader:
    counter = CountingReader(resolver._reader)
    resolver._reader = counter  # type: ignore[assignment]
    return counter


def test_repeat_clients_skip_the_database(lookup: GeoLookup) -> None:
    r = GeoResolver(lookup, REGIONS, cache_size=8, flatten="off")
    counter = _counting(r)
    try:
        for _ in range(3):
            assert r.region(b"81.1.1.1", False, []) == ("eu", "database")
            assert r.region(b"9.9.9.9", False, []) == ("", "default")  # "nothing" is cached too
        assert counter.calls == 2
        # Header and networks answers never reach the database or the cache.
        assert r.region(b"10.1.2.3", True, hdr(b"us")) == ("us", "header")
        assert r.region(b"10.1.2.3", False, []) == ("eu", "network")
        assert counter.calls == 2
    finally:
        r.close()


def test_cache_is_bounded_and_stays_right(lookup: GeoLookup) -> None:
    r = GeoResolver(lookup, REGIONS, cache_size=3, flatten="off")
    counter = _counting(r)
    ips = [f"81.1.1.{i}".encode() for i in range(10)] + [f"8.8.8.{i}".encode() for i in range(10)]
    try:
        for _ in range(3):
            for ip in ips:
                want = "eu" if ip.startswith(b"81.") else "us"
                assert r.region(ip, False, []) == (want, "database")
                assert len(r._cache) <= 3 and len(r._old) <= 3
        assert counter.calls == 3 * len(ips)  # a cycle longer than the cache always misses
        # An address in the old generation is found there and moves back.
        r.region(b"8.8.8.100", False, [])
        r.region(b"8.8.8.101", False, [])
        calls = counter.calls
        assert r.region(b"8.8.8.9", False, []) == ("us", "database")
        assert counter.calls == calls
    finally:
        r.close()


def test_no_cache(lookup: GeoLookup) -> None:
    r = GeoResolver(lookup, REGIONS, cache_size=0, flatten="off")
    counter = _counting(r)
    try:
        for _ in range(3):
            assert r.region(b"81.1.1.1", False, []) == ("eu", "database")
        assert counter.calls == 3
        assert not r._cache
    finally:
        r.close()


def test_negative_cache_size(lookup: GeoLookup) -> None:
    with pytest.raises(ValueError, match="cache_size must be >= 0"):
        GeoResolver(lookup, REGIONS, cache_size=-1)


def test_close_empties_the_cache(resolver: GeoResolver) -> None:
    assert resolver.region(b"81.1.1.1", False, []) == ("eu", "database")
    resolver.close()
    assert resolver.region(b"81.1.1.1", False, []) == ("", "default")


# --- the flattened database ---


def _probes(networks: list[tuple[str, object]], rnd: random.Random) -> list[bytes]:
    """Addresses at, inside and around each network's edges, and random ones."""
    out: list[bytes] = []
    for cidr, _ in networks:
        net = ipaddress.ip_network(cidr)
        first, last = int(net.network_address), int(net.broadcast_address)
        make = ipaddress.IPv4Address if net.version == 4 else ipaddress.IPv6Address
        top = 2**net.max_prefixlen - 1
        for n in (first - 1, first, rnd.randint(first, last), last, last + 1):
            if 0 <= n <= top:
                out.append(str(make(n)).encode())
                if net.version == 4:
                    out.append(b"::ffff:" + str(make(n)).encode())
    out += [str(ipaddress.IPv4Address(rnd.getrandbits(32))).encode() for _ in range(200)]
    out += [str(ipaddress.IPv6Address(rnd.getrandbits(128))).encode() for _ in range(200)]
    return out


def test_flattened_answers_as_the_reader(lookup: GeoLookup) -> None:
    rnd = random.Random(3)
    off = GeoResolver(lookup, REGIONS, flatten="off")
    flat = GeoResolver(lookup, REGIONS, flatten="now")
    try:
        assert flat.flattened and not off.flattened
        for ip in _probes(TEST_NETWORKS, rnd):
            assert flat.region(ip, False, []) == off.region(ip, False, []), ip
    finally:
        off.close()
        flat.close()


def test_flattened_random_database(tmp_path: Path) -> None:
    """Many networks, nested and adjacent, some regions, some not mapped."""
    rnd = random.Random(11)
    codes = [("DE", "EU"), ("US", "NA"), ("JP", "AS"), ("ZA", "AF"), ("KR", "AS"), ("AQ", "AN")]
    networks: dict[str, object] = {}
    for _ in range(300):
        country, continent = rnd.choice(codes)
        if rnd.random() < 0.5:
            plen = rnd.randint(8, 28)
            n = rnd.getrandbits(32) >> (32 - plen) << (32 - plen)
            cidr = f"{ipaddress.IPv4Address(n)}/{plen}"
        else:
            plen = rnd.randint(20, 64)
            n = (0x2001 << 112 | rnd.getrandbits(112)) >> (128 - plen) << (128 - plen)
            cidr = f"{ipaddress.IPv6Address(n)}/{plen}"
        networks[cidr] = country_record(country, continent)
    path = write_db(tmp_path / "random.mmdb", list(networks.items()))
    lk = GeoLookup(database=str(path), countries=COUNTRIES, continents=CONTINENTS)
    off = GeoResolver(lk, REGIONS, flatten="off")
    flat = GeoResolver(lk, REGIONS, flatten="now")
    try:
        assert flat.flattened
        for ip in _probes(list(networks.items()), rnd):
            assert flat.region(ip, False, []) == off.region(ip, False, []), ip
    finally:
        off.close()
        flat.close()


def test_adjacent_networks_of_a_region_merge(tmp_path: Path) -> None:
    path = write_db(
        tmp_path / "adjacent.mmdb",
        [
            ("10.0.0.0/24", country_record("DE", "EU")),
            ("10.0.1.0/24", country_record("FR", "EU")),  # eu too: one range with the first
            ("10.0.2.0/24", country_record("AQ", "AN")),  # no region: as no network
            ("10.0.4.0/24", country_record("US", "NA")),
        ],
    )
    r = GeoResolver(GeoLookup(database=str(path), countries=COUNTRIES), REGIONS, flatten="off")
    try:
        with maxminddb.open_database(str(path)) as reader:
            built = geo._flatten(
                reader,
                lambda rec: {"eu": 0, "us": 1, None: -1}[r._record_region(rec)],
                threading.Event(),
            )
        assert built is not None
        v4, v6 = built
        ip = lambda s: int(ipaddress.IPv4Address(s))  # noqa: E731
        assert v4 == ([0, ip("10.0.0.0"), ip("10.0.2.0"), ip("10.0.4.0"), ip("10.0.5.0")],
                      [-1, 0, -1, 1, -1])  # fmt: skip
        assert v6 == ([0], [-1])
    finally:
        r.close()


def test_flattening_in_the_background(lookup: GeoLookup) -> None:
    r = GeoResolver(lookup, REGIONS)  # flatten="background" by default
    try:
        assert r.region(b"81.1.1.1", False, []) == ("eu", "database")  # the reader meanwhile
        deadline = time.monotonic() + 30
        while not r.flattened and time.monotonic() < deadline:
            time.sleep(0.01)
        assert r.flattened
        assert r.region(b"81.1.1.1", False, []) == ("eu", "database")
        assert r.region(b"100.64.0.1", False, []) == ("", "default")
        assert not r._cache and not r._old  # no longer used
    finally:
        r.close()
    assert not r.flattened
    assert r.region(b"81.1.1.1", False, []) == ("", "default")


def _flatteners() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "lbproxy-geo-flatten"]


def test_close_stops_flattening(lookup: GeoLookup) -> None:
    for t in _flatteners():
        t.join(30)
    r = GeoResolver(lookup, REGIONS)
    r.close()
    for t in _flatteners():
        t.join(30)
    assert not r.flattened  # closed first: never installed
    assert r.region(b"81.1.1.1", False, []) == ("", "default")


def test_stop_interrupts_flattening(database: Path) -> None:
    stop = threading.Event()
    stop.set()
    many = [(f"10.{i >> 8}.{i & 255}.0/24", country_record("DE", "EU")) for i in range(20000)]
    with maxminddb.open_database(str(database)) as reader:
        assert geo._flatten(reader, lambda rec: -1, stop) is not None  # too few to look
    path = write_db(database.parent / "many.mmdb", many)
    with maxminddb.open_database(str(path)) as reader:
        assert geo._flatten(reader, lambda rec: -1, stop) is None


def test_a_failure_keeps_the_reader(
    lookup: GeoLookup, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*args: object) -> None:
        raise ValueError("network 10.0.0.0/8 out of order")

    monkeypatch.setattr(geo, "_flatten", broken)
    r = GeoResolver(lookup, REGIONS, flatten="now")
    try:
        assert not r.flattened
        assert "not flattened (network 10.0.0.0/8 out of order)" in caplog.text
        assert r.region(b"81.1.1.1", False, []) == ("eu", "database")
    finally:
        r.close()


def test_a_disagreement_keeps_the_reader(
    lookup: GeoLookup, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # A table that places everything in region 0: the sample check catches it.
    monkeypatch.setattr(geo, "_flatten", lambda *args: (([0], [0]), ([0], [0])))
    r = GeoResolver(lookup, REGIONS, flatten="now")
    try:
        assert not r.flattened
        assert "the table and the reader disagree on" in caplog.text
        assert r.region(b"8.8.8.8", False, []) == ("us", "database")
    finally:
        r.close()


def test_bad_flatten() -> None:
    with pytest.raises(ValueError, match="flatten must be background, now or off"):
        GeoResolver(GeoLookup(), REGIONS, flatten="later")  # type: ignore[arg-type]


class AliasingReader:
    """A MaxMind reader as the iteration of an IPv6 database with MaxMind's
    IPv4 aliases shows it: the aliases are skipped by the iteration, but a
    lookup there answers from the IPv4 data."""

    def __init__(self, networks: list[tuple[str, dict[str, object]]], alias: bool) -> None:
        self.networks = [(ipaddress.ip_network(c), r) for c, r in networks]
        self.alias = alias

    def __iter__(self) -> Iterator[tuple[object, dict[str, object]]]:
        return iter(sorted(self.networks, key=lambda x: (x[0].version, x[0])))  # type: ignore[arg-type]

    def metadata(self) -> object:
        return types.SimpleNamespace(ip_version=6)

    def get(self, text: str) -> dict[str, object] | None:
        addr = ipaddress.ip_address(text)
        if addr.version == 6 and self.alias:
            n = int(addr)
            if n >> 112 == 0x2002:
                addr = ipaddress.IPv4Address(n >> 80 & 0xFFFFFFFF)
            elif n >> 96 == 0x20010000:
                addr = ipaddress.IPv4Address(n >> 64 & 0xFFFFFFFF)
        for net, record in self.networks:
            if addr.version == net.version and addr in net:
                return record
        return None


@pytest.mark.parametrize("alias", [True, False])
def test_ipv4_aliases(cidr_impl: ModuleType, alias: bool) -> None:
    nets = [
        ("1.0.0.0/8", country_record("JP", "AS")),
        ("8.8.0.0/16", country_record("US", "NA")),
        ("2001:db8:5::/48", country_record("DE", "EU")),
    ]
    reader = AliasingReader(nets, alias)
    r = GeoResolver(GeoLookup(countries=COUNTRIES), REGIONS)  # for _record_region
    index = {"eu": 0, "us": 1, "asia": 2, None: -1}

    def value_of(record: object) -> int:
        return index[r._record_region(record)]

    built = geo._flatten(reader, value_of, threading.Event())  # type: ignore[arg-type]
    assert built is not None
    table = cidr_impl.CidrTable.from_ranges(*built)
    us, asia = (1, 2) if alias else (-1, -1)
    assert table.lookup(b"2002:808:808::1") == us  # 6to4 of 8.8.8.8
    assert table.lookup(b"2002:101:101:ffff::") == asia
    assert table.lookup(b"2002:909:909::") == -1
    assert table.lookup(b"2001:0:808:1::") == us  # Teredo, server 8.8.0.1
    assert table.lookup(b"2001:db8:5::1") == 0  # the IPv6 data stays
    assert table.lookup(b"2003::") == -1
    assert table.lookup(b"8.8.8.8") == 1
    assert geo._disagreement(table, built, reader, value_of) is None  # type: ignore[arg-type]


@pytest.mark.parametrize("header", [True, False])
def test_code_agrees_with_region(
    lookup: GeoLookup, resolver: GeoResolver, cidr_impl: ModuleType, header: bool
) -> None:
    """The data path's ``code()`` (from the peer and its X-Forwarded-For,
    compiled in one call once the database is a table) places every client
    where ``region()`` does, whichever source answers."""
    rnd = random.Random(5)
    r = resolver
    if not header:  # no trust_header: code() can take the compiled path
        r = GeoResolver(
            GeoLookup(
                networks=lookup.networks,
                database=lookup.database,
                countries=lookup.countries,
                continents=lookup.continents,
            ),
            REGIONS,
            flatten="now" if resolver.flattened else "off",
        )
    proxies = cidr_impl.CidrTable([("127.0.0.0/8", 0)])
    try:
        assert sorted(r.names) == sorted({*REGIONS, "eu", "us", "asia"})
        for ip in [*_probes(TEST_NETWORKS, rnd), *_probes(NETWORKS, rnd), b"junk"]:
            for value in (b"asia", b"mars"):
                headers = [(b"X-Forwarded-For", ip + b", 127.0.0.9"), *hdr(value)]
                name, source = r.region(ip, True, headers)
                want = -1 if source == "default" else r.names.index(name)
                assert r.code(b"127.0.0.1", True, headers, proxies) == want, ip
                # An untrusted peer is placed by its own address alone.
                name, source = r.region(ip, False, headers)
                want = -1 if source == "default" else r.names.index(name)
                assert r.code(ip, False, headers, proxies) == want, ip
    finally:
        if r is not resolver:
            r.close()


def test_code_after_close(lookup: GeoLookup) -> None:
    """Closed (a reload replaced it), a resolver still places by networks."""
    r = GeoResolver(lookup, REGIONS, flatten="now")
    r.close()
    assert r.code(b"10.2.0.1", False, [], None) == r.names.index("us")
    assert r.code(b"81.1.1.1", False, [], None) == -1
