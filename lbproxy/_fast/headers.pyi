# Stub for the compiled module; keep in step with headers_py.py, its twin.
from typing import Final

CHUNKED: Final = 1
EXPECT_CONTINUE: Final = 2
CONN_CLOSE: Final = 4
CONN_KEEP_ALIVE: Final = 8
UPGRADE: Final = 16
HAS_CONTENT_LENGTH: Final = 32
FRAMING_CONFLICT: Final = 64

class FramingError(ValueError):
    """The message's framing is ambiguous or invalid: answer 400 and close."""

def scan_request(
    headers: list[tuple[bytes, bytes]],
    client_ip: bytes,
    trusted: bool,
    proto: bytes,
    via: bytes,
) -> tuple[bytes, bytes, int, int, bytes]: ...
def scan_request_lines(
    data: bytes,
    start: int,
    stop: int,
    client_ip: bytes,
    trusted: bool,
    proto: bytes,
    via: bytes,
) -> tuple[bytes, bytes, int, int, bytes]: ...
def scan_response(headers: list[tuple[bytes, bytes]]) -> tuple[bytes, int, int]: ...
def scan_response_lines(data: bytes, start: int, stop: int) -> tuple[bytes, int, int]: ...
def host_is_valid(host: bytes) -> bool: ...
