"""What sticky sessions and geo routing cost: CPU per request, side by side
with plain round robin.

    flock /tmp/bench.lock python bench/routing_cost.py [--duration 8] [--rounds 5]

One nginx backend and wrk on CPU 1; lbproxy on CPU 0 in three variants,
alternated round by round (the order reversed every other round) so drift
hits all alike:

- ``plain``: a round_robin pool of the backend;
- ``sticky``: the same pool with ``sticky: {secure: false}``. Every request
  carries a valid sticky cookie, got from a first request to that lbproxy
  (the config fixes ``cookie_key``), so every request takes the pinned path:
  find the cookie, check its seal, look the backend up;
- ``geo``: a geo route with three regions (eu, us, asia), each a pool of the
  same backend, and a top-level ``geo`` with the ~400k-network MaxMind DB of
  ``bench/geo_lookup.py`` (built once and cached in ``--cache``) and its
  ``countries`` and ``continents`` maps.

Every variant gets the same requests and the same listener, so they differ
only in the routing: ``trusted_proxies: [127.0.0.1/32]``, and wrk
(``bench/lua/random_xff.lua``, 1 thread, 50 keep-alive connections, small
responses) sends on every request an ``X-Forwarded-For`` address drawn
uniformly at random from ``--addresses`` addresses, and the sticky cookie
(a dummy of the same length where the variant has none to give). The
addresses are random hosts in the database's own networks, half IPv4 (a
random /24 of it, a random last octet) and half IPv6 (a random /48 of it,
random low 80 bits), so each one is in the database and a geo lookup almost
never repeats an address within a resolver's per-address cache.

Before timing, the script waits until the lbproxy process is idle (CPU under
2% for half a second), so that work done once after start-up (such as
building a lookup table in the background) is not counted.

Each measurement: a 2 s warm-up, then ``--duration`` seconds; lbproxy's
user+sys CPU (from /proc) divided by the requests wrk completed. Reported:
medians per variant, the ratio to ``plain``, requests/s and lbproxy's RSS
after the run. The report goes to bench/results/routing-cost-*.md.

CPU time on this kind of 2-core VM varies by ±10% between runs of the same
variant, so ``--instructions`` counts instructions instead (repeatable; it
replaces the timed runs and needs valgrind, not wrk): each variant runs once
under ``valgrind --tool=callgrind --instr-atstart=no``. The script waits
until lbproxy is idle (and, for ``geo``, until its log says the database is
flattened), sends ``--warmup-requests`` requests uncounted, switches
instrumentation on (``callgrind_control -i on PID``), sends ``--requests``
requests, switches it off again and stops lbproxy; callgrind's total over
``--requests`` is lbproxy's user-space instructions per request (kernel work
is not counted); lbproxy runs with ``PYTHONHASHSEED=0``, as the count of
``geo`` otherwise moves by up to 1.5% with Python's random hash seed. The
requests are those of the timed mode (the same
``X-Forwarded-For`` addresses, drawn with a fixed seed, and cookies), sent one
at a time on one keep-alive connection by a plain socket client; every
variant gets the same sequence.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import ipaddress
import os
import random
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.geo_db, lbproxy

import compare as cmp  # the shared tool and process plumbing
import geo_lookup  # the benchmark database

VARIANTS = ("plain", "sticky", "geo")
COOKIE = "lbp_sticky"
COOKIE_KEY = "routing-cost-bench-key"
LUA = cmp.LUA_DIR / "random_xff.lua"
# A sealed sticky value is 44 characters (lbproxy/cookies.py); the dummy the
# other variants get has the same length, so the requests are the same size.
DUMMY_COOKIE = f"{COOKIE}={'A' * 44}"
HASH_SEED = "0"  # --instructions: lbproxy's PYTHONHASHSEED


def _config(variant: str, port: int, backend_port: int, db: Path) -> str:
    backend = f'backends: [{{address: "127.0.0.1:{backend_port}"}}]'
    keepalive = f"keepalive: {{max_idle_per_backend: {cmp.IDLE_UPSTREAM}}}"
    head = f"""\
