"""Shard routing: which pool owns a request's key, and weighted splits.

Theory of operation
-------------------
A ``shard:`` route sends each request to the pool that holds its data, named
by a key taken from the request (``lbproxy.balance.keys``). Three strategies:

hash
    ``jump_hash`` (Lamping and Veach, "A Fast, Minimal Memory, Consistent Hash
    Algorithm", 2014) of the key's 64-bit BLAKE2b hash over the list of pools.
    Appending a pool to the list moves only the keys that now belong to it,
    about 1/(N+1) of them; nothing moves between the old pools. Removing or
    reordering pools reshuffles almost everything, so shard lists only grow
    at the end. The mapping is frozen: ``jump_hash(int.from_bytes(
    blake2b(key, digest_size=8).digest(), "little"), len(pools))`` is what a
    migration script computes to find a key's shard, in any process, on any
    version of lbproxy.
range
    The key read as a non-negative base-10 integer (at most 19 ASCII digits,
    leading zeros allowed); ranges ascend with exclusive upper bounds, so a
    key equal to a bound belongs to the next range. The last range may be
    open-ended.
directory
    A CSV file of ``key,pool`` lines, for keys placed by hand (tenants moved
    one at a time). The file is the source of truth: other workers and later
    starts read it, so the admin API's changes are written to it (replaced
    atomically) and changes made to it by others are picked up by polling.

A key that maps nowhere is not an error of the request's making to hide: the
chooser says why (no key, not an integer, in no range, not in the directory)
and the caller answers with that reason instead of guessing a shard.

``WeightedChoice`` is the ``split:`` route's pick (canary releases): by a
uniform random number for a fresh client, or by a stable hash of a client key
so that a client without a cookie still keeps its side.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import tempfile
import threading
from bisect import bisect_right
from collections.abc import Collection, Mapping, Sequence
from itertools import accumulate

from lbproxy.balance.keys import KeyOf, key_extractor
from lbproxy.config.model import ShardRange, ShardTarget

__all__ = [
    "Directory",
    "DirectoryError",
    "RangeTable",
    "ShardChooser",
    "WeightedChoice",
    "hash_pool",
    "jump_hash",
    "key_hash",
    "parse_range_key",
]

log = logging.getLogger("lbproxy")

_MASK64 = (1 << 64) - 1
_MAX_DIGITS = 19  # below 2**63: a key no int64 column could hold is no shard key


def key_hash(key: bytes) -> int:
    """A stable unsigned 64-bit hash of ``key``: the same in every process
    and release (Python's ``hash()`` is salted per process)."""
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "little")


def jump_hash(key: int, buckets: int) -> int:
    """The bucket in ``range(buckets)`` of the 64-bit ``key`` (jump consistent hash)."""
    if buckets <= 0:
        raise ValueError(f"buckets must be positive, got {buckets}")
    key &= _MASK64
    b, j = -1, 0
    while j < buckets:
        b = j
        key = (key * 2862933555777941757 + 1) & _MASK64
        # Doubles, as in the paper's C++: the same buckets as every other port.
        # (key >> 33) + 1 is below 2**31, so its conversion to double is exact.
        j = int((b + 1) * (2147483648.0 / ((key >> 33) + 1)))
    return b


def hash_pool(key: bytes, pools: Sequence[str]) -> str:
    """The pool of ``pools`` that owns ``key`` under the ``hash`` strategy."""
    return pools[jump_hash(key_hash(key), len(pools))]


def parse_range_key(key: bytes) -> int | None:
    """``key`` as a range key: 1 to 19 ASCII digits, else ``None``."""
    # bytes.isdigit() is ASCII-only, unlike int(), which also takes
    # whitespace, '_', signs and other scripts' digits.
    if 0 < len(key) <= _MAX_DIGITS and key.isdigit():
        return int(key)
    return None


