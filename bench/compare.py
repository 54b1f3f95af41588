#!/usr/bin/env python3
"""Side-by-side benchmark: wrk -> {lbproxy, nginx, HAProxy} -> one nginx backend.

Every contender proxies to the same backend, is measured in the same run, and
the contenders are interleaved across rounds so that machine drift (noisy
neighbours, thermal, frequency scaling) hits all of them alike. For each
measured run we record wrk's throughput and latency percentiles plus the proxy
process tree's CPU time, which gives "CPU microseconds per request": the number
that stays meaningful even when the load generator, not the proxy, is the
bottleneck.

Standard library only (Python 3.11+). See bench/README.md for usage and for
what each column means. Run ``bench/install-tools.sh`` first on a fresh machine.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import math
import os
import platform
import re
import resource
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from types import FrameType
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = Path(__file__).resolve().parent / "results"
CLK_TCK = os.sysconf("SC_CLK_TCK")
BACKEND_BODY = "hello\n"
# apt puts nginx/haproxy in /usr/sbin, which is not on a non-root user's PATH.
EXTRA_TOOL_DIRS = ("/usr/sbin", "/usr/local/sbin", "/sbin")
ALL_PROXIES = ("lbproxy", "lbproxy-pure", "nginx", "haproxy")
DEFAULT_PROXIES = ("lbproxy", "nginx", "haproxy")
# Seconds we budget per start/stop/pause when estimating run time up front.
START_OVERHEAD_S = 1.0


# --------------------------------------------------------------------------
# small helpers


def log(msg: str) -> None:
    # Progress goes to stderr so `--json -` on stdout stays machine-readable.
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def parse_duration(text: str) -> int:
    """'10', '10s', '2m' -> whole seconds (wrk only takes whole seconds reliably)."""
    m = re.fullmatch(r"\s*(\d+)\s*(s|m|h)?\s*", text)
    if not m:
        raise argparse.ArgumentTypeError(f"bad duration {text!r}; use e.g. 10s, 2m")
    value = int(m.group(1)) * {None: 1, "s": 1, "m": 60, "h": 3600}[m.group(2)]
    if value < 1:
        raise argparse.ArgumentTypeError("duration must be at least 1s")
    return value


def parse_cpu_list(text: str) -> set[int]:
    """taskset-style list: '0', '0,2', '1-3'."""
    cpus: set[int] = set()
    for raw in text.split(","):
        part = raw.strip()
        if not part:
            continue
        if "-" in part:
            lo, hi = part.split("-", 1)
            cpus.update(range(int(lo), int(hi) + 1))
        else:
            cpus.add(int(part))
    if not cpus:
        raise argparse.ArgumentTypeError(f"empty CPU list {text!r}")
    return cpus


def fmt_cpus(cpus: set[int] | None) -> str:
    return "unpinned" if cpus is None else ",".join(str(c) for c in sorted(cpus))


def free_port() -> int:
    # Ask the kernel for a free ephemeral port on loopback. There is a small
    # window before the server binds it; start failures are reported, not fatal.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def find_tool(name: str, override: str | None) -> str | None:
    if override:
        return override if (os.path.isfile(override) or shutil.which(override)) else None
    found = shutil.which(name)
    if found:
        return found
    for d in EXTRA_TOOL_DIRS:
        cand = os.path.join(d, name)
        if os.access(cand, os.X_OK):
            return cand
    return None


def tool_output(argv: Sequence[str], timeout: float = 10.0) -> str:
    """Combined stdout+stderr of a short command ('' if it cannot run).

    nginx -v prints to stderr and wrk -v exits non-zero, so neither the stream
    nor the exit status can be trusted; we just take whatever text comes out.
    """
    try:
        cp = subprocess.run(
            list(argv), capture_output=True, text=True, timeout=timeout, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return (cp.stdout + cp.stderr).strip()


def first_line(text: str) -> str:
    return text.splitlines()[0].strip() if text else "unknown"


def tail(path: Path, lines: int = 15) -> str:
    try:
        data = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(data[-lines:])


# --------------------------------------------------------------------------
# /proc accounting


@dataclass(frozen=True)
class ProcStat:
    pid: int
    ppid: int
    ticks: int  # utime + stime + cutime + cstime
    starttime: int  # identifies this incarnation of the pid (guards pid reuse)


def read_stat(pid: int) -> ProcStat | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # comm (field 2) may contain spaces/parens: split after the last ')'.
    rest = raw[raw.rfind(")") + 2 :].split()
    # rest[0] is field 3 (state); field N is rest[N - 3].
    try:
        ppid = int(rest[1])
        utime, stime, cutime, cstime = (int(x) for x in rest[11:15])
        starttime = int(rest[19])
    except (IndexError, ValueError):
        return None
    return ProcStat(pid, ppid, utime + stime + cutime + cstime, starttime)


def process_tree(root: int) -> list[ProcStat]:
    """root plus all live descendants (nginx workers, lbproxy worker processes).

    Threads need no special handling: /proc/<pid>/stat already sums every
    thread of the process.
    """
    stats: dict[int, ProcStat] = {}
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        st = read_stat(int(entry))
        if st is None:
            continue
        stats[st.pid] = st
        children.setdefault(st.ppid, []).append(st.pid)
    if root not in stats:
        return []
    out: list[ProcStat] = []
    todo = [root]
    while todo:
        pid = todo.pop()
        if pid in stats:
            out.append(stats[pid])
            todo.extend(children.get(pid, ()))
    return out


def tree_cpu_ticks(root: int) -> int:
    # cutime/cstime are included so a child that exits (and is reaped) during
    # the interval keeps contributing: its time moves into the parent's
    # cutime, so the before/after sums stay consistent.
    return sum(st.ticks for st in process_tree(root))


# --------------------------------------------------------------------------
# process management


def _affinity_preexec(cpus: set[int] | None) -> Callable[[], None] | None:
    if cpus is None:
        return None

    def pin() -> None:
        # Same effect as `taskset -c`, but the pid we hold is the server itself
        # (no wrapper) and no util-linux dependency.
        os.sched_setaffinity(0, cpus)

    return pin


class Managed:
    """A long-running server we started; always stopped by pid in stop()."""

    def __init__(
        self,
        name: str,
        argv: list[str],
        log_path: Path,
        cpus: set[int] | None,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.argv = argv
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cwd,
            # Own session: a terminal Ctrl-C reaches only us, and we then stop
            # children in a defined order instead of racing them.
            start_new_session=True,
            # preexec_fn is safe here: this script is single-threaded.
            preexec_fn=_affinity_preexec(cpus),
        )
        self.pid = self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, grace: float = 5.0) -> None:
        # Remember descendants (with start times) first: once the root dies they
        # are re-parented and no longer findable as its children.
        descendants = [st for st in process_tree(self.pid) if st.pid != self.pid]
        if self.proc.poll() is None:
            try:
                self.proc.terminate()
                self.proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=grace)
            except ProcessLookupError:
                pass
        for st in descendants:
            _kill_if_same(st, grace)
        self._log.close()


def _kill_if_same(st: ProcStat, grace: float) -> None:
    """SIGTERM then SIGKILL pid, but only if it is still the process we saw."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        now = read_stat(st.pid)
        if now is None or now.starttime != st.starttime:
            return
        try:
            os.kill(st.pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            now = read_stat(st.pid)
            if now is None or now.starttime != st.starttime:
                return
            time.sleep(0.05)


def http_probe(port: int, timeout: float = 1.0) -> str | None:
    """None if GET / returns 200 with the backend body, else a reason."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", "/")
        resp = conn.getresponse()
        body = resp.read()
    except (OSError, http.client.HTTPException) as exc:
        return f"{type(exc).__name__}: {exc}"
    finally:
        conn.close()
    if resp.status != 200:
        return f"HTTP {resp.status}"
    if body.decode(errors="replace") != BACKEND_BODY:
        return f"unexpected body {body[:60]!r}"
    return None


def wait_ready(server: Managed, port: int, timeout: float) -> str | None:
    """Poll until the server answers correctly; None on success, else why not."""
    deadline = time.monotonic() + timeout
    reason = "no attempt"
    while time.monotonic() < deadline:
        if not server.alive():
            return f"exited with status {server.proc.returncode}: {reason}"
        reason = http_probe(port) or ""
        if not reason:
            return None
        time.sleep(0.1)
    return f"not ready after {timeout:.0f}s (last: {reason})"


# --------------------------------------------------------------------------
# configs


def nginx_temp_paths(d: Path, nginx_build: str) -> str:
    # Debian compiles absolute temp paths under /var/lib/nginx; point every one
    # this nginx build knows into our own dir so nothing system-wide is touched.
    # Modules compiled out (e.g. in a "light" build) must not be named.
    lines = [f"client_body_temp_path {d}/tmp/body;", f"proxy_temp_path {d}/tmp/proxy;"]
    for mod in ("fastcgi", "uwsgi", "scgi"):
        if f"--without-http_{mod}_module" not in nginx_build:
            lines.append(f"{mod}_temp_path {d}/tmp/{mod};")
    return "\n    ".join(lines)


def nginx_main_conf(d: Path, nginx_build: str, http_body: str) -> str:
    (d / "tmp").mkdir(parents=True, exist_ok=True)
    return f"""\
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 8192; }}
http {{
    access_log off;
    {nginx_temp_paths(d, nginx_build)}
    # nginx's default keepalive_requests (1000) would close wrk's connections
    # periodically; HAProxy and lbproxy have no such limit.
    keepalive_requests 100000000;
    keepalive_timeout 65s;
{http_body}
}}
"""


def backend_conf(d: Path, nginx_build: str, port: int) -> str:
    body = f"""\
    server {{
        listen 127.0.0.1:{port};
        location / {{
            default_type text/plain;
            return 200 "{BACKEND_BODY.strip()}\\n";
        }}
    }}"""
    return nginx_main_conf(d, nginx_build, body)


IDLE_UPSTREAM = 256


def nginx_proxy_conf(d: Path, nginx_build: str, port: int, backend_port: int) -> str:
    body = f"""\
    upstream backend {{
        server 127.0.0.1:{backend_port};
        # Idle upstream connections kept: more than wrk's connections, as
        # for lbproxy below, so neither reconnects in steady state (HAProxy
        # has no such cap).
        keepalive {IDLE_UPSTREAM};
        keepalive_requests 100000000;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}"""
    return nginx_main_conf(d, nginx_build, body)


def haproxy_conf(port: int, backend_port: int, reuse: str) -> str:
    # No `log` lines anywhere: logging off, like the other contenders.
    return f"""\
global
    nbthread 1

defaults
    mode http
    option http-keep-alive
    http-reuse {reuse}
    timeout connect 5s
    timeout client 30s
    timeout server 30s
    timeout http-keep-alive 60s

frontend fe
    bind 127.0.0.1:{port}
    default_backend be

backend be
    server b1 127.0.0.1:{backend_port}
"""


def lbproxy_conf(port: int, backend_port: int) -> str:
    return f"""\
listeners:
  - name: bench
    bind: "127.0.0.1:{port}"
    routes:
      - match: {{path_prefix: /}}
        pool: backend
pools:
  backend:
    keepalive: {{max_idle_per_backend: {IDLE_UPSTREAM}}}
    backends:
      - {{address: "127.0.0.1:{backend_port}"}}
access_log: {{format: off}}
"""


# --------------------------------------------------------------------------
# wrk


@dataclass
class WrkResult:
    rps: float
    requests: int
    seconds: float
    p50_ms: float
    p75_ms: float
    p90_ms: float
    p99_ms: float
    non2xx: int  # wrk's "Non-2xx or 3xx responses"
    socket_errors: int  # connect + read + write + timeout

    @property
    def errors(self) -> int:
        return self.non2xx + self.socket_errors


_TIME_UNITS_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


def _to_ms(value: str, unit: str) -> float:
    return float(value) * _TIME_UNITS_MS[unit]


def parse_wrk(out: str) -> WrkResult:
    """Parse `wrk --latency` text output. Raises ValueError if it is not there."""
    m = re.search(r"^\s*(\d+) requests in ([\d.]+)(us|ms|s|m|h)", out, re.MULTILINE)
    if not m:
        raise ValueError("no 'N requests in' line in wrk output")
    requests = int(m.group(1))
    seconds = _to_ms(m.group(2), m.group(3)) / 1e3
    m = re.search(r"^Requests/sec:\s*([\d.]+)", out, re.MULTILINE)
    if not m:
        raise ValueError("no 'Requests/sec' line in wrk output")
    rps = float(m.group(1))
    pct: dict[str, float] = {}
    dist = out.split("Latency Distribution", 1)
    if len(dist) == 2:
        for pm in re.finditer(r"^\s*(50|75|90|99)%\s+([\d.]+)(us|ms|s|m|h)", dist[1], re.MULTILINE):
            pct[pm.group(1)] = _to_ms(pm.group(2), pm.group(3))
    # wrk prints no distribution when nothing completed; that is not a parse error.
    if requests and ("50" not in pct or "99" not in pct):
        raise ValueError("no latency distribution in wrk output (need --latency)")
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    socket_errors = sum(int(x) for x in m.groups()) if m else 0
    m = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", out)
    non2xx = int(m.group(1)) if m else 0
    nan = float("nan")
    return WrkResult(
        rps=rps,
        requests=requests,
        seconds=seconds,
        p50_ms=pct.get("50", nan),
        p75_ms=pct.get("75", nan),
        p90_ms=pct.get("90", nan),
        p99_ms=pct.get("99", nan),
        non2xx=non2xx,
        socket_errors=socket_errors,
    )


def wrk_argv(wrk: str, args: argparse.Namespace, port: int, duration: int) -> list[str]:
    return [
        wrk,
        f"-t{args.threads}",
        f"-c{args.connections}",
        f"-d{duration}s",
        f"--timeout={args.wrk_timeout}s",
        "--latency",
        f"http://127.0.0.1:{port}/",
    ]


def run_wrk(argv: list[str], duration: int, cpus: set[int] | None) -> tuple[str, int]:
    # Hard bound on top of -d in case wrk hangs (e.g. a proxy that stalls).
    # subprocess.run kills wrk if this times out or we are interrupted.
    cp = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=duration + 30,
        check=False,
        start_new_session=True,
        preexec_fn=_affinity_preexec(cpus),  # safe: single-threaded script
    )
    return cp.stdout + cp.stderr, cp.returncode


# --------------------------------------------------------------------------
# contenders


@dataclass
class Contender:
    name: str
    port: int = 0
    server: Managed | None = None
    failure: str | None = None  # set when it could not start / died
    log_tail: str = ""
    command: str = ""


@dataclass
class Measurement:
    round: int
    proxy: str
    ok: bool
    error: str | None = None
    wrk: WrkResult | None = None
    cpu_s: float = 0.0
    wall_s: float = 0.0
    cpu_us_per_req: float = float("nan")
    cpu_pct: float = float("nan")  # of one core, over the measured interval

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        if self.wrk is not None:
            d["errors"] = self.wrk.errors
        return d


@dataclass
class Summary:
    proxy: str
    ok_rounds: int
    rps: float = float("nan")
    p50_ms: float = float("nan")
    p99_ms: float = float("nan")
    errors: int = 0
    cpu_us_per_req: float = float("nan")
    cpu_pct: float = float("nan")
    rps_vs_nginx: float = float("nan")
    cpu_per_req_vs_nginx: float = float("nan")
    failure: str | None = None


class Bench:
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.servers: list[Managed] = []
        self.tools: dict[str, str | None] = {
            "wrk": find_tool("wrk", args.wrk),
            "nginx": find_tool("nginx", args.nginx),
            "haproxy": find_tool("haproxy", args.haproxy),
        }
        self.nginx_build = tool_output([self.tools["nginx"], "-V"]) if self.tools["nginx"] else ""
        self.proxy_cpus: set[int] | None = args.proxy_cpus
        self.load_cpus: set[int] | None = args.load_cpus
        self.backend_port = 0

    # -- lifecycle --------------------------------------------------------

    def start(
        self,
        name: str,
        argv: list[str],
        cpus: set[int] | None,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> Managed:
        server = Managed(name, argv, self.workdir / f"{name}.log", cpus, env, cwd)
        # Registered immediately so the finally-block stops it whatever happens.
        self.servers.append(server)
        return server

    def stop_all(self) -> None:
        # Reverse start order: proxies first, then the backend they talk to.
        for server in reversed(self.servers):
            try:
                server.stop()
            except Exception as exc:  # keep stopping the rest
                log(f"error stopping {server.name} (pid {server.pid}): {exc}")
        self.servers.clear()

    def start_backend(self) -> None:
        nginx = self.tools["nginx"]
        assert nginx is not None
        d = self.workdir / "backend"
        d.mkdir()
        self.backend_port = free_port()
        conf = d / "nginx.conf"
        conf.write_text(backend_conf(d, self.nginx_build, self.backend_port))
        argv = [
            nginx,
            "-p",
            str(d),
            "-c",
            str(conf),
            "-e",
            str(d / "error.log"),
            "-g",
            "daemon off;",
        ]
        server = self.start("backend", argv, self.load_cpus)
        why = wait_ready(server, self.backend_port, self.args.start_timeout)
        if why:
            raise RuntimeError(
                f"backend nginx failed: {why}\n{tail(server.log_path)}\n{tail(d / 'error.log')}"
            )
        log(f"backend nginx pid {server.pid} on 127.0.0.1:{self.backend_port}")

    def start_contender(self, name: str) -> Contender:
        c = Contender(name=name, port=free_port())
        try:
            argv, env, extra_log = self._contender_argv(name, c.port)
        except RuntimeError as exc:
            c.failure = str(exc)
            return c
        c.command = shlex.join(argv)
        c.server = self.start(name, argv, self.proxy_cpus, env=env, cwd=REPO_ROOT)
        why = wait_ready(c.server, c.port, self.args.start_timeout)
        if why:
            c.failure = f"failed to start: {why}"
            c.log_tail = "\n".join(
                t for t in (tail(c.server.log_path), tail(extra_log) if extra_log else "") if t
            )
            log(f"{name}: {c.failure}")
            # Stop it now so a half-started proxy does not steal CPU 0.
            c.server.stop()
            self.servers.remove(c.server)
            c.server = None
        else:
            log(f"{name} pid {c.server.pid} on 127.0.0.1:{c.port}")
        return c

    def _contender_argv(
        self, name: str, port: int
    ) -> tuple[list[str], dict[str, str] | None, Path | None]:
        d = self.workdir / name
        d.mkdir()
        if name in ("lbproxy", "lbproxy-pure"):
            conf = d / "lbproxy.yaml"
            conf.write_text(lbproxy_conf(port, self.backend_port))
            env = dict(os.environ)
            if name == "lbproxy-pure":
                env["LBPROXY_NO_EXTENSIONS"] = "1"
            else:
                env.pop("LBPROXY_NO_EXTENSIONS", None)
            return (
                [*shlex.split(self.args.lbproxy_cmd), "--config", str(conf)],
                env,
                None,
            )
        if name == "nginx":
            nginx = self.tools["nginx"]
            assert nginx is not None
            conf = d / "nginx.conf"
            conf.write_text(nginx_proxy_conf(d, self.nginx_build, port, self.backend_port))
            argv = [
                nginx,
                "-p",
                str(d),
                "-c",
                str(conf),
                "-e",
                str(d / "error.log"),
                "-g",
                "daemon off;",
            ]
            return argv, None, d / "error.log"
        if name == "haproxy":
            haproxy = self.tools["haproxy"]
            if haproxy is None:
                raise RuntimeError("haproxy not found (run bench/install-tools.sh)")
            conf = d / "haproxy.cfg"
            conf.write_text(haproxy_conf(port, self.backend_port, self.args.haproxy_reuse))
            # -db: stay in the foreground, one process (no master-worker).
            return [haproxy, "-db", "-f", str(conf)], None, None
        raise RuntimeError(f"unknown proxy {name!r}")

    # -- measuring --------------------------------------------------------

    def measure(self, c: Contender, round_no: int, duration: int) -> Measurement:
        wrk = self.tools["wrk"]
        assert wrk is not None and c.server is not None
        m = Measurement(round=round_no, proxy=c.name, ok=False)
        if not c.server.alive():
            m.error = f"proxy exited (status {c.server.proc.returncode})"
            return m
        argv = wrk_argv(wrk, self.args, c.port, duration)
        ticks0 = tree_cpu_ticks(c.server.pid)
        t0 = time.monotonic()
        out, rc = run_wrk(argv, duration, self.load_cpus)
        t1 = time.monotonic()
        ticks1 = tree_cpu_ticks(c.server.pid)
        if not c.server.alive():
            m.error = f"proxy exited during run (status {c.server.proc.returncode})"
            return m
        if rc != 0:
            m.error = f"wrk exit {rc}: {first_line(out)}"
            return m
        try:
            m.wrk = parse_wrk(out)
        except ValueError as exc:
            m.error = f"{exc}: {out.strip()[-300:]}"
            return m
        m.wall_s = t1 - t0
        m.cpu_s = (ticks1 - ticks0) / CLK_TCK
        m.cpu_pct = 100.0 * m.cpu_s / m.wall_s if m.wall_s > 0 else float("nan")
        if m.wrk.requests > 0:
            m.cpu_us_per_req = m.cpu_s * 1e6 / m.wrk.requests
            m.ok = True
        else:
            m.error = "no requests completed"
        return m


# --------------------------------------------------------------------------
# summary + report


def summarize(
    names: Sequence[str], contenders: dict[str, Contender], results: list[Measurement]
) -> list[Summary]:
    out: list[Summary] = []
    for name in names:
        c = contenders[name]
        runs = [r for r in results if r.proxy == name]
        good = [r for r in runs if r.ok and r.wrk is not None]
        s = Summary(proxy=name, ok_rounds=len(good), failure=c.failure)
        if not good and not s.failure:
            s.failure = next((r.error for r in runs if r.error), "no successful rounds")
        if good:
            s.rps = statistics.median(r.wrk.rps for r in good if r.wrk)
            s.p50_ms = statistics.median(r.wrk.p50_ms for r in good if r.wrk)
            s.p99_ms = statistics.median(r.wrk.p99_ms for r in good if r.wrk)
            s.errors = sum(r.wrk.errors for r in good if r.wrk)
            s.cpu_us_per_req = statistics.median(r.cpu_us_per_req for r in good)
            s.cpu_pct = statistics.median(r.cpu_pct for r in good)
        out.append(s)
    ref = next((s for s in out if s.proxy == "nginx" and s.ok_rounds), None)
    if ref:
        for s in out:
            if s.ok_rounds:
                s.rps_vs_nginx = s.rps / ref.rps
                s.cpu_per_req_vs_nginx = s.cpu_us_per_req / ref.cpu_us_per_req
    return out


def f(value: float, digits: int = 2) -> str:
    return "n/a" if math.isnan(value) else f"{value:,.{digits}f}"


def machine_info() -> dict[str, str]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        load = "unknown"
    return {
        "nproc": str(os.cpu_count()),
        "usable_cpus": fmt_cpus(os.sched_getaffinity(0)),
        "cpu_model": model,
        "kernel": platform.release(),
        "hostname": platform.node(),
        "loadavg_at_start": load,
    }


def versions(tools: dict[str, str | None], lbproxy_cmd: str) -> dict[str, str]:
    v: dict[str, str] = {}
    v["nginx"] = first_line(tool_output([tools["nginx"], "-v"])) if tools["nginx"] else "missing"
    v["haproxy"] = (
        first_line(tool_output([tools["haproxy"], "-v"])) if tools["haproxy"] else "missing"
    )
    v["wrk"] = first_line(tool_output([tools["wrk"], "-v"])) if tools["wrk"] else "missing"
    v["python (bench)"] = platform.python_version()
    lb_py = shlex.split(lbproxy_cmd)[0] if lbproxy_cmd else ""
    if lb_py and "python" in os.path.basename(lb_py):
        v["python (lbproxy)"] = first_line(tool_output([lb_py, "-VV"]))
    commit = tool_output(["git", "-C", str(REPO_ROOT), "rev-parse", "--short", "HEAD"])
    if commit and " " not in commit:
        dirty = tool_output(["git", "-C", str(REPO_ROOT), "status", "--porcelain"])
        v["lbproxy git"] = commit + (" (dirty tree)" if dirty else "")
    else:
        v["lbproxy git"] = "no commit"
    exts = sorted(p.name for p in (REPO_ROOT / "lbproxy").rglob("*.so"))
    v["lbproxy compiled extensions"] = ", ".join(exts) if exts else "none found"
    return v


def render_markdown(
    report: dict[str, Any],
    summaries: list[Summary],
    results: list[Measurement],
    contenders: dict[str, Contender],
) -> str:
    s = report["settings"]
    lines: list[str] = []
    lines.append(f"# Proxy comparison — {report['started']}")
    lines.append("")
    lines.append("## Machine")
    lines.append("")
    for k, val in report["machine"].items():
        lines.append(f"- {k}: {val}")
    lines.append(
        f"- pinning: proxy on CPU {s['proxy_cpus']}; wrk + backend on CPU {s['load_cpus']}"
    )
    load1 = report["machine"]["loadavg_at_start"].split()[0]
    try:
        busy = float(load1) >= 0.5
    except ValueError:
        busy = False
    if busy:
        # Other work on the box competes with wrk/backend/proxy; say so up front.
        lines.append(
            f"- **note:** 1-minute load average was {load1} at start: other work was "
            "running, so absolute numbers are noisy; compare proxies within this run."
        )
    lines.append("")
    lines.append("## Versions")
    lines.append("")
    for k, val in report["versions"].items():
        lines.append(f"- {k}: `{val}`")
    lines.append("")
    lines.append("## Command")
    lines.append("")
    lines.append("```")
    lines.append(report["command"])
    lines.append("```")
    lines.append("")
    lines.append(
        f"wrk: {s['threads']} thread(s), {s['connections']} connections, "
        f"{s['duration_s']}s per run, {s['rounds']} round(s), "
        f"{s['warmup_s']}s warm-up per proxy; order rotated each round. "
        f"Total wall time {report['elapsed_s']:.0f}s."
    )
    lines.append("")
    lines.append(f"## Median of {s['rounds']} round(s)")
    lines.append("")
    lines.append(
        "| proxy | req/s | p50 ms | p99 ms | errors | CPU µs/req | proxy CPU % "
        "| req/s ÷ nginx | CPU/req ÷ nginx | ok rounds |"
    )
    lines.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for sm in summaries:
        if sm.ok_rounds == 0:
            lines.append(f"| {sm.proxy} | FAILED | | | | | | | | 0/{s['rounds']} |")
            continue
        lines.append(
            f"| {sm.proxy} | {f(sm.rps, 0)} | {f(sm.p50_ms, 3)} | {f(sm.p99_ms, 3)} "
            f"| {sm.errors} | {f(sm.cpu_us_per_req, 1)} | {f(sm.cpu_pct, 0)} "
            f"| {f(sm.rps_vs_nginx)} | {f(sm.cpu_per_req_vs_nginx)} "
            f"| {sm.ok_rounds}/{s['rounds']} |"
        )
    lines.append("")
    lines.append(
        "errors = non-2xx/3xx responses + socket errors, summed over rounds. "
        "CPU µs/req = proxy process-tree (utime+stime) delta / requests completed. "
        "proxy CPU % is of one core; near 100 means the proxy was the bottleneck."
    )
    lines.append("")
    lines.append("## Per-round raw numbers")
    lines.append("")
    lines.append(
        "| round | proxy | req/s | requests | p50 ms | p75 ms | p90 ms | p99 ms "
        "| non-2xx | socket err | proxy CPU s | wall s | CPU µs/req | CPU % |"
    )
    lines.append("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        w = r.wrk
        if w is None or not r.ok:
            err = (r.error or "failed").replace("|", "/").replace("\n", " ")[:200]
            lines.append(f"| {r.round} | {r.proxy} | FAILED: {err} |||||||||||")
            continue
        lines.append(
            f"| {r.round} | {r.proxy} | {f(w.rps, 0)} | {w.requests} "
            f"| {f(w.p50_ms, 3)} "
            f"| {f(w.p75_ms, 3)} | {f(w.p90_ms, 3)} | {f(w.p99_ms, 3)} | {w.non2xx} "
            f"| {w.socket_errors} | {f(r.cpu_s)} | {f(r.wall_s)} "
            f"| {f(r.cpu_us_per_req, 1)} | {f(r.cpu_pct, 0)} |"
        )
    lines.append("")
    lines.append("## Proxy commands")
    lines.append("")
    for c in contenders.values():
        lines.append(f"- {c.name}: `{c.command or 'n/a'}`")
    failed = [c for c in contenders.values() if c.failure]
    if failed:
        lines.append("")
        lines.append("## Failures")
        for c in failed:
            lines.append("")
            lines.append(f"### {c.name}")
            lines.append("")
            lines.append(c.failure or "")
            if c.log_tail:
                lines.append("")
                lines.append("```")
                lines.append(c.log_tail)
                lines.append("```")
    lines.append("")
    return "\n".join(lines)


# --------------------------------------------------------------------------
# main


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="Benchmark lbproxy against nginx and HAProxy with wrk.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "--duration",
        type=parse_duration,
        default=None,
        help="measured wrk run length per proxy per round (default 10s)",
    )
    p.add_argument(
        "--warmup",
        type=parse_duration,
        default=None,
        help="warm-up wrk run per proxy before round 1 (default 3s)",
    )
    p.add_argument("--connections", type=int, default=50)
    p.add_argument("--threads", type=int, default=1, help="wrk threads")
    p.add_argument("--rounds", type=int, default=None, help="default 3")
    p.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: 3s runs, 1s warm-up, 2 rounds (explicit flags win)",
    )
    p.add_argument(
        "--proxies",
        default=",".join(DEFAULT_PROXIES),
        help=f"comma-separated subset of {','.join(ALL_PROXIES)}",
    )
    p.add_argument(
        "--include-pure",
        action="store_true",
        help="also run lbproxy with LBPROXY_NO_EXTENSIONS=1 as 'lbproxy-pure'",
    )
    p.add_argument(
        "--lbproxy-cmd",
        default=f"{shlex.quote(sys.executable)} -m lbproxy",
        help="command that starts lbproxy; '--config FILE' is appended",
    )
    p.add_argument(
        "--proxy-cpus",
        default="0",
        help="CPU list for the proxy under test ('none' = no pinning)",
    )
    p.add_argument(
        "--load-cpus",
        default="1",
        help="CPU list for wrk and the backend ('none' = no pinning)",
    )
    p.add_argument(
        "--haproxy-reuse",
        choices=("always", "safe"),
        default="always",
        help="HAProxy http-reuse mode",
    )
    p.add_argument("--wrk-timeout", type=int, default=2, help="wrk --timeout seconds")
    p.add_argument(
        "--start-timeout",
        type=float,
        default=15.0,
        help="seconds to wait for each server to answer",
    )
    p.add_argument(
        "--pause",
        type=float,
        default=1.0,
        help="seconds of idle between runs (lets TIME_WAIT/CPU settle)",
    )
    p.add_argument("--wrk", help="path to wrk")
    p.add_argument("--nginx", help="path to nginx")
    p.add_argument("--haproxy", help="path to haproxy")
    p.add_argument(
        "--output",
        type=Path,
        default=None,
        help="markdown report path (default bench/results/compare-<date>.md)",
    )
    p.add_argument("--no-save", action="store_true", help="print the report only")
    p.add_argument(
        "--json",
        metavar="PATH",
        default=None,
        help="also write results as JSON to PATH ('-' = stdout)",
    )
    p.add_argument(
        "--keep-tmp",
        action="store_true",
        help="keep the temp dir with configs and logs",
    )
    return p


def resolve_args(p: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    args = p.parse_args(argv)
    quick = args.quick
    if args.duration is None:
        args.duration = 3 if quick else 10
    if args.warmup is None:
        args.warmup = 1 if quick else 3
    if args.rounds is None:
        args.rounds = 2 if quick else 3
    if args.rounds < 1 or args.connections < 1 or args.threads < 1:
        p.error("--rounds, --connections and --threads must be >= 1")
    if args.threads > args.connections:
        p.error("wrk needs --connections >= --threads")
    names = [n.strip() for n in args.proxies.split(",") if n.strip()]
    for n in names:
        if n not in ALL_PROXIES:
            p.error(f"unknown proxy {n!r}; choose from {', '.join(ALL_PROXIES)}")
    if args.include_pure and "lbproxy-pure" not in names:
        # Run it right after lbproxy so the pair is measured back to back.
        idx = names.index("lbproxy") + 1 if "lbproxy" in names else 0
        names.insert(idx, "lbproxy-pure")
    if not names:
        p.error("no proxies selected")
    args.names = list(dict.fromkeys(names))
    usable = os.sched_getaffinity(0)
    for attr in ("proxy_cpus", "load_cpus"):
        raw = getattr(args, attr)
        if raw.strip().lower() in ("none", "", "-"):
            setattr(args, attr, None)
            continue
        cpus: set[int] | None
        try:
            cpus = parse_cpu_list(raw)
        except (argparse.ArgumentTypeError, ValueError) as exc:
            p.error(f"--{attr.replace('_', '-')}: {exc}")
        if not cpus <= usable:
            log(
                f"warning: --{attr.replace('_', '-')} {raw} not all usable "
                f"(have {fmt_cpus(usable)}); running unpinned"
            )
            cpus = None
        setattr(args, attr, cpus)
    if args.proxy_cpus and args.load_cpus and args.proxy_cpus & args.load_cpus:
        log("warning: proxy and load CPU sets overlap; numbers will be contaminated")
    return args


def estimate_seconds(args: argparse.Namespace) -> float:
    n = len(args.names)
    per_run = float(args.pause) + 0.5  # pause + wrk start/teardown + /proc scans
    return float(
        START_OVERHEAD_S * (n + 1)  # backend + each proxy starting
        + n * (args.warmup + per_run)
        + n * args.rounds * (args.duration + per_run)
    )


def run(args: argparse.Namespace, command: str) -> int:
    started = dt.datetime.now(dt.UTC)
    t_start = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="lbproxy-bench-"))
    bench = Bench(args, workdir)
    for tool in ("wrk", "nginx"):
        if bench.tools[tool] is None:
            log(f"{tool} not found; run bench/install-tools.sh (or pass --{tool})")
            return 2
    est = estimate_seconds(args)
    log(
        f"proxies: {', '.join(args.names)}; {args.rounds} round(s) x {args.duration}s, "
        f"{args.warmup}s warm-up, -c{args.connections} -t{args.threads}; "
        f"proxy CPUs {fmt_cpus(args.proxy_cpus)}, load CPUs {fmt_cpus(args.load_cpus)}"
    )
    # Worst case adds wrk's hard timeout per run and the start deadline per server.
    stall = len(args.names) * (args.rounds + 1) * 30 + (len(args.names) + 1) * args.start_timeout
    log(f"estimated total run time: ~{est:.0f}s (at most +{stall:.0f}s more if servers stall)")
    contenders: dict[str, Contender] = {}
    results: list[Measurement] = []
    try:
        bench.start_backend()
        for name in args.names:
            contenders[name] = bench.start_contender(name)
        live = [contenders[n] for n in args.names if not contenders[n].failure]
        # Warm-up: JIT-free but caches, connection pools, page faults, CPU
        # frequency all settle; numbers are discarded.
        for c in live:
            log(f"warm-up {c.name} {args.warmup}s")
            w = bench.measure(c, 0, args.warmup)
            if not w.ok:
                log(f"{c.name}: warm-up failed: {w.error}")
            time.sleep(args.pause)
        for rnd in range(1, args.rounds + 1):
            # Rotate the order each round so no proxy is always first/last.
            k = (rnd - 1) % max(len(live), 1)
            order = live[k:] + live[:k]
            for c in order:
                m = bench.measure(c, rnd, args.duration)
                if m.ok and m.wrk:
                    log(
                        f"round {rnd} {c.name}: {m.wrk.rps:,.0f} req/s, "
                        f"p50 {m.wrk.p50_ms:.3f}ms p99 {m.wrk.p99_ms:.3f}ms, "
                        f"{m.cpu_us_per_req:.1f} CPU µs/req, errors {m.wrk.errors}"
                    )
                else:
                    log(f"round {rnd} {c.name}: FAILED: {m.error}")
                results.append(m)
                time.sleep(args.pause)
        for c in contenders.values():
            if c.server is not None and not c.server.alive():
                c.log_tail = tail(c.server.log_path)
    finally:
        bench.stop_all()
        if args.keep_tmp:
            log(f"kept configs and logs in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    summaries = summarize(args.names, contenders, results)
    report: dict[str, Any] = {
        "started": started.strftime("%Y-%m-%d %H:%M:%S UTC"),
        "elapsed_s": time.monotonic() - t_start,
        "machine": machine_info(),
        "versions": versions(bench.tools, args.lbproxy_cmd),
        "command": command,
        "settings": {
            "proxies": args.names,
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "rounds": args.rounds,
            "connections": args.connections,
            "threads": args.threads,
            "proxy_cpus": fmt_cpus(args.proxy_cpus),
            "load_cpus": fmt_cpus(args.load_cpus),
            "haproxy_reuse": args.haproxy_reuse,
            "lbproxy_cmd": args.lbproxy_cmd,
            "clk_tck": CLK_TCK,
        },
    }
    md = render_markdown(report, summaries, results, contenders)
    # With `--json -` stdout carries only JSON; the report then goes to stderr.
    print(md, file=sys.stderr if args.json == "-" else sys.stdout)
    if not args.no_save:
        out = args.output or RESULTS_DIR / f"compare-{started.strftime('%Y-%m-%d-%H%M%S')}.md"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(md)
        log(f"report written to {out}")
    if args.json:
        report["summary"] = [asdict(sm) for sm in summaries]
        report["rounds"] = [r.to_json() for r in results]
        report["failures"] = {
            c.name: {"failure": c.failure, "log_tail": c.log_tail}
            for c in contenders.values()
            if c.failure
        }
        # NaN is not valid JSON; emit null instead.
        text = json.dumps(_nan_to_none(report), indent=2, default=str)
        if args.json == "-":
            print(text)
        else:
            Path(args.json).write_text(text + "\n")
            log(f"JSON written to {args.json}")
    return 0 if any(sm.ok_rounds for sm in summaries) else 1


def _nan_to_none(obj: Any) -> Any:
    if isinstance(obj, float) and math.isnan(obj):
        return None
    if isinstance(obj, dict):
        return {k: _nan_to_none(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_nan_to_none(v) for v in obj]
    return obj


def raise_nofile_limit() -> None:
    # Children inherit this; a low soft limit (often 1024) would make the
    # proxies fail accept() or refuse to start (HAProxy sizes maxconn from it).
    # Capped so HAProxy does not size its tables for a million sockets.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 65536 if hard == resource.RLIM_INFINITY else min(hard, 65536)
    if soft < want:
        target = want
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError) as exc:
            log(f"warning: could not raise open-file limit from {soft}: {exc}")


def _sigterm(signum: int, frame: FrameType | None) -> None:
    # Turn SIGTERM/SIGHUP into the same unwinding path as Ctrl-C so finally-blocks
    # stop every process we started.
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    args = resolve_args(build_parser(), argv)
    command = shlex.join([sys.executable, *sys.argv]) if argv is None else shlex.join(argv)
    # SIGINT explicitly too: a shell starting us in the background sets it to
    # "ignore", which would leave Ctrl-C/kill -INT unable to clean up.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _sigterm)
    raise_nofile_limit()
    try:
        return run(args, command)
    except KeyboardInterrupt:
        log("interrupted; all started processes were stopped")
        return 130


if __name__ == "__main__":
    sys.exit(main())
