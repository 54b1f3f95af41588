"""Which region a client is in, for geo routes (top-level ``geo:`` in the config).

``GeoResolver(lookup, regions)`` is built once per config from its
``GeoLookup`` and the names of the regions its geo targets define, and
replaced whole on reload (``close()`` the old one: it holds the database's
file). ``region(client_ip, trusted, headers)`` answers ``(region, source)``
from the first of these that places the client:

1. ``"header"``: the ``trust_header`` value, believed only when ``trusted``
   (the peer is one of the listener's ``trusted_proxies``: an edge that sets
   the header itself) and only when it is one of ``regions``; anything else
   is ignored, not an error, so a client cannot pick an arbitrary name. The
   header name compares case-insensitively; when it appears more than once,
   the last one counts (the one the nearest proxy added).
2. ``"network"``: the longest of ``networks`` holding the address
   (``lbproxy._fast`` ``cidr``: one binary search, compiled).
3. ``"database"``: the MaxMind DB: the record's ``country.iso_code`` (or
   ``registered_country.iso_code`` when it has none: anycast and satellite
   ranges) mapped by ``countries``, else its ``continent.code`` by
   ``continents``.
4. ``"default"``: the ``default`` given to the constructor ("" unless told:
   a geo target then uses its own ``default``).

Regions from ``networks``, ``countries`` and ``continents`` come back as the
config names them; a target that does not define one uses its default.

``client_ip`` is the address to place, as text in bytes: the caller passes
the effective client address (the peer's, or the one X-Forwarded-For gives
when the peer is trusted); ``region`` does not read X-Forwarded-For. The
data path asks ``code(peer, trusted, headers, trusted_table)`` instead: the
same answer as a small int (the region's index in ``names``, -1 for "not
placed"), from the peer's address and its X-Forwarded-For, which once the
database is a table is one compiled call (``cidr.locate``) that finds the
client's address, parses it once and looks it up in both tables. Text
that is not an address (by ``ipaddress``'s rules) is placed by the header
alone, else gets the default. IPv4-mapped IPv6 addresses (``::ffff:a.b.c.d``,
from dual-stack sockets) are IPv4 clients in every step.

How the database is read (``bench/geo_lookup.py``, ``bench/routing_cost.py``):
a lookup in the MaxMind reader costs several microseconds, nearly all of it
the reader decoding the whole record (names in eight languages, ids) into
dicts; that is a large share of a proxied request's CPU. So the resolver
flattens the database once: it reads every network of it (``for network,
record in reader``), maps each record to a region as step 3 says, merges
adjacent networks of the same region and keeps the result as a ``cidr``
table of ranges, so that a database lookup is one binary search, as a
networks lookup is. Networks whose record maps to no region, and addresses
the database does not hold, are "no region" there, as before. MaxMind's
IPv6 databases alias 2002::/16 (6to4) and 2001::/32 (Teredo) to their IPv4
data; the reader's iteration skips aliases, so the table maps those
prefixes to the IPv4 ranges itself when lookups there show the alias. A
sample of addresses (range starts, addresses inside ranges, the aliases) is
then looked up both ways; any disagreement, or any error while flattening,
leaves the resolver on the reader (logged as a warning).

Reading a database of 400,000 networks this way takes a few seconds, so by
default (``flatten="background"``) a thread does it while the resolver
answers from the reader, and the table replaces the reader when it is
ready (attributes swapped under the GIL, the table first; the reader is then
dropped, and a lookup that raced the swap asks the table; ``close()`` stops
the thread).
The thread competes with the event loop for the GIL and the CPU meanwhile.
``flatten="now"`` flattens in the constructor, ``"off"`` never.

Until the table is ready (or without one), answers of the reader are cached
per address, networks answers are not: a client sends many requests
(keep-alive, page assets), so most lookups repeat. The cache holds at most
``2 * cache_size`` addresses whatever the client population: when the
current generation fills up it becomes the old one and the one before is
dropped, and an address found in the old generation moves back to the
current one (a cheap approximation of LRU: no per-hit bookkeeping, no O(n)
eviction). Clients that never repeat only pay a dict miss and insert.
"""

