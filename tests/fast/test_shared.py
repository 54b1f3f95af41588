"""``shared.Counters``: per-worker rows of counters and their totals over a
shared buffer. Both twins run the same cases; some share the table with
other processes through a memfd, as the supervisor and its workers do."""

from __future__ import annotations

import mmap
import os
import subprocess
import sys
from collections.abc import Callable
from types import ModuleType

import pytest

FastImpl = Callable[[str], ModuleType]
pytestmark = pytest.mark.parametrize("fast_impl", ["compiled", "pure"], indirect=True)


def _impl(mod: ModuleType) -> str:
    return "pure" if mod.__name__.endswith("_py") else "compiled"


def test_rows_and_totals(fast_impl: FastImpl) -> None:
    t = fast_impl("shared").Counters(bytearray(4 * 4 * 8), 3, 4)
    assert (t.rows, t.cols) == (3, 4)
    t.add(1, 1, 5)
    t.add(2, 1, 2)
    t.add(3, 1, -1)
    t.add(3, 3, 7)
    assert [t.get(r, 1) for r in (1, 2, 3)] == [5, 2, -1]
    assert t.total(1) == 6 and t.total(3) == 7 and t.total(0) == 0
    t.clear_row(1)  # a worker died holding 5: they leave the total
    assert t.total(1) == 1 and t.get(1, 1) == 0 and t.get(3, 3) == 7
    t.add(2, 0, 2**62)
    t.add(3, 0, -(2**62))
    assert t.total(0) == 0


def test_try_add_stops_at_the_limit(fast_impl: FastImpl) -> None:
    t = fast_impl("shared").Counters(bytearray(3 * 2 * 8), 2, 2)
    assert t.try_add(1, 0, 3) and t.try_add(2, 0, 3) and t.try_add(1, 0, 3)
    assert not t.try_add(2, 0, 3)
    assert t.total(0) == 3 and (t.get(1, 0), t.get(2, 0)) == (2, 1)
    t.add(1, 0, -1)
    assert t.try_add(2, 0, 3) and t.total(0) == 3
    assert not t.try_add(1, 1, 0)  # a limit of 0 admits nothing
    assert t.total(1) == 0


def test_bounds_and_buffers(fast_impl: FastImpl) -> None:
    Counters = fast_impl("shared").Counters
    t = Counters(bytearray(3 * 2 * 8), 2, 2)
    for row, col in ((0, 0), (3, 0), (1, 2), (-1, 0), (1, -1)):
        with pytest.raises(IndexError):
            t.add(row, col, 1)
        with pytest.raises(IndexError):
            t.get(row, col)
        with pytest.raises(IndexError):
            t.try_add(row, col, 5)
    for col in (2, -1):
        with pytest.raises(IndexError):
            t.total(col)
    with pytest.raises(IndexError):
        t.clear_row(0)
    with pytest.raises(ValueError, match="too small"):
        Counters(bytearray(47), 2, 2)
    with pytest.raises(ValueError, match="writable"):
        Counters(bytes(48), 2, 2)
    with pytest.raises(ValueError):
        Counters(bytearray(48), 0, 2)


CHILD = """
import mmap, sys
from lbproxy import _fast
fd, impl, row, n = (int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
mod = _fast.load_compiled("shared") if impl == "compiled" else _fast.load_pure("shared")
t = mod.Counters(mmap.mmap(fd, 5 * 8 * 8), 4, 8, fd)
for _ in range(n):
    t.add(row, 3, 1)
got = sum(t.try_add(row, 5, 10) for _ in range(20))
print(got)
"""


def test_workers_do_not_lose_each_others_updates(fast_impl: FastImpl) -> None:
    mod = fast_impl("shared")
    fd = os.memfd_create("lbproxy-test")
    try:
        os.ftruncate(fd, 5 * 8 * 8)
        t = mod.Counters(mmap.mmap(fd, 5 * 8 * 8), 4, 8, fd)
        t.add(1, 3, 10)
        n = 20000 if _impl(mod) == "compiled" else 2000
        children = [
            subprocess.Popen(
                [sys.executable, "-c", CHILD, str(fd), _impl(mod), str(row), str(n)],
                pass_fds=[fd],
                stdout=subprocess.PIPE,
            )
            for row in (2, 3)
        ]
        won = [int(c.communicate(timeout=120)[0]) for c in children]
        assert all(c.returncode == 0 for c in children)
        # Every increment of both processes is in the total, at once.
        assert t.total(3) == 10 + 2 * n
        assert (t.get(2, 3), t.get(3, 3)) == (n, n)
        # Two processes racing for 10 places: exactly 10 were handed out.
        assert sum(won) == 10 and t.total(5) == 10
        t.clear_row(2)
        assert t.total(3) == 10 + n and t.total(5) == 10 - won[0]
    finally:
        os.close(fd)
