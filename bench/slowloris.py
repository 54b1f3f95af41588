#!/usr/bin/env python3
"""Normal traffic while slowloris clients hold connections open.

    python bench/slowloris.py [--attackers 1000] [--rate 2000] [--duration 10]

Starts an nginx backend and lbproxy (its ``lbproxy_conf`` from compare.py,
proxy pinned to CPU 0, everything else to CPU 1), then measures normal
requests at a fixed rate (wrk + ``lua/fixed_rate.lua``, as compare.py's
``latency`` scenario) twice: once with nothing else going on, once while
``--attackers`` slowloris connections are held open. Each attacker sends an
incomplete request head and one more header line every ``--drip`` seconds;
when lbproxy answers 408 and closes (``timeouts.header``), it reconnects, so
the count stays up for the whole measurement.

The attackers run on CPU 1 beside wrk and nginx (CPU 0 is the proxy's), but
in the kernel's SCHED_IDLE class and on uvloop: they get CPU 1 only when wrk
and nginx leave it idle. Before, they ran at the same priority on asyncio's
loop, and 1,000 Python coroutines dripping and reconnecting took enough of
CPU 1 to delay wrk's own sends and reads: aimed at nginx instead of lbproxy
(``--control``), that alone raised the measured p99 1.7x (results of
2026-11-29 01:27), so the ratio measured the attack tool as much as lbproxy.
The attack reaching the proxy is the same (same connections, drips and
reconnects; the report shows how many stayed open and how many 408s came
back); ``--attacker-cpu-shared`` restores the old setup for comparison.

Reports p50/p99/p99.9 of the normal requests in both phases and their ratio,
lbproxy's RSS during the attack (and its peak), how many attack connections
were open, and how many 408s they got. The hardening issue's targets: normal
p99 under the attack at most 2x its value without, RSS under 50 MiB.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import multiprocessing
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent))

import compare as cmp  # the shared tool and process plumbing

ATTACK_HEAD = b"GET / HTTP/1.1\r\nHost: bench\r\nUser-Agent: slowloris\r\n"


async def _hold(port: int, drip: float, stop_at: float, stats: dict[str, int]) -> None:
    """One attacker: keep an incomplete head open until ``stop_at``."""
    loop = asyncio.get_running_loop()
    while loop.time() < stop_at:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            stats["connect_errors"] += 1
            await asyncio.sleep(0.5)
            continue
        stats["open"] += 1
        try:
            writer.write(ATTACK_HEAD)
            n = 0
            while loop.time() < stop_at:
                # Wait for the next drip or for the proxy's answer, whichever first.
                try:
                    got = await asyncio.wait_for(reader.read(4096), drip)
                except TimeoutError:
                    n += 1
                    writer.write(b"X-Drip-%d: x\r\n" % n)
                    continue
                if b" 408 " in got[:16]:
                    stats["got_408"] += 1
                break
        except OSError:
            pass
        finally:
            stats["open"] -= 1
            writer.close()


def _attack(
    port: int, n: int, drip: float, seconds: float, report: str, idle_class: bool = True
) -> None:
    """Child process: ``n`` attackers for ``seconds``; writes a summary line to ``report``."""
    # Beside wrk and the backend, away from the proxy's CPU, and (unless
    # --attacker-cpu-shared) in the kernel's idle class: see the module docstring.
    os.sched_setaffinity(0, {1} if (os.cpu_count() or 1) > 1 else {0})
    if idle_class:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))

    async def main() -> None:
        stats = {"open": 0, "got_408": 0, "connect_errors": 0}
        loop = asyncio.get_running_loop()
        stop_at = loop.time() + seconds
        tasks = []
        for i in range(n):
            tasks.append(asyncio.create_task(_hold(port, drip, stop_at, stats)))
            if i % 100 == 99:
                await asyncio.sleep(0.05)  # don't trip the listen backlog
        peak = 0
        with open(report, "w") as out:
            while loop.time() < stop_at:
                peak = max(peak, stats["open"])
                out.write(f"open={stats['open']}\n")
                out.flush()
                await asyncio.sleep(0.5)
            await asyncio.gather(*tasks, return_exceptions=True)
            out.write(
                f"done peak_open={peak} got_408={stats['got_408']} "
                f"connect_errors={stats['connect_errors']}\n"
            )

    import uvloop  # a cheaper attacker: less of CPU 1 taken from wrk and nginx

    uvloop.run(main())


def _open_now(report: Path) -> int:
    try:
        lines = report.read_text().splitlines()
    except OSError:
        return 0
    for line in reversed(lines):
        if line.startswith("open="):
            return int(line[5:])
    return 0


def _measure(wrk: str, port: int, rate: float, seconds: int, pid: int) -> tuple[cmp.WrkResult, int]:
    args = SimpleNamespace(threads=1, connections=50, latency_connections=50, wrk_timeout=5)
    scenario = cmp.SCENARIOS["latency"]
    argv = cmp.wrk_argv(wrk, args, port, seconds, scenario, rate)  # type: ignore[arg-type]
    out, status, rss = cmp.run_wrk(argv, seconds, {1}, sample_pids=[pid])
    if status != 0:
        raise RuntimeError(f"wrk failed ({status}): {out[-500:]}")
    return cmp.parse_fixed_rate(out), rss


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--attackers", type=int, default=1000)
    ap.add_argument("--rate", type=float, default=2000.0, help="normal requests per second")
    ap.add_argument("--duration", type=int, default=10, help="seconds per measurement")
    ap.add_argument("--drip", type=float, default=2.0, help="seconds between attack header lines")
    ap.add_argument("--header-timeout", default="5s", help="lbproxy timeouts.header")
    ap.add_argument(
        "--control",
        action="store_true",
        help="aim the attack at the nginx backend instead of lbproxy: what the attackers'"
        " own CPU use (beside wrk on CPU 1) does to the measured latency",
    )
    ap.add_argument(
        "--attacker-cpu-shared",
        action="store_true",
        help="run the attackers at wrk's and nginx's priority (the old, unfair setup: their"
        " own CPU use then shows up in the latency measured)",
    )
    ap.add_argument("--output", type=Path, help="Markdown report (default bench/results/...)")
    args = ap.parse_args()

    wrk = cmp.find_tool("wrk", None)
    nginx = cmp.find_tool("nginx", None)
    if wrk is None or nginx is None:
        print("needs wrk and nginx: run bench/install-tools.sh", file=sys.stderr)
        return 1
    nginx_build = cmp.tool_output([nginx, "-V"])
    work = Path(tempfile.mkdtemp(prefix="lbproxy-slowloris-"))
    servers: list[cmp.Managed] = []
    try:
        backend_port = cmp.free_port()
        servers.append(
            cmp.start_nginx_backend(nginx, nginx_build, work, "backend", backend_port, {1})
        )
        port = cmp.free_port()
        conf = cmp.lbproxy_conf(port, backend_port).replace(
            '    bind: "127.0.0.1:',
            f"    timeouts: {{header: {args.header_timeout}}}\n"
            "    limits: {max_connections: 20000}\n"
            '    bind: "127.0.0.1:',
        )
        (work / "lbproxy.yaml").write_text(conf)
        proxy = cmp.Managed(
            "lbproxy",
            [sys.executable, "-m", "lbproxy", "--config", str(work / "lbproxy.yaml")],
            work / "lbproxy.log",
            {0},
            cwd=cmp.REPO_ROOT,
        )
        servers.append(proxy)
        if why := cmp.wait_ready(proxy, port, 15):
            raise RuntimeError(f"lbproxy: {why}\n{cmp.tail(work / 'lbproxy.log')}")

        cmp.log(f"warm-up, then {args.duration}s at {args.rate:.0f} req/s without attack")
        _measure(wrk, port, args.rate, 2, proxy.pid)
        base, base_rss = _measure(wrk, port, args.rate, args.duration, proxy.pid)

        report = work / "attack.txt"
        attack_s = args.duration + 20.0
        target = backend_port if args.control else port
        attacker = multiprocessing.get_context("spawn").Process(
            target=_attack,
            args=(
                target,
                args.attackers,
                args.drip,
                attack_s,
                str(report),
                not args.attacker_cpu_shared,
            ),
        )
        attacker.start()
        deadline = time.monotonic() + 15
        while _open_now(report) < args.attackers * 0.95 and time.monotonic() < deadline:
            time.sleep(0.2)
        held = _open_now(report)
        cmp.log(f"{held} attack connections open; measuring {args.duration}s under attack")
        under, under_rss = _measure(wrk, port, args.rate, args.duration, proxy.pid)
        held_after = _open_now(report)
        peak_rss = cmp.rss_kib(proxy.pid, "VmHWM")
        attacker.join(attack_s + 30)
        summary = report.read_text().splitlines()[-1] if report.exists() else "?"
    finally:
        for s in reversed(servers):
            s.stop()
        shutil.rmtree(work, ignore_errors=True)

    ratio = under.p99_ms / base.p99_ms if base.p99_ms else float("nan")
    now = dt.datetime.now(dt.UTC)
    lines = [
        f"# Normal traffic under slowloris — {now:%Y-%m-%d %H:%M:%S} UTC",
        "",
        f"Command: `{' '.join([sys.executable, *sys.argv])}`  ",
        f"lbproxy on CPU 0 (`timeouts.header: {args.header_timeout}`); nginx backend, wrk and"
        " the attackers on CPU 1, the attackers "
        + ("at the same priority" if args.attacker_cpu_shared else "in SCHED_IDLE")
        + f". Normal load: {args.rate:.0f} req/s over 50 connections"
        " (wrk + bench/lua/fixed_rate.lua).",
        (
            "**Control run: the attack went to the nginx backend, not lbproxy.** "
            if args.control
            else ""
        )
        + f"Attack: {args.attackers} connections, each an incomplete head dripping one header"
        f" line every {args.drip:g}s, reconnecting after each 408. Open during the"
        f" measurement: {held} at its start, {held_after} at its end; {summary}.",
        "",
        "| phase | achieved req/s | p50 ms | p99 ms | p99.9 ms | errors | lbproxy RSS MiB |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r, rss in (("no attack", base, base_rss), ("under attack", under, under_rss)):
        lines.append(
            f"| {name} | {r.rps:,.0f} | {r.p50_ms:.3f} | {r.p99_ms:.3f} | {r.p999_ms:.3f}"
            f" | {r.errors} | {rss / 1024:.1f} |"
        )
    lines += [
        "",
        f"p99 under attack ÷ p99 without: **{ratio:.2f}** (target ≤ 2).  ",
        f"lbproxy RSS under attack: **{under_rss / 1024:.1f} MiB**, peak {peak_rss / 1024:.1f}"
        " MiB (target < 50 MiB).",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    out = args.output or cmp.RESULTS_DIR / f"slowloris-{now:%Y-%m-%d-%H%M%S}.md"
    out.write_text(text)
    cmp.log(f"report: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