from __future__ import annotations

import ipaddress
import logging
import random
import threading
import time
from bisect import bisect_right
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Literal

import maxminddb
from maxminddb.errors import InvalidDatabaseError

from lbproxy._fast import load
from lbproxy._fast.cidr_py import put_range  # build-time, not per request
from lbproxy.config.model import GeoLookup

if TYPE_CHECKING:
    # Type-check against the stub; at run time use whichever twin load() picks.
    from lbproxy._fast import cidr as _cidr
else:
    _cidr = load("cidr")

__all__ = ["DEFAULT_CACHE_SIZE", "Flatten", "GeoResolver", "Source"]

log = logging.getLogger("lbproxy")

Source = Literal["header", "network", "database", "default"]
Flatten = Literal["background", "now", "off"]

# Addresses per cache generation: about 1 MiB for both, enough for the
# clients active within a few seconds on a busy worker.
DEFAULT_CACHE_SIZE = 4096

# "Not cached" (None is a cached "no region"), compared by identity: a str
# so that the cache stays typed as str | None.
_MISS = "<not cached>"

# Prefixes MaxMind's IPv6 databases alias to their IPv4 tree: (prefix, its
# length, where the IPv4 address sits in it: the bits below it).
_ALIASES = (
    (0x2002 << 112, 16, 80),  # 6to4: 2002:AABB:CCDD::/48 is AA.BB.CC.DD
    (0x2001 << 112, 32, 64),  # Teredo: the server's IPv4 address, bits 32-63
)
# Addresses checked both ways (table, reader) before the table is used.
_SAMPLES = 2000


