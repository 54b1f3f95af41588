"""A geo route's per-request choice (pure-Python twin of geopick.pyx).

``GeoPick.choose`` is what ``lbproxy.routing.targets.GeoChooser`` answers
the client with on every request: the client's region's pool, or the first
pool of its failover list that has an eligible backend. It lives here so
that the compiled twin can run it without a Python frame. The chooser
keeps everything else (/api/explain, its configuration).
"""

from __future__ import annotations

from typing import Any

from lbproxy._fast import load as _load_fast

__all__ = ["GeoPick"]

_locate = _load_fast("cidr").locate
_locate_lines = _load_fast("cidr").locate_lines
_field_list = _load_fast("h1").field_list


class GeoPick:
    """``choose(ex, headers, peer, trusted, trusted_table)`` for one chooser:
    its ``geo`` (a GeoResolver, or None), ``by_code`` (per region code, the
    (region, pool name) pairs in the order tried) and ``pools``."""

    __slots__ = ("by_code", "by_header", "chooser", "geo")

    def __init__(self, chooser: Any) -> None:
        self.chooser = chooser
        # Fixed for the chooser's life, so read once: its resolver, whether
        # that trusts a header, and its orders by region code. Its pools (an
        # admin change replaces them) and the resolver's tables (a database
        # reload) are read per request.
        self.geo = chooser.geo
        self.by_header = self.geo is not None and self.geo.header is not None
        self.by_code = tuple(chooser.by_code)

    def choose(
        self, ex: Any, headers: Any, peer: bytes, trusted: bool, trusted_table: Any
    ) -> Any:
        geo = self.geo
        if geo is None:
            order = self.by_code[-1]
        else:
            tables = geo.tables
            if tables is None or (trusted and self.by_header):
                code = geo.code(peer, trusted, headers, trusted_table)
            else:  # GeoResolver.code's compiled case, without its frame
                code = _locate(peer, trusted, headers, trusted_table, tables[0], tables[1])
            order = self.by_code[code]
        return self._serve(ex, order)

    def choose_lines(
        self,
        ex: Any,
        data: bytes,
        start: int,
        stop: int,
        peer: bytes,
        trusted: bool,
        trusted_table: Any,
    ) -> Any:
        """``choose`` with the request's fields as the lines at
        ``data[start:stop]`` (a region ``h1.parse_request_lines`` found
        valid): the compiled ``cidr.locate_lines`` reads the client's
        X-Forwarded-For there, where no (name, value) list is made. A
        resolver that trusts a header of its own gets the list."""
        geo = self.geo
        if geo is None:
            order = self.by_code[-1]
        else:
            tables = geo.tables
            if tables is None or (trusted and self.by_header):
                code = geo.code(peer, trusted, _field_list(data, start, stop), trusted_table)
            else:
                code = _locate_lines(
                    peer, trusted, data, start, stop, trusted_table, tables[0], tables[1]
                )
            order = self.by_code[code]
        return self._serve(ex, order)

    def _serve(self, ex: Any, order: Any) -> Any:
        """The pool for ``order``'s region, or the first after it that serves."""
        home, pool_name = order[0]
        ex.region = home
        pools = self.chooser.pools
        pool = pools[pool_name]
        if pool.serving:
            return pool
        # No eligible backend at home: the first region after it that has one.
        for served, name in order[1:]:
            other = pools[name]
            if other.serving:
                ex.served_region = served
                return other
        # None has: the home pool answers (503, or its panic mode), so the
        # failure shows where the client belongs.
        return pool
