"""Active HTTP health checks: the I/O layer that probes backends.

``probe()`` runs one check on its own TCP connection: it sends a ``GET``
with ``Connection: close``, reads the response head (64 KiB at most) and,
only when a body substring is expected, up to the first 64 KiB of the body
(Content-Length, chunked or close-delimited). Connect and read together are
bounded by one timeout. Every network or protocol failure is a
``ProbeResult(ok=False, ...)`` with a short ``detail``; only cancellation (and
invalid arguments) raise.

``HealthChecker`` runs one task per target: a first probe right away (after a
random delay of up to ``jitter * interval``, so that many backends are not all
probed at once), then one every ``interval * uniform(1 - jitter, 1 + jitter)``
counted from the start of the previous probe. Probes of one target never
overlap: a probe that outlasts the interval is followed at once by the next.
Every result goes to ``on_result``; whether a backend is up or down is decided
by whoever counts those results, not here.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

__all__ = ["MAX_BODY", "MAX_HEAD", "HealthChecker", "ProbeResult", "Target", "probe"]

log = logging.getLogger("lbproxy")

MAX_HEAD = 64 * 1024  # response head(s), interim 1xx ones included
MAX_BODY = 64 * 1024  # body prefix searched for the expected substring
_READ_SIZE = 16 * 1024
_MAX_CHUNK_LINE = 4096
_USER_AGENT = "lbproxy-health-check"

_STATUS_LINE = re.compile(rb"HTTP/1\.[0-9] ([0-9]{3})(?: [^\x00-\x08\x0a-\x1f\x7f]*)?")
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_DIGITS = re.compile(rb"[0-9]{1,18}")
_CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,15}")
_FORBIDDEN_IN_REQUEST = re.compile(r"[^\x21-\x7e]")


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """The outcome of one probe; ``status`` is 0 when no status line was read."""

    ok: bool
    detail: str
    status: int = 0
    elapsed: float = 0.0


class Target(Protocol):
    """What the checker needs of a backend (the proxy passes its BackendState)."""

    @property
    def host(self) -> str: ...

    @property
    def port(self) -> int: ...

    @property
    def label(self) -> str:
        """``host:port``; the Host header when the checker is given none."""
        ...


class _Failed(Exception):
    """A probe failure found while reading the response; ``detail`` says what."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


def _check_request_part(what: str, value: str) -> None:
    if not value or _FORBIDDEN_IN_REQUEST.search(value):
        raise ValueError(f"health check {what} must be non-empty printable ASCII: {value!r}")


def _build_request(path: str, host_header: str) -> bytes:
    _check_request_part("path", path)
    _check_request_part("Host header", host_header)
    return (
        f"GET {path} HTTP/1.1\r\nHost: {host_header}\r\nUser-Agent: {_USER_AGENT}\r\n"
        "Accept: */*\r\nConnection: close\r\n\r\n"
    ).encode("ascii")


def _shown(data: bytes, limit: int = 60) -> str:
    text = data[:limit].decode("latin-1")
    return repr(text) + ("..." if len(data) > limit else "")


def _os_error(exc: OSError) -> str:
    return exc.strerror or str(exc) or type(exc).__name__


def _status_detail(status: int, expect: tuple[int, int]) -> str | None:
    """None if ``status`` is in the expected range, else why not."""
    lo, hi = expect
    if lo <= status <= hi:
        return None
    wanted = str(lo) if lo == hi else f"{lo}-{hi}"
    return f"status {status} not {'' if lo == hi else 'in '}{wanted}"


class _BodyScan:
    """The first MAX_BODY bytes of a body, searched for ``needle`` as they come."""

    __slots__ = ("body", "found", "needle")

    def __init__(self, needle: bytes) -> None:
        self.needle = needle
        self.body = bytearray()
        self.found = not needle

    @property
    def done(self) -> bool:
        return self.found or len(self.body) >= MAX_BODY

    def feed(self, data: bytes) -> None:
        # Search only where a new match can be: the tail of what came before
        # (a match may straddle reads) and the new bytes.
        start = max(0, len(self.body) - len(self.needle) + 1)
        self.body += data[: MAX_BODY - len(self.body)]
        self.found = self.body.find(self.needle, start) >= 0