class GeoResolver:
    """A client address (and, from a trusted proxy, a header) to a region;
    see the module docstring."""

    __slots__ = (
        "_cache",
        "_cache_size",
        "_continents",
        "_countries",
        "_known",
        "_lock",
        "_networks",
        "_old",
        "_path",
        "_reader",
        "_stop",
        "_table",
        "code_of",
        "default",
        "header",
        "names",
        "regions",
        "tables",
    )

    def __init__(
        self,
        lookup: GeoLookup,
        regions: Iterable[str],
        default: str = "",
        cache_size: int = DEFAULT_CACHE_SIZE,
        flatten: Flatten = "background",
    ) -> None:
        """``regions``: the region names the config's geo targets define,
        the only ones the trusted header may name. ``cache_size``: addresses
        per generation of the database cache (0: no cache). ``flatten``:
        when the database becomes a table (see the module docstring). Raises
        ``OSError`` when the database cannot be read and ``ValueError`` when
        it is not a MaxMind DB or a network is not one."""
        if cache_size < 0:
            raise ValueError(f"cache_size must be >= 0, got {cache_size}")
        if flatten not in ("background", "now", "off"):
            raise ValueError(f"flatten must be background, now or off, got {flatten!r}")
        self.regions = frozenset(regions)
        self.default = default
        # Header values are compared as sent, without decoding per request.
        self._known = {name.encode(): name for name in self.regions}
        self.header = lookup.trust_header.lower().encode() if lookup.trust_header else None
        self._countries = dict(lookup.countries)
        self._continents = dict(lookup.continents)
        # Every region this resolver can answer, once each: a region's code
        # is its index here. Both tables (networks, the flattened database)
        # hold codes, so one compiled call can answer from either (code()).
        self.names: tuple[str, ...] = tuple(
            dict.fromkeys(
                (
                    *(region for _, region in lookup.networks),
                    *self._countries.values(),
                    *self._continents.values(),
                    *sorted(self.regions),
                )
            )
        )
        self.code_of = {name: i for i, name in enumerate(self.names)}
        self._networks = (
            _cidr.CidrTable((cidr, self.code_of[region]) for cidr, region in lookup.networks)
            if lookup.networks
            else None
        )
        self._cache_size = cache_size
        self._cache: dict[bytes, str | None] = {}  # client_ip -> database answer
        self._old: dict[bytes, str | None] = {}
        self._table: _cidr.CidrTable | None = None  # the flattened database
        self._lock = threading.Lock()  # installing the table against close()
        self._stop = threading.Event()  # set by close(): flattening stops
        self._path = lookup.database
        self._reader: maxminddb.Reader | None = None
        if lookup.database is not None:
            self._reader = _open(lookup.database)
        # What cidr.locate looks in, or None while the reader answers
        # (until the table is ready): see code().
        self.tables: tuple[_cidr.CidrTable | None, _cidr.CidrTable | None] | None = (
            None if self._reader is not None else (self._networks, None)
        )
        if lookup.database is not None:
            if flatten == "now":
                self._flatten()
            elif flatten == "background":
                threading.Thread(
                    target=self._flatten, name="lbproxy-geo-flatten", daemon=True
                ).start()

    @property
    def flattened(self) -> bool:
        """Whether database lookups use the flattened table."""
        return self._table is not None

    def region(
        self, client_ip: bytes, trusted: bool, headers: Sequence[tuple[bytes, bytes]]
    ) -> tuple[str, Source]:
        """``(region, source)`` for a client; see the module docstring."""
        if trusted and self.header is not None:
            found = self._from_header(headers)
            if found is not None:
                return found, "header"
        if self._networks is not None:
            i = self._networks.lookup(client_ip)
            if i >= 0:
                return self.names[i], "network"
        table = self._table
        if table is not None:
            i = table.lookup(client_ip)
            if i >= 0:
                return self.names[i], "database"
            return self.default, "default"
        if self._reader is not None:
            found = self._cache.get(client_ip, _MISS)
            if found is _MISS:
                found = self._cached(client_ip)
            if found is not None:
                return found, "database"
        return self.default, "default"

    def code(
        self,
        peer: bytes,
        trusted: bool,
        headers: Sequence[tuple[bytes, bytes]],
        trusted_table: _cidr.CidrTable | None,
    ) -> int:
        """The data path's ``region``: the client's region as its index in
        ``names``, -1 when nothing places it (the caller's default). Takes
        the peer's address, not the client's: the client's is found here
        (the peer's, or from a ``trusted`` peer the X-Forwarded-For walk over
        ``trusted_table``). Once the database is a table (or without one),
        and unless a trusted header is to be read, that is one compiled call
        (``cidr.locate`` on ``tables``): the address is parsed once, in the
        header, and looked up in the networks, then the table. A caller on
        the hot path may make that call itself under the same condition."""
        tables = self.tables
        if tables is None or (trusted and self.header is not None):
            address = _cidr.forwarded_client(peer, headers, trusted_table) if trusted else peer
            name, source = self.region(address, trusted, headers)
            return -1 if source == "default" else self.code_of[name]
        return _cidr.locate(peer, trusted, headers, trusted_table, tables[0], tables[1])

    def _cached(self, client_ip: bytes) -> str | None:
        """The database's answer when the current generation missed."""
        found = self._old.get(client_ip, _MISS)
        if found is _MISS:
            found = self._from_database(client_ip)
        if self._cache_size:
            if len(self._cache) >= self._cache_size:
                self._old, self._cache = self._cache, {}
            self._cache[client_ip] = found
        return found

    def close(self) -> None:
        """Release the database. Safe to call twice; ``region`` still answers
        afterwards (header and networks only), so a request that raced a
        reload is placed rather than failed."""
        self._stop.set()
        with self._lock:
            self._table = None
            reader, self._reader = self._reader, None
            self.tables = (self._networks, None)
            self._cache, self._old = {}, {}
        if reader is not None:
            reader.close()

    # --- the flattened table ---

    def _flatten(self) -> None:
        """Build the table and install it (the thread's work, or the
        constructor's); on any failure, log and leave things as they are."""
        path = self._path
        assert path is not None  # only called with a database
        started = time.perf_counter()
        try:
            code_of = self.code_of

            def value_of(record: object) -> int:
                region = self._record_region(record)
                return -1 if region is None else code_of[region]

            with _open(path) as reader:
                built = _flatten(reader, value_of, self._stop)
                if built is None:  # closed meanwhile
                    return
                table = _cidr.CidrTable.from_ranges(*built)
                bad = _disagreement(table, built, reader, value_of)
        except Exception as err:  # any failure leaves the reader in use
            log.warning("geo: %s not flattened (%s); database lookups stay per address", path, err)
            return
        if bad is not None:
            log.warning(
                "geo: %s not flattened: the table and the reader disagree on %s;"
                " database lookups stay per address",
                path,
                bad,
            )
            return
        with self._lock:
            if self._stop.is_set():
                return
            self._table = table
            self.tables = (self._networks, table)
            # No longer read. Dropped, not closed: a lookup on the event
            # loop may hold it still; the last reference closes the file
            # and unmaps it.
            self._reader = None
            self._cache, self._old = {}, {}  # no longer read
        log.info(
            "geo: %s flattened into %d IPv4 and %d IPv6 ranges in %.1f s",
            path,
            len(built[0][0]),
            len(built[1][0]),
            time.perf_counter() - started,
        )

    def _from_header(self, headers: Sequence[tuple[bytes, bytes]]) -> str | None:
        want = self.header
        assert want is not None  # region() checks
        size = len(want)
        value: bytes | None = None
        for name, v in headers:
            if len(name) == size and name.lower() == want:
                value = v
        if value is None:
            return None
        return self._known.get(value.strip(b" \t"))

    def _from_database(self, client_ip: bytes) -> str | None:
        # Canonical text, not the client's: the reader resolves text with
        # getaddrinfo, which reads "010.0.0.1" as octal, and looks mapped
        # addresses up in the IPv6 tree, where most databases have nothing.
        reader = self._reader  # once: the flattening thread may drop it
        if reader is None:
            # Flattened since region() looked (or closed): the table answers.
            table = self._table
            i = table.lookup(client_ip) if table is not None else -1
            return self.names[i] if i >= 0 else None
        text = _cidr.canonical(client_ip)
        if text is None:
            return None
        try:
            record = reader.get(text)
        except (ValueError, InvalidDatabaseError):
            # ValueError: an IPv6 client and an IPv4-only database. A corrupt
            # record costs this client its database lookup, not its request.
            return None
        return self._record_region(record)

    def _record_region(self, record: object) -> str | None:
        """The region a database record maps to, None for none."""
        if not isinstance(record, dict):
            return None
        country = _code(record, "country", "iso_code") or _code(
            record, "registered_country", "iso_code"
        )
        if country is not None:
            found = self._countries.get(country)
            if found is not None:
                return found
        continent = _code(record, "continent", "code")
        return None if continent is None else self._continents.get(continent)


