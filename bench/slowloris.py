#!/usr/bin/env python3
"""Normal traffic while slowloris clients hold connections open.

    python bench/slowloris.py [--attackers 1000] [--rate 2000] [--duration 10] [--rounds 5]

Starts an nginx backend and lbproxy (its ``lbproxy_conf`` from compare.py,
proxy pinned to CPU 0, everything else to CPU 1), then measures normal
requests at a fixed rate (wrk + ``lua/fixed_rate.lua``, as compare.py's
``latency`` scenario) in ``--rounds`` rounds of two phases: with nothing else
going on, then while ``--attackers`` slowloris connections are held open
(the attack starts after the first phase and is stopped, its connections
closed, before the next round). A p99 of a few hundred microseconds on a
2-core VM moves by several times between two runs of the same thing (one
run here measured 0.47 ms, the next 5.3 ms, both without any attack), so
one pair of phases says little; the rounds alternate so that drift hits
both phases alike, and the report gives every round and the medians.
Each attacker sends an
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

Reports, per round and as medians over the rounds, p50/p99/p99.9 of the
normal requests in both phases, the p99 ratio, lbproxy's CPU use (share of
its core) and RSS in each phase (and its peak), how many attack connections
were open, and how many 408s they got. The hardening issue's targets: normal
p99 under the attack at most 2x its value without (the median of the
rounds' ratios), RSS under 50 MiB.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import multiprocessing
import os
import shutil
import statistics
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
                out.write(
                    f"open={stats['open']} got_408={stats['got_408']}"
                    f" connect_errors={stats['connect_errors']}\n"
                )
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
            return int(line.split()[0][5:])
    return 0


Phase = tuple[cmp.WrkResult, int, float]  # wrk's result, lbproxy RSS KiB, its CPU share


def _measure(wrk: str, port: int, rate: float, seconds: int, pid: int) -> Phase:
    args = SimpleNamespace(threads=1, connections=50, latency_connections=50, wrk_timeout=5)
    scenario = cmp.SCENARIOS["latency"]
    argv = cmp.wrk_argv(wrk, args, port, seconds, scenario, rate)  # type: ignore[arg-type]
    ticks, started = cmp.tree_cpu_ticks(pid), time.monotonic()
    out, status, rss = cmp.run_wrk(argv, seconds, {1}, sample_pids=[pid])
    cpu = (cmp.tree_cpu_ticks(pid) - ticks) / cmp.CLK_TCK / (time.monotonic() - started)
    if status != 0:
        raise RuntimeError(f"wrk failed ({status}): {out[-500:]}")
    return cmp.parse_fixed_rate(out), rss, cpu


def _attacked(
    args: argparse.Namespace, wrk: str, port: int, target: int, pid: int, work: Path, k: int
) -> tuple[Phase, int, int, str]:
    """One phase under attack: start the attackers, wait until they hold their
    connections, measure, stop them. The phase, the connections open at its
    start and end, and the attackers' summary."""
    report = work / f"attack-{k}.txt"
    attack_s = args.duration + 20.0
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
    try:
        deadline = time.monotonic() + 15
        while _open_now(report) < args.attackers * 0.95 and time.monotonic() < deadline:
            time.sleep(0.2)
        held = _open_now(report)
        cmp.log(f"{held} attack connections open; measuring {args.duration}s under attack")
        phase = _measure(wrk, port, args.rate, args.duration, pid)
        held_after = _open_now(report)
    finally:
        # Stopped now, not at the end of its time: the next round's first
        # phase must have no attack. Its connections close with it.
        attacker.terminate()
        attacker.join(30)
    summary = report.read_text().splitlines()[-1] if report.exists() else "?"
    return phase, held, held_after, summary


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
    ap.add_argument("--rounds", type=int, default=5, help="pairs of phases (without, under)")
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
    rounds: list[tuple[Phase, Phase, int, int, str]] = []
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

        cmp.log("warm-up")
        _measure(wrk, port, args.rate, 2, proxy.pid)
        target = backend_port if args.control else port
        for k in range(args.rounds):
            cmp.log(
                f"round {k + 1}/{args.rounds}: {args.duration}s at {args.rate:.0f} req/s"
                " without attack"
            )
            base = _measure(wrk, port, args.rate, args.duration, proxy.pid)
            under, held, held_after, summary = _attacked(
                args, wrk, port, target, proxy.pid, work, k
            )
            rounds.append((base, under, held, held_after, summary))
            cmp.log(f"  p99 {base[0].p99_ms:.3f} ms -> {under[0].p99_ms:.3f} ms; {summary}")
            # The closed attack connections leave lbproxy before the next round.
            time.sleep(2)
        peak_rss = cmp.rss_kib(proxy.pid, "VmHWM")
    finally:
        for s in reversed(servers):
            s.stop()
        shutil.rmtree(work, ignore_errors=True)

    def ratio(base: Phase, under: Phase) -> float:
        return under[0].p99_ms / base[0].p99_ms if base[0].p99_ms else float("nan")

    med = statistics.median
    ratios = [ratio(b, u) for b, u, *_ in rounds]
    now = dt.datetime.now(dt.UTC)
    lines = [
        f"# Normal traffic under slowloris — {now:%Y-%m-%d %H:%M:%S} UTC",
        "",
        f"Command: `{' '.join([sys.executable, *sys.argv])}`  ",
        f"lbproxy on CPU 0 (`timeouts.header: {args.header_timeout}`); nginx backend, wrk and"
        " the attackers on CPU 1, the attackers "
        + ("at the same priority" if args.attacker_cpu_shared else "in SCHED_IDLE")
        + f". Normal load: {args.rate:.0f} req/s over 50 connections"
        " (wrk + bench/lua/fixed_rate.lua), "
        f"{args.duration}s per phase, {args.rounds} rounds of a phase without attack then one"
        " under attack (the attack started after the first and stopped after the second).",
        (
            "**Control run: the attack went to the nginx backend, not lbproxy.** "
            if args.control
            else ""
        )
        + f"Attack: {args.attackers} connections, each an incomplete head dripping one header"
        f" line every {args.drip:g}s, reconnecting after each 408.",
        "",
        "| round | phase | achieved req/s | p50 ms | p99 ms | p99.9 ms | errors"
        " | lbproxy CPU | lbproxy RSS MiB | attack connections (start/end), attackers' count |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for k, (base, under, held, held_after, summary) in enumerate(rounds, 1):
        for name, (r, rss, cpu), extra in (
            ("no attack", base, ""),
            ("under attack", under, f"{held}/{held_after}, {summary}"),
        ):
            lines.append(
                f"| {k} | {name} | {r.rps:,.0f} | {r.p50_ms:.3f} | {r.p99_ms:.3f}"
                f" | {r.p999_ms:.3f} | {r.errors} | {cpu:.0%} | {rss / 1024:.1f} | {extra} |"
            )
    base_p99 = med(b[0].p99_ms for b, *_ in rounds)
    under_p99 = med(u[0].p99_ms for _, u, *_ in rounds)
    under_rss = max(u[1] for _, u, *_ in rounds)
    lines += [
        "",
        f"p99 ratio (under attack ÷ without) per round: {', '.join(f'{x:.2f}' for x in ratios)};"
        f" median **{med(ratios):.2f}** (target ≤ 2).  ",
        f"Median p99: {base_p99:.3f} ms without, {under_p99:.3f} ms under attack"
        f" ({under_p99 / base_p99:.2f}x).  ",
        f"lbproxy RSS under attack: **{under_rss / 1024:.1f} MiB** at most, peak"
        f" {peak_rss / 1024:.1f} MiB (target < 50 MiB).",
    ]
    text = "\n".join(lines) + "\n"
    cmp.save_report(text, args.output, "slowloris", now)
    return 0


if __name__ == "__main__":
    sys.exit(main())
