# Stub for the compiled module; keep in step with h1_py.py, its twin.
from typing import Final

__all__ = [
    "ChunkedDecoder",
    "ParseError",
    "field_list",
    "parse_request_head",
    "parse_request_lines",
    "parse_response_head",
    "parse_response_lines",
]

MAX_LEADING_EMPTY_LINES: Final = 8
MAX_CHUNK_LINE: Final = 4096
MAX_CHUNK_SIZE_DIGITS: Final = 15

class ParseError(ValueError):
    """A malformed message: ``status`` is what a client should be answered
    (400, or 505 for an unsupported HTTP version); the connection closes."""

    status: int
    def __init__(self, message: str, status: int = 400) -> None: ...

def parse_request_head(
    data: bytes, pos: int
) -> tuple[int, bytes, bytes, int, list[tuple[bytes, bytes]]] | None: ...
def parse_response_head(
    data: bytes, pos: int
) -> tuple[int, int, bytes, int, list[tuple[bytes, bytes]]] | None: ...
def parse_request_lines(
    data: bytes, pos: int
) -> tuple[int, bytes, bytes, int, int, int] | None: ...
def parse_response_lines(data: bytes, pos: int) -> tuple[int, int, bytes, int, int] | None: ...
def field_list(data: bytes, start: int, stop: int) -> list[tuple[bytes, bytes]]: ...

class ChunkedDecoder:
    """Incremental decoder of one chunked body."""

    max_trailer_bytes: int
    trailers: list[tuple[bytes, bytes]]
    def __init__(self, max_trailer_bytes: int) -> None: ...
    @property
    def done(self) -> bool: ...
    def feed(self, data: bytes, pos: int) -> tuple[int, bytes, bool]: ...