def _code(record: dict[str, maxminddb.types.Record], key: str, field: str) -> str | None:
    """``record[key][field]`` when that is text, else None."""
    part = record.get(key)
    if not isinstance(part, dict):
        return None
    code = part.get(field)
    return code.upper() if isinstance(code, str) else None


def _open(path: str) -> maxminddb.Reader:
    try:
        return maxminddb.open_database(path, maxminddb.MODE_AUTO)
    except InvalidDatabaseError as err:  # a RuntimeError; callers expect ValueError
        raise ValueError(f"{path}: not a MaxMind DB: {err}") from err


Ranges = tuple[list[int], list[int]]  # (starts, values), as CidrTable.from_ranges takes


def _flatten(
    reader: maxminddb.Reader, value_of: Callable[[object], int], stop: threading.Event
) -> tuple[Ranges, Ranges] | None:
    """The database as ranges of ``value_of(record)`` (a region's index,
    -1: none), IPv4 and IPv6; None when ``stop`` is set meanwhile. Raises
    ``ValueError`` when the reader's networks do not come in ascending
    order, disjoint."""
    ranges: dict[int, tuple[list[int], list[int], list[int]]] = {
        4: ([0], [-1], [0]),  # starts, values, [end of the last network]
        6: ([0], [-1], [0]),
    }
    for count, (network, record) in enumerate(reader, 1):
        if not count & 0x3FFF and stop.is_set():
            return None
        value = value_of(record)
        version = network.version
        starts, values, end = ranges[version]
        start = int(network.network_address)
        if start < end[0]:
            raise ValueError(f"network {network} out of order")
        if start > end[0]:
            put_range(starts, values, end[0], -1)
        put_range(starts, values, start, value)
        # Not num_addresses: that goes through broadcast_address, slowly.
        end[0] = start + (1 << ((32 if version == 4 else 128) - network.prefixlen))
    flat: dict[int, Ranges] = {}
    for version, (starts, values, end) in ranges.items():
        if end[0] < 1 << (32 if version == 4 else 128):
            put_range(starts, values, end[0], -1)
        flat[version] = starts, values
    v4, v6 = flat[4], flat[6]
    if reader.metadata().ip_version == 6:
        if len(v4[0]) == 1 and v4[1][0] == -1 and bisect_right(v6[0], 0xFFFFFFFF) == 1:
            # No IPv4 tree: IPv4 lookups land in the IPv6 range holding ::/96.
            v4 = [0], [v6[1][0]]
        for prefix, length, shift in _ALIASES:
            if _aliased(reader, v4, v6, prefix, length, shift, value_of):
                v6 = _splice(v6, prefix, length, shift, v4)
    return v4, v6