class RangeTable:
    """Integer keys to pools by ascending ranges with exclusive ``upto``."""

    __slots__ = ("_bounds", "_pools")

    def __init__(self, ranges: Sequence[ShardRange]) -> None:
        if not ranges:
            raise ValueError("a range table needs at least one range")
        bounds: list[int] = []
        for i, r in enumerate(ranges):
            if r.upto is None:
                if i != len(ranges) - 1:
                    raise ValueError(f"ranges[{i}]: only the last range may omit upto")
                continue
            if bounds and r.upto <= bounds[-1]:
                raise ValueError(
                    f"ranges[{i}]: upto {r.upto} must be above the previous {bounds[-1]}"
                )
            if r.upto <= 0:
                raise ValueError(f"ranges[{i}]: upto must be positive, got {r.upto}")
            bounds.append(r.upto)
        self._bounds = tuple(bounds)
        self._pools = tuple(r.pool for r in ranges)

    def pool_for_int(self, n: int) -> str | None:
        i = bisect_right(self._bounds, n)
        # With a closed last range there is one pool per bound, and keys at or
        # above the last bound fall off the end.
        return self._pools[i] if i < len(self._pools) else None

    def pool_for(self, key: bytes) -> str | None:
        n = parse_range_key(key)
        return None if n is None else self.pool_for_int(n)


class DirectoryError(ValueError):
    """A directory file that cannot be read or does not parse."""


# What tells a file changed without reading it, or None: "unknown, read it
# again next poll". The ctime is in because nothing can set it back: a file
# replaced by one of the same size, whose inode number was reused and whose
# mtime was set to the old one's still differs there.
_Signature = tuple[int, int, int, int, int] | None


def _signature(st: os.stat_result) -> tuple[int, int, int, int, int]:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _check_entry(key: str, pool: str) -> str | None:
    """Why ``key,pool`` cannot be a line of a directory file, or None."""
    for what, text in (("key", key), ("pool", pool)):
        if not text:
            return f"empty {what}"
        if text != text.strip() or "," in text or not text.isprintable():
            return f"{what} {text!r} has a comma, a control character or surrounding spaces"
    if key.startswith("#"):
        return f"key {key!r} starts with '#', which would make the line a comment"
    return None