class _Exchange:
    """One probe's connection and what has been read on it so far."""

    __slots__ = ("buf", "reader", "status", "writer")

    def __init__(self) -> None:
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.buf = bytearray()  # read from the socket, not yet parsed
        self.status = 0

    def close(self) -> None:
        if self.writer is not None:
            # Nothing is left to send once the request is drained, and an
            # abort closes the socket at once, whatever state the peer is in.
            self.writer.transport.abort()
            self.writer = None

    async def run(
        self,
        host: str,
        port: int,
        request: bytes,
        expect_status: tuple[int, int],
        needle: bytes | None,
        tls: ssl.SSLContext | None = None,
        tls_name: str | None = None,
    ) -> tuple[bool, str]:
        try:
            if tls is None:
                self.reader, self.writer = await asyncio.open_connection(host, port)
            else:
                self.reader, self.writer = await asyncio.open_connection(
                    host, port, ssl=tls, server_hostname=tls_name or host
                )
        except ssl.SSLError as exc:
            return False, f"TLS handshake failed: {exc.reason or exc}"
        except ConnectionRefusedError:
            return False, "connect refused"
        except OSError as exc:
            return False, f"connect failed: {_os_error(exc)}"
        try:
            self.writer.write(request)
            await self.writer.drain()
            return await self._response(expect_status, needle)
        except _Failed as exc:
            return False, exc.detail
        except (ConnectionResetError, BrokenPipeError) as exc:
            how = "reset" if isinstance(exc, ConnectionResetError) else "closed"
            where = "before a response" if self.status == 0 else "during the response body"
            return False, f"connection {how} {where}"
        except OSError as exc:
            return False, f"connection error: {_os_error(exc)}"

    async def _fill(self) -> bool:
        """Read more into ``buf``; False at end of stream."""
        assert self.reader is not None
        data = await self.reader.read(_READ_SIZE)
        self.buf += data
        return bool(data)

    async def _read_some(self, n: int) -> bytes:
        """Up to ``n`` bytes, buffered ones first; b"" at end of stream."""
        if self.buf:
            data = bytes(self.buf[:n])
            del self.buf[:n]
            return data
        assert self.reader is not None
        return await self.reader.read(min(n, _READ_SIZE))

    async def _read_head(self, budget: int) -> tuple[bytes, int]:
        """The next response head without its blank line (CRLF or bare LF lines),
        and how many bytes it took; all of it must fit in ``budget`` bytes."""
        searched = 0
        while True:
            crlf = self.buf.find(b"\n\r\n", searched)
            lf = self.buf.find(b"\n\n", searched)
            ends = [i for i in (crlf, lf) if i >= 0]
            if ends:
                end = min(ends)
                stop = end + (3 if self.buf[end + 1] == 0x0D else 2)
                if stop > budget:
                    break
                head = bytes(self.buf[: end + 1])
                del self.buf[:stop]
                return head, stop
            if len(self.buf) > budget:
                break
            searched = max(0, len(self.buf) - 2)
            if not await self._fill():
                if self.buf:
                    raise _Failed("connection closed in the middle of the response head")
                raise _Failed("connection closed before a response")
        raise _Failed(f"invalid response: head larger than {MAX_HEAD // 1024} KiB")

    async def _response(
        self, expect_status: tuple[int, int], needle: bytes | None
    ) -> tuple[bool, str]:
        budget = MAX_HEAD
        while True:
            head, used = await self._read_head(budget)
            budget -= used
            status, headers = _parse_head(head)
            # Interim responses (103 Early Hints...) precede the real one;
            # 101 is final (nothing asked to switch, so it fails the range).
            if not 100 <= status < 200 or status == 101:
                break
        self.status = status
        bad_status = _status_detail(status, expect_status)
        if bad_status is not None:
            return False, bad_status
        if needle is not None:
            scan = _BodyScan(needle)
            await self._read_body(status, headers, scan)
            if not scan.found:
                return False, f"body lacks {needle.decode('utf-8')!r}"
        return True, f"status {status}"

    async def _read_body(
        self, status: int, headers: list[tuple[bytes, bytes]], scan: _BodyScan
    ) -> None:
        if scan.done or status < 200 or status in (204, 304):
            return
        codings = [
            c.strip().lower()
            for name, value in headers
            if name == b"transfer-encoding"
            for c in value.split(b",")
            if c.strip()
        ]
        lengths = [
            v.strip()
            for name, value in headers
            if name == b"content-length"
            for v in value.split(b",")
        ]
        if codings:
            if codings[-1] == b"chunked":
                await self._read_chunked(scan)
            else:  # a response's body then ends when the connection does
                await self._read_until_close(scan)
        elif lengths:
            if any(not _DIGITS.fullmatch(v) for v in lengths) or len(set(lengths)) > 1:
                raise _Failed(f"invalid response: bad Content-Length {_shown(b', '.join(lengths))}")
            await self._read_exactly(int(lengths[0]), scan)
        else:
            await self._read_until_close(scan)

    async def _read_exactly(self, length: int, scan: _BodyScan) -> None:
        left = length
        while left > 0 and not scan.done:
            data = await self._read_some(left)
            if not data:
                raise _Failed(f"connection closed after {length - left} of {length} body bytes")
            left -= len(data)
            scan.feed(data)

    async def _read_until_close(self, scan: _BodyScan) -> None:
        while not scan.done:
            data = await self._read_some(_READ_SIZE)
            if not data:
                return
            scan.feed(data)

    async def _read_line(self) -> bytes:
        searched = 0
        while (i := self.buf.find(b"\n", searched)) < 0:
            if len(self.buf) > _MAX_CHUNK_LINE:
                raise _Failed("invalid response: chunk-size line too long")
            searched = len(self.buf)
            if not await self._fill():
                raise _Failed("connection closed in the middle of the chunked body")
        line = bytes(self.buf[:i])
        del self.buf[: i + 1]
        return line.removesuffix(b"\r")

    async def _read_chunked(self, scan: _BodyScan) -> None:
        while not scan.done:
            line = await self._read_line()
            size_text = line.split(b";", 1)[0].strip(b" \t")
            if not _CHUNK_SIZE.fullmatch(size_text):
                raise _Failed(f"invalid response: bad chunk size {_shown(line)}")
            size = int(size_text, 16)
            if size == 0:
                return  # the trailers do not matter here
            await self._read_exactly(size, scan)
            if scan.done:
                return
            if await self._read_line():
                raise _Failed("invalid response: chunk data longer than its size")


