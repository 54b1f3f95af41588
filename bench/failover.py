"""Kill a backend under load: does lbproxy lose requests, and how fast does it notice?

    python bench/failover.py [--rate 1500] [--duration 10]

Three nginx backends (one process each) behind lbproxy (CPU 0; round robin,
active health checks every 1 s with unhealthy/healthy thresholds of 2,
outlier detection after 5 consecutive failures, default retries, slow start
5 s). wrk drives a fixed request rate over 50
connections with bench/lua/fixed_rate.lua (CPU 1), in three phases of
``--duration`` seconds:

1. steady: all three backends up;
2. failure: one backend is SIGKILLed 2 s into the phase;
3. recovery: the backend is started again at the beginning of the phase.

Reported per phase: requests, failed requests (non-2xx/3xx and socket
errors), p50/p99/p99.9; the failure phase's p99 over the steady one; the time
from the kill to lbproxy's "ejected" log line (outlier detection: after it the
backend gets no requests) and to "is down" (the active checks), and from the
restart to "is up"; how many requests the access log shows retried. Report in
bench/results/failover-*.md.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent))

import compare as cmp  # the shared tool and process plumbing


def _config(port: int, backends: list[int], access_log: Path) -> str:
    lines = "\n".join(f'      - {{address: "127.0.0.1:{p}"}}' for p in backends)
    return f"""
listeners:
  - name: bench
    bind: "127.0.0.1:{port}"
    limits: {{max_connections: 20000}}
    routes: [{{match: {{path_prefix: /}}, pool: web}}]
pools:
  web:
    balance: round_robin
    health_check: {{path: /, interval: 1s, timeout: 500ms, healthy_threshold: 2,
                    unhealthy_threshold: 2}}
    outlier_detection: {{consecutive_failures: 5, base_ejection_time: 5s}}
    slow_start: 5s
    backends:
{lines}
access_log: {{format: json, path: "{access_log}"}}
"""


class LogWatch:
    """Follows lbproxy's log file and notes when lines matching a word appear."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.seen: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        with open(self.path, errors="replace") as f:
            while not self._stop.is_set():
                line = f.readline()
                if line:
                    self.seen.append((time.monotonic(), line.rstrip()))
                else:
                    time.sleep(0.01)

    def first_after(self, word: str, since: float) -> float | None:
        for when, line in list(self.seen):
            if when >= since and word in line:
                return when
        return None

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)


def _measure(wrk: str, port: int, rate: float, seconds: int) -> cmp.WrkResult:
    args = SimpleNamespace(threads=1, connections=50, latency_connections=50, wrk_timeout=5)
    scenario = cmp.SCENARIOS["latency"]
    argv = cmp.wrk_argv(wrk, args, port, seconds, scenario, rate)  # type: ignore[arg-type]
    out, status, _ = cmp.run_wrk(argv, seconds, {1})
    if status != 0:
        raise RuntimeError(f"wrk failed ({status}): {out[-500:]}")
    return cmp.parse_fixed_rate(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rate", type=float, default=1500.0, help="requests per second")
    ap.add_argument("--duration", type=int, default=10, help="seconds per phase")
    ap.add_argument("--output", type=Path, help="Markdown report (default bench/results/...)")
    args = ap.parse_args()
    wrk = cmp.find_tool("wrk", None)
    nginx = cmp.find_tool("nginx", None)
    if wrk is None or nginx is None:
        print("needs wrk and nginx: run bench/install-tools.sh", file=sys.stderr)
        return 1
    nginx_build = cmp.tool_output([nginx, "-V"])
    work = Path(tempfile.mkdtemp(prefix="lbproxy-failover-"))
    servers: list[cmp.Managed] = []
    watch: LogWatch | None = None
    try:
        ports = [cmp.free_port() for _ in range(3)]
        backends = [
            cmp.start_nginx_backend(nginx, nginx_build, work, f"b{i}", p, {1})
            for i, p in enumerate(ports)
        ]
        servers += backends
        port = cmp.free_port()
        (work / "lbproxy.yaml").write_text(_config(port, ports, work / "access.log"))
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
        watch = LogWatch(work / "lbproxy.log")
        cmp.log("warm-up")
        _measure(wrk, port, args.rate, 2)
        cmp.log(f"steady: {args.duration}s at {args.rate:.0f} req/s")
        steady = _measure(wrk, port, args.rate, args.duration)

        victim = backends[1]
        killed_at = 0.0

        def kill() -> None:
            nonlocal killed_at
            time.sleep(2.0)
            # SIGKILL the whole nginx (master and worker): a crash, not a drain.
            for pid in cmp.tree_pids(victim.pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            killed_at = time.monotonic()

        cmp.log(f"failure: {args.duration}s, backend b1 killed after 2s")
        killer = threading.Thread(target=kill)
        killer.start()
        failure = _measure(wrk, port, args.rate, args.duration)
        killer.join()
        down = watch.first_after("is down", killed_at)
        ejected = watch.first_after("ejected", killed_at)
        victim.stop(grace=1)
        servers.remove(victim)

        cmp.log(f"recovery: b1 restarted, {args.duration}s")
        restarted_at = time.monotonic()
        servers.append(cmp.start_nginx_backend(nginx, nginx_build, work, "b1", ports[1], {1}))
        recovery = _measure(wrk, port, args.rate, args.duration)
        up = watch.first_after("is up", restarted_at)
        proxy.stop()
        entries = [json.loads(x) for x in (work / "access.log").read_text().splitlines()]
    finally:
        if watch is not None:
            watch.stop()
        for s in reversed(servers):
            s.stop()
        if os.environ.get("LBPROXY_BENCH_KEEP"):
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    now = dt.datetime.now(dt.UTC)
    ratio = failure.p99_ms / steady.p99_ms if steady.p99_ms else float("nan")
    lines = [
        f"# A backend killed under load — {now:%Y-%m-%d %H:%M:%S} UTC",
        "",
        f"Command: `{' '.join([sys.executable, *sys.argv])}`  ",
        f"lbproxy on CPU 0; three nginx backends and wrk on CPU 1; {args.rate:.0f} req/s over"
        " 50 connections (wrk + bench/lua/fixed_rate.lua); health checks every 1s,"
        " thresholds 2/2, outlier detection after 5 consecutive failures, default retries,"
        " slow start 5s.",
        "",
        "| phase | requests | failed | p50 ms | p99 ms | p99.9 ms |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, r in (("steady", steady), ("failure (kill at 2s)", failure), ("recovery", recovery)):
        lines.append(
            f"| {name} | {r.requests} | {r.errors} | {r.p50_ms:.2f} | {r.p99_ms:.2f}"
            f" | {r.p999_ms:.2f} |"
        )
    lines += [
        "",
        f"- failure-phase p99 / steady p99: **{ratio:.2f}x**",
        "- kill -> ejected by outlier detection (5 consecutive failures; no new requests"
        " to it after this): " + (f"**{ejected - killed_at:.3f}s**" if ejected else "not seen"),
        '- kill -> "is down" from the active checks: '
        + (f"**{down - killed_at:.2f}s**" if down else "not seen"),
        '- restart -> "is up" (slow start begins): '
        + (f"**{up - restarted_at:.2f}s**" if up else "not seen"),
        f"- access log: {sum(1 for e in entries if e.get('tries', 1) > 1)} requests retried"
        " on another backend (the clients saw their answer, not the failure); not 200:"
        f" {sorted((e['status'], e.get('reason', '')) for e in entries if e['status'] != 200)}",
    ]
    text = "\n".join(lines) + "\n"
    cmp.save_report(text, args.output, "failover", now)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