listeners:
  - name: bench
    bind: "127.0.0.1:{port}"
    trusted_proxies: ["127.0.0.1/32"]
    routes:
"""
    tail = f'access_log: {{format: off}}\ncookie_key: "{COOKIE_KEY}"\n'
    if variant == "geo":
        countries: dict[str, list[str]] = {}
        for code, region in geo_lookup.REGION_COUNTRIES:
            countries.setdefault(region, []).append(code)
        continents: dict[str, list[str]] = {}
        for code, region in geo_lookup.REGION_CONTINENTS:
            continents.setdefault(region, []).append(code)

        def flow(m: dict[str, list[str]]) -> str:
            return "{" + ", ".join(f"{r}: [{', '.join(c)}]" for r, c in m.items()) + "}"

        pools = "".join(f"  web-{r}:\n    {keepalive}\n    {backend}\n" for r in geo_lookup.REGIONS)
        return (
            head
            + """\
      - match: {path_prefix: /}
        geo:
          regions:
            eu:   {pool: web-eu,   failover: [us, asia]}
            us:   {pool: web-us,   failover: [eu, asia]}
            asia: {pool: web-asia, failover: [us, eu]}
          default: us
"""
            + f'geo:\n  database: "{db}"\n  countries: {flow(countries)}\n'
            + f"  continents: {flow(continents)}\n"
            + "pools:\n"
            + pools
            + tail
        )
    sticky = "    sticky: {secure: false}\n" if variant == "sticky" else ""
    return (
        head
        + "      - match: {path_prefix: /}\n        pool: backend\n"
        + f"pools:\n  backend:\n    {keepalive}\n    {backend}\n{sticky}"
        + tail
    )


def _cookie(port: int) -> str:
    """The Cookie header value to send: the sticky cookie lbproxy sets on a
    first request, else a dummy of the same length."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request("GET", "/")
        resp = conn.getresponse()
        resp.read()
        line = resp.getheader("Set-Cookie")
    finally:
        conn.close()
    if line is None:
        return DUMMY_COOKIE
    pair = line.split(";", 1)[0]
    if not pair.startswith(COOKIE + "=") or len(pair) != len(DUMMY_COOKIE):
        raise RuntimeError(f"unexpected Set-Cookie: {line!r}")
    return pair


def _pinned(port: int, cookie: str) -> bool:
    """Whether lbproxy takes the cookie: a valid one is not replaced."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request("GET", "/", headers={"Cookie": cookie})
        resp = conn.getresponse()
        resp.read()
        return resp.getheader("Set-Cookie") is None
    finally:
        conn.close()


def _settle(pid: int, timeout: float) -> float:
    """Wait until ``pid``'s tree is idle (under 2% CPU over 0.5 s); the
    seconds waited."""
    start = time.monotonic()
    window = 0.5
    limit = max(1, int(0.02 * window * cmp.CLK_TCK))
    while time.monotonic() - start < timeout:
        before = cmp.tree_cpu_ticks(pid)
        time.sleep(window)
        if cmp.tree_cpu_ticks(pid) - before <= limit:
            break
    return time.monotonic() - start


Run = tuple[float, float, int, float]  # CPU µs/request, req/s, RSS KiB, settle seconds


def _measure(wrk: str, variant: str, backend_port: int, work: Path, db: Path, seconds: int) -> Run:
    port = cmp.free_port()
    conf = work / f"{variant}.yaml"
    conf.write_text(_config(variant, port, backend_port, db))
    log_path = work / f"{variant}.log"
    proxy = cmp.Managed(
        f"lbproxy-{variant}",
        [sys.executable, "-m", "lbproxy", "--config", str(conf)],
        log_path,
        {0},
        cwd=cmp.REPO_ROOT,
    )
    try:
        if why := cmp.wait_ready(proxy, port, 60):
            raise RuntimeError(f"lbproxy {variant}: {why}\n{cmp.tail(log_path)}")
        cookie = _cookie(port)
        if variant == "sticky" and not _pinned(port, cookie):
            raise RuntimeError("the sticky cookie is not taken: requests would not be pinned")
        settled = _settle(proxy.pid, 120)
        os.environ["RANDOM_XFF_COOKIE"] = cookie
        url = f"http://127.0.0.1:{port}/"
        options = ["-t1", "-c50", "-s", str(LUA)]
        rps, cpu = cmp.wrk_cpu(wrk, options, url, seconds, {1}, proxy.pid, variant)
        rss = cmp.rss_kib(proxy.pid)
        return cpu, rps, rss, settled
    finally:
        proxy.stop()


Count = tuple[float, float, float]  # instructions/request, settle seconds, flatten seconds


def _flattened(log_path: Path, timeout: float) -> float:
    """Wait for the geo resolver's background flattening to end (its log
    line); the seconds it took, as lbproxy logged them."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log_path.read_text(errors="replace")
        if m := re.search(r"geo: .* flattened into .* in ([0-9.]+) s", text):
            return float(m[1])
        if "not flattened" in text:
            raise RuntimeError(f"geo: the database was not flattened\n{cmp.tail(log_path)}")
        time.sleep(0.5)
    raise RuntimeError(f"geo: not flattened after {timeout:.0f} s\n{cmp.tail(log_path)}")


