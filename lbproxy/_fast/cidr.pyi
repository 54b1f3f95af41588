# Stub for the compiled module; keep in step with cidr_py.py, its twin.
# The compiled module re-exports the twin's limit.
from collections.abc import Iterable, Sequence

from lbproxy._fast.cidr_py import MAX_VALUE as MAX_VALUE

def canonical(ip: bytes | str) -> str | None: ...

class CidrTable:
    def __init__(self, entries: Iterable[tuple[str, int]]) -> None: ...
    @classmethod
    def from_ranges(
        cls,
        v4: tuple[Sequence[int], Sequence[int]],
        v6: tuple[Sequence[int], Sequence[int]],
    ) -> CidrTable: ...
    def __len__(self) -> int: ...
    def lookup(self, ip: bytes | str) -> int: ...

def forwarded_client(
    peer: bytes, headers: Sequence[tuple[bytes, bytes]], trusted: CidrTable | None
) -> bytes: ...
def locate_lines(
    peer: bytes,
    trusted: bool,
    data: bytes,
    start: int,
    stop: int,
    trusted_table: CidrTable | None,
    first: CidrTable | None,
    second: CidrTable | None,
) -> int: ...
def locate(
    peer: bytes,
    trusted: bool,
    headers: Sequence[tuple[bytes, bytes]],
    trusted_table: CidrTable | None,
    first: CidrTable | None,
    second: CidrTable | None,
) -> int: ...
