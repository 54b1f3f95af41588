"""lbproxy.http.primitives: the data path's clock and bytes cuts. The main
test pass runs the compiled module (C: clock_gettime, PyBytes_FromStringAndSize),
CI's pure pass the same file as Python; both must agree with the standard
library they stand in for."""

from __future__ import annotations

import time

import lbproxy.http
from lbproxy.http import primitives


def test_the_suite_runs_the_implementation_the_data_path_runs() -> None:
    compiled = not primitives.__file__.endswith(".py")
    assert compiled == (lbproxy.http.IMPLEMENTATION == "compiled")


def test_the_clock_is_time_monotonic() -> None:
    # Deadlines set with Clock.now() are compared with time.monotonic() by the
    # ticker: another clock (CLOCK_REALTIME, or a scale error) would be off by
    # far more than the microseconds between the two reads.
    for _ in range(1000):
        before = time.monotonic()
        now = primitives.monotonic()
        after = time.monotonic()
        assert before - 1e-6 <= now <= after + 1e-6


def test_the_clock_moves_with_time() -> None:
    start = primitives.monotonic()
    time.sleep(0.05)
    elapsed = primitives.monotonic() - start
    assert 0.05 <= elapsed < 1.0


def test_cut_is_a_slice() -> None:
    data = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
    n = len(data)
    for start, stop in [(0, 0), (0, n), (n, n), (n - 5, n), (3, 9), (n - 1, n)]:
        piece = primitives.cut(data, start, stop)
        assert type(piece) is bytes
        assert piece == data[start:stop]
    assert primitives.cut(b"", 0, 0) == b""
