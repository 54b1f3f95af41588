#!/usr/bin/env python3
"""Differential fuzzer: lbproxy's request handling against h11 (see fuzz/README.md).

Usage::

    python fuzz/differential.py [libFuzzer args: -runs=N -max_total_time=S ...] [corpus dirs]
    python fuzz/differential.py --replay FILE_OR_DIR...   # no atheris: check each input once

``LBPROXY_NO_EXTENSIONS=1`` fuzzes the pure-Python twins (with coverage);
``LBFUZZ_SKIP_KNOWN=1`` ignores inputs that show an already reported finding
(``known_finding``), for long exploratory runs.

Each input is the byte stream of one client connection: it is sent to a real
lbproxy (in this process), the connection is half-closed, and what a backend
behind the proxy received is compared with what h11 reads from the same bytes
(``oracle.compare``). A difference raises ``Finding``, which atheris reports
as a crash (the input is saved as ``crash-*``).

Under ``LBPROXY_NO_EXTENSIONS=1`` lbproxy runs its pure-Python twins (parser,
header scanner, data path), imported under ``atheris.instrument_imports`` so
that their coverage guides the fuzzer; otherwise the compiled modules run and
only the reference side (h11, the oracle) is instrumented.

Design choices:

* In process, on one uvloop event loop owned by the harness and driven by
  ``run_until_complete`` once per input: the proxy, the backend and the client
  all run on it, with no thread hand-offs (fast, deterministic, and an error
  in any of them surfaces here). A subprocess would cost a process round trip
  per input and hide the pure twins from atheris' coverage.
* Upstream keep-alive is off (``keepalive: {max_idle_per_backend: 0}``): every
  request the proxy forwards opens its own upstream connection, so each
  upstream connection belongs to exactly one input, the backend parses it with
  its own h11 connection, and an input is finished once the proxy has closed
  the client connection and every upstream connection it opened.
* The input is written in one piece, or (chosen by a checksum of the input,
  so replays are exact) in 2-7 pieces, to reach the incremental parsing paths.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import json
import os
import sys
import types
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    import oracle as oracle_mod

FUZZ_DIR = Path(__file__).resolve().parent
REPO = FUZZ_DIR.parent
CORPUS = FUZZ_DIR / "corpus"
DICTIONARY = FUZZ_DIR / "http.dict"

MAX_INPUT = 64 * 1024  # larger inputs are ignored (socket buffers must hold them)
CLIENT_TIMEOUT = 8.0  # the proxy must close the half-closed client connection by then
UPSTREAM_TIMEOUT = 3.0  # and every upstream connection shortly after
TUNNEL_QUIET = 0.03  # the backend ends a tunnel that has been quiet this long
_MAX_READS = 10_000

PROXY_CONFIG = """
listeners:
  - name: fuzz
    bind: "127.0.0.1:0"
    limits: {max_header_bytes: 4KiB, max_headers: 40, max_body_bytes: 2KiB}
    timeouts: {header: 5s, body: 5s, idle: 5s}
    routes:
      - match: {host: "example.com"}
        pool: web
      - match: {host: "*.example.net"}
        pool: web
      - match: {path_prefix: /}
        pool: web
pools:
  web:
    keepalive: {max_idle_per_backend: 0}
    timeouts: {connect: 2s, response: 5s}
    backends:
      - {address: "{backend}"}
access_log: {format: "off"}
"""

# Set by ``load``: the modules under test, imported (instrumented or not) once.
oracle: Any = None
lbproxy: Any = None


def load(instrument: bool = False) -> None:
    """Import the oracle (with h11) and lbproxy; under atheris, instrumented.

    lbproxy's data path (``lbproxy.http.client`` ...) is loaded by its own
    import finder, which sits in front of atheris' import hook, so its
    functions are instrumented afterwards (``instrument_func`` skips code that
    is already instrumented).
    """
    global oracle, lbproxy
    if oracle is not None:
        return
    if str(FUZZ_DIR) not in sys.path:
        sys.path.insert(0, str(FUZZ_DIR))
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    if not instrument:
        import oracle as o

        import lbproxy as lb

        oracle, lbproxy = o, lb
        return
    import atheris

    pure = os.environ.get("LBPROXY_NO_EXTENSIONS", "").strip().lower() in {"1", "true", "yes"}
    include = ["h11", "oracle"] + (["lbproxy"] if pure else [])
    with atheris.instrument_imports(include=include):
        import oracle as o

        import lbproxy as lb
        import lbproxy.http.client
        import lbproxy.http.exchange
        import lbproxy.http.upstream
    if pure:
        for obj in gc.get_objects():
            if isinstance(obj, types.FunctionType) and str(obj.__module__).startswith("lbproxy"):
                atheris.instrument_func(obj)
    oracle, lbproxy = o, lb


def implementation() -> str:
    """What this process's lbproxy runs: 'pure' or 'compiled', and per module."""
    load()
    from lbproxy import _fast, http

    kind = "pure" if _fast.NO_EXTENSIONS else "compiled"
    return f"{kind}: data path {http.IMPLEMENTATION}; {_fast.describe()}"


