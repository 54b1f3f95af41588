"""What metrics and the JSON access log cost: CPU per request, side by side.

    python bench/observability.py [--duration 8] [--rounds 3]

One nginx backend and wrk on CPU 1; lbproxy on CPU 0 in three variants,
alternated round by round so drift hits all alike:

- ``off``: no admin API (the data path counts nothing) and ``access_log: off``;
- ``metrics``: an admin API on loopback, so every request is counted for
  /metrics (a dict update and a latency-histogram bisect);
- ``metrics+json``: the same, plus the JSON access log written to a file.

Each measurement: wrk, 1 thread, 50 keep-alive connections, small responses,
``--duration`` seconds; lbproxy's user+sys CPU (from /proc) divided by the
requests wrk completed. The report gives the median per variant and its ratio
to ``off``; it goes to bench/results/observability-*.md.

CPU time on a shared 2-core VM is noisy (the same variant varies by ±15% run
to run), so ``--instructions`` adds a repeatable measure: each variant runs
under ``valgrind --tool=callgrind`` twice, serving 1000 and then 4000
sequential keep-alive requests from a plain socket client; the difference of
the two instruction totals over 3000 is lbproxy's user-space instructions per
request (start-up and shutdown cancel out; kernel work is not counted).
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import compare as cmp  # the shared tool and process plumbing

VARIANTS = ("off", "metrics", "metrics+json")


def _config(variant: str, port: int, backend_port: int, work: Path) -> str:
    text = cmp.lbproxy_conf(port, backend_port)
    if variant != "off":
        text += 'admin: {bind: "127.0.0.1:0"}\n'
    if variant == "metrics+json":
        text = text.replace(
            "access_log: {format: off}", f'access_log: {{format: json, path: "{work}/access.log"}}'
        )
    return text


def _measure(
    wrk: str, variant: str, backend_port: int, work: Path, seconds: int
) -> tuple[float, float]:
    """(CPU microseconds per request, requests/s) of one lbproxy run."""
    port = cmp.free_port()
    conf = work / f"{variant}.yaml"
    conf.write_text(_config(variant, port, backend_port, work))
    proxy = cmp.Managed(
        f"lbproxy-{variant}",
        [sys.executable, "-m", "lbproxy", "--config", str(conf)],
        work / f"{variant}.log",
        {0},
        cwd=cmp.REPO_ROOT,
    )
    try:
        if why := cmp.wait_ready(proxy, port, 15):
            raise RuntimeError(f"lbproxy {variant}: {why}\n{cmp.tail(work / f'{variant}.log')}")
        url = f"http://127.0.0.1:{port}/"
        rps, cpu = cmp.wrk_cpu(wrk, ["-t1", "-c50"], url, seconds, {1}, proxy.pid, variant)
        return cpu, rps
    finally:
        proxy.stop()
        (work / "access.log").unlink(missing_ok=True)


_REQUEST = b"GET /index.html HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: bench\r\n\r\n"


def _instructions_once(variant: str, backend_port: int, work: Path, n: int) -> int:
    port = cmp.free_port()
    conf = work / f"{variant}-cg.yaml"
    conf.write_text(_config(variant, port, backend_port, work))
    proxy = cmp.start_callgrind(
        f"{variant}-{n}",
        [sys.executable, "-m", "lbproxy", "--config", str(conf)],
        work,
        port,
        None,
        cwd=cmp.REPO_ROOT,
    )
    try:
        cmp.sequential_requests(port, itertools.repeat(_REQUEST, 50))  # warm: caches
        cmp.sequential_requests(port, itertools.repeat(_REQUEST, n))
        return cmp.callgrind_total(proxy)
    finally:
        proxy.stop()
        (work / "access.log").unlink(missing_ok=True)


def _instructions(variant: str, backend_port: int, work: Path) -> float:
    low = _instructions_once(variant, backend_port, work, 1000)
    high = _instructions_once(variant, backend_port, work, 4000)
    return (high - low) / 3000


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--output", type=Path)
    ap.add_argument(
        "--instructions", action="store_true", help="also count instructions (callgrind)"
    )
    args = ap.parse_args()
    if args.instructions and shutil.which("valgrind") is None:
        print("--instructions needs valgrind (Debian package valgrind)", file=sys.stderr)
        return 1
    wrk = cmp.find_tool("wrk", None)
    nginx = cmp.find_tool("nginx", None)
    if wrk is None or nginx is None:
        print("needs wrk and nginx: run bench/install-tools.sh", file=sys.stderr)
        return 1
    cmp.unwind_on_signals()  # a kill still stops every process started, by pid
    nginx_build = cmp.tool_output([nginx, "-V"])
    work = Path(tempfile.mkdtemp(prefix="lbproxy-observability-"))
    results: dict[str, list[tuple[float, float]]] = {v: [] for v in VARIANTS}
    instructions: dict[str, float] = {}
    backend: cmp.Managed | None = None
    try:
        backend_port = cmp.free_port()
        backend = cmp.start_nginx_backend(nginx, nginx_build, work, "backend", backend_port, {1})
        for rnd in range(args.rounds):
            for variant in VARIANTS if rnd % 2 == 0 else reversed(VARIANTS):
                cmp.log(f"round {rnd + 1}/{args.rounds}: {variant}")
                results[variant].append(_measure(wrk, variant, backend_port, work, args.duration))
        if args.instructions:
            for variant in VARIANTS:
                cmp.log(f"callgrind: {variant}")
                instructions[variant] = _instructions(variant, backend_port, work)
    except KeyboardInterrupt:
        cmp.log("interrupted; all started processes were stopped")
        return 130
    finally:
        if backend is not None:
            backend.stop()
        shutil.rmtree(work, ignore_errors=True)

    base = statistics.median(cpu for cpu, _ in results["off"])
    now = dt.datetime.now(dt.UTC)
    lines = [
        f"# Metrics and access-log cost — {now:%Y-%m-%d %H:%M:%S} UTC",
        "",
        f"Command: `{' '.join([sys.executable, *sys.argv])}`  ",
        "lbproxy on CPU 0; nginx backend and wrk (1 thread, 50 keep-alive connections, small"
        f" responses, {args.duration}s per run) on CPU 1; {args.rounds} rounds, variants"
        " alternated; medians.",
        "",
        "| variant | CPU µs/request | vs off | req/s | runs (µs/request) |",
        "|---|---:|---:|---:|---|",
    ]
    for variant in VARIANTS:
        cpus = [cpu for cpu, _ in results[variant]]
        cpu = statistics.median(cpus)
        rps = statistics.median(r for _, r in results[variant])
        runs = ", ".join(f"{c:.2f}" for c in cpus)
        lines.append(f"| {variant} | {cpu:.2f} | {cpu / base:.3f}x | {rps:.0f} | {runs} |")
    if instructions:
        lines += [
            "",
            "User-space instructions per request (callgrind; 4000 minus 1000 sequential"
            " keep-alive requests, over 3000; repeatable to about 0.5%):",
            "",
            "| variant | instructions/request | vs off |",
            "|---|---:|---:|",
        ]
        for variant in VARIANTS:
            ins = instructions[variant]
            lines.append(f"| {variant} | {ins:.0f} | {ins / instructions['off']:.3f}x |")
    text = "\n".join(lines) + "\n"
    cmp.save_report(text, args.output, "observability", now)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