def _parse_head(head: bytes) -> tuple[int, list[tuple[bytes, bytes]]]:
    """Status and (lower-case name, value) headers of a head ending in LF."""
    lines = [line.removesuffix(b"\r") for line in head[:-1].split(b"\n")]
    m = _STATUS_LINE.fullmatch(lines[0])
    if m is None:
        raise _Failed(f"invalid response: bad status line {_shown(lines[0])}")
    headers: list[tuple[bytes, bytes]] = []
    for line in lines[1:]:
        if line[:1] in (b" ", b"\t"):
            raise _Failed("invalid response: obsolete line folding in the head")
        name, colon, value = line.partition(b":")
        if not colon or not _TOKEN.fullmatch(name) or b"\r" in value or b"\0" in value:
            raise _Failed(f"invalid response: bad header line {_shown(line)}")
        headers.append((name.lower(), value.strip(b" \t")))
    return int(m.group(1)), headers


async def probe(
    host: str,
    port: int,
    *,
    path: str,
    host_header: str,
    timeout: float,
    expect_status: tuple[int, int],
    expect_body: str | None,
    tls: ssl.SSLContext | None = None,
    tls_name: str | None = None,
) -> ProbeResult:
    """Run one health check against ``host:port``; never raises for I/O failures.

    ``ok`` means a response came within ``timeout`` (connect included), its
    status is within ``expect_status`` (inclusive) and, if ``expect_body`` is
    given, its UTF-8 bytes occur in the first 64 KiB of the body. Raises
    ``ValueError`` for a path or Host header that cannot go on a request line,
    and lets ``CancelledError`` through, after closing the connection.
    """
    request = _build_request(path, host_header)
    needle = None if expect_body is None else expect_body.encode("utf-8")
    started = time.monotonic()  # finer than uvloop's millisecond loop clock
    exchange = _Exchange()
    try:
        async with asyncio.timeout(timeout):
            ok, detail = await exchange.run(
                host, port, request, expect_status, needle, tls, tls_name
            )
    except TimeoutError:
        # Only the deadline gets here: run() turns socket errors (ETIMEDOUT
        # included) into results itself.
        ok, detail = False, f"timed out after {timeout:g}s"
    finally:
        exchange.close()
    return ProbeResult(ok, detail, exchange.status, time.monotonic() - started)