class Directory:
    """A ``key,pool`` CSV file, looked up in memory and kept in step with disk.

    The file holds one ``key,pool`` pair per line; blank lines and lines whose
    first non-space character is ``#`` are ignored, spaces around key and pool
    are dropped. There is no quoting: keys and pools hold no commas. A key
    listed twice, a line without exactly one comma, or (with ``known_pools``)
    a pool the config does not define makes the whole file invalid.

    Lookups (``pool_for``) are lock-free and may run beside ``set``,
    ``delete`` and ``maybe_reload`` on another thread (those do file I/O and
    belong in an executor when the file is large): they swap in a new dict.
    """

    def __init__(
        self, path: str, known_pools: Collection[str] | None = None, poll: float = 1.0
    ) -> None:
        self.path = path
        self.poll = poll
        self._known = None if known_pools is None else frozenset(known_pools)
        self._lock = threading.Lock()
        self._checked = float("-inf")
        self._stat_failed = False
        self._map: dict[bytes, str] = {}
        self._sig: _Signature = None
        self._map, self._sig = self._load()

    # -- reading -----------------------------------------------------------

    def pool_for(self, key: bytes) -> str | None:
        return self._map.get(key)

    def entries(self) -> dict[str, str]:
        """Key to pool, in file order (for the admin API)."""
        return {k.decode(): p for k, p in self._map.items()}

    def __len__(self) -> int:
        return len(self._map)

    def _read(self) -> tuple[list[str], _Signature]:
        try:
            with open(self.path, encoding="utf-8", newline="") as f:
                before = _signature(os.fstat(f.fileno()))
                text = f.read()
                after = _signature(os.fstat(f.fileno()))
        except (OSError, UnicodeDecodeError) as exc:
            raise DirectoryError(f"{self.path}: cannot read: {exc}") from exc
        # Written to while we read (an editor saving in place): use what we
        # got, but leave the signature unknown so the next poll reads again.
        # Split on "\n" alone: str.splitlines() would also break a line at
        # characters such as U+2028 that a key may hold.
        lines = text.split("\n")
        if lines[-1] == "":
            lines.pop()
        return lines, (before if before == after else None)

    def _parse(self, lines: list[str]) -> tuple[dict[bytes, str], dict[str, int]]:
        mapping: dict[bytes, str] = {}
        line_of: dict[str, int] = {}  # key -> 0-based line index
        for i, raw in enumerate(lines):
            text = raw.strip()
            if not text or text.startswith("#"):
                continue
            where = f"{self.path} line {i + 1}"
            key, comma, pool = text.partition(",")
            key, pool = key.strip(), pool.strip()
            if not comma or "," in pool or not key or not pool:
                raise DirectoryError(f"{where}: expected 'key,pool', got {text!r}")
            if self._known is not None and pool not in self._known:
                raise DirectoryError(f"{where}: unknown pool {pool!r}{self._known_hint()}")
            if key in line_of:
                raise DirectoryError(
                    f"{where}: key {key!r} is already mapped on line {line_of[key] + 1}"
                )
            line_of[key] = i
            mapping[key.encode()] = pool
        return mapping, line_of

    def _known_hint(self) -> str:
        return f" (known pools: {', '.join(sorted(self._known))})" if self._known else ""

    def _load(self) -> tuple[dict[bytes, str], _Signature]:
        lines, sig = self._read()
        return self._parse(lines)[0], sig

    def maybe_reload(self, now: float) -> bool:
        """Reload when the file changed, checking at most every ``poll``
        seconds; True only when a new mapping was installed. A file that
        does not load leaves the old mapping serving, with a warning."""
        if now - self._checked < self.poll:
            return False
        self._checked = now
        with self._lock:
            try:
                sig = _signature(os.stat(self.path))
            except OSError as exc:
                if not self._stat_failed:  # once, not once per poll
                    log.warning(
                        "shard directory %s: cannot stat: %s; keeping the old one", self.path, exc
                    )
                    self._stat_failed = True
                return False
            self._stat_failed = False
            if sig == self._sig:
                return False
            try:
                mapping, new_sig = self._load()
            except DirectoryError as exc:
                log.warning("shard directory not reloaded, keeping the old one: %s", exc)
                # Warn once per broken version, not once per poll.
                self._sig = sig
                return False
            self._map, self._sig = mapping, new_sig
        log.info("shard directory %s reloaded: %d keys", self.path, len(mapping))
        return True

    # -- writing -----------------------------------------------------------

    def set(self, key: str, pool: str) -> None:
        """Map ``key`` to ``pool``, in memory and in the file."""
        problem = _check_entry(key, pool)
        if problem:
            raise ValueError(f"cannot map {key!r} to {pool!r}: {problem}")
        if self._known is not None and pool not in self._known:
            raise ValueError(f"unknown pool {pool!r}{self._known_hint()}")
        with self._lock:
            lines, line_of = self._current()
            line = f"{key},{pool}"
            i = line_of.get(key)
            if i is None:
                lines.append(line)
            else:
                lines[i] = line
            self._write(lines)
            mapping = dict(self._map)
            mapping[key.encode()] = pool
            self._map = mapping

    def delete(self, key: str) -> bool:
        """Unmap ``key`` in memory and in the file; False when it was not mapped."""
        with self._lock:
            lines, line_of = self._current()
            i = line_of.get(key)
            if i is None:
                return False
            del lines[i]
            self._write(lines)
            mapping = dict(self._map)
            del mapping[key.encode()]
            self._map = mapping
        return True

    def _current(self) -> tuple[list[str], dict[str, int]]:
        """The file's lines as they are on disk now, and where each key is.

        Edited in place rather than rendered from memory, so that comments and
        the order of lines survive, and so that a change someone made to the
        file since the last poll is not overwritten: it is installed first.
        A file broken on disk refuses the change instead (DirectoryError)
        rather than silently replacing the operator's unfinished edit.
        """
        try:
            lines, sig = self._read()
        except DirectoryError:
            if os.path.exists(self.path):
                raise
            # Gone: start again from what we serve.
            lines = [f"{k.decode()},{p}" for k, p in self._map.items()]
            sig = None
        mapping, line_of = self._parse(lines)
        if sig is None or sig != self._sig:
            self._map, self._sig = mapping, sig
        return lines, line_of

    def _write(self, lines: list[str]) -> None:
        directory, name = os.path.split(os.path.abspath(self.path))
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=directory)
        try:
            with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
                try:
                    # mkstemp makes the file 0600; keep the mode others read it with.
                    os.fchmod(fd, os.stat(self.path).st_mode & 0o7777)
                except FileNotFoundError:
                    os.fchmod(fd, 0o644)
                f.write("".join(line + "\n" for line in lines))
                f.flush()
                os.fsync(fd)
                os.replace(tmp, self.path)
                # After the rename, which changes the ctime, and through the
                # descriptor, so that no one else's file can be measured instead.
                sig = _signature(os.fstat(fd))
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        # The rename is durable only once the directory entry is on disk.
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        # Our own write is not a change for maybe_reload to pick up again.
        self._sig = sig


def _describe_source(target: ShardTarget) -> str:
    k = target.key
    return f"{k.source} {k.name}" if k.name else k.source


