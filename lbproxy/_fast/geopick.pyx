# cython: language_level=3
"""A geo route's per-request choice, compiled (twin: geopick_py.py, which
says what it does). The same steps, run without a Python frame."""

from lbproxy._fast import load as _load_fast

_locate = _load_fast("cidr").locate
_locate_lines = _load_fast("cidr").locate_lines
_field_list = _load_fast("h1").field_list


cdef class GeoPick:
    cdef readonly object chooser
    # Fixed for the chooser's life, so read once: its resolver, whether that
    # trusts a header, and its orders by region code. Its pools (an admin
    # change replaces them) and the resolver's tables (a database reload)
    # are read per request.
    cdef object geo
    cdef bint by_header
    cdef tuple by_code

    def __init__(self, chooser):
        self.chooser = chooser
        self.geo = chooser.geo
        self.by_header = self.geo is not None and self.geo.header is not None
        self.by_code = tuple(chooser.by_code)

    cpdef object choose(self, object ex, object headers, object peer, object trusted,
                        object trusted_table):
        cdef object geo = self.geo
        cdef tuple order
        cdef object tables
        if geo is None:
            order = self.by_code[-1]
        else:
            tables = geo.tables
            if tables is None or (trusted and self.by_header):
                code = geo.code(peer, trusted, headers, trusted_table)
            else:  # GeoResolver.code's compiled case, without its frame
                code = _locate(
                    peer, trusted, headers, trusted_table,
                    (<tuple>tables)[0], (<tuple>tables)[1],
                )
            order = self.by_code[code]
        return self._serve(ex, order)

    cpdef object choose_lines(self, object ex, object data, object start, object stop,
                              object peer, object trusted, object trusted_table):
        """``choose`` with the request's fields as the lines at
        ``data[start:stop]``, read in place (see the twin)."""
        cdef object geo = self.geo
        cdef tuple order
        cdef object tables
        if geo is None:
            order = self.by_code[-1]
        else:
            tables = geo.tables
            if tables is None or (trusted and self.by_header):
                code = geo.code(peer, trusted, _field_list(data, start, stop), trusted_table)
            else:
                code = _locate_lines(
                    peer, trusted, data, start, stop, trusted_table,
                    (<tuple>tables)[0], (<tuple>tables)[1],
                )
            order = self.by_code[code]
        return self._serve(ex, order)

    cdef object _serve(self, object ex, tuple order):
        cdef object pools
        cdef Py_ssize_t i, n
        home, pool_name = <tuple>order[0]
        ex.region = home
        pools = self.chooser.pools
        pool = pools[pool_name]
        if pool.serving:
            return pool
        # No eligible backend at home: the first region after it that has one.
        n = len(order)
        for i in range(1, n):
            served, name = <tuple>order[i]
            other = pools[name]
            if other.serving:
                ex.served_region = served
                return other
        # None has: the home pool answers (503, or its panic mode), so the
        # failure shows where the client belongs.
        return pool