class Finding(AssertionError):
    """The proxy forwarded something that does not mean what the client sent."""


# --- the backend --------------------------------------------------------------


class BackendConnection(asyncio.Protocol):
    """One upstream connection from the proxy."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.parser = oracle.BackendParser()
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self._quiet: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        self.backend.accepted(self)

    def data_received(self, data: bytes) -> None:
        answer = self.parser.feed(data)
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if answer:
            transport.write(answer)
        if self.parser.tunnel is not None:
            # No end in sight for a tunnel: close it once it has been quiet.
            if self._quiet is not None:
                self._quiet.cancel()
            self._quiet = asyncio.get_running_loop().call_later(TUNNEL_QUIET, transport.close)
        elif self.parser.closing:
            transport.close()

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._quiet is not None:
            self._quiet.cancel()


class Backend:
    """Every upstream connection accepted during the current input, in order."""

    def __init__(self) -> None:
        self.conns: list[BackendConnection] = []

    def accepted(self, conn: BackendConnection) -> None:
        self.conns.append(conn)

    def take(self) -> list[BackendConnection]:
        conns, self.conns = self.conns, []
        return conns

    def open(self) -> int:
        return sum(not c.closed for c in self.conns)


# --- the harness ---------------------------------------------------------------


@dataclass
class Outcome:
    data: bytes
    response: bytes  # what the client got back
    conns: list[Any]  # oracle.BackendParser per upstream connection
    backend_address: bytes
    problems: list[str] = field(default_factory=list)  # harness-level (hangs)

    def forwarded(self) -> oracle_mod.Forwarded:
        return oracle.Forwarded(self.conns, self.backend_address)


def segments(data: bytes) -> list[bytes]:
    """How ``data`` is written: whole, or cut where a checksum of it says."""
    crc = zlib.crc32(data)
    if crc & 1 or len(data) < 2:
        return [data]
    cuts: set[int] = set()
    state = crc >> 1
    for _ in range(1 + (crc >> 8) % 6):
        state = (state * 1103515245 + 12345) & 0x7FFFFFFF
        cuts.add(1 + state % (len(data) - 1))
    bounds = [0, *sorted(cuts), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


class Harness:
    """A backend and an lbproxy in front of it, on a private uvloop loop."""

    def __init__(self) -> None:
        load()
        import uvloop

        self.loop = uvloop.new_event_loop()
        self.backend = Backend()
        self.server: asyncio.AbstractServer | None = None
        self.proxy: Any = None
        self.port = 0
        self.backend_address = b""
        try:
            self.loop.run_until_complete(self._start())
        except BaseException:
            self.close()
            raise

    async def _start(self) -> None:
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(
            lambda: BackendConnection(self.backend),
            "127.0.0.1",
            0,
        )
        port = self.server.sockets[0].getsockname()[1]
        self.backend_address = f"127.0.0.1:{port}".encode()
        config = lbproxy.parse_config(
            PROXY_CONFIG.replace("{backend}", self.backend_address.decode())
        )
        self.proxy = lbproxy.Proxy(config)
        await self.proxy.start()
        self.port = next(iter(self.proxy.addresses().values()))[1]

    def close(self) -> None:
        if self.loop.is_closed():
            return
        self.loop.run_until_complete(self._stop())
        self.loop.close()

    async def _stop(self) -> None:
        if self.proxy is not None:
            await self.proxy.stop(timeout=1)
        for c in self.backend.take():
            if c.transport is not None:
                c.transport.close()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
        await asyncio.sleep(0)

    def __enter__(self) -> Harness:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def run(self, data: bytes) -> Outcome:
        return self.loop.run_until_complete(self._one(data))

    async def _one(self, data: bytes) -> Outcome:
        self.backend.take()
        loop = asyncio.get_running_loop()
        problems: list[str] = []
        chunks: list[bytes] = []
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        try:
            with contextlib.suppress(OSError):
                pieces = segments(data)
                for i, piece in enumerate(pieces):
                    writer.write(piece)
                    if i + 1 < len(pieces):
                        await writer.drain()
                        await asyncio.sleep(0)
                        await asyncio.sleep(0)
                writer.write_eof()
            deadline = loop.time() + CLIENT_TIMEOUT
            for _ in range(_MAX_READS):
                left = deadline - loop.time()
                if left <= 0:
                    problems.append(
                        f"the proxy kept the half-closed client connection open {CLIENT_TIMEOUT}s"
                    )
                    break
                try:
                    chunk = await asyncio.wait_for(reader.read(65536), left)
                except TimeoutError:
                    continue  # the deadline check above reports it
                except OSError:
                    break  # a reset closes it too
                if not chunk:
                    break
                chunks.append(chunk)
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        # Every upstream connection of this input must be closed (and none
        # left waiting to be accepted: they would show up after a loop turn).
        deadline = loop.time() + UPSTREAM_TIMEOUT
        settled = 0
        while settled < 3:
            if loop.time() > deadline:
                problems.append(f"upstream connection still open {UPSTREAM_TIMEOUT}s later")
                break
            if self.backend.open():
                settled = 0
                await asyncio.sleep(0.001)
            else:
                settled += 1
                await asyncio.sleep(0)  # one loop turn, with a poll for new connections
        conns = self.backend.take()
        for c in conns:
            if not c.closed and c.transport is not None:
                c.transport.abort()
        return Outcome(
            data, b"".join(chunks), [c.parser for c in conns], self.backend_address, problems
        )


def check(harness: Harness, data: bytes) -> tuple[Outcome, Any, list[str]]:
    """Run ``data`` through the proxy; (outcome, REF, problems)."""
    outcome = harness.run(data)
    ref = oracle.parse_reference(data)
    problems = outcome.problems + oracle.compare(ref, outcome.forwarded())
    return outcome, ref, problems


# Findings reported but not fixed yet are recognised by ``known_finding``: with
# LBFUZZ_SKIP_KNOWN=1 an input showing one of them is not raised, so that a
# long run keeps exploring instead of stopping at the first shallow repeat.
# Coarse on purpose (the whole input is skipped): never set it in the tests.
def known_finding(ref: Any, outcome: Outcome) -> str | None:
    """The name of a known, not yet fixed finding this input shows, or None.

    Empty: the six findings of the first runs (fuzz/README.md) are fixed, and
    their inputs are ordinary seeds now. A new finding that cannot be fixed at
    once gets a check here so that long exploratory runs can look past it."""
    del ref, outcome
    return None


def report(data: bytes, outcome: Outcome, ref: Any, problems: list[str]) -> str:
    lines = [f"input ({len(data)} bytes): {data[:600]!r}"]
    lines += [f"  PROBLEM: {p}" for p in problems]
    lines.append(f"  h11 read {len(ref.requests)} request(s), then: {ref.stop}")
    for i, r in enumerate(ref.requests[:4]):
        lines.append(f"    REF[{i}] {r.describe()[:400]}")
    for i, r in enumerate(outcome.forwarded().requests[:4]):
        lines.append(f"    FWD[{i}] {r.describe()[:400]}")
    lines.append(f"  client got: {outcome.response[:300]!r}")
    return "\n".join(lines)


# --- entry points ------------------------------------------------------------------


def replay(paths: list[str]) -> int:
    """Check each input file once; one JSON line per input; exit status 1 on findings."""
    files: list[Path] = []
    for p in map(Path, paths):
        files += sorted(f for f in p.iterdir() if f.is_file()) if p.is_dir() else [p]
    failed = 0
    with Harness() as harness:
        for f in files:
            data = f.read_bytes()[:MAX_INPUT]
            outcome, ref, problems = check(harness, data)
            failed += bool(problems)
            print(
                json.dumps(
                    {
                        "input": f.name,
                        "ok": not problems,
                        "problems": problems,
                        "ref": len(ref.requests),
                        "fwd": len(outcome.forwarded().requests),
                    }
                ),
                flush=True,
            )
    print(f"{len(files)} inputs, {failed} with findings ({implementation()})", file=sys.stderr)
    return 1 if failed else 0


def fuzz(argv: list[str]) -> None:
    import atheris

    load(instrument=True)
    harness = Harness()
    skip_known = os.environ.get("LBFUZZ_SKIP_KNOWN", "") == "1"
    skipped: dict[str, int] = {}

    def test_one_input(data: bytes) -> None:
        if len(data) > MAX_INPUT:
            return
        outcome, ref, problems = check(harness, data)
        if problems:
            known = known_finding(ref, outcome) if skip_known else None
            if known is not None:
                n = skipped[known] = skipped.get(known, 0) + 1
                if n in (1, 10, 100, 1000, 10000):  # libFuzzer exits without atexit hooks
                    print(f"known finding skipped ({n}x): {known}", file=sys.stderr)
                return
            raise Finding(report(data, outcome, ref, problems))

    if not any(a.startswith("-dict=") for a in argv) and DICTIONARY.exists():
        argv = [*argv, f"-dict={DICTIONARY}"]
    print(f"lbproxy under test: {implementation()}", file=sys.stderr)
    atheris.Setup(argv, test_one_input)
    atheris.Fuzz()


def main() -> int:
    argv = sys.argv
    if len(argv) > 1 and argv[1] == "--replay":
        return replay(argv[2:] or [str(CORPUS)])
    fuzz(argv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