def _count(
    variant: str, backend_port: int, work: Path, db: Path, addresses: list[str], warmup: int
) -> Count:
    """Instructions per request of one lbproxy under callgrind: ``addresses[:warmup]``
    uncounted, then the rest counted."""
    port = cmp.free_port()
    conf = work / f"{variant}-cg.yaml"
    conf.write_text(_config(variant, port, backend_port, db))
    name = f"lbproxy-{variant}-cg"
    proxy = cmp.start_callgrind(
        name,
        [sys.executable, "-m", "lbproxy", "--config", str(conf)],
        work,
        port,
        {0},
        instr_atstart=False,
        # Python's per-process hash seed moves geo's count by up to 1.5% run
        # to run; a fixed one makes it repeat (to 0.01%).
        env={**os.environ, "PYTHONHASHSEED": HASH_SEED},
        cwd=cmp.REPO_ROOT,
    )
    try:
        cookie = _cookie(port)
        if variant == "sticky" and not _pinned(port, cookie):
            raise RuntimeError("the sticky cookie is not taken: requests would not be pinned")
        flatten = _flattened(proxy.log_path, 600) if variant == "geo" else 0.0
        settled = _settle(proxy.pid, 300)
        head = f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        tail = f"\r\nCookie: {cookie}\r\n\r\n"
        requests = [f"{head}X-Forwarded-For: {a}{tail}".encode() for a in addresses]
        cmp.sequential_requests(port, requests[:warmup])
        cmp.callgrind_control(proxy.pid, ["-i", "on"], work)
        counted = cmp.sequential_requests(port, requests[warmup:])
        cmp.callgrind_control(proxy.pid, ["-i", "off"], work)
        return cmp.callgrind_total(proxy) / counted, settled, flatten
    finally:
        proxy.stop()


