"""Small MaxMind DBs for tests and benchmarks, written with ``mmdb_writer``.

Records have the GeoIP2/GeoLite2 Country layout lbproxy reads:
``{"country": {"iso_code": "DE"}, "registered_country": {...},
"continent": {"code": "EU"}}``, each part present only when given.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from mmdb_writer import MMDBWriter
from netaddr import IPSet  # type: ignore[import-untyped]

Record = dict[str, Any]


def country_record(
    country: str | None = None, continent: str | None = None, registered: str | None = None
) -> Record:
    """A Country database record; parts left out are absent, as in real data."""
    record: Record = {}
    if country is not None:
        record["country"] = {"iso_code": country, "names": {"en": country}}
    if registered is not None:
        record["registered_country"] = {"iso_code": registered}
    if continent is not None:
        record["continent"] = {"code": continent}
    return record


_LANGUAGES = ("de", "en", "es", "fr", "ja", "pt-BR", "ru", "zh-CN")


def geolite2_record(country: str, continent: str) -> Record:
    """A record shaped like GeoLite2-Country's: ids and names in eight
    languages for the continent, the country and the registered country.
    Decoding all of it is most of a lookup's cost, so benchmarks use this."""

    def place(code: str, key: str, geoname_id: int) -> Record:
        names = {lang: f"{code} ({lang})" for lang in _LANGUAGES}
        return {"geoname_id": geoname_id, key: code, "names": names}

    ident = sum(ord(c) << (8 * i) for i, c in enumerate(country))
    return {
        "continent": place(continent, "code", 6255000 + sum(map(ord, continent))),
        "country": place(country, "iso_code", ident),
        "registered_country": place(country, "iso_code", ident),
    }


def write_db(path: Path, networks: Iterable[tuple[str, Record]], ip_version: int = 6) -> Path:
    """Write ``(cidr, record)`` pairs to ``path``. An IPv6 database holds IPv4
    networks where MaxMind's do, under ``::/96``, so that IPv4 lookups work."""
    writer = MMDBWriter(
        ip_version=ip_version,
        ipv4_compatible=ip_version == 6,
        database_type="GeoLite2-Country",
        languages=["en"],
        description="lbproxy test data",
    )
    for cidr, record in networks:
        writer.insert_network(IPSet([cidr]), record)
    writer.to_db_file(str(path))
    return path


# One place per way a record can place (or fail to place) a client.
TEST_NETWORKS: list[tuple[str, Record]] = [
    ("81.0.0.0/8", country_record("DE", "EU")),
    ("81.2.0.0/16", country_record("FR", "EU")),  # nested in DE's: the longer wins
    ("8.8.0.0/16", country_record("US", "NA")),
    ("1.0.0.0/8", country_record("JP", "AS")),
    ("41.0.0.0/8", country_record("ZA", "AF")),  # country unmapped: its continent
    ("200.0.0.0/8", country_record("BR", "SA")),
    ("198.51.100.0/24", country_record(None, "AS", registered="SG")),  # no country
    ("100.64.0.0/10", country_record(None, "AN")),  # nothing mapped: the default
    ("2001:db8:de::/48", country_record("DE", "EU")),
    ("2001:db8:5::/48", country_record("US", "NA")),
    ("2001:db8:a5::/48", country_record("KR", "AS")),  # country unmapped: its continent
]
