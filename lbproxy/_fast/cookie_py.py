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

from collections.abc import Sequence

__all__ = ["find_cookie"]


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