def _addresses(v4: list[int], v6: list[int], count: int, seed: int) -> list[str]:
    rnd = random.Random(seed)
    out = [
        str(ipaddress.IPv4Address(rnd.choice(v4) | rnd.getrandbits(8))) for _ in range(count // 2)
    ]
    out += [
        str(ipaddress.IPv6Address(rnd.choice(v6) | rnd.getrandbits(80)))
        for _ in range(count - count // 2)
    ]
    rnd.shuffle(out)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--duration", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--networks", type=int, default=400_000, help="in the geo database")
    ap.add_argument("--addresses", type=int, default=100_000, help="distinct client addresses")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument(
        "--keep",
        action="store_true",
        help="keep the work directory (configs, logs, callgrind files for callgrind_annotate)",
    )
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir(), "lbproxy-bench"))
    ap.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated subset")
    ap.add_argument(
        "--instructions",
        action="store_true",
        help="count instructions per request under callgrind instead of timing with wrk",
    )
    ap.add_argument("--requests", type=int, default=20_000, help="--instructions: counted")
    ap.add_argument(
        "--warmup-requests", type=int, default=2_000, help="--instructions: before counting"
    )
    ap.add_argument("--output", type=Path)
    args = ap.parse_args()
    variants = tuple(v for v in VARIANTS if v in args.variants.split(","))
    wrk = cmp.find_tool("wrk", None)
    nginx = cmp.find_tool("nginx", None)
    if nginx is None or (wrk is None and not args.instructions):
        print("needs wrk and nginx: run bench/install-tools.sh", file=sys.stderr)
        return 1
    if args.instructions and not (shutil.which("valgrind") and shutil.which("callgrind_control")):
        print("--instructions needs valgrind (Debian package valgrind)", file=sys.stderr)
        return 1
    # SIGTERM/SIGHUP unwind like Ctrl-C: the finally blocks stop every process
    # started (lbproxy, valgrind, callgrind_control and its vgdb, nginx) by pid.
    cmp.unwind_on_signals()
    started = time.monotonic()
    nginx_build = cmp.tool_output([nginx, "-V"])
    # Which data path and cidr module lbproxy will run (a stale build falls
    # back to the pure twins, which would make every figure meaningless).
    impl = cmp.tool_output(
        [
            sys.executable,
            "-c",
            "import lbproxy.http as h, lbproxy._fast as f;"
            " f.load('cidr'); print(h.IMPLEMENTATION, '--', f.describe())",
        ]
    ).strip()

    v4, v6 = geo_lookup.db_networks(args.networks, args.seed)
    args.cache.mkdir(parents=True, exist_ok=True)
    db = args.cache / f"geo-{args.networks}-{args.seed}-v{geo_lookup.DB_VERSION}.mmdb"
    if not db.exists():
        cmp.log(f"writing {db} ({args.networks} networks; once, then cached) ...")
        geo_lookup.build_database(db, v4, v6, args.seed)

    work = Path(tempfile.mkdtemp(prefix="lbproxy-routing-cost-"))
    pool = _addresses(v4, v6, args.addresses, args.seed + 2)
    addresses = work / "addresses.txt"
    addresses.write_text("\n".join(pool) + "\n")
    os.environ["RANDOM_XFF_FILE"] = str(addresses)
    results: dict[str, list[Run]] = {v: [] for v in variants}
    counts: dict[str, Count] = {}
    backend: cmp.Managed | None = None
    try:
        backend_port = cmp.free_port()
        backend = cmp.start_nginx_backend(nginx, nginx_build, work, "backend", backend_port, {1})
        if args.instructions:
            # The same draw for every variant (wrk draws uniformly; so do we, seeded).
            rnd = random.Random(args.seed + 3)
            drawn = [rnd.choice(pool) for _ in range(args.warmup_requests + args.requests)]
            for variant in variants:
                cmp.log(f"callgrind: {variant}")
                counts[variant] = _count(
                    variant, backend_port, work, db, drawn, args.warmup_requests
                )
                cmp.log(f"  {counts[variant][0]:.0f} instructions/request")
        else:
            assert wrk is not None
            for rnd_no in range(args.rounds):
                for variant in variants if rnd_no % 2 == 0 else reversed(variants):
                    cmp.log(f"round {rnd_no + 1}/{args.rounds}: {variant}")
                    run = _measure(wrk, variant, backend_port, work, db, args.duration)
                    cmp.log(f"  {run[0]:.2f} µs/request, {run[1]:.0f} req/s")
                    results[variant].append(run)
    except KeyboardInterrupt:
        cmp.log("interrupted; all started processes were stopped")
        return 130
    finally:
        if backend is not None:
            backend.stop()
        cmp.discard_work(work, args.keep)

    now = dt.datetime.now(dt.UTC)
    lines = [
        f"# Routing cost: sticky and geo vs plain round robin — {now:%Y-%m-%d %H:%M:%S} UTC",
        "",
        f"Command: `flock /tmp/bench.lock {' '.join([sys.executable, *sys.argv])}`  ",
    ]
    requests_text = (
        f" `X-Forwarded-For` (one of {args.addresses:,} random addresses inside the"
        f" database's {args.networks:,} networks, half IPv4, half IPv6, drawn uniformly per"
        " request{}) from a trusted peer, and a `Cookie`"
        " (`sticky`: the valid sticky cookie, so every request takes the pinned path;"
        " the others: a dummy of the same length).  "
    )
    if args.instructions:
        valgrind = cmp.first_line(cmp.tool_output(["valgrind", "--version"]))
        lines += [
            f"User-space instructions per request of the lbproxy process ({valgrind}"
            " `--tool=callgrind --instr-atstart=no`): for each variant, one lbproxy under"
            " callgrind; once it is idle (`geo`: after its log reports the database"
            f" flattened), {args.warmup_requests:,} requests uncounted, then instrumentation"
            f" on (`callgrind_control -i on`) for {args.requests:,} requests and off again;"
            " callgrind's total over the requests. A plain socket client sends them one at a"
            " time on one keep-alive connection; the nginx backend is on CPU 1, lbproxy on"
            f" CPU 0; `PYTHONHASHSEED={HASH_SEED}` (with a random seed, geo's count moves by up"
            " to 1.5% from run to run, plain's and sticky's by 0.01%)."
            " Every variant gets the same sequence of requests, each carrying"
            + requests_text.format(f" with a fixed seed ({args.seed + 3})"),
            f"Data path: {impl}",
            "",
            f"| variant | instructions/request | vs {variants[0]} |",
            "|---|---:|---:|",
        ]
        base_ins = counts[variants[0]][0]
        for variant in variants:
            ins = counts[variant][0]
            lines.append(f"| {variant} | {ins:,.0f} | {ins / base_ins:.3f}x |")
        lines += [
            "",
            "Wait for lbproxy (under valgrind, uninstrumented) to go idle after start-up,"
            " before counting: "
            + ", ".join(f"{v} {c[1]:.1f} s" for v, c in counts.items())
            + (
                f"; geo's background flattening took {counts['geo'][2]:.1f} s."
                if "geo" in counts
                else "."
            ),
        ]
    else:
        base = statistics.median(r[0] for r in results[variants[0]])
        lines += [
            "lbproxy on CPU 0; nginx backend and wrk (1 thread, 50 keep-alive connections, small"
            f" responses, {args.duration}s per run after a 2 s warm-up) on CPU 1; {args.rounds}"
            " rounds, variants alternated; medians. Every request of every variant carries"
            + requests_text.format(" by bench/lua/random_xff.lua"),
            f"Data path: {impl}",
            "",
            f"| variant | CPU µs/request | vs {variants[0]} | req/s | RSS MiB"
            " | runs (µs/request) |",
            "|---|---:|---:|---:|---:|---|",
        ]
        for variant in variants:
            runs = results[variant]
            cpu = statistics.median(r[0] for r in runs)
            rps = statistics.median(r[1] for r in runs)
            rss = statistics.median(r[2] for r in runs) / 1024
            each = ", ".join(f"{r[0]:.2f}" for r in runs)
            lines.append(
                f"| {variant} | {cpu:.2f} | {cpu / base:.3f}x | {rps:.0f} | {rss:.1f} | {each} |"
            )
        settle = {v: max(r[3] for r in results[v]) for v in variants}
        lines += [
            "",
            "Longest wait for lbproxy to go idle after start-up, before timing: "
            + ", ".join(f"{v} {s:.1f} s" for v, s in settle.items())
            + ".",
        ]
    lines.append(f"Run time: {time.monotonic() - started:.0f} s.")
    text = "\n".join(lines) + "\n"
    cmp.save_report(text, args.output, "routing-cost", now)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
