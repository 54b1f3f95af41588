"""Geo lookup cost: ``GeoResolver.region()`` with the compiled ``cidr`` module
and with its pure twin.

    python setup.py build_ext --inplace     # or cythonize lbproxy/_fast/cidr.pyx
    python bench/geo_lookup.py [--networks 400000] [--calls 50000] [--repeat 5]

Needs the test extras (``mmdb-writer``, ``netaddr``) to write the database.
It writes a Country database of ``--networks`` random networks (half IPv4
/24s, half IPv6 /48s under 2001::/16, countries drawn from a list) once and
keeps it under ``--cache`` (default: $TMPDIR/lbproxy-bench), since writing it
in pure Python takes most of a minute. The resolver gets that database and a
``networks`` table of 1,024 entries (IPv4 /16-/24 in 10.0.0.0/8, IPv6 /48s in
fd00::/8), as a config with a few hundred office and cloud ranges would have.

Each row times ``--calls`` calls of ``region()`` from a plain loop over
addresses placed by that source, best of ``--repeat``, in µs per call. The
"new clients" rows use more distinct addresses than the resolver's cache
holds, so every call reads the database; the "regulars" row cycles 1,000
addresses, so the cache answers. The "parts" rows time pieces alone:
``CidrTable.lookup`` on the 1,024-entry table and on one holding all the
database's networks (a binary search: its cost grows with log n),
``canonical``, and the MaxMind reader's ``get`` on canonical text (the
record's decoding into dicts is most of its cost).
"""

from __future__ import annotations

import argparse
import ipaddress
import random
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for tests.geo_db

import maxminddb

from lbproxy import _fast
from lbproxy.config.model import GeoLookup
from lbproxy.routing import geo

Headers = list[tuple[bytes, bytes]]

DB_VERSION = 1  # in the cached file's name: bump when what build_database writes changes

# country -> continent; most countries map to a region, a few only by continent
COUNTRIES = {
    "DE": "EU", "FR": "EU", "GB": "EU", "NL": "EU", "PL": "EU", "IT": "EU", "ES": "EU",
    "US": "NA", "CA": "NA", "MX": "NA", "BR": "SA", "AR": "SA",
    "JP": "AS", "SG": "AS", "IN": "AS", "KR": "AS", "CN": "AS",
    "AU": "OC", "ZA": "AF", "NG": "AF",
}  # fmt: skip
REGION_COUNTRIES = (
    ("DE", "eu"), ("FR", "eu"), ("GB", "eu"), ("NL", "eu"),
    ("US", "us"), ("CA", "us"), ("MX", "us"),
    ("JP", "asia"), ("SG", "asia"), ("IN", "asia"),
)  # fmt: skip
REGION_CONTINENTS = (
    ("EU", "eu"), ("AF", "eu"), ("NA", "us"), ("SA", "us"), ("AS", "asia"), ("OC", "asia"),
)  # fmt: skip
REGIONS = ("eu", "us", "asia")