def _aliased(
    reader: maxminddb.Reader,
    v4: Ranges,
    v6: Ranges,
    prefix: int,
    length: int,
    shift: int,
    value_of: Callable[[object], int],
) -> bool:
    """Whether the reader answers for ``prefix`` what the IPv4 ranges hold
    (an alias the iteration skipped, so ``v6`` has nothing there)."""
    end = prefix + (1 << (128 - length))
    i = bisect_right(v6[0], prefix) - 1
    if v6[1][i] != -1 or (i + 1 < len(v6[0]) and v6[0][i + 1] < end):
        return False  # data of its own there
    held = [k for k, value in enumerate(v4[1]) if value >= 0]
    if not held:
        return False  # nothing to map
    for k in {held[0], held[len(held) // 2], held[-1]}:
        text = str(ipaddress.IPv6Address(prefix | v4[0][k] << shift))
        if value_of(reader.get(text)) != v4[1][k]:
            return False
    return True


def _splice(v6: Ranges, prefix: int, length: int, shift: int, v4: Ranges) -> Ranges:
    """``v6`` with ``prefix`` mapped onto the IPv4 ranges ``v4``."""
    end = prefix + (1 << (128 - length))
    starts6, values6 = v6
    i = bisect_right(starts6, prefix) - 1
    j = bisect_right(starts6, end - 1) - 1
    starts, values = starts6[: i + 1], values6[: i + 1]
    for start, value in zip(*v4, strict=True):
        put_range(starts, values, prefix | start << shift, value)
    if end < 1 << 128:
        put_range(starts, values, end, values6[j])
    for k in range(j + 1, len(starts6)):
        put_range(starts, values, starts6[k], values6[k])
    return starts, values


def _disagreement(
    table: Any,
    built: tuple[Ranges, Ranges],
    reader: maxminddb.Reader,
    value_of: Callable[[object], int],
) -> str | None:
    """An address the table and the reader place differently, else None."""
    samples: list[str] = []
    rnd = random.Random(0)
    for version, (starts, _) in zip((4, 6), built, strict=True):
        if len(starts) == 1 and version == 6 and reader.metadata().ip_version == 4:
            continue
        bits = 32 if version == 4 else 128
        make = ipaddress.IPv4Address if version == 4 else ipaddress.IPv6Address
        picks = rnd.sample(range(len(starts)), min(len(starts), _SAMPLES // 4))
        for k in picks:
            top = starts[k + 1] if k + 1 < len(starts) else 1 << bits
            samples.append(str(make(starts[k])))
            samples.append(str(make(rnd.randrange(starts[k], top))))
    if reader.metadata().ip_version == 6:
        for prefix, length, _ in _ALIASES:
            for _ in range(16):
                samples.append(str(ipaddress.IPv6Address(prefix | rnd.getrandbits(128 - length))))
    for text in samples:
        try:
            record = reader.get(text)
        except ValueError:  # an IPv6 address and an IPv4 database
            record = None
        if table.lookup(text) != value_of(record):
            return text
    return None
