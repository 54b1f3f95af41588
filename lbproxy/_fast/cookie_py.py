"""Finding one cookie in a request's Cookie fields (pure-Python twin of
``cookie.pyx``).

``find_cookie(headers, name)`` is the value of cookie ``name``
(case-sensitive) in the request's ``Cookie`` fields, double quotes removed;
the first one wins, field by field and pair by pair. ``None`` when absent; an
empty value is ``b""``. A pair is what lies between ``;`` separators; it
counts only with an ``=``; its name and value are stripped of ASCII
whitespace (``bytes.strip``) before the name is compared and the quotes
removed. Sticky sessions, read/write and split routes read their cookie with
it on every request, hence the compiled twin; the tests check both agree.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from time import time
from typing import Any

from lbproxy._fast.h1_py import field_list as _field_list

__all__ = ["CookieCache", "find_cookie", "find_cookie_lines"]


def find_cookie(headers: Sequence[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    for n, v in headers:
        # The substring test skips, without splitting, fields that cannot hold it.
        if len(n) == 6 and name in v and n.lower() == b"cookie":
            for pair in v.split(b";"):
                k, eq, value = pair.partition(b"=")
                if eq and k.strip() == name:
                    value = value.strip()
                    if len(value) >= 2 and value[:1] == b'"' == value[-1:]:
                        value = value[1:-1]
                    return value
    return None


def find_cookie_lines(data: bytes, start: int, stop: int, name: bytes) -> bytes | None:
    """``find_cookie`` over the field lines at ``data[start:stop]`` (a region
    that ``h1.parse_request_lines`` found valid), for a request whose fields
    are not listed: the compiled twin reads the Cookie lines in place."""
    return find_cookie(_field_list(data, start, stop), name)


class CookieCache:
    """What a request's cookie ``name`` stands for, remembered by its value.

    ``resolve(value)`` gives ``(answer, expires)`` for a value not seen
    lately: its answer (a sticky pool's backend, None for a cookie that does
    not verify) and the unix second it stops counting (0: never). The last
    ``size`` to ``2 * size`` values are remembered (two generations of dicts),
    so the cookie's signature is checked once per value, not per request;
    ``lookup`` still compares the expiry with the clock every time.
    """

    __slots__ = ("_old", "_seen", "name", "resolve", "size")

    def __init__(
        self, name: bytes, resolve: Callable[[bytes], tuple[Any, int]], size: int = 4096
    ) -> None:
        self.name = name
        self.resolve = resolve
        self.size = size
        self._seen: dict[bytes, tuple[Any, int]] = {}
        self._old: dict[bytes, tuple[Any, int]] = {}

    def lookup(self, headers: Sequence[tuple[bytes, bytes]]) -> Any:
        return self._answer(find_cookie(headers, self.name))

    def lookup_lines(self, data: bytes, start: int, stop: int) -> Any:
        """``lookup`` over the field lines at ``data[start:stop]``."""
        return self._answer(find_cookie_lines(data, start, stop, self.name))

    def _answer(self, value: bytes | None) -> Any:
        if value is None:
            return None
        hit = self._seen.get(value)
        if hit is None:
            hit = self._old.get(value)
            if hit is None:
                hit = self.resolve(value)
            if len(self._seen) >= self.size:
                self._old, self._seen = self._seen, {}
            self._seen[value] = hit
        answer, expires = hit
        if expires and time() >= expires:
            return None
        return answer
