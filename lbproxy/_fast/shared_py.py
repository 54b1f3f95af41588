"""Counters in memory shared by worker processes (pure-Python twin of
``shared.pyx``).

A table of signed 64-bit counters laid over a writable buffer, in practice
an ``mmap`` of one memfd that the supervisor created and every worker
inherited. A column is one thing counted everywhere (a pool's requests in
flight, a backend's). Row 0 holds each column's total across all workers,
which every worker updates atomically, so ``total`` is one load; rows 1..rows
are one per worker process, each written only by its owner, and say what
that worker holds. When a worker dies with requests in flight its row still
holds them: ``clear_row`` takes them off the totals and zeroes the row before
the supervisor gives it to another worker.

The compiled twin uses the C compiler's atomic builtins for row 0. Python has
none, so this twin serialises updates of row 0 with an ``fcntl`` lock on the
shared file when it is given its descriptor (``fd``), which works across
processes; without one (a private buffer) it takes no lock.
"""

from __future__ import annotations

import fcntl

__all__ = ["Counters"]

WIDTH = 8  # bytes per counter


class Counters:
    __slots__ = ("_cells", "_fd", "cols", "rows")

    def __init__(self, buffer: object, rows: int, cols: int, fd: int = -1) -> None:
        if rows < 1 or cols < 1:
            raise ValueError(f"a table needs rows and columns, got {rows} x {cols}")
        view = memoryview(buffer)  # type: ignore[arg-type]
        if view.readonly:
            raise ValueError("the buffer must be writable")
        if view.nbytes < (rows + 1) * cols * WIDTH:
            raise ValueError(
                f"buffer of {view.nbytes} bytes is too small for {rows} rows of {cols}"
            )
        self._cells = view.cast("B").cast("q")
        self._fd = fd
        self.rows = rows
        self.cols = cols

    def _at(self, row: int, col: int) -> int:
        if not 1 <= row <= self.rows:
            raise IndexError(f"row {row} out of range 1..{self.rows}")
        if not 0 <= col < self.cols:
            raise IndexError(f"column {col} out of range for {self.cols} columns")
        return row * self.cols + col

    def _add_total(self, col: int, delta: int) -> int:
        """Add to the column's total; returns the total before."""
        if self._fd >= 0:
            fcntl.lockf(self._fd, fcntl.LOCK_EX, WIDTH, col * WIDTH)
        try:
            before: int = self._cells[col]
            self._cells[col] = before + delta
        finally:
            if self._fd >= 0:
                fcntl.lockf(self._fd, fcntl.LOCK_UN, WIDTH, col * WIDTH)
        return before

    def add(self, row: int, col: int, delta: int) -> None:
        i = self._at(row, col)
        self._cells[i] = self._cells[i] + delta
        self._add_total(col, delta)

    def try_add(self, row: int, col: int, limit: int) -> bool:
        """Add one unless the column's total is already ``limit`` or more;
        whether it was added. Two workers racing for the last unit cannot
        both get it."""
        i = self._at(row, col)
        if self._add_total(col, 1) >= limit:
            self._add_total(col, -1)
            return False
        self._cells[i] = self._cells[i] + 1
        return True

    def get(self, row: int, col: int) -> int:
        value: int = self._cells[self._at(row, col)]
        return value

    def total(self, col: int) -> int:
        if not 0 <= col < self.cols:
            raise IndexError(f"column {col} out of range for {self.cols} columns")
        value: int = self._cells[col]
        return value

    def clear_row(self, row: int) -> None:
        start = self._at(row, 0)
        for col in range(self.cols):
            held = self._cells[start + col]
            if held:
                self._add_total(col, -held)
                self._cells[start + col] = 0
