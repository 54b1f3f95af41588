# Stub for the compiled module; keep in step with cookie_py.py, its twin.
from collections.abc import Callable, Sequence
from typing import Any

def find_cookie(headers: Sequence[tuple[bytes, bytes]], name: bytes) -> bytes | None: ...

class CookieCache:
    name: bytes
    resolve: Callable[[bytes], tuple[Any, int]]
    size: int
    def __init__(
        self, name: bytes, resolve: Callable[[bytes], tuple[Any, int]], size: int = 4096
    ) -> None: ...
    def lookup(self, headers: Sequence[tuple[bytes, bytes]]) -> Any: ...