def _show(key: bytes) -> str:
    # Keys come from the request: bounded and escaped before they reach a log
    # line or an error page.
    text = key[:64].decode("latin-1")
    return repr(text + "...") if len(key) > 64 else repr(text)


class ShardChooser:
    """The pool of a ``shard:`` route's target for a request's key."""

    __slots__ = ("_directory", "_no_key", "_pools", "_ranges", "key_of", "strategy")

    def __init__(self, target: ShardTarget, directory: Directory | None = None) -> None:
        self.strategy = target.strategy
        self.key_of: KeyOf = key_extractor(target.key)
        self._pools = target.pools
        self._ranges: RangeTable | None = None
        self._directory = directory
        self._no_key = f"no shard key ({_describe_source(target)})"
        if target.strategy == "hash":
            if not target.pools:
                raise ValueError("shard strategy hash needs pools")
        elif target.strategy == "range":
            self._ranges = RangeTable(target.ranges)
        elif target.strategy == "directory":
            if directory is None:
                raise ValueError("shard strategy directory needs a Directory")
        else:
            raise ValueError(f"unknown shard strategy {target.strategy!r}")

    def choose(self, key: bytes | None) -> tuple[str | None, str]:
        """``(pool, "")``, or ``(None, why)`` when the key maps to no pool."""
        if not key:
            return None, self._no_key
        if self._ranges is not None:
            n = parse_range_key(key)
            if n is None:
                return None, f"shard key {_show(key)} is not an integer"
            pool = self._ranges.pool_for_int(n)
            return (pool, "") if pool else (None, f"shard key {_show(key)} is in no range")
        if self._directory is not None:
            pool = self._directory.pool_for(key)
            if pool is None:
                return None, f"shard key {_show(key)} is not in the directory"
            return pool, ""
        return hash_pool(key, self._pools), ""


class WeightedChoice:
    """A weighted pick among names (a ``split:`` route's pools).

    Immutable: a weight change builds a new one (``with_weights``) that the
    caller swaps in whole.
    """

    __slots__ = ("_cumulative", "_last", "_names", "items", "total")

    def __init__(self, items: Sequence[tuple[str, int]]) -> None:
        names = [name for name, _ in items]
        if len(set(names)) != len(names):
            raise ValueError(f"each name may appear once, got {names}")
        for name, weight in items:
            if not isinstance(weight, int) or weight < 0:
                raise ValueError(f"weight of {name!r} must be an integer >= 0, got {weight!r}")
        self.items: tuple[tuple[str, int], ...] = tuple(items)
        self.total = sum(w for _, w in self.items)
        if self.total <= 0:
            raise ValueError("at least one weight must be above 0")
        self._names = tuple(names)
        self._cumulative = tuple(accumulate(w for _, w in self.items))
        # Float rounding can carry r * total up to total itself; that lands
        # here, never on a weight-0 name at the end.
        self._last = max(i for i, (_, w) in enumerate(self.items) if w > 0)

    def pick(self, r: float) -> str:
        """The name that ``r``, uniform in [0, 1), falls on."""
        if not 0.0 <= r < 1.0:
            raise ValueError(f"r must be in [0, 1), got {r}")
        # bisect_right skips weight-0 names: their running sum equals the
        # previous one, which already exceeded the point if it was to be hit.
        i = bisect_right(self._cumulative, r * self.total)
        return self._names[min(i, self._last)]

    def pick_stable(self, key: bytes) -> str:
        """The same name for the same ``key`` while the weights stay.

        When weights change, only keys whose point changes side move: raising
        the last name's weight (the canary, listed last) moves clients only
        onto it.
        """
        h = int.from_bytes(
            hashlib.blake2b(key, digest_size=8, person=b"lbp-split").digest(), "little"
        )
        # Personalised apart from key_hash: a key that also picks a shard
        # would otherwise land on correlated sides of both choices.
        return self.pick((h >> 11) * (1.0 / (1 << 53)))

    def with_weights(self, weights: Mapping[str, int]) -> WeightedChoice:
        """A copy with the named weights changed (others kept)."""
        unknown = set(weights) - set(self._names)
        if unknown:
            raise ValueError(f"unknown names {sorted(unknown)}; known: {list(self._names)}")
        return WeightedChoice([(n, weights.get(n, w)) for n, w in self.items])

    def share(self, name: str) -> float:
        """The fraction of picks that go to ``name``."""
        return dict(self.items)[name] / self.total