# A browser request as a trusted edge forwards it.
HEADERS: Headers = [
    (b"Host", b"www.example.com"),
    (b"User-Agent", b"Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"),
    (b"Accept", b"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
    (b"Accept-Language", b"en-US,en;q=0.5"),
    (b"Accept-Encoding", b"gzip, deflate, br, zstd"),
    (b"X-Forwarded-For", b"198.51.100.23"),
    (b"X-Client-Region", b"asia"),
    (b"Cookie", b"session=3f2a9c1e7b; theme=dark"),
]


def v4_text(n: int) -> str:
    return str(ipaddress.IPv4Address(n))


def v6_text(n: int) -> str:
    return str(ipaddress.IPv6Address(n))


def db_networks(count: int, seed: int) -> tuple[list[int], list[int]]:
    """Distinct random /24 starts (IPv4, outside 10/8) and /48 starts (IPv6)."""
    rnd = random.Random(seed)
    v4: set[int] = set()
    while len(v4) < count // 2:
        n = rnd.getrandbits(24) << 8
        if n >> 24 != 10:
            v4.add(n)
    v6: set[int] = set()
    while len(v6) < count - count // 2:
        v6.add((0x2001 << 32 | rnd.getrandbits(32)) << 80)
    return sorted(v4), sorted(v6)


def build_database(path: Path, v4: list[int], v6: list[int], seed: int) -> None:
    from tests.geo_db import geolite2_record, write_db

    rnd = random.Random(seed)
    codes = list(COUNTRIES)
    records = {c: geolite2_record(c, COUNTRIES[c]) for c in codes}
    networks = [(f"{v4_text(n)}/24", records[rnd.choice(codes)]) for n in v4]
    networks += [(f"{v6_text(n)}/48", records[rnd.choice(codes)]) for n in v6]
    tmp = path.with_suffix(".partial")
    write_db(tmp, networks)
    tmp.replace(path)  # a run stopped half-way leaves no broken cache


def table_networks(rnd: random.Random) -> list[tuple[str, str]]:
    out: dict[str, str] = {}
    while len(out) < 512:
        plen = rnd.choice((16, 20, 24))
        n = (10 << 24 | rnd.getrandbits(24)) >> (32 - plen) << (32 - plen)
        out[f"{v4_text(n)}/{plen}"] = rnd.choice(REGIONS)
    while len(out) < 1024:
        n = (0xFD << 120 | rnd.getrandbits(40) << 80) >> 80 << 80
        out[f"{v6_text(n)}/48"] = rnd.choice(REGIONS)
    return list(out.items())


def best_of(call: Callable[[Any], object], ips: Sequence[Any], repeat: int) -> float:
    """µs per call, best of ``repeat`` passes over ``ips``."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for ip in ips:
            call(ip)
        best = min(best, time.perf_counter() - start)
    return best / len(ips) * 1e6


Samples = dict[str, tuple[list[bytes], bool, str]]  # case -> (addresses, trusted, source)


def measure(
    mod: ModuleType,
    lookup: GeoLookup,
    samples: Samples,
    tables: dict[str, tuple[list[tuple[str, int]], list[bytes]]],
    repeat: int,
) -> tuple[dict[str, float], dict[str, list[tuple[str, str]]]]:
    """Timings per case with ``mod`` as the ``cidr`` module, and the first
    answers of each case (so that the twins can be compared)."""
    setattr(geo, "_cidr", mod)  # noqa: B010 -- what load("cidr") would have given
    # Per-address lookups (the reader and its cache); the flattened table,
    # which a proxy builds in the background, is timed on its own below.
    resolver = geo.GeoResolver(lookup, REGIONS, flatten="off")
    row: dict[str, float] = {}
    answers: dict[str, list[tuple[str, str]]] = {}
    try:
        for case, (ips, trusted, source) in samples.items():
            got: list[tuple[str, str]] = [
                resolver.region(ip, trusted, HEADERS) for ip in ips[:2000]
            ]
            assert all(s == source for _, s in got), (case, got[:5])
            answers[case] = got

            def call(ip: bytes, t: bool = trusted) -> object:
                return resolver.region(ip, t, HEADERS)

            row[case] = best_of(call, ips, repeat)
        for case, (entries, ips) in tables.items():
            row[case] = best_of(mod.CidrTable(entries).lookup, ips, repeat)
        ips = samples["database hit, IPv4, new clients"][0]
        flat = geo.GeoResolver(lookup, REGIONS, flatten="now")
        try:
            for case in ("database hit, IPv4, new clients", "database hit, IPv6, new clients"):
                if case in samples:
                    case_ips, trusted, _ = samples[case]

                    def flat_call(ip: bytes, t: bool = trusted) -> object:
                        return flat.region(ip, t, HEADERS)

                    row[case.replace("database hit", "flattened DB table")] = best_of(
                        flat_call, case_ips, repeat
                    )
        finally:
            flat.close()
        row["parts: cidr.canonical"] = best_of(mod.canonical, ips, repeat)
        with maxminddb.open_database(lookup.database or "", maxminddb.MODE_AUTO) as reader:
            texts = [mod.canonical(ip) for ip in ips]
            row["parts: maxminddb Reader.get"] = best_of(reader.get, texts, repeat)
    finally:
        resolver.close()
    return row, answers


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--networks", type=int, default=400_000, help="in the database")
    parser.add_argument("--calls", type=int, default=50_000, help="per timing")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir(), "lbproxy-bench"))
    args = parser.parse_args(argv)

    v4, v6 = db_networks(args.networks, args.seed)
    args.cache.mkdir(parents=True, exist_ok=True)
    path = args.cache / f"geo-{args.networks}-{args.seed}-v{DB_VERSION}.mmdb"
    if not path.exists():
        print(f"writing {path} ({args.networks} networks; once, then cached) ...", flush=True)
        start = time.perf_counter()
        build_database(path, v4, v6, args.seed)
        print(f"  {time.perf_counter() - start:.1f} s", flush=True)

    rnd = random.Random(args.seed + 1)
    networks = table_networks(rnd)
    lookup = GeoLookup(
        trust_header="X-Client-Region",
        networks=tuple(networks),
        database=str(path),
        countries=REGION_COUNTRIES,
        continents=REGION_CONTINENTS,
    )
    n = args.calls

    def inside(cidrs: Sequence[str]) -> list[bytes]:
        nets = [ipaddress.ip_network(c) for c in cidrs]
        picks = (rnd.choice(nets) for _ in range(n))
        return [str(net[rnd.randrange(net.num_addresses)]).encode() for net in picks]

    def in_db4(count: int) -> list[bytes]:
        return [v4_text(rnd.choice(v4) | rnd.getrandbits(8)).encode() for _ in range(count)]

    table4 = [c for c, _ in networks if ":" not in c]
    table6 = [c for c, _ in networks if ":" in c]
    db4 = in_db4(n)
    db6 = [v6_text(rnd.choice(v6) | rnd.getrandbits(80)).encode() for _ in range(n)]
    regulars = in_db4(1000)  # clients that come back: the cache's case
    mapped = [b"::ffff:" + ip for ip in in_db4(n)]
    samples: Samples = {
        "trusted header": (inside(table4), True, "header"),
        "networks hit, IPv4": (inside(table4), False, "network"),
        "networks hit, IPv6": (inside(table6), False, "network"),
        # More distinct addresses than the cache holds: every call misses it.
        "database hit, IPv4, new clients": (db4, False, "database"),
        "database hit, IPv6, new clients": (db6, False, "database"),
        "database hit, mapped, new clients": (mapped, False, "database"),
        "database hit, IPv4, 1,000 regulars": (regulars * (n // 1000), False, "database"),
    }  # fmt: skip
    index = {r: i for i, r in enumerate(REGIONS)}
    every_db = [(f"{v4_text(x)}/24", i % 3) for i, x in enumerate(v4)]
    every_db += [(f"{v6_text(x)}/48", i % 3) for i, x in enumerate(v6)]
    tables = {
        "parts: CidrTable.lookup, 1,024 networks": (
            [(c, index[r]) for c, r in networks],
            samples["networks hit, IPv4"][0],
        ),
        f"parts: CidrTable.lookup, {len(every_db):,} networks": (every_db, db4),
    }

    impls: list[tuple[str, ModuleType]] = []
    if not _fast.NO_EXTENSIONS:
        try:
            impls.append(("compiled", _fast.load_compiled("cidr")))
        except ImportError as exc:
            print(f"compiled cidr not built ({exc}); pure only")
    impls.append(("pure", _fast.load_pure("cidr")))

    results: dict[str, dict[str, float]] = {}
    first: dict[str, list[tuple[str, str]]] | None = None
    for name, mod in impls:
        results[name], answers = measure(mod, lookup, samples, tables, args.repeat)
        assert first is None or answers == first, "the twins disagree"
        first = answers

    names = [name for name, _ in impls]
    cases = list(results[names[0]])
    width = max(len(c) for c in cases)
    print(
        f"\nGeoResolver.region(), µs per call (best of {args.repeat} x {n} calls); "
        f"database {len(v4):,} IPv4 /24 + {len(v6):,} IPv6 /48, networks table 1,024"
    )
    head = f"{'case':<{width}}" + "".join(f"{name:>10}" for name in names)
    if len(names) == 2:
        head += f"{'pure/compiled':>15}"
    print(head)
    for case in cases:
        line = f"{case:<{width}}" + "".join(f"{results[name][case]:>10.2f}" for name in names)
        if len(names) == 2:
            line += f"{results['pure'][case] / results['compiled'][case]:>14.1f}x"
        print(line)


if __name__ == "__main__":
    main()
