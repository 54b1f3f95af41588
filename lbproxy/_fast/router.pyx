# cython: language_level=3, embedsignature=True, autotestdict=False
"""First-match routing, compiled. ``router_py.py`` is the pure twin and the
reference: read it for what a route matches. The same checks in the same
order, on typed fields, so a request that matches the first route (the
common case: one catch-all route, or a handful) costs a few C comparisons
and no allocation; the answer tuple is made once per route."""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from libc.string cimport memcmp

from lbproxy._fast.router_py import normalise_host

__all__ = ["Router", "normalise_host"]


cdef inline bint _starts(bytes s, bytes prefix) noexcept:
    cdef Py_ssize_t n = PyBytes_GET_SIZE(prefix)
    return PyBytes_GET_SIZE(s) >= n and memcmp(PyBytes_AS_STRING(s), PyBytes_AS_STRING(prefix), n) == 0


cdef inline bint _ends(bytes s, bytes suffix) noexcept:
    cdef Py_ssize_t n = PyBytes_GET_SIZE(suffix), m = PyBytes_GET_SIZE(s)
    return m >= n and memcmp(PyBytes_AS_STRING(s) + m - n, PyBytes_AS_STRING(suffix), n) == 0


cdef bint _headers_match(dict hdrs, tuple wanted) except -1:
    for n, v in wanted:
        if hdrs.get(n) != v:
            return False
    return True


cdef class _Compiled:
    cdef bytes exact_host
    cdef bytes suffix
    cdef bytes prefix
    cdef object methods  # frozenset of bytes, or None
    cdef tuple headers
    cdef tuple answer

    def __init__(self, route, target):
        m = route.match
        self.exact_host = None
        self.suffix = None
        if m.host is not None:
            h = m.host.lower().encode()
            if h.startswith(b"*."):
                self.suffix = h[1:]
            else:
                self.exact_host = h
        self.prefix = m.path_prefix.encode() if m.path_prefix and m.path_prefix != "/" else None
        self.methods = frozenset(x.encode() for x in m.methods) if m.methods else None
        self.headers = tuple((n.lower().encode(), v.encode()) for n, v in m.headers)
        self.answer = (route, target)


cdef class Router:
    """Maps a request to the target of the first matching route; see the twin."""

    cdef list _routes
    cdef readonly bint needs_headers
    cdef bint _needs_host
    cdef frozenset _exact
    cdef tuple _suffixes

    def __init__(self, routes):
        self._routes = [_Compiled(r, t) for r, t in routes]
        self.needs_headers = any((<_Compiled>c).headers for c in self._routes)
        self._needs_host = any(
            (<_Compiled>c).exact_host or (<_Compiled>c).suffix for c in self._routes
        )
        self._exact = frozenset(
            (<_Compiled>c).exact_host for c in self._routes if (<_Compiled>c).exact_host
        )
        self._suffixes = tuple(
            (<_Compiled>c).suffix for c in self._routes if (<_Compiled>c).suffix
        )

    @classmethod
    def __class_getitem__(cls, item):
        """Subscriptable like the twin's Generic class (``Router[Any]``)."""
        return cls

    def serves_host(self, bytes host):
        if host in self._exact:
            return True
        for s in self._suffixes:
            if _ends(host, s) and len(host) > len(s):
                return True
        return False

    def match(self, bytes host, bytes path, bytes method, list headers):
        """``host`` as the client sent it (normalised here, when a route needs
        it); ``headers`` may be None unless ``needs_headers``."""
        cdef _Compiled c
        cdef dict hdrs = None
        if self._needs_host:
            host = normalise_host(host)
        if self.needs_headers:
            if headers is None:
                raise TypeError("this router matches on headers: pass them")
            hdrs = {}
            for n, v in headers:
                hdrs.setdefault(n.lower(), v)
        for c in self._routes:
            if c.exact_host is not None and host != c.exact_host:
                continue
            if c.suffix is not None and not (
                _ends(host, c.suffix) and PyBytes_GET_SIZE(host) > PyBytes_GET_SIZE(c.suffix)
            ):
                continue
            if c.prefix is not None and not _starts(path, c.prefix):
                continue
            if c.methods is not None and method not in c.methods:
                continue
            if c.headers and not _headers_match(hdrs, c.headers):
                continue
            return c.answer
        return None
