"""Which certificate answers a server name: exact names first, then wildcards.

A wildcard ``*.example.com`` covers exactly one label (``a.example.com``, not
``example.com`` nor ``a.b.example.com``), as RFC 6125 section 6.4.3 has clients check it.
Names compare case-insensitively; a trailing dot is ignored. The table is immutable,
so a reload builds a new one and swaps the reference.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Generic, TypeVar

T = TypeVar("T")


def normalize(name: str) -> str:
    return name.strip().rstrip(".").lower()


class NameTable(Generic[T]):
    """Server name -> value; the first entry claiming a name keeps it."""

    __slots__ = ("_exact", "_wildcard")

    def __init__(self, entries: Iterable[tuple[Iterable[str], T]]) -> None:
        exact: dict[str, T] = {}
        wildcard: dict[str, T] = {}
        for names, value in entries:
            for raw in names:
                name = normalize(raw)
                if name.startswith("*."):
                    wildcard.setdefault(name[2:], value)
                elif name:
                    exact.setdefault(name, value)
        self._exact = exact
        self._wildcard = wildcard

    def lookup(self, server_name: str | None) -> T | None:
        if not server_name:
            return None
        name = normalize(server_name)
        found = self._exact.get(name)
        if found is not None:
            return found
        label, dot, parent = name.partition(".")
        if not label or not dot or not parent:
            return None
        return self._wildcard.get(parent)
