# Stub for the compiled module; keep in step with geopick_py.py, its twin.

from typing import Any

class GeoPick:
    chooser: Any
    def __init__(self, chooser: Any) -> None: ...
    def choose(
        self, ex: Any, headers: Any, peer: bytes, trusted: bool, trusted_table: Any
    ) -> Any: ...
    def choose_lines(
        self,
        ex: Any,
        data: bytes,
        start: int,
        stop: int,
        peer: bytes,
        trusted: bool,
        trusted_table: Any,
    ) -> Any: ...
