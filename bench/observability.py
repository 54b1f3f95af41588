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
"""

from __future__ import annotations

import argparse
import datetime as dt
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
        argv = [wrk, "-t1", "-c50", "-d2s", "--latency", f"http://127.0.0.1:{port}/"]
        cmp.run_wrk(argv, 2, {1})  # warm-up
        argv[3] = f"-d{seconds}s"
        ticks0 = cmp.tree_cpu_ticks(proxy.pid)
        out, status, _ = cmp.run_wrk(argv, seconds, {1})
        ticks1 = cmp.tree_cpu_ticks(proxy.pid)
        if status != 0:
            raise RuntimeError(f"wrk failed ({status}): {out[-300:]}")
        r = cmp.parse_wrk(out)
        if r.errors:
            raise RuntimeError(f"{variant}: {r.errors} failed requests")
        return (ticks1 - ticks0) / cmp.CLK_TCK / r.requests * 1e6, r.rps
    finally:
        proxy.stop()
        (work / "access.log").unlink(missing_ok=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--output", type=Path)
    args = ap.parse_args()
    wrk = cmp.find_tool("wrk", None)
    nginx = cmp.find_tool("nginx", None)
    if wrk is None or nginx is None:
        print("needs wrk and nginx: run bench/install-tools.sh", file=sys.stderr)
        return 1
    nginx_build = cmp.tool_output([nginx, "-V"])
    work = Path(tempfile.mkdtemp(prefix="lbproxy-observability-"))
    results: dict[str, list[tuple[float, float]]] = {v: [] for v in VARIANTS}
    backend: cmp.Managed | None = None
    try:
        backend_port = cmp.free_port()
        backend = cmp.start_nginx_backend(nginx, nginx_build, work, "backend", backend_port, {1})
        for rnd in range(args.rounds):
            for variant in VARIANTS if rnd % 2 == 0 else reversed(VARIANTS):
                cmp.log(f"round {rnd + 1}/{args.rounds}: {variant}")
                results[variant].append(_measure(wrk, variant, backend_port, work, args.duration))
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
    text = "\n".join(lines) + "\n"
    out = args.output or (
        cmp.REPO_ROOT / "bench" / "results" / f"observability-{now:%Y-%m-%d-%H%M%S}.md"
    )
    out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