class HealthChecker:
    """Probes each target periodically and reports every result to ``on_result``."""

    def __init__(
        self,
        targets: Sequence[Target],
        *,
        path: str,
        host: str | None,
        interval: float,
        timeout: float,
        expect_status: tuple[int, int],
        expect_body: str | None,
        on_result: Callable[[Target, ProbeResult], None],
        jitter: float = 0.1,
        rng: random.Random | None = None,
        tls: ssl.SSLContext | None = None,
        tls_name: str | None = None,
    ) -> None:
        if not interval > 0:
            raise ValueError(f"health check interval must be above 0: {interval!r}")
        if not timeout > 0:
            raise ValueError(f"health check timeout must be above 0: {timeout!r}")
        if not 0 <= jitter < 1:
            raise ValueError(f"health check jitter must be in [0, 1): {jitter!r}")
        lo, hi = expect_status
        if not 100 <= lo <= hi <= 999:
            raise ValueError(f"health check expect_status is not a status range: {expect_status!r}")
        self._targets = tuple(targets)
        # Fail now rather than in every probe: the request must be sendable.
        _check_request_part("path", path)
        for target in self._targets:
            _check_request_part("Host header", host if host is not None else target.label)
        self._path = path
        self._host = host
        self._interval = interval
        self._timeout = timeout
        self._expect_status = (lo, hi)
        self._expect_body = expect_body
        self._on_result = on_result
        # With upstream_tls the checks speak TLS too, verified the same way.
        self._tls = tls
        self._tls_name = tls_name
        self._jitter = jitter
        self._rng = rng if rng is not None else random.Random()
        self._tasks: list[asyncio.Task[None]] = []
        self._running = False

    @property
    def running(self) -> bool:
        """True from ``start()`` until ``stop()`` is called."""
        return self._running

    def start(self) -> None:
        """Start one task per target on the running loop (RuntimeError if none)."""
        if self._running or self._tasks:
            raise RuntimeError("health checker already started")
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._run(target), name=f"lbproxy health check {target.label}")
            for target in self._targets
        ]
        self._running = True

    async def stop(self) -> None:
        """Cancel the tasks and wait until they are gone; calling again is harmless."""
        self._running = False
        tasks = self._tasks
        if not tasks:
            return
        for task in tasks:
            task.cancel()
        await asyncio.wait(tasks)
        if self._tasks is tasks:
            self._tasks = []
        for task in tasks:
            if not task.cancelled() and task.exception() is not None:
                log.error("health check task failed", exc_info=task.exception())

    async def _run(self, target: Target) -> None:
        loop = asyncio.get_running_loop()
        host_header = self._host if self._host is not None else target.label
        next_start = loop.time() + self._rng.uniform(0, self._jitter * self._interval)
        while True:
            delay = next_start - loop.time()
            await asyncio.sleep(delay if delay > 0 else 0)
            started = loop.time()
            try:
                result = await probe(
                    target.host,
                    target.port,
                    path=self._path,
                    host_header=host_header,
                    timeout=self._timeout,
                    expect_status=self._expect_status,
                    expect_body=self._expect_body,
                    tls=self._tls,
                    tls_name=self._tls_name,
                )
            except Exception as exc:  # a bug in probe(): report it, keep checking
                log.exception("health check probe of %s failed", target.label)
                result = ProbeResult(
                    False, f"probe error: {type(exc).__name__}: {exc}", 0, loop.time() - started
                )
            try:
                self._on_result(target, result)
            except Exception:
                log.exception("health check result handler failed for %s", target.label)
            spread = self._rng.uniform(1 - self._jitter, 1 + self._jitter)
            next_start = started + self._interval * spread
