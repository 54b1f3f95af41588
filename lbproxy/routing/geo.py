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
when the peer is trusted); this module does not read X-Forwarded-For. Text
that is not an address (by ``ipaddress``'s rules) is placed by the header
alone, else gets the default. IPv4-mapped IPv6 addresses (``::ffff:a.b.c.d``,
from dual-stack sockets) are IPv4 clients in every step.

Database answers are cached per address, networks answers are not
(``bench/geo_lookup.py``): a networks hit costs a binary search, well under a
microsecond compiled, but a database hit costs several, nearly all of it the
MaxMind reader decoding the whole record (names in eight languages, ids) into
dicts; that is a large share of a proxied request's CPU. A client sends many
requests (keep-alive, page assets), so most lookups repeat. The cache holds
at most ``2 * cache_size`` addresses whatever the client population: when
the current generation fills up it becomes the old one and the one before
is dropped, and an address found in the old generation moves back to the
current one (a cheap approximation of LRU: no per-hit bookkeeping, no O(n)
eviction). Clients that never repeat only pay a dict miss and insert.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Literal

import maxminddb
from maxminddb.errors import InvalidDatabaseError

from lbproxy._fast import load
from lbproxy.config.model import GeoLookup

if TYPE_CHECKING:
    # Type-check against the stub; at run time use whichever twin load() picks.
    from lbproxy._fast import cidr as _cidr
else:
    _cidr = load("cidr")

__all__ = ["DEFAULT_CACHE_SIZE", "GeoResolver", "Source"]

Source = Literal["header", "network", "database", "default"]

# Addresses per cache generation: about 1 MiB for both, enough for the
# clients active within a few seconds on a busy worker.
DEFAULT_CACHE_SIZE = 4096

# "Not cached" (None is a cached "no region"), compared by identity: a str
# so that the cache stays typed as str | None.
_MISS = "<not cached>"


class GeoResolver:
    """A client address (and, from a trusted proxy, a header) to a region;
    see the module docstring."""

    __slots__ = (
        "_cache",
        "_cache_size",
        "_continents",
        "_countries",
        "_header",
        "_known",
        "_network_regions",
        "_networks",
        "_old",
        "_reader",
        "default",
        "regions",
    )

    def __init__(
        self,
        lookup: GeoLookup,
        regions: Iterable[str],
        default: str = "",
        cache_size: int = DEFAULT_CACHE_SIZE,
    ) -> None:
        """``regions``: the region names the config's geo targets define,
        the only ones the trusted header may name. ``cache_size``: addresses
        per generation of the database cache (0: no cache). Raises
        ``OSError`` when the database cannot be read and ``ValueError`` when
        it is not a MaxMind DB or a network is not one."""
        if cache_size < 0:
            raise ValueError(f"cache_size must be >= 0, got {cache_size}")
        self.regions = frozenset(regions)
        self.default = default
        # Header values are compared as sent, without decoding per request.
        self._known = {name.encode(): name for name in self.regions}
        self._header = lookup.trust_header.lower().encode() if lookup.trust_header else None
        # The table holds small ints; each is an index into this tuple.
        self._network_regions = tuple(dict.fromkeys(region for _, region in lookup.networks))
        index = {name: i for i, name in enumerate(self._network_regions)}
        self._networks = (
            _cidr.CidrTable((cidr, index[region]) for cidr, region in lookup.networks)
            if lookup.networks
            else None
        )
        self._countries = dict(lookup.countries)
        self._continents = dict(lookup.continents)
        self._cache_size = cache_size
        self._cache: dict[bytes, str | None] = {}  # client_ip -> database answer
        self._old: dict[bytes, str | None] = {}
        self._reader: maxminddb.Reader | None = None
        if lookup.database is not None:
            try:
                self._reader = maxminddb.open_database(lookup.database, maxminddb.MODE_AUTO)
            except InvalidDatabaseError as err:  # a RuntimeError; callers expect ValueError
                raise ValueError(f"{lookup.database}: not a MaxMind DB: {err}") from err

    def region(
        self, client_ip: bytes, trusted: bool, headers: Sequence[tuple[bytes, bytes]]
    ) -> tuple[str, Source]:
        """``(region, source)`` for a client; see the module docstring."""
        if trusted and self._header is not None:
            found = self._from_header(headers)
            if found is not None:
                return found, "header"
        if self._networks is not None:
            i = self._networks.lookup(client_ip)
            if i >= 0:
                return self._network_regions[i], "network"
        if self._reader is not None:
            found = self._cache.get(client_ip, _MISS)
            if found is _MISS:
                found = self._cached(client_ip)
            if found is not None:
                return found, "database"
        return self.default, "default"

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
        reader, self._reader = self._reader, None
        self._cache, self._old = {}, {}
        if reader is not None:
            reader.close()

    def _from_header(self, headers: Sequence[tuple[bytes, bytes]]) -> str | None:
        want = self._header
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
        text = _cidr.canonical(client_ip)
        if text is None or self._reader is None:
            return None
        try:
            record = self._reader.get(text)
        except (ValueError, InvalidDatabaseError):
            # ValueError: an IPv6 client and an IPv4-only database. A corrupt
            # record costs this client its database lookup, not its request.
            return None
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
