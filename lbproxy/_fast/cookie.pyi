# Stub for the compiled module; keep in step with cookie_py.py, its twin.
from collections.abc import Sequence

def find_cookie(headers: Sequence[tuple[bytes, bytes]], name: bytes) -> bytes | None: ...
