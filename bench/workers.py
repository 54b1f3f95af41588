"""Multi-core scaling: lbproxy with N worker processes against nginx with N
workers, side by side in one run.

    python bench/workers.py [--workers 1,2] [--duration 10] [--rounds 3]

One nginx backend (as many worker processes as the largest N) serves a small
fixed body; each contender proxies to it in turn: lbproxy ``--workers N`` and
nginx ``worker_processes N`` for every N, in an order rotated round by round
so drift hits all alike. wrk (2 threads, 100 keep-alive connections) drives
each for ``--duration`` seconds. Nothing is pinned: on a machine with few
cores the proxy, the backend and wrk share them, as they would in
production on such a machine, and that bounds the scaling any proxy can show
(the report says how many CPUs there were). Reported: requests/s (median of
the rounds), the proxy's CPU microseconds per request (user+sys of its whole
process tree, from /proc), lbproxy's scaling (req/s with N workers over req/s
with 1, and over N times that) and lbproxy's req/s over nginx's at each N.
The report goes to bench/results/workers-*.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import compare as cmp  # the shared tool and process plumbing


def _lbproxy(work: Path, n: int, port: int, backend_port: int) -> cmp.Managed:
    conf = work / f"lbproxy-{n}.yaml"
    conf.write_text(cmp.lbproxy_conf(port, backend_port))
    return cmp.Managed(
        f"lbproxy-{n}",
        [sys.executable, "-m", "lbproxy", "--config", str(conf), "--workers", str(n)],
        work / f"lbproxy-{n}.log",
        None,
        cwd=cmp.REPO_ROOT,
    )


def _nginx(nginx: str, build: str, work: Path, n: int, port: int, backend_port: int) -> cmp.Managed:
    d = work / f"nginx-{n}"
    d.mkdir(exist_ok=True)
    conf = cmp.nginx_proxy_conf(d, build, port, backend_port)
    (d / "nginx.conf").write_text(conf.replace("worker_processes 1;", f"worker_processes {n};"))
    argv = cmp.nginx_backend_argv(nginx, d)
    return cmp.Managed(f"nginx-{n}", argv, work / f"nginx-{n}.log", None)


def _measure(
    wrk: str, server: cmp.Managed, port: int, seconds: int
) -> tuple[float, float]:
    """(requests/s, proxy CPU microseconds per request)."""
    try:
        if why := cmp.wait_ready(server, port, 30):
            raise RuntimeError(f"{server.name}: {why}\n{cmp.tail(server.log_path)}")
        url = f"http://127.0.0.1:{port}/"
        return cmp.wrk_cpu(wrk, ["-t2", "-c100"], url, seconds, None, server.pid, server.name)
    finally:
        server.stop()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--output", type=Path)
    args = ap.parse_args()
    counts = [int(x) for x in args.workers.split(",")]
    wrk = cmp.find_tool("wrk", None)
    nginx = cmp.find_tool("nginx", None)
    if wrk is None or nginx is None:
        print("needs wrk and nginx: run bench/install-tools.sh", file=sys.stderr)
        return 1
    build = cmp.tool_output([nginx, "-V"])
    work = Path(tempfile.mkdtemp(prefix="lbproxy-workers-"))
    contenders = [(kind, n) for n in counts for kind in ("lbproxy", "nginx")]
    results: dict[tuple[str, int], list[tuple[float, float]]] = {c: [] for c in contenders}
    backend: cmp.Managed | None = None
    try:
        backend_port = cmp.free_port()
        d = work / "backend"
        d.mkdir()
        conf = cmp.backend_conf(d, build, backend_port)
        (d / "nginx.conf").write_text(
            conf.replace("worker_processes 1;", f"worker_processes {max(counts)};")
        )
        backend = cmp.Managed("backend", cmp.nginx_backend_argv(nginx, d), work / "b.log", None)
        if why := cmp.wait_ready(backend, backend_port, 10):
            raise RuntimeError(f"backend: {why}")
        for rnd in range(args.rounds):
            shift = rnd % len(contenders)
            for kind, n in contenders[shift:] + contenders[:shift]:
                cmp.log(f"round {rnd + 1}/{args.rounds}: {kind} with {n} workers")
                port = cmp.free_port()
                server = (
                    _lbproxy(work, n, port, backend_port)
                    if kind == "lbproxy"
                    else _nginx(nginx, build, work, n, port, backend_port)
                )
                results[(kind, n)].append(_measure(wrk, server, port, args.duration))
    finally:
        if backend is not None:
            backend.stop()
        shutil.rmtree(work, ignore_errors=True)

    rps = {c: statistics.median(r for r, _ in results[c]) for c in contenders}
    cpu = {c: statistics.median(u for _, u in results[c]) for c in contenders}
    base = rps[("lbproxy", counts[0])] / counts[0]
    now = dt.datetime.now(dt.UTC)
    lines = [
        f"# Worker scaling — {now:%Y-%m-%d %H:%M:%S} UTC",
        "",
        f"Command: `{' '.join([sys.executable, *sys.argv])}`  ",
        f"Machine: {os.cpu_count()} CPUs; nothing pinned (proxy, nginx backend with"
        f" {max(counts)} workers, and wrk -t2 -c100 share them); {args.duration}s per run,"
        f" {args.rounds} rounds, order rotated; medians.",
        "",
        "| workers | lbproxy req/s | nginx req/s | lbproxy ÷ nginx | lbproxy scaling"
        " (÷ 1 worker) | ÷ (N x 1 worker) | lbproxy CPU µs/req | nginx CPU µs/req |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for n in counts:
        lb, ng = rps[("lbproxy", n)], rps[("nginx", n)]
        lines.append(
            f"| {n} | {lb:.0f} | {ng:.0f} | {lb / ng:.2f}x | {lb / base:.2f}x"
            f" | {lb / (n * base):.2f} | {cpu[('lbproxy', n)]:.1f} | {cpu[('nginx', n)]:.1f} |"
        )
    lines += ["", "Runs (req/s):", ""]
    for c in contenders:
        runs = ", ".join(f"{r:.0f}" for r, _ in results[c])
        lines.append(f"- {c[0]} {c[1]}: {runs}")
    text = "\n".join(lines) + "\n"
    out = args.output or cmp.REPO_ROOT / "bench" / "results" / f"workers-{now:%Y-%m-%d-%H%M%S}.md"
    out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
