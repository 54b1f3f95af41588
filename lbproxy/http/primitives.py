"""The few operations the data path does on every request that are cheaper
in C than through Python's API: reading the monotonic clock and cutting a
bytes object.

Compiled, each is a few C calls; from compiled code, ``time.monotonic()`` is a
module lookup, a Python call and a float object, and ``data[a:b]`` builds a
slice object and two ints before it copies anything. A request reads the clock
about five times (header deadline, start, response deadline, idle pool, idle
deadline) and cuts its response body out of the read that also holds the head.

They are static methods of classes, not module functions: the other data path
modules import a class by name in the pure twin and cimport it when compiled,
which Cython allows for a class but not for a function. The C names used below
(``clock_gettime``, ``PyBytes_FromStringAndSize`` ...) come from
primitives.pxd and exist only compiled, where ``_COMPILED`` is true.
"""

from __future__ import annotations

import time

try:
    import cython  # type: ignore[import-untyped,import-not-found,unused-ignore]

    _COMPILED = cython.compiled
except ImportError:  # no Cython installed: this is the pure twin
    _COMPILED = False


class Clock:
    __slots__ = ()

    @staticmethod
    def now() -> float:
        """Seconds on the monotonic clock: ``time.monotonic()``, which the
        proxy's ticker compares deadlines with. Compiled, CLOCK_MONOTONIC read
        with ``clock_gettime``, the clock ``time.monotonic`` reads on Linux."""
        if _COMPILED:
            clock_gettime(CLOCK_MONOTONIC, cython.address(ts))  # type: ignore[name-defined]  # noqa: F821
            return ts.tv_sec + ts.tv_nsec * 1e-9  # type: ignore[name-defined,no-any-return]  # noqa: F821
        return time.monotonic()


class Bytes:
    __slots__ = ()

    @staticmethod
    def cut(data: bytes, start: int, stop: int) -> bytes:
        """``data[start:stop]`` for ``0 <= start <= stop <= len(data)``, which
        the caller guarantees (compiled, nothing checks it)."""
        if _COMPILED:
            return PyBytes_FromStringAndSize(PyBytes_AS_STRING(data) + start, stop - start)  # type: ignore[name-defined,no-any-return]  # noqa: F821
        return data[start:stop]


def monotonic() -> float:
    """``Clock.now()`` for Python callers (a compiled static method is C only)."""
    return Clock.now()


def cut(data: bytes, start: int, stop: int) -> bytes:
    """``Bytes.cut`` for Python callers."""
    return Bytes.cut(data, start, stop)
