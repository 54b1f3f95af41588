# Stub for the compiled module; keep in step with logline_py.py, its twin.

def json_str(value: bytes) -> bytes: ...
def json_line(
    stamp: bytes,
    where: bytes,
    client: bytes,
    method: bytes,
    host: bytes,
    path: bytes,
    status: int,
    resp_bytes: int,
    body_in: int,
    duration_ms: float,
    connect_ms: float,
    response_ms: float,
    user_agent: bytes,
    referer: bytes,
    request_id: bytes,
    traceparent: bytes,
    tries: int,
    reason: bytes,
) -> bytes: ...
