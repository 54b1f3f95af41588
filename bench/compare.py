#!/usr/bin/env python3
"""Side-by-side benchmark: wrk -> {lbproxy, nginx, HAProxy} -> one nginx backend.

Every contender proxies to the same backend, is measured in the same run, and
the contenders are interleaved across rounds so that machine drift (noisy
neighbours, thermal, frequency scaling) hits all of them alike. For each
measured run we record wrk's throughput and latency percentiles plus the proxy
process tree's CPU time, which gives "CPU microseconds per request": the number
that stays meaningful even when the load generator, not the proxy, is the
bottleneck.

Standard library only (Python 3.11+); the HTTPS scenarios also need
``cryptography`` (an lbproxy dependency) for their certificate. See
bench/README.md for usage and for what each column means. Run
``bench/install-tools.sh`` first on a fresh machine.
"""

from __future__ import annotations

import argparse
import contextlib
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
import ssl
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
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
ALL_PROXIES = (
    "lbproxy",
    "lbproxy-pure",
    "nginx",
    "haproxy",
    "aiohttp-naive",
    "bare-relay",
    "pproxy",
)
DEFAULT_PROXIES = ("lbproxy", "nginx", "haproxy")
# Python peers, added by --include-peers (off by default to keep --quick short).
PEER_PROXIES = ("aiohttp-naive", "bare-relay", "pproxy")
# Contenders that only relay TCP bytes (no HTTP parsing): marked in the report.
L4_PROXIES = frozenset({"pproxy"})
LUA_DIR = Path(__file__).resolve().parent / "lua"
LARGE_BODY_BYTES = 1024 * 1024
UPLOAD_BODY_BYTES = 64 * 1024


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    path: str = "/"
    lua: str | None = None  # wrk -s script in bench/lua/
    headers: tuple[str, ...] = ()  # extra wrk -H headers
    # Fixed request rate (bench/lua/fixed_rate.lua, --latency-connections)
    # instead of as fast as possible; also measured without a proxy ("direct").
    paced: bool = False
    # wrk speaks HTTPS to a second instance of each proxy that terminates TLS
    # (TLS_PROXIES, one shared certificate) and proxies plain HTTP.
    tls: bool = False
    # > 0: instances of each proxy with this many workers (WORKER_PROXIES),
    # their own backend and wrk -t/-c WORKERS_WRK, nothing pinned.
    workers: int = 0


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario("small", "small response (6 B), keep-alive"),
        Scenario("large", "1 MiB responses, keep-alive", path="/large"),
        Scenario(
            "upload",
            "64 KiB POST uploads, small response, keep-alive",
            path="/upload",
            lua="post64k.lua",
        ),
        Scenario(
            "close",
            "new connection per request (Connection: close)",
            headers=("Connection: close",),
        ),
        Scenario(
            "latency",
            "latency at a fixed request rate, keep-alive",
            lua="fixed_rate.lua",
            paced=True,
        ),
        Scenario("https", "HTTPS keep-alive, TLS terminated by the proxy", tls=True),
        Scenario(
            "https-close",
            "HTTPS, new connection per request (a TLS handshake each)",
            headers=("Connection: close",),
            tls=True,
        ),
    )
}
LATENCY_SCENARIO = "latency"
# The latency scenario's target rate: this fraction of lbproxy's max req/s.
LATENCY_FRACTION = 0.5
# Seconds of the one wrk run that measures lbproxy's max req/s for the latency
# scenario when scenario `small` did not run (capped by --duration).
CALIBRATION_S = 3
# Pseudo-contender of the latency scenario: wrk straight to the backend.
DIRECT = "direct"
# Proxies that have a TLS-terminating variant for the https scenarios (the
# Python peers have none).
TLS_PROXIES = frozenset({"lbproxy", "lbproxy-pure", "nginx", "haproxy"})
TLS_HOSTNAME = "bench.test"  # the certificate's name (wrk does not check it)
# One selectable scenario that runs `small`'s load against every proxy with N
# workers for each N in --workers-list: lbproxy `workers: N`, nginx
# `worker_processes N`, HAProxy `nbthread N` (measured as workers-1, ...).
WORKERS_SCENARIO = "workers"
WORKER_PROXIES = TLS_PROXIES
# wrk -t/-c for it: enough load for 4 workers (bench/workers.py's setting).
WORKERS_WRK = (2, 100)
DEFAULT_WORKERS_LIST = (1, 2, 4)
# Not a wrk scenario: N idle keep-alive connections, RSS growth per connection.
IDLE_SCENARIO = "idle"
ALL_SCENARIOS = (*SCENARIOS, WORKERS_SCENARIO, IDLE_SCENARIO)
# --quick without --scenarios leaves these out to stay under 3 minutes.
QUICK_SKIPS = ("https-close", WORKERS_SCENARIO)
# Seconds we budget per start/stop/pause when estimating run time up front.
START_OVERHEAD_S = 1.0


def workers_scenario(n: int) -> Scenario:
    """Scenario `workers` for one N: `small`'s request, every proxy with N workers."""
    return Scenario(
        f"{WORKERS_SCENARIO}-{n}", f"small response, keep-alive, {n} worker(s)", workers=n
    )


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
    user: int = 0  # utime + cutime
    system: int = 0  # stime + cstime


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
    return ProcStat(
        pid, ppid, utime + stime + cutime + cstime, starttime, utime + cutime, stime + cstime
    )


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


def rss_kib(pid: int, field: str = "VmRSS") -> int:
    """VmRSS (or VmHWM) of one process in KiB; 0 if it is gone."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def tree_rss_kib(pids: Sequence[int], field: str = "VmRSS") -> int:
    # Summed over the tree (nginx master + worker, lbproxy workers). Shared
    # pages count once per process, as `ps` would show them.
    return sum(rss_kib(pid, field) for pid in pids)


def tree_pids(root: int) -> list[int]:
    return [st.pid for st in process_tree(root)]


# --------------------------------------------------------------------------
# process management


def _affinity_preexec(cpus: set[int] | None) -> Callable[[], None]:
    def setup() -> None:
        # The idle scenario needs >10,000 sockets in the proxy: soft limit up
        # to the hard limit (capped, see raise_nofile_limit).
        _raise_nofile()
        if cpus is not None:
            # Same effect as `taskset -c`, but the pid we hold is the server
            # itself (no wrapper) and no util-linux dependency.
            os.sched_setaffinity(0, cpus)

    return setup


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


def unverified_tls_context() -> ssl.SSLContext:
    """A client context that accepts the benchmark's self-signed certificate."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def http_probe(
    port: int, timeout: float = 1.0, tls: bool = False, body: str | None = BACKEND_BODY
) -> str | None:
    """None if GET / (over TLS if ``tls``) returns 200 with ``body`` (the
    backend's; None: any), else a reason."""
    conn = (
        http.client.HTTPSConnection(
            "127.0.0.1", port, timeout=timeout, context=unverified_tls_context()
        )
        if tls
        else http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    )
    try:
        conn.request("GET", "/")
        resp = conn.getresponse()
        got = resp.read()
    except (OSError, http.client.HTTPException) as exc:
        return f"{type(exc).__name__}: {exc}"
    finally:
        conn.close()
    if resp.status != 200:
        return f"HTTP {resp.status}"
    if body is not None and got.decode(errors="replace") != body:
        return f"unexpected body {got[:60]!r}"
    return None


def wait_ready(
    server: Managed, port: int, timeout: float, tls: bool = False, body: str | None = BACKEND_BODY
) -> str | None:
    """Poll until the server answers correctly (``body``: see http_probe);
    None on success, else why not."""
    deadline = time.monotonic() + timeout
    reason = "no attempt"
    while time.monotonic() < deadline:
        if not server.alive():
            return f"exited with status {server.proc.returncode}: {reason}"
        reason = http_probe(port, tls=tls, body=body) or ""
        if not reason:
            return None
        time.sleep(0.1)
    return f"not ready after {timeout:.0f}s (last: {reason})"


def tls_session_info(port: int, timeout: float = 2.0) -> str:
    """What a TLS server offers wrk: protocol, cipher, and whether it resumes.

    wrk 4.1 (Debian's, on OpenSSL 3) negotiates TLS 1.3 with lbproxy and
    nginx (HAProxy offers the same versions), and offers each new connection the session of its
    previous one (counted on 2026-11-29: nginx's $ssl_protocol and
    $ssl_session_reused log, 5,385 of 5,395 `Connection: close` requests
    resumed over TLS 1.3; lbproxy's handshakes, 16,564 of 16,614). A resumed
    TLS 1.3 handshake skips the certificate signature but still does an ECDHE
    key exchange. This probe does the same with OpenSSL's defaults: a request,
    then a second connection offering its session.
    """
    ctx = unverified_tls_context()
    request = f"GET / HTTP/1.1\r\nHost: {TLS_HOSTNAME}\r\nConnection: close\r\n\r\n".encode()
    session: ssl.SSLSession | None = None
    first, reused = "", False
    try:
        for _ in range(2):
            with (
                socket.create_connection(("127.0.0.1", port), timeout=timeout) as raw,
                ctx.wrap_socket(raw, server_hostname=TLS_HOSTNAME, session=session) as tls,
            ):
                tls.sendall(request)
                while tls.recv(4096):
                    pass
                cipher = tls.cipher()
                first = first or f"{tls.version()} {cipher[0] if cipher else '?'}"
                reused, session = tls.session_reused, tls.session
                with contextlib.suppress(OSError, ValueError):
                    tls.unwrap()  # close_notify, as wrk sends: the session stays good
    except OSError as exc:
        return f"TLS probe failed: {exc}"
    return f"{first}, resumes sessions: {'yes' if reused else 'no'}"


@dataclass(frozen=True)
class TlsFiles:
    """The one certificate every TLS-terminating proxy serves."""

    cert: Path
    key: Path
    combined: Path  # cert + key in one PEM: HAProxy's `crt`
    description: str


def make_tls_files(d: Path) -> TlsFiles:
    """A self-signed ECDSA P-256 certificate for TLS_HOSTNAME, valid for a day.

    Needs ``cryptography`` (an lbproxy dependency), imported here so that the
    other scenarios keep to the standard library.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, TLS_HOSTNAME)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(TLS_HOSTNAME)]), False)
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    d.mkdir(parents=True, exist_ok=True)
    files = TlsFiles(
        d / "bench.pem",
        d / "bench.key",
        d / "combined.pem",
        f"self-signed ECDSA P-256 (SHA-256) certificate for {TLS_HOSTNAME}",
    )
    files.cert.write_bytes(cert_pem)
    files.key.write_bytes(key_pem)
    files.combined.write_bytes(cert_pem + key_pem)
    return files


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


def nginx_main_conf(
    d: Path, nginx_build: str, http_body: str, worker_connections: int = 8192, workers: int = 1
) -> str:
    (d / "tmp").mkdir(parents=True, exist_ok=True)
    return f"""\
worker_processes {workers};
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections {worker_connections}; }}
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


def backend_conf(d: Path, nginx_build: str, port: int, workers: int = 1) -> str:
    # /large: a 1 MiB static file (sendfile); /upload: reads and discards the
    # 64 KiB request body (kept in memory), answers small.
    www = d / "www"
    www.mkdir(parents=True, exist_ok=True)
    (www / "large").write_bytes(b"x" * (LARGE_BODY_BYTES - 1) + b"\n")
    # Run as root, nginx's worker drops to an unprivileged user: it must be
    # able to reach the file through our (mkdtemp: 0700) directories.
    for path in (d.parent, d, www):
        path.chmod(0o755)
    (www / "large").chmod(0o644)
    body = f"""\
    sendfile on;
    client_max_body_size 16m;
    client_body_buffer_size 1m;
    server {{
        listen 127.0.0.1:{port};
        location / {{
            default_type text/plain;
            return 200 "{BACKEND_BODY.strip()}\\n";
        }}
        location = /large {{
            root {www};
            default_type application/octet-stream;
        }}
    }}"""
    return nginx_main_conf(d, nginx_build, body, workers=workers)


def nginx_backend_argv(nginx: str, d: Path) -> list[str]:
    """nginx in the foreground on the backend config written in ``d``."""
    conf = d / "nginx.conf"
    return [nginx, "-p", str(d), "-c", str(conf), "-e", str(d / "error.log"), "-g", "daemon off;"]


def start_nginx_backend(
    nginx: str,
    nginx_build: str,
    workdir: Path,
    name: str,
    port: int,
    cpus: set[int] | None,
    workers: int = 1,
    timeout: float = 10.0,
) -> Managed:
    """A backend nginx (``backend_conf``, ``workers`` worker processes) in
    ``workdir/name``, ready on ``port`` (compare.py's backends, and those of
    the benchmarks beside it: slowloris, failover, observability)."""
    d = workdir / name
    d.mkdir(exist_ok=True)
    (d / "nginx.conf").write_text(backend_conf(d, nginx_build, port, workers))
    server = Managed(name, nginx_backend_argv(nginx, d), workdir / f"{name}.log", cpus)
    try:
        why = wait_ready(server, port, timeout)
    except BaseException:  # Ctrl-C while waiting: nothing may outlive us
        server.stop()
        raise
    if why:
        server.stop()
        raise RuntimeError(f"{name}: {why}\n{tail(server.log_path)}\n{tail(d / 'error.log')}")
    return server


IDLE_UPSTREAM = 256


def nginx_proxy_conf(
    d: Path,
    nginx_build: str,
    port: int,
    backend_port: int,
    tls: TlsFiles | None = None,
    workers: int = 1,
) -> str:
    listen = f"listen 127.0.0.1:{port};"
    if tls is not None:
        listen = (
            f"listen 127.0.0.1:{port} ssl;\n"
            f"        ssl_certificate {tls.cert};\n"
            f"        ssl_certificate_key {tls.key};\n"
            "        ssl_protocols TLSv1.2 TLSv1.3;"
        )
    body = f"""\
    upstream backend {{
        server 127.0.0.1:{backend_port};
        # Idle upstream connections kept: more than wrk's connections, as
        # for lbproxy below, so neither reconnects in steady state (HAProxy
        # has no such cap).
        keepalive {IDLE_UPSTREAM};
        keepalive_requests 100000000;
    }}
    # 64 KiB uploads: default client_body_buffer_size (16k) would spool every
    # body to a temp file; stream them instead, like HAProxy and lbproxy.
    client_max_body_size 16m;
    proxy_request_buffering off;
    server {{
        {listen}
        location / {{
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}"""
    # worker_connections: room for the idle scenario's 10,000 client sockets.
    return nginx_main_conf(d, nginx_build, body, worker_connections=16384, workers=workers)


def haproxy_conf(
    port: int,
    backend_port: int,
    reuse: str,
    maxconn: int = 11000,
    tls: TlsFiles | None = None,
    threads: int = 1,
) -> str:
    # No `log` lines anywhere: logging off, like the other contenders.
    ssl_opts = f" ssl crt {tls.combined}" if tls is not None else ""
    return f"""\
global
    nbthread {threads}
    # Room for the idle scenario's 10,000 client connections (HAProxy would
    # otherwise derive maxconn from the open-file limit).
    maxconn {maxconn}

defaults
    mode http
    option http-keep-alive
    http-reuse {reuse}
    timeout connect 5s
    timeout client 30s
    timeout server 30s
    timeout http-keep-alive 60s

frontend fe
    bind 127.0.0.1:{port}{ssl_opts}
    default_backend be

backend be
    server b1 127.0.0.1:{backend_port}
"""


def lbproxy_conf(
    port: int, backend_port: int, tls: TlsFiles | None = None, workers: int | None = None
) -> str:
    tls_line = (
        f'    tls: {{certificates: [{{cert: "{tls.cert}", key: "{tls.key}"}}]}}\n'
        if tls is not None
        else ""
    )
    workers_line = f"workers: {workers}\n" if workers is not None else ""
    return f"""\
{workers_line}listeners:
  - name: bench
    bind: "127.0.0.1:{port}"
{tls_line}    routes:
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
    p999_ms: float = float("nan")  # only from fixed_rate.lua (scenario latency)

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


_FIXED_RATE_LINE = re.compile(r"^FIXED_RATE (.*)$", re.MULTILINE)
_FIXED_RATE_KEYS = (
    "requests",
    "duration_us",
    "p50_us",
    "p75_us",
    "p90_us",
    "p99_us",
    "p999_us",
    "connect",
    "read",
    "write",
    "status",
    "timeout",
)


def parse_fixed_rate(out: str) -> WrkResult:
    """Parse the `FIXED_RATE key=value ...` line that bench/lua/fixed_rate.lua prints.

    Raises ValueError if it is missing or incomplete.
    """
    m = _FIXED_RATE_LINE.search(out)
    if not m:
        raise ValueError("no 'FIXED_RATE' line in wrk output (fixed_rate.lua done())")
    fields: dict[str, float] = {}
    for item in m.group(1).split():
        key, _, value = item.partition("=")
        with contextlib.suppress(ValueError):
            fields[key] = float(value)
    missing = [k for k in _FIXED_RATE_KEYS if k not in fields]
    if missing:
        raise ValueError(f"FIXED_RATE line lacks {', '.join(missing)}")
    requests = int(fields["requests"])
    seconds = fields["duration_us"] / 1e6
    nan = float("nan")

    def ms(key: str) -> float:
        # wrk prints no percentiles worth the name when nothing completed.
        return fields[key] / 1e3 if requests else nan

    return WrkResult(
        rps=requests / seconds if seconds > 0 else nan,
        requests=requests,
        seconds=seconds,
        p50_ms=ms("p50_us"),
        p75_ms=ms("p75_us"),
        p90_ms=ms("p90_us"),
        p99_ms=ms("p99_us"),
        p999_ms=ms("p999_us"),
        non2xx=int(fields["status"]),
        socket_errors=int(sum(fields[k] for k in ("connect", "read", "write", "timeout"))),
    )


def wrk_argv(
    wrk: str,
    args: argparse.Namespace,
    port: int,
    duration: int,
    scenario: Scenario,
    rate: float | None = None,
) -> list[str]:
    """wrk's command line; `rate` (total req/s) is required for a paced scenario."""
    threads, connections = args.threads, args.connections
    if scenario.paced:
        connections = args.latency_connections
    elif scenario.workers:
        threads, connections = WORKERS_WRK
    argv = [
        wrk,
        f"-t{threads}",
        f"-c{connections}",
        f"-d{duration}s",
        f"--timeout={args.wrk_timeout}s",
        "--latency",
    ]
    for h in scenario.headers:
        argv += ["-H", h]
    if scenario.lua:
        argv += ["-s", str(LUA_DIR / scenario.lua)]
    scheme = "https" if scenario.tls else "http"
    argv.append(f"{scheme}://127.0.0.1:{port}{scenario.path}")
    if scenario.paced:
        if rate is None or not rate > 0:
            raise ValueError(f"scenario {scenario.name} needs a target rate")
        # fixed_rate.lua's init(args): target req/s and -c (wrk hides -c from Lua).
        argv += ["--", f"{rate:.1f}", str(connections)]
    return argv


def run_wrk(
    argv: list[str],
    duration: int,
    cpus: set[int] | None,
    sample_pids: Sequence[int] = (),
    sample_every: float = 0.2,
) -> tuple[str, int, int]:
    """Run wrk; returns (output, exit status, max summed VmRSS KiB of sample_pids).

    While wrk runs we poll the proxy tree's RSS (a few /proc reads per sample).
    Output goes to a temp file, so nothing blocks on a full pipe.
    """
    peak = tree_rss_kib(sample_pids) if sample_pids else 0
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_affinity_preexec(cpus),  # safe: single-threaded script
        )
        try:
            # Hard bound on top of -d in case wrk hangs (e.g. a proxy stalls).
            deadline = time.monotonic() + duration + 30
            while proc.poll() is None:
                if time.monotonic() > deadline:
                    raise subprocess.TimeoutExpired(argv, duration + 30)
                if sample_pids:
                    peak = max(peak, tree_rss_kib(sample_pids))
                time.sleep(sample_every)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        out.seek(0)
        text = out.read().decode(errors="replace")
    return text, proc.returncode, peak


def wrk_cpu(
    wrk: str, options: list[str], url: str, seconds: int, cpus: set[int] | None, pid: int, name: str
) -> tuple[float, float]:
    """wrk ``options`` against ``url``: a 2 s warm-up, then ``seconds``
    measured. Returns (requests/s, CPU microseconds per request of ``pid``'s
    process tree, user+sys from /proc); raises on any failed request (for the
    side benchmarks: failover, observability, workers, https)."""
    run_wrk([wrk, *options, "-d2s", "--latency", url], 2, cpus)
    ticks0 = tree_cpu_ticks(pid)
    out, status, _ = run_wrk([wrk, *options, f"-d{seconds}s", "--latency", url], seconds, cpus)
    ticks1 = tree_cpu_ticks(pid)
    if status != 0:
        raise RuntimeError(f"wrk failed ({status}): {out[-300:]}")
    r = parse_wrk(out)
    if r.errors:
        raise RuntimeError(f"{name}: {r.errors} failed requests\n{out[-500:]}")
    return r.rps, (ticks1 - ticks0) / CLK_TCK / r.requests * 1e6


# --------------------------------------------------------------------------
# instructions per request (callgrind): repeatable where CPU time is noisy


def sequential_requests(port: int, requests: Iterable[bytes], timeout: float = 60) -> int:
    """Send each of ``requests`` (whole request heads) on one keep-alive
    connection, one at a time, reading each response (200, with a
    Content-Length) in full; returns how many were sent."""
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        for request in requests:
            s.sendall(request)
            buf = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    raise RuntimeError(f"the server closed the connection after {sent} requests")
                buf += chunk
                head, sep, body = buf.partition(b"\r\n\r\n")
                if sep:
                    if not head.startswith(b"HTTP/1.1 200 "):
                        raise RuntimeError(f"request {sent + 1}: {head[:200]!r}")
                    m = re.search(rb"content-length: *(\d+)", head, re.I)
                    if m is None:
                        raise RuntimeError(f"no Content-Length in {head!r}")
                    if len(body) >= int(m[1]):
                        break
            sent += 1
    return sent


def start_callgrind(
    name: str,
    argv: list[str],
    work: Path,
    port: int,
    cpus: set[int] | None,
    *,
    instr_atstart: bool = True,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 180,
) -> Managed:
    """Start ``argv`` under ``valgrind --tool=callgrind`` (log: ``work/NAME.log``,
    callgrind's file: ``work/NAME.callgrind``) and wait until it accepts
    connections on ``port`` (start-up under valgrind is slow). With
    ``instr_atstart=False`` nothing is counted until
    ``callgrind_control(pid, ["-i", "on"], ...)``."""
    server = Managed(
        name,
        [
            *("valgrind", "--tool=callgrind", f"--callgrind-out-file={work / name}.callgrind"),
            f"--instr-atstart={'yes' if instr_atstart else 'no'}",
            *argv,
        ],
        work / f"{name}.log",
        cpus,
        env=env,
        cwd=cwd,
    )
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return server
            except OSError:
                if time.monotonic() > deadline or not server.alive():
                    raise RuntimeError(
                        f"{name} under valgrind did not start\n{tail(server.log_path)}"
                    ) from None
                time.sleep(0.2)
    except BaseException:
        server.stop()
        raise


def callgrind_control(pid: int, args: Sequence[str], work: Path, timeout: float = 120) -> str:
    """``callgrind_control ARGS PID`` (e.g. ``-i on``); its output. It runs in
    its own session and is stopped by pid, with the vgdb it starts, on a
    timeout or an error, so neither is left behind."""
    log_path = work / f"callgrind_control-{pid}.log"
    ctl = Managed("callgrind_control", ["callgrind_control", *args, str(pid)], log_path, None)
    try:
        deadline = time.monotonic() + timeout
        while ctl.alive():
            if time.monotonic() > deadline:
                raise RuntimeError(f"callgrind_control {' '.join(args)} {pid}: no answer")
            time.sleep(0.05)
    finally:
        ctl.stop()
    text = log_path.read_text(errors="replace")
    if ctl.proc.returncode != 0 or "OK." not in text:  # an unknown pid still exits 0
        raise RuntimeError(f"callgrind_control {' '.join(args)} {pid} failed: {text[-300:]}")
    return text


def callgrind_total(server: Managed, grace: float = 300) -> int:
    """Stop a program started by start_callgrind (SIGTERM: it dumps its
    counts and exits) and return the instructions callgrind collected."""
    server.stop(grace)
    m = re.search(r"Collected : (\d+)", server.log_path.read_text(errors="replace"))
    if m is None:
        raise RuntimeError(f"no callgrind total for {server.name}\n{tail(server.log_path)}")
    return int(m[1])


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
    # The latency scenario's "direct" row: wrk to the backend, no proxy. Then
    # `server` is the backend and no proxy CPU or RSS is measured.
    direct: bool = False
    variant: str = ""  # "" (plain), "TLS" or "N workers": which instance this is
    tls_info: str = ""  # TLS variant: protocol and cipher it negotiates


@dataclass
class Measurement:
    round: int
    proxy: str
    ok: bool
    scenario: str = "small"
    peak_rss_kib: int = 0  # max sampled VmRSS of the proxy tree during the run
    error: str | None = None
    wrk: WrkResult | None = None
    cpu_s: float = 0.0
    wall_s: float = 0.0
    cpu_us_per_req: float = float("nan")
    cpu_pct: float = float("nan")  # of one core, over the measured interval
    target_rps: float = float("nan")  # paced scenario only

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        if self.wrk is not None:
            d["errors"] = self.wrk.errors
        return d


@dataclass
class Summary:
    proxy: str
    ok_rounds: int
    scenario: str = "small"
    peak_rss_kib: int = 0  # max over this scenario's runs (warm-up included)
    rps: float = float("nan")
    p50_ms: float = float("nan")
    p99_ms: float = float("nan")
    errors: int = 0
    cpu_us_per_req: float = float("nan")
    cpu_pct: float = float("nan")
    rps_vs_nginx: float = float("nan")
    cpu_per_req_vs_nginx: float = float("nan")
    failure: str | None = None
    # Paced (latency) scenario only:
    target_rps: float = float("nan")
    p999_ms: float = float("nan")
    p99_over_direct_ms: float = float("nan")  # median p99 - direct's median p99


@dataclass
class IdleResult:
    """Scenario 6: RSS growth of the proxy tree per idle keep-alive connection."""

    proxy: str
    target: int
    opened: int = 0
    rss_before_kib: int = 0
    rss_after_kib: int = 0
    seconds: float = 0.0
    error: str | None = None

    @property
    def kib_per_conn(self) -> float:
        if self.opened <= 0:
            return float("nan")
        return (self.rss_after_kib - self.rss_before_kib) / self.opened

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["kib_per_conn"] = self.kib_per_conn
        return d


def _read_response(sock: socket.socket) -> bool:
    """Read one small HTTP response with a Content-Length; True if it is 200."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(4096)
        if not chunk:
            return False
        buf += chunk
    head, _, body = buf.partition(b"\r\n\r\n")
    m = re.search(rb"(?im)^content-length:\s*(\d+)", head)
    want = int(m.group(1)) if m else 0
    while len(body) < want:
        chunk = sock.recv(4096)
        if not chunk:
            return False
        body += chunk
    return head.startswith(b"HTTP/1.1 200")


def open_idle_connections(
    port: int, n: int, batch: int, sockets: list[socket.socket], timeout: float = 5.0
) -> str | None:
    """Open n keep-alive connections, one request each; append them to sockets.

    Batches of `batch`: connect the batch, send all its requests, then read all
    the answers, so the backend never sees more than `batch` at once. Returns an
    error text on the first failure (the sockets opened so far stay open).
    """
    req = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    while len(sockets) < n:
        todo: list[socket.socket] = []
        try:
            for _ in range(min(batch, n - len(sockets))):
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                todo.append(s)
                s.settimeout(timeout)
                # RST on close: no TIME_WAIT pile-up across proxies.
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                s.connect(("127.0.0.1", port))
                s.sendall(req)
            for s in todo:
                if not _read_response(s):
                    close_all(todo)
                    return f"bad response after {len(sockets)} connections"
        except OSError as exc:
            for s in todo:
                s.close()
            return f"{type(exc).__name__} after {len(sockets)} connections: {exc}"
        sockets.extend(todo)
    return None


def close_all(sockets: list[socket.socket]) -> None:
    for s in sockets:
        with contextlib.suppress(OSError):
            s.close()
    sockets.clear()


# pproxy 2.7 calls asyncio.get_event_loop() after installing uvloop's policy,
# which raises on Python 3.11+ when no loop is set yet; give it one, then run
# its normal entry point (still on uvloop, its fastest setup).
PPROXY_MAIN = """\
import asyncio, sys
_get = asyncio.get_event_loop
def _get_or_new():
    try:
        return _get()
    except RuntimeError:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        return loop
asyncio.get_event_loop = _get_or_new
sys.argv[0] = "pproxy"
from pproxy.server import main
main()
"""


def haproxy_maxconn() -> int:
    # HAProxy refuses to start if maxconn * 2 (+ margin) exceeds the hard
    # open-file limit, so the idle scenario gets at most this many for it.
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard == resource.RLIM_INFINITY:
        return 11000
    return max(256, min(11000, (hard - 200) // 2))


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
        self.backend_command = ""
        self.tls: TlsFiles | None = None  # made by the first TLS scenario

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

    def stop_group(self, group: Sequence[Contender], backend: Managed | None = None) -> None:
        """Stop the servers of one scenario group (and its own backend), keeping
        the log tail of any that died."""
        for c in group:
            if c.server is None:
                continue
            if not c.server.alive():
                c.log_tail = tail(c.server.log_path)
            self._stop(c.server)
        if backend is not None:
            self._stop(backend)

    def _stop(self, server: Managed) -> None:
        try:
            server.stop()
        except Exception as exc:
            log(f"error stopping {server.name} (pid {server.pid}): {exc}")
        with contextlib.suppress(ValueError):
            self.servers.remove(server)

    def stop_all(self) -> None:
        # Reverse start order: proxies first, then the backend they talk to.
        for server in reversed(self.servers):
            try:
                server.stop()
            except Exception as exc:  # keep stopping the rest
                log(f"error stopping {server.name} (pid {server.pid}): {exc}")
        self.servers.clear()

    def start_backend(
        self, name: str = "backend", workers: int = 1, cpus: set[int] | None = None
    ) -> tuple[Managed, int]:
        """An nginx backend; returns (server, port). The main one ("backend")
        runs on the load CPUs and its port is kept in self.backend_port."""
        nginx = self.tools["nginx"]
        assert nginx is not None
        port = free_port()
        if name == "backend":
            cpus = self.load_cpus
        server = start_nginx_backend(
            nginx,
            self.nginx_build,
            self.workdir,
            name,
            port,
            cpus,
            workers,
            self.args.start_timeout,
        )
        self.servers.append(server)
        if name == "backend":
            self.backend_port, self.backend_command = port, shlex.join(server.argv)
        log(f"{name} nginx pid {server.pid} on 127.0.0.1:{port}")
        return server, port

    def start_contender(
        self, name: str, workers: int = 0, backend_port: int = 0, tls: bool = False
    ) -> Contender:
        """One proxy: the plain instance, the TLS-terminating one (``tls``), or
        one with ``workers`` workers (unpinned, to ``backend_port``)."""
        variant = "TLS" if tls else f"{workers} worker{'s' * (workers > 1)}" if workers else ""
        c = Contender(name=name, port=free_port(), variant=variant)
        key = name + ("-tls" if tls else f"-w{workers}" if workers else "")
        try:
            if tls and self.tls is None:
                self.tls = make_tls_files(self.workdir / "tls")
            argv, env, extra_log = self._contender_argv(
                name,
                key,
                c.port,
                backend_port or self.backend_port,
                self.tls if tls else None,
                workers,
            )
        except (RuntimeError, ImportError) as exc:
            c.failure = f"{type(exc).__name__}: {exc}" if isinstance(exc, ImportError) else str(exc)
            return c
        c.command = shlex.join(argv)
        cpus = None if workers else self.proxy_cpus
        c.server = self.start(key, argv, cpus, env=env, cwd=REPO_ROOT)
        why = wait_ready(c.server, c.port, self.args.start_timeout, tls)
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
            if tls:
                c.tls_info = tls_session_info(c.port)
            log(f"{key} pid {c.server.pid} on 127.0.0.1:{c.port}")
        return c

    def _contender_argv(
        self,
        name: str,
        key: str,
        port: int,
        backend_port: int,
        tls: TlsFiles | None = None,
        workers: int = 0,
    ) -> tuple[list[str], dict[str, str] | None, Path | None]:
        d = self.workdir / key
        d.mkdir()
        if (tls is not None and name not in TLS_PROXIES) or (
            workers and name not in WORKER_PROXIES
        ):
            raise RuntimeError(f"{name} has no {'TLS' if tls else 'workers'} variant")
        if name in ("lbproxy", "lbproxy-pure"):
            conf = d / "lbproxy.yaml"
            conf.write_text(lbproxy_conf(port, backend_port, tls, workers or None))
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
            (d / "nginx.conf").write_text(
                nginx_proxy_conf(d, self.nginx_build, port, backend_port, tls, workers or 1)
            )
            return nginx_backend_argv(nginx, d), None, d / "error.log"
        if name == "haproxy":
            haproxy = self.tools["haproxy"]
            if haproxy is None:
                raise RuntimeError("haproxy not found (run bench/install-tools.sh)")
            conf = d / "haproxy.cfg"
            conf.write_text(
                haproxy_conf(
                    port,
                    backend_port,
                    self.args.haproxy_reuse,
                    haproxy_maxconn(),
                    tls,
                    workers or 1,
                )
            )
            # -db: stay in the foreground, one process (no master-worker).
            return [haproxy, "-db", "-f", str(conf)], None, None
        if name == "aiohttp-naive":
            py = self.args.peer_python
            script = Path(__file__).resolve().parent / "peers" / "naive_aiohttp.py"
            if not tool_output([py, "-c", "import aiohttp; print('ok')"]).endswith("ok"):
                raise RuntimeError(f"aiohttp not importable by {py} (pip install aiohttp)")
            argv = [
                py,
                str(script),
                "--listen",
                f"127.0.0.1:{port}",
                "--backend",
                f"127.0.0.1:{backend_port}",
            ]
            return argv, None, None
        if name == "bare-relay":
            # The floor for a Python HTTP proxy: no header rewriting, see its docstring.
            py = self.args.peer_python
            script = Path(__file__).resolve().parent / "peers" / "bare_relay.py"
            probe = "import uvloop, httptools; print('ok')"
            if not tool_output([py, "-c", probe]).endswith("ok"):
                raise RuntimeError(
                    f"uvloop or httptools not importable by {py} (pip install uvloop httptools)"
                )
            argv = [
                py,
                str(script),
                "--listen",
                f"127.0.0.1:{port}",
                "--backend",
                f"127.0.0.1:{backend_port}",
            ]
            return argv, None, None
        if name == "pproxy":
            py = self.args.peer_python
            if not tool_output([py, "-c", "import pproxy; print('ok')"]).endswith("ok"):
                raise RuntimeError(f"pproxy not importable by {py} (pip install pproxy)")
            # Tunnel mode: a plain TCP relay to the backend (L4, no HTTP parsing).
            listen = f"tunnel{{127.0.0.1:{backend_port}}}://127.0.0.1:{port}"
            return [py, "-c", PPROXY_MAIN, "-l", listen], None, None
        raise RuntimeError(f"unknown proxy {name!r}")

    # -- measuring --------------------------------------------------------

    def direct_contender(self) -> Contender:
        """The latency scenario's reference: wrk straight to the backend."""
        backend = next(s for s in self.servers if s.name == "backend")
        return Contender(
            name=DIRECT,
            port=self.backend_port,
            server=backend,
            command="no proxy: wrk sends to the backend's port",
            direct=True,
        )

    def measure(
        self,
        c: Contender,
        round_no: int,
        duration: int,
        scenario: Scenario,
        rate: float | None = None,
    ) -> Measurement:
        wrk = self.tools["wrk"]
        assert wrk is not None and c.server is not None
        m = Measurement(round=round_no, proxy=c.name, ok=False, scenario=scenario.name)
        if rate is not None:
            m.target_rps = rate
        if not c.server.alive():
            what = "backend" if c.direct else "proxy"
            m.error = f"{what} exited (status {c.server.proc.returncode})"
            return m
        argv = wrk_argv(wrk, self.args, c.port, duration, scenario, rate)
        # Direct runs have no proxy: nothing to account (the backend's CPU is
        # not the proxy's), so CPU µs/req and RSS stay n/a.
        pids = [] if c.direct else tree_pids(c.server.pid)
        ticks0 = tree_cpu_ticks(c.server.pid)
        t0 = time.monotonic()
        # Scenario workers pins nothing (see README), wrk included.
        cpus = None if scenario.workers else self.load_cpus
        try:
            out, rc, m.peak_rss_kib = run_wrk(argv, duration, cpus, pids)
        except subprocess.TimeoutExpired:
            m.error = f"wrk did not finish within {duration + 30}s (killed)"
            return m
        t1 = time.monotonic()
        ticks1 = tree_cpu_ticks(c.server.pid)
        if not c.server.alive():
            what = "backend" if c.direct else "proxy"
            m.error = f"{what} exited during run (status {c.server.proc.returncode})"
            return m
        if rc != 0:
            m.error = f"wrk exit {rc}: {first_line(out)}"
            return m
        try:
            m.wrk = parse_fixed_rate(out) if scenario.paced else parse_wrk(out)
        except ValueError as exc:
            m.error = f"{exc}: {out.strip()[-300:]}"
            return m
        m.wall_s = t1 - t0
        if not c.direct:
            m.cpu_s = (ticks1 - ticks0) / CLK_TCK
            m.cpu_pct = 100.0 * m.cpu_s / m.wall_s if m.wall_s > 0 else float("nan")
        if m.wrk.requests > 0:
            if not c.direct:
                m.cpu_us_per_req = m.cpu_s * 1e6 / m.wrk.requests
            m.ok = True
        else:
            m.error = "no requests completed"
        return m

    def measure_idle(self, c: Contender, n: int) -> IdleResult:
        """Scenario 6: proxy RSS growth for n idle keep-alive client connections."""
        assert c.server is not None
        r = IdleResult(proxy=c.name, target=n)
        if not c.server.alive():
            r.error = f"proxy exited (status {c.server.proc.returncode})"
            return r
        note = None
        if c.name == "haproxy" and n > haproxy_maxconn() - 20:
            n = r.target = haproxy_maxconn() - 20
            note = f"capped to HAProxy maxconn: open-file hard limit {nofile_hard_limit()}"
        pids = tree_pids(c.server.pid)
        sockets: list[socket.socket] = []
        try:
            # One connection first: it opens the proxy's upstream connection,
            # which is then reused, so the delta is client connections only.
            open_idle_connections(c.port, 1, 1, sockets)
            close_all(sockets)
            time.sleep(0.3)
            r.rss_before_kib = tree_rss_kib(pids)
            t0 = time.monotonic()
            err = open_idle_connections(c.port, n, self.args.idle_batch, sockets)
            r.seconds = time.monotonic() - t0
            r.opened = len(sockets)
            time.sleep(0.5)  # let the proxy settle (lazy frees, deferred work)
            r.rss_after_kib = tree_rss_kib(pids)
            r.error = err or note
            if not c.server.alive():
                r.error = f"proxy exited (status {c.server.proc.returncode})"
        finally:
            close_all(sockets)
        time.sleep(self.args.pause)
        return r


# --------------------------------------------------------------------------
# summary + report


def summarize(
    names: Sequence[str],
    contenders: dict[str, Contender],
    results: list[Measurement],
    scenario: str = "small",
    warmups: Sequence[Measurement] = (),
) -> list[Summary]:
    out: list[Summary] = []
    for name in names:
        c = contenders[name]
        runs = [r for r in results if r.proxy == name and r.scenario == scenario]
        good = [r for r in runs if r.ok and r.wrk is not None]
        s = Summary(proxy=name, ok_rounds=len(good), failure=c.failure, scenario=scenario)
        s.peak_rss_kib = max(
            (
                r.peak_rss_kib
                for r in (*runs, *warmups)
                if r.proxy == name and r.scenario == scenario
            ),
            default=0,
        )
        if not good and not s.failure:
            s.failure = next((r.error for r in runs if r.error), "no successful rounds")
        if good:
            s.rps = statistics.median(r.wrk.rps for r in good if r.wrk)
            s.p50_ms = statistics.median(r.wrk.p50_ms for r in good if r.wrk)
            s.p99_ms = statistics.median(r.wrk.p99_ms for r in good if r.wrk)
            s.errors = sum(r.wrk.errors for r in good if r.wrk)
            s.cpu_us_per_req = statistics.median(r.cpu_us_per_req for r in good)
            s.cpu_pct = statistics.median(r.cpu_pct for r in good)
            s.target_rps = statistics.median(r.target_rps for r in good)
            s.p999_ms = statistics.median(r.wrk.p999_ms for r in good if r.wrk)
        out.append(s)
    ref = next((s for s in out if s.proxy == "nginx" and s.ok_rounds), None)
    if ref:
        for s in out:
            if s.ok_rounds:
                s.rps_vs_nginx = s.rps / ref.rps
                s.cpu_per_req_vs_nginx = s.cpu_us_per_req / ref.cpu_us_per_req
    return out


def add_direct_deltas(rows: Sequence[Summary]) -> None:
    """Latency scenario: each row's median p99 minus the direct (no proxy) row's."""
    ref = next((s for s in rows if s.proxy == DIRECT and s.ok_rounds), None)
    if ref is None:
        return
    for s in rows:
        if s.ok_rounds and s is not ref:
            s.p99_over_direct_ms = s.p99_ms - ref.p99_ms


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


def versions(
    tools: dict[str, str | None],
    lbproxy_cmd: str,
    names: Sequence[str] = (),
    peer_python: str = sys.executable,
) -> dict[str, str]:
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
    peer_modules = (
        ("aiohttp-naive", "aiohttp"),
        ("bare-relay", "uvloop"),
        ("bare-relay", "httptools"),
        ("pproxy", "pproxy"),
    )
    for name, mod in peer_modules:
        if name in names:
            code = "import importlib.metadata as m, sys; print(m.version(sys.argv[1]))"
            v[mod] = first_line(tool_output([peer_python, "-c", code, mod])) or "missing"
    exts = sorted(p.name for p in (REPO_ROOT / "lbproxy").rglob("*.so"))
    v["lbproxy compiled extensions"] = ", ".join(exts) if exts else "none found"
    return v


def _proxy_label(name: str) -> str:
    return f"{name} (L4)" if name in L4_PROXIES else name


def _mib(kib: int) -> str:
    return f"{kib / 1024:,.1f}" if kib else "n/a"


def _instance_label(c: Contender) -> str:
    return f"{c.name} ({c.variant})" if c.variant else c.name


MEDIAN_COLUMNS = (
    "req/s | p50 ms | p99 ms | errors | CPU µs/req | proxy CPU % | peak RSS MiB "
    "| req/s ÷ nginx | CPU/req ÷ nginx"
)


def _median_cells(sm: Summary) -> str:
    """A median-table row's MEDIAN_COLUMNS cells ('FAILED' and blanks if none ran)."""
    if sm.ok_rounds == 0:
        return "FAILED | | | | | | | |"
    return (
        f"{f(sm.rps, 0)} | {f(sm.p50_ms, 3)} | {f(sm.p99_ms, 3)} | {sm.errors} "
        f"| {f(sm.cpu_us_per_req, 1)} | {f(sm.cpu_pct, 0)} | {_mib(sm.peak_rss_kib)} "
        f"| {f(sm.rps_vs_nginx)} | {f(sm.cpu_per_req_vs_nginx)}"
    )


def render_tls_note(report: dict[str, Any], scen: str) -> list[str]:
    """What the https scenarios terminate TLS with, and what they negotiate."""
    tls = report.get("tls")
    if not tls:
        return []
    negotiated = "; ".join(f"{k}: {v or 'n/a'}" for k, v in tls["negotiated"].items())
    lines = [
        "",
        f"Every proxy runs a second instance that terminates TLS with the same {tls['certificate']}"
        " (HAProxy: certificate and key in one PEM, `bind ... ssl crt combined.pem`; nginx: "
        "`ssl_protocols TLSv1.2 TLSv1.3`) and proxies plain HTTP/1.1 to the same nginx backend; "
        "pinning as in the other scenarios. wrk 4.1 negotiates TLS 1.3 and offers every new "
        "connection the session of its previous one; what each proxy does with such a client "
        f"(one probe at start, see README): {negotiated}.",
    ]
    if SCENARIOS[scen].headers:
        lines.append(
            "Each request opens a new TCP connection with its own TLS handshake (wrk's "
            "`Connection: close`), so this measures connection and handshake cost more than "
            "proxying. With a proxy that resumes sessions these are resumed TLS 1.3 "
            "handshakes (no certificate signature, but an ECDHE key exchange), as for a "
            "returning browser; a proxy that does not resume pays a full one each time."
        )
    return lines


def render_workers(
    report: dict[str, Any], summaries: dict[str, list[Summary]], charts: dict[str, str]
) -> list[str]:
    """Scenario workers: one median table over every N, with lbproxy's scaling."""
    s = report["settings"]
    counts = s["workers_counts"]
    threads, conns = s["workers_wrk"]
    lines = [
        "",
        f"## Scenario `{WORKERS_SCENARIO}`: 1 vs N workers ({', '.join(map(str, counts))}) — "
        f"median of {s['rounds']} round(s)",
        "",
        f"`GET /` (6 B), keep-alive, wrk `-t{threads} -c{conns}`. lbproxy `workers: N`, nginx "
        "`worker_processes N`, HAProxy `nbthread N`, each proxying to its own nginx backend "
        f"with `worker_processes {max(counts)}`. Every N of every proxy is started up front "
        "and all of them take turns in one rotation, so drift hits each N alike.",
        "",
        "**Pinning: none in this scenario.** Proxy, backend and wrk share the usable CPUs "
        f"({report['machine']['usable_cpus']} of {report['machine']['nproc']}), as "
        "bench/workers.py did: pinning the proxy to CPU 0 for one worker but to all "
        "CPUs for more would hand the N > 1 runs the load generator's core too. On a machine "
        "with few cores the load side competes with the proxy, which bounds the scaling any "
        "proxy can show; req/s ÷ nginx compares proxies at the same N.",
        "",
        f"| workers | proxy | {MEDIAN_COLUMNS} | req/s ÷ same proxy at N={counts[0]} | ok rounds |",
        "|---:|---|" + "---:|" * 11,
    ]
    base = {sm.proxy: sm.rps for sm in summaries.get(f"{WORKERS_SCENARIO}-{counts[0]}", [])}
    for n in counts:
        for sm in summaries.get(f"{WORKERS_SCENARIO}-{n}", []):
            scaling = sm.rps / base.get(sm.proxy, float("nan")) if sm.ok_rounds else float("nan")
            lines.append(
                f"| {n} | {sm.proxy} | {_median_cells(sm)} | {f(scaling)} "
                f"| {sm.ok_rounds}/{s['rounds']} |"
            )
    if WORKERS_SCENARIO in charts:
        lines += ["", f"![workers: req/s and CPU µs/req per N]({charts[WORKERS_SCENARIO]})"]
    return lines


def render_latency(
    report: dict[str, Any],
    rows: Sequence[Summary],
    results: Sequence[Measurement],
    charts: dict[str, str],
) -> list[str]:
    """The latency scenario's section: plan, caveat, median table, chart, rounds."""
    s = report["settings"]
    sc = SCENARIOS[LATENCY_SCENARIO]
    plan: dict[str, Any] = report.get("latency") or {}
    lines = [
        "",
        f"## Scenario `{sc.name}`: {sc.title} — median of {s['rounds']} round(s)",
        "",
    ]
    if not plan or plan.get("error"):
        lines.append(f"Not run: {plan.get('error') or 'no target rate'}.")
        return lines
    rate = plan["rate"]
    conns = plan["connections"]
    lines.append(
        f"Target rate **{rate:,.0f} req/s**, the same for every proxy and for `{DIRECT}` "
        f"(wrk straight to the backend, no proxy): {plan['basis']}."
    )
    lines.append("")
    lines.append(
        f"Generator: wrk `-c{conns} -t{s['threads']}`, `GET /`, keep-alive, script "
        f"`bench/lua/{sc.lua}`: before each request a connection waits an exponentially "
        f"distributed gap (Poisson arrivals per connection) with mean 1000 * {conns} / "
        f"{rate:,.0f} = {plan['mean_gap_ms']:.1f} ms, rounded stochastically to wrk's "
        "whole milliseconds so the mean stays exact. Percentiles come from wrk's latency "
        "histogram (1 µs steps), printed by the script's `done()`. Pinning as in the other "
        "scenarios; for `direct` the proxy CPU is idle."
    )
    lines.append("")
    lines.append(
        "**Caveat: the pacing is closed-loop per connection.** A connection's gap starts "
        "when its previous response has arrived, so a late response delays that "
        "connection's next request instead of letting it queue (coordinated omission): "
        "the requests a stall would have delayed are never sent, and p99/p99.9 are "
        "under-reported. That is why the rate is kept moderate (by default "
        f"{plan['fraction']:.0%} of lbproxy's max), where stalls are rare. For the same reason "
        "the achieved rate is a little below the target (each cycle is gap + response "
        "time + timer slack). wrk 4 adds synthetic samples for responses slower than twice "
        "the mean per-connection interval, which corrects only long stalls."
    )
    lines.append("")
    lines.append(
        "| proxy | target req/s | achieved req/s | p50 ms | p99 ms | p99.9 ms "
        "| p99 over direct (ms) | errors | CPU µs/req |"
    )
    lines.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for sm in rows:
        label = _proxy_label(sm.proxy)
        if sm.ok_rounds == 0:
            lines.append(f"| {label} | {f(rate, 0)} | FAILED | | | | | | |")
            continue
        if sm.proxy == DIRECT:
            delta, cpu = "(reference)", "— (no proxy)"
        else:
            delta = "n/a" if math.isnan(sm.p99_over_direct_ms) else f"{sm.p99_over_direct_ms:+.3f}"
            cpu = f(sm.cpu_us_per_req, 1)
        lines.append(
            f"| {label} | {f(sm.target_rps, 0)} | {f(sm.rps, 0)} | {f(sm.p50_ms, 3)} "
            f"| {f(sm.p99_ms, 3)} | {f(sm.p999_ms, 3)} | {delta} | {sm.errors} | {cpu} |"
        )
    runs = [r for r in results if r.scenario == LATENCY_SCENARIO and r.ok and r.wrk]
    if runs:
        fewest = min(r.wrk.requests for r in runs if r.wrk)
        lines.append("")
        lines.append(
            "Achieved req/s = requests completed / wrk's run time. p99 over direct = this "
            "row's median p99 minus direct's median p99, i.e. what the proxy hop adds at the "
            f"tail. With {fewest:,} requests in the shortest run, p99.9 rests on its slowest "
            f"~{max(fewest // 1000, 1):,} requests: read it as a rough figure."
        )
    if sc.name in charts:
        lines.append("")
        lines.append(f"![{sc.name}: p50, p99, p99.9 per proxy]({charts[sc.name]})")
    lines.append("")
    lines.append("Per round:")
    lines.append("")
    lines.append(
        "| round | proxy | target req/s | achieved req/s | requests | p50 ms | p90 ms | p99 ms "
        "| p99.9 ms | non-2xx | socket err | CPU µs/req |"
    )
    lines.append("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        if r.scenario != LATENCY_SCENARIO:
            continue
        w = r.wrk
        if w is None or not r.ok:
            err = (r.error or "failed").replace("|", "/").replace("\n", " ")[:200]
            lines.append(f"| {r.round} | {r.proxy} | FAILED: {err} |||||||||")
            continue
        lines.append(
            f"| {r.round} | {r.proxy} | {f(r.target_rps, 0)} | {f(w.rps, 0)} | {w.requests} "
            f"| {f(w.p50_ms, 3)} | {f(w.p90_ms, 3)} | {f(w.p99_ms, 3)} | {f(w.p999_ms, 3)} "
            f"| {w.non2xx} | {w.socket_errors} | {f(r.cpu_us_per_req, 1)} |"
        )
    return lines


def render_markdown(
    report: dict[str, Any],
    summaries: dict[str, list[Summary]],
    results: list[Measurement],
    contenders: dict[str, Contender],
    idle: Sequence[IdleResult] = (),
    charts: dict[str, str] | None = None,
    extra: Sequence[Contender] = (),
) -> str:
    """The report; ``extra``: the TLS and N-worker instances of the proxies."""
    s = report["settings"]
    charts = charts or {}
    lines: list[str] = []
    lines.append(f"# Proxy comparison — {report['started']}")
    lines.append("")
    lines.append("## Machine")
    lines.append("")
    for k, val in report["machine"].items():
        lines.append(f"- {k}: {val}")
    lines.append(
        f"- pinning: proxy on CPU {s['proxy_cpus']}; wrk + backend on CPU {s['load_cpus']}"
        + (
            f" (scenario `{WORKERS_SCENARIO}`: nothing pinned)"
            if WORKERS_SCENARIO in s["scenarios"]
            else ""
        )
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
        f"{s['warmup_s']}s warm-up per proxy and scenario; order rotated each round. "
        f"Scenarios: {', '.join(s['scenarios'])}. "
        f"Total wall time {report['elapsed_s']:.0f}s."
    )
    only = sorted(TLS_PROXIES | WORKER_PROXIES)
    skipped = [n for n in s["proxies"] if n not in only]
    if skipped and any(SCENARIOS[x].tls for x in s["scenarios"] if x in SCENARIOS):
        lines += ["", f"Not in the https scenarios: {', '.join(skipped)} (no TLS variant)."]
    if skipped and WORKERS_SCENARIO in s["scenarios"]:
        lines += ["", f"Not in scenario {WORKERS_SCENARIO}: {', '.join(skipped)}."]
    if any(n in L4_PROXIES for n in s["proxies"]):
        lines.append("")
        lines.append(
            "**(L4)** marks a TCP relay (pproxy in tunnel mode): it copies bytes and "
            "never parses HTTP, so it does strictly less work than an HTTP proxy and "
            "keeps one backend connection per client connection."
        )
    if "bare-relay" in s["proxies"]:
        lines.append("")
        lines.append(
            "**bare-relay** is a reference floor, not a usable proxy: a bare uvloop + "
            "httptools relay (bench/peers/bare_relay.py) that forwards the bytes unchanged, "
            "with no header rewriting, no X-Forwarded-For, no timeouts and no health checks "
            "(in `close` the client's `Connection: close` reaches the backend, so every "
            "request also opens a backend connection)."
        )
    for scen in s["scenarios"]:
        if scen == IDLE_SCENARIO:
            continue
        if scen == WORKERS_SCENARIO:
            lines += render_workers(report, summaries, charts)
            continue
        sc = SCENARIOS[scen]
        if sc.paced:
            lines += render_latency(report, summaries.get(scen, []), results, charts)
            continue
        lines.append("")
        lines.append(f"## Scenario `{scen}`: {sc.title} — median of {s['rounds']} round(s)")
        lines.append("")
        lines.append(
            f"wrk target `{sc.path}`"
            + (f", script `bench/lua/{sc.lua}`" if sc.lua else "")
            + "".join(f", `-H '{h}'`" for h in sc.headers)
            + (", over HTTPS" if sc.tls else "")
            + "."
        )
        if sc.tls:
            lines += render_tls_note(report, scen)
        lines.append("")
        lines.append(f"| proxy | {MEDIAN_COLUMNS} | ok rounds |")
        lines.append("|---|" + "---:|" * 10)
        for sm in summaries.get(scen, []):
            lines.append(
                f"| {_proxy_label(sm.proxy)} | {_median_cells(sm)} | {sm.ok_rounds}/{s['rounds']} |"
            )
        if scen in charts:
            lines.append("")
            lines.append(f"![{scen}: req/s and CPU µs/req]({charts[scen]})")
    if IDLE_SCENARIO in s["scenarios"]:
        lines.append("")
        lines.append(f"## Scenario `idle`: {s['idle_connections']:,} idle keep-alive connections")
        lines.append("")
        lines.append(
            f"Each connection sends one `GET /` and then stays open (batches of "
            f"{s['idle_batch']}). RSS = VmRSS summed over the proxy's process tree, "
            "read before opening and 0.5 s after the last one opened."
        )
        lines.append("")
        lines.append(
            "| proxy | connections | RSS before MiB | RSS after MiB | KiB / connection "
            "| open time s | error |"
        )
        lines.append("|---|---:|---:|---:|---:|---:|---|")
        for r in idle:
            err = (r.error or "").replace("|", "/").replace("\n", " ")[:200]
            lines.append(
                f"| {_proxy_label(r.proxy)} | {r.opened:,}/{r.target:,} "
                f"| {_mib(r.rss_before_kib)} | {_mib(r.rss_after_kib)} "
                f"| {f(r.kib_per_conn, 2)} | {f(r.seconds, 1)} | {err} |"
            )
        if IDLE_SCENARIO in charts:
            lines.append("")
            lines.append(f"![idle: KiB per connection]({charts[IDLE_SCENARIO]})")
    if charts.get("_note"):
        lines.append("")
        lines.append(f"Charts: {charts['_note']}")
    lines.append("")
    lines.append(
        "errors = non-2xx/3xx responses + socket errors, summed over rounds. "
        "CPU µs/req = proxy process-tree (utime+stime) delta / requests completed. "
        "proxy CPU % is of one core; near 100 means the proxy was the bottleneck. "
        "peak RSS = largest VmRSS sum over the proxy's process tree sampled every "
        "0.2 s during the scenario's runs (warm-up included)."
    )
    lines.append("")
    lines.append("## Per-round raw numbers")
    lines.append("")
    lines.append(
        "| scenario | round | proxy | req/s | requests | p50 ms | p75 ms | p90 ms | p99 ms "
        "| non-2xx | socket err | proxy CPU s | wall s | CPU µs/req | CPU % | peak RSS MiB |"
    )
    lines.append("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        if r.scenario == LATENCY_SCENARIO:
            continue  # in the latency section's own per-round table
        w = r.wrk
        if w is None or not r.ok:
            err = (r.error or "failed").replace("|", "/").replace("\n", " ")[:200]
            lines.append(f"| {r.scenario} | {r.round} | {r.proxy} | FAILED: {err} ||||||||||||")
            continue
        lines.append(
            f"| {r.scenario} | {r.round} | {r.proxy} | {f(w.rps, 0)} | {w.requests} "
            f"| {f(w.p50_ms, 3)} "
            f"| {f(w.p75_ms, 3)} | {f(w.p90_ms, 3)} | {f(w.p99_ms, 3)} | {w.non2xx} "
            f"| {w.socket_errors} | {f(r.cpu_s)} | {f(r.wall_s)} "
            f"| {f(r.cpu_us_per_req, 1)} | {f(r.cpu_pct, 0)} | {_mib(r.peak_rss_kib)} |"
        )
    lines.append("")
    lines.append("## Proxy commands")
    lines.append("")
    lines.append(f"- backend: `{report.get('backend_command') or 'n/a'}`")
    if report.get("workers_backend_command"):
        lines.append(
            f"- backend (scenario {WORKERS_SCENARIO}): `{report['workers_backend_command']}`"
        )
    for c in [*contenders.values(), *extra]:
        lines.append(f"- {_instance_label(c)}: `{c.command or 'n/a'}`")
    if report.get("latency") and not report["latency"].get("error"):
        lines.append(f"- {DIRECT} (scenario latency only): no proxy, wrk sends to the backend")
    lines.append("")
    lines.append("wrk commands (`PORT` = the proxy's port, `N` = duration):")
    lines.append("")
    for scen in s["scenarios"]:
        if scen in report.get("wrk_commands", {}):
            lines.append(f"- {scen}: `{report['wrk_commands'][scen]}`")
    failed = [c for c in [*contenders.values(), *extra] if c.failure]
    if failed:
        lines.append("")
        lines.append("## Failures")
        for c in failed:
            lines.append("")
            lines.append(f"### {_instance_label(c)}")
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
        help="smoke run: 2s runs, 1s warm-up, 2 rounds, 0.5s pauses, and without "
        f"--scenarios all scenarios but {' and '.join(QUICK_SKIPS)} (explicit flags win)",
    )
    p.add_argument(
        "--proxies",
        default=",".join(DEFAULT_PROXIES),
        help=f"comma-separated subset of {','.join(ALL_PROXIES)}",
    )
    p.add_argument(
        "--scenarios",
        default=None,
        help=f"comma-separated subset of {','.join(ALL_SCENARIOS)} (default: all; "
        f"with --quick all but {','.join(QUICK_SKIPS)})",
    )
    p.add_argument(
        "--workers-list",
        default=",".join(map(str, DEFAULT_WORKERS_LIST)),
        help="scenario workers: the worker counts N to measure (lbproxy `workers: N`, "
        "nginx `worker_processes N`, HAProxy `nbthread N`)",
    )
    p.add_argument(
        "--include-peers",
        action="store_true",
        help="also run the Python peers: aiohttp-naive and bare-relay (bench/peers/) "
        "and pproxy (tunnel, L4)",
    )
    p.add_argument(
        "--peer-python",
        default=sys.executable,
        help="Python that runs the peers (needs aiohttp, uvloop, httptools and pproxy)",
    )
    p.add_argument(
        "--idle-connections",
        type=int,
        default=10000,
        help="idle scenario: keep-alive client connections to open",
    )
    p.add_argument(
        "--idle-batch", type=int, default=200, help="idle scenario: connections per batch"
    )
    p.add_argument(
        "--latency-connections",
        type=int,
        default=100,
        help="latency scenario: wrk connections; each waits 1000*N/rate ms on average "
        "between its requests",
    )
    p.add_argument(
        "--latency-rate",
        type=float,
        default=None,
        # %% : argparse %-formats help strings.
        help="latency scenario: target req/s (default: "
        f"{LATENCY_FRACTION:.0%}% of lbproxy's max req/s, from scenario small or measured)",
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
        default=None,
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
    p.add_argument("--no-charts", action="store_true", help="skip the PNG charts")
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
        args.duration = 2 if quick else 10
    if args.warmup is None:
        args.warmup = 1 if quick else 3
    if args.rounds is None:
        args.rounds = 2 if quick else 3
    if args.pause is None:
        args.pause = 0.5 if quick else 1.0
    if args.scenarios is None:
        skip = QUICK_SKIPS if quick else ()
        args.scenarios = ",".join(x for x in ALL_SCENARIOS if x not in skip)
    scens = [x.strip() for x in args.scenarios.split(",") if x.strip()]
    for x in scens:
        if x not in ALL_SCENARIOS:
            p.error(f"unknown scenario {x!r}; choose from {', '.join(ALL_SCENARIOS)}")
    if not scens:
        p.error("no scenarios selected")
    # Always in the canonical order (idle last: it runs after the load runs).
    args.scenario_names = [x for x in ALL_SCENARIOS if x in scens]
    try:
        counts = [int(x) for x in args.workers_list.split(",") if x.strip()]
    except ValueError:
        counts = []
    if not counts or min(counts) < 1:
        p.error(f"--workers-list wants positive integers like 1,2,4, got {args.workers_list!r}")
    args.workers_counts = sorted(set(counts))
    if args.idle_connections < 1 or args.idle_batch < 1:
        p.error("--idle-connections and --idle-batch must be >= 1")
    if args.rounds < 1 or args.connections < 1 or args.threads < 1:
        p.error("--rounds, --connections and --threads must be >= 1")
    if args.threads > args.connections:
        p.error("wrk needs --connections >= --threads")
    if args.threads > args.latency_connections:
        p.error("wrk needs --latency-connections >= --threads")
    if args.latency_rate is not None and not args.latency_rate > 0:
        p.error("--latency-rate must be > 0")
    names = [n.strip() for n in args.proxies.split(",") if n.strip()]
    for n in names:
        if n not in ALL_PROXIES:
            p.error(f"unknown proxy {n!r}; choose from {', '.join(ALL_PROXIES)}")
    if args.include_pure and "lbproxy-pure" not in names:
        # Run it right after lbproxy so the pair is measured back to back.
        idx = names.index("lbproxy") + 1 if "lbproxy" in names else 0
        names.insert(idx, "lbproxy-pure")
    if args.include_peers:
        names += [n for n in PEER_PROXIES if n not in names]
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


def run_overhead(args: argparse.Namespace) -> float:
    return float(args.pause) + 0.3  # pause + wrk start/teardown + /proc scans


def idle_estimate(args: argparse.Namespace) -> float:
    # ~0.25 ms per connection (connect + request + answer) plus settle time.
    return args.idle_connections * 0.00025 + 1.5 + float(args.pause)


def idle_names(args: argparse.Namespace) -> list[str]:
    # L4 relays open one backend connection per client connection, which the
    # backend (worker_connections 8192) cannot hold; and they parse nothing.
    return [n for n in args.names if n not in L4_PROXIES]


def needs_calibration(args: argparse.Namespace) -> bool:
    """True if the latency scenario must measure lbproxy's max req/s itself."""
    return (
        LATENCY_SCENARIO in args.scenario_names
        and "small" not in args.scenario_names
        and args.latency_rate is None
    )


def tls_names(args: argparse.Namespace) -> list[str]:
    """The contenders of the https scenarios (those with a TLS variant)."""
    return [n for n in args.names if n in TLS_PROXIES]


def worker_names(args: argparse.Namespace) -> list[str]:
    """The contenders of scenario workers (those with a workers setting)."""
    return [n for n in args.names if n in WORKER_PROXIES]


def scenario_runs(args: argparse.Namespace, name: str) -> int:
    """How many runs one round of scenario ``name`` has (0 for idle)."""
    if name == IDLE_SCENARIO:
        return 0
    if name == WORKERS_SCENARIO:
        return len(worker_names(args)) * len(args.workers_counts)
    sc = SCENARIOS[name]
    # The latency scenario also measures "direct" (no proxy).
    return len(tls_names(args)) if sc.tls else len(args.names) + sc.paced


def servers_started(args: argparse.Namespace) -> int:
    """Backend + proxies, + their TLS instances, + the workers' backend and proxies."""
    n = 1 + len(args.names)
    if any(SCENARIOS[x].tls for x in args.scenario_names if x in SCENARIOS):
        n += len(tls_names(args))
    if WORKERS_SCENARIO in args.scenario_names:
        n += 1 + scenario_runs(args, WORKERS_SCENARIO)
    return n


def estimate_seconds(args: argparse.Namespace) -> float:
    per_run = run_overhead(args)
    total = START_OVERHEAD_S * servers_started(args)
    for name in args.scenario_names:
        k = scenario_runs(args, name)
        total += k * (args.warmup + per_run) + k * args.rounds * (args.duration + per_run)
    if needs_calibration(args):
        total += min(args.duration, CALIBRATION_S) + per_run
    if IDLE_SCENARIO in args.scenario_names:
        total += len(idle_names(args)) * idle_estimate(args)
    return float(total)


class Progress:
    """One stderr line per step: scenario, proxy, round and time left."""

    def __init__(self, total_s: float) -> None:
        self.total = total_s
        self.done = 0.0
        self.t0 = time.monotonic()

    def step(self, what: str, cost_s: float) -> None:
        elapsed = time.monotonic() - self.t0
        left_est = max(self.total - self.done, 0.0)
        # Scale the plan by how far reality is off from it so far.
        if self.done > 5:
            left_est *= elapsed / self.done
        pct = 100.0 * self.done / self.total if self.total else 0.0
        log(f"[{pct:3.0f}% ~{left_est:4.0f}s left] {what}")
        self.done += cost_s


@dataclass
class LatencyPlan:
    """How the latency scenario's target rate was chosen."""

    rate: float = float("nan")  # req/s, the same for every contender and direct
    basis: str = ""  # one sentence for the report
    basis_proxy: str = ""  # whose max req/s it is based on ("" if set by hand)
    max_rps: float = float("nan")  # that proxy's measured max req/s
    fraction: float = LATENCY_FRACTION
    connections: int = 0
    mean_gap_ms: float = float("nan")  # per connection: 1000 * connections / rate
    error: str | None = None  # set when the scenario could not run


def plan_latency(
    args: argparse.Namespace,
    bench: Bench,
    live: Sequence[Contender],
    results: Sequence[Measurement],
    progress: Progress,
    tag: str,
) -> LatencyPlan:
    """Target rate: LATENCY_FRACTION of lbproxy's max req/s (see README).

    lbproxy's median req/s from scenario `small` of this run if that ran,
    else one short wrk run with small's settings right now. Without a live
    lbproxy the first live contender stands in; --latency-rate overrides all.
    """
    plan = LatencyPlan(connections=args.latency_connections)
    pct = f"{LATENCY_FRACTION:.0%}"
    if args.latency_rate is not None:
        plan.rate = args.latency_rate
        plan.basis = f"set with `--latency-rate {args.latency_rate:g}`"
    else:
        ref = next((c for c in live if c.name == "lbproxy"), live[0] if live else None)
        if ref is None:
            plan.error = "no proxy is running, so there is no max rate to take 50% of"
            return plan
        plan.basis_proxy = ref.name
        stand_in = (
            ""
            if ref.name == "lbproxy"
            else f" (lbproxy is not running in this run, so {ref.name} stands in)"
        )
        small = [
            m.wrk.rps
            for m in results
            if m.scenario == "small" and m.proxy == ref.name and m.ok and m.wrk
        ]
        if small:
            plan.max_rps = statistics.median(small)
            plan.basis = (
                f"{pct} of {ref.name}'s median req/s in scenario `small` of this run "
                f"({plan.max_rps:,.0f} req/s over {len(small)} round(s)){stand_in}"
            )
        else:
            secs = min(args.duration, CALIBRATION_S)
            progress.step(
                f"{tag}: measuring {ref.name}'s max req/s {secs}s", secs + run_overhead(args)
            )
            m = bench.measure(ref, 0, secs, SCENARIOS["small"])
            time.sleep(args.pause)
            if not m.ok or m.wrk is None:
                plan.error = f"could not measure {ref.name}'s max req/s: {m.error}"
                return plan
            plan.max_rps = m.wrk.rps
            plan.basis = (
                f"{pct} of {ref.name}'s req/s in one {secs}s wrk run with scenario "
                f"`small`'s settings (`-c{args.connections}`, `GET /`) right before this "
                f"scenario ({plan.max_rps:,.0f} req/s, {m.wrk.errors} errors){stand_in}; "
                "`small` was not part of this run"
            )
        plan.rate = LATENCY_FRACTION * plan.max_rps
    plan.mean_gap_ms = 1000.0 * plan.connections / plan.rate
    return plan


def run_rounds(
    bench: Bench,
    runners: Sequence[tuple[Contender, Scenario]],
    tag: str,
    progress: Progress,
    results: list[Measurement],
    warmups: list[Measurement],
    rate: float | None = None,
) -> None:
    """A warm-up per (contender, scenario) pair, then rounds in rotated order.

    Usually every pair has the same scenario; scenario workers rotates all its
    worker counts together, as bench/workers.py did, so drift hits each N alike.
    """
    args = bench.args
    overhead = run_overhead(args)
    # Warm-up: caches, connection pools, page faults, CPU frequency all
    # settle; numbers are discarded (peak RSS is kept).
    for c, sc in runners:
        what = f"{c.name} ({c.variant})" if c.variant else c.name
        progress.step(f"{tag}: warm-up {what} {args.warmup}s", args.warmup + overhead)
        w = bench.measure(c, 0, args.warmup, sc, rate)
        warmups.append(w)
        if not w.ok:
            log(f"{sc.name} {c.name}: warm-up failed: {w.error}")
        time.sleep(args.pause)
    for rnd in range(1, args.rounds + 1):
        # Rotate the order each round so no proxy is always first/last.
        k = (rnd - 1) % max(len(runners), 1)
        order = [*runners[k:], *runners[:k]]
        for c, sc in order:
            what = f"{c.name} ({c.variant})" if c.variant else c.name
            progress.step(
                f"{tag}: {what} round {rnd}/{args.rounds} {args.duration}s",
                args.duration + overhead,
            )
            m = bench.measure(c, rnd, args.duration, sc, rate)
            if m.ok and m.wrk and sc.paced:
                log(
                    f"  {sc.name} round {rnd} {c.name}: target {m.target_rps:,.0f} req/s, "
                    f"achieved {m.wrk.rps:,.0f}, p50 {m.wrk.p50_ms:.3f}ms "
                    f"p99 {m.wrk.p99_ms:.3f}ms p99.9 {m.wrk.p999_ms:.3f}ms, "
                    f"{m.cpu_us_per_req:.1f} CPU µs/req, errors {m.wrk.errors}"
                )
            elif m.ok and m.wrk:
                log(
                    f"  {sc.name} round {rnd} {c.name}: {m.wrk.rps:,.0f} req/s, "
                    f"p50 {m.wrk.p50_ms:.3f}ms p99 {m.wrk.p99_ms:.3f}ms, "
                    f"{m.cpu_us_per_req:.1f} CPU µs/req, "
                    f"peak RSS {m.peak_rss_kib / 1024:.1f} MiB, errors {m.wrk.errors}"
                )
            else:
                log(f"  {sc.name} round {rnd} {c.name}: FAILED: {m.error}")
            results.append(m)
            time.sleep(args.pause)


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
        f"proxies: {', '.join(args.names)}; scenarios: {', '.join(args.scenario_names)}; "
        f"{args.rounds} round(s) x {args.duration}s, "
        f"{args.warmup}s warm-up, -c{args.connections} -t{args.threads}; "
        f"proxy CPUs {fmt_cpus(args.proxy_cpus)}, load CPUs {fmt_cpus(args.load_cpus)}"
    )
    wrk_scens = [SCENARIOS[x] for x in args.scenario_names if x in SCENARIOS]
    plain_scens = [sc for sc in wrk_scens if not sc.tls]
    tls_scens = [sc for sc in wrk_scens if sc.tls]
    workers_scens = (
        [workers_scenario(n) for n in args.workers_counts]
        if WORKERS_SCENARIO in args.scenario_names
        else []
    )
    # Worst case adds wrk's hard timeout per run and the start deadline per server
    # (the latency scenario also runs "direct", and maybe one calibration run).
    stall = (
        sum(scenario_runs(args, x) for x in args.scenario_names) * (args.rounds + 1) * 30
        + servers_started(args) * args.start_timeout
    )
    log(f"estimated total run time: ~{est:.0f}s (at most +{stall:.0f}s more if servers stall)")
    if IDLE_SCENARIO in args.scenario_names:
        need = args.idle_connections + 100
        if nofile_soft_limit() < need:
            log(
                f"warning: open-file limit {nofile_soft_limit()} < {need}: the idle "
                "scenario will stop early (raise the hard limit: ulimit -Hn)"
            )
    progress = Progress(est)
    contenders: dict[str, Contender] = {}
    results: list[Measurement] = []
    warmups: list[Measurement] = []
    idle: list[IdleResult] = []
    latency: LatencyPlan | None = None
    direct: Contender | None = None
    # The TLS instances ("TLS") and those with N workers (scenario workers-N).
    groups: dict[str, dict[str, Contender]] = {}
    workers_backend = ""

    def tag(name: str) -> str:
        return f"scenario {args.scenario_names.index(name) + 1}/{len(args.scenario_names)} {name}"

    def start_group(key: str, names: Sequence[str], workers: int = 0, port: int = 0) -> None:
        groups[key] = {}
        for name in names:
            progress.step(f"starting {name} ({key})", START_OVERHEAD_S)
            groups[key][name] = bench.start_contender(name, workers, port, tls=not workers)

    try:
        progress.step("starting backend", START_OVERHEAD_S)
        bench.start_backend()
        for name in args.names:
            progress.step(f"starting {name}", START_OVERHEAD_S)
            contenders[name] = bench.start_contender(name)
        live = [contenders[n] for n in args.names if not contenders[n].failure]
        for sc in plain_scens:
            runners = live
            rate: float | None = None
            if sc.paced:
                latency = plan_latency(args, bench, live, results, progress, tag(sc.name))
                if latency.error:
                    log(f"{sc.name}: skipped: {latency.error}")
                    continue
                rate = latency.rate
                log(f"{sc.name}: target {rate:,.0f} req/s: {latency.basis}")
                if latency.mean_gap_ms < 2:
                    log(
                        f"warning: mean gap per connection is only {latency.mean_gap_ms:.2f} ms "
                        "(wrk's delay() has 1 ms steps); raise --latency-connections"
                    )
                direct = bench.direct_contender()
                runners = [*live, direct]
            run_rounds(
                bench, [(c, sc) for c in runners], tag(sc.name), progress, results, warmups, rate
            )
        if tls_scens:
            # A second instance of each proxy terminates TLS: same certificate
            # files, same backend, pinned like the plain ones.
            start_group("TLS", tls_names(args))
            group = list(groups["TLS"].values())
            for sc in tls_scens:
                pairs = [(c, sc) for c in group if not c.failure]
                run_rounds(bench, pairs, tag(sc.name), progress, results, warmups)
            bench.stop_group(group)
        if workers_scens:
            # Own backend with as many workers as the largest N; nothing pinned.
            progress.step("starting the workers backend", START_OVERHEAD_S)
            backend, port = bench.start_backend(
                "backend-workers", max(args.workers_counts), cpus=None
            )
            workers_backend = shlex.join(backend.argv)
            for sc in workers_scens:
                start_group(sc.name, worker_names(args), sc.workers, port)
            group = [c for sc in workers_scens for c in groups[sc.name].values()]
            pairs = [(c, sc) for sc in workers_scens for c in groups[sc.name].values()]
            pairs = [(c, sc) for c, sc in pairs if not c.failure]
            run_rounds(bench, pairs, tag(WORKERS_SCENARIO), progress, results, warmups)
            bench.stop_group(group, backend)
        if IDLE_SCENARIO in args.scenario_names:
            for c in live:
                if c.name in L4_PROXIES:
                    continue
                progress.step(
                    f"{tag(IDLE_SCENARIO)}: {c.name} {args.idle_connections:,} connections",
                    idle_estimate(args),
                )
                r = bench.measure_idle(c, args.idle_connections)
                log(
                    f"  idle {c.name}: {r.opened:,} connections, "
                    f"{r.kib_per_conn:.2f} KiB/connection" + (f" ({r.error})" if r.error else "")
                )
                idle.append(r)
        for c in contenders.values():
            if c.server is not None and not c.server.alive():
                c.log_tail = tail(c.server.log_path)
    finally:
        bench.stop_all()
        if args.keep_tmp:
            log(f"kept configs and logs in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    summaries: dict[str, list[Summary]] = {}
    for sc in [*wrk_scens, *workers_scens]:
        if sc.tls or sc.workers:
            key = "TLS" if sc.tls else sc.name
            names = tls_names(args) if sc.tls else worker_names(args)
            summaries[sc.name] = summarize(names, groups[key], results, sc.name, warmups)
        elif not sc.paced:
            summaries[sc.name] = summarize(args.names, contenders, results, sc.name, warmups)
        elif direct is not None:
            rows = summarize(
                [*args.names, DIRECT], {**contenders, DIRECT: direct}, results, sc.name, warmups
            )
            add_direct_deltas(rows)
            summaries[sc.name] = rows
    wrk = bench.tools["wrk"] or "wrk"
    wrk_commands = {
        sc.name: shlex.join(wrk_argv(wrk, args, 0, 0, sc, latency.rate if latency else None))
        .replace("-d0s", "-dNs")
        .replace("127.0.0.1:0", "127.0.0.1:PORT")
        for sc in [*wrk_scens, *workers_scens[:1]]
        if not sc.paced or (latency is not None and not latency.error)
    }
    if workers_scens:  # the same command for every N
        wrk_commands[WORKERS_SCENARIO] = wrk_commands.pop(workers_scens[0].name)
    extra = [c for g in groups.values() for c in g.values()]
    report: dict[str, Any] = {
        "started": started.strftime("%Y-%m-%d %H:%M:%S UTC"),
        "elapsed_s": time.monotonic() - t_start,
        "machine": machine_info(),
        "versions": versions(bench.tools, args.lbproxy_cmd, args.names, args.peer_python),
        "command": command,
        "backend_command": bench.backend_command,
        "workers_backend_command": workers_backend,
        "wrk_commands": wrk_commands,
        "tls": {
            "certificate": bench.tls.description,
            "negotiated": {c.name: c.tls_info for c in groups.get("TLS", {}).values()},
        }
        if bench.tls is not None
        else None,
        "latency": asdict(latency) if latency is not None else None,
        "settings": {
            "proxies": args.names,
            "scenarios": args.scenario_names,
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "rounds": args.rounds,
            "connections": args.connections,
            "threads": args.threads,
            "proxy_cpus": fmt_cpus(args.proxy_cpus),
            "load_cpus": fmt_cpus(args.load_cpus),
            "haproxy_reuse": args.haproxy_reuse,
            "lbproxy_cmd": args.lbproxy_cmd,
            "idle_connections": args.idle_connections,
            "idle_batch": args.idle_batch,
            "latency_connections": args.latency_connections,
            "workers_counts": args.workers_counts,
            "workers_wrk": list(WORKERS_WRK),
            "clk_tck": CLK_TCK,
        },
    }
    out: Path | None = None
    if not args.no_save:
        out = args.output or report_path("compare", started)
        out.parent.mkdir(parents=True, exist_ok=True)
    charts: dict[str, str] = {}
    if out is not None and not args.no_charts:
        charts = make_charts(out, summaries, idle)
    md = render_markdown(report, summaries, results, contenders, idle, charts, extra)
    # With `--json -` stdout carries only JSON; the report then goes to stderr.
    print(md, file=sys.stderr if args.json == "-" else sys.stdout)
    if out is not None:
        out.write_text(md)
        log(f"report written to {out}")
    if args.json:
        report["summary"] = {k: [asdict(sm) for sm in v] for k, v in summaries.items()}
        report["rounds"] = [r.to_json() for r in results]
        report["idle"] = [r.to_json() for r in idle]
        report["failures"] = {
            _instance_label(c): {"failure": c.failure, "log_tail": c.log_tail}
            for c in [*contenders.values(), *extra]
            if c.failure
        }
        # NaN is not valid JSON; emit null instead.
        text = json.dumps(_nan_to_none(report), indent=2, default=str)
        if args.json == "-":
            print(text)
        else:
            Path(args.json).write_text(text + "\n")
            log(f"JSON written to {args.json}")
    ok = any(sm.ok_rounds for v in summaries.values() for sm in v) or any(r.opened for r in idle)
    return 0 if ok else 1


def make_charts(
    out: Path, summaries: dict[str, list[Summary]], idle: Sequence[IdleResult]
) -> dict[str, str]:
    """PNG charts next to the report; {scenario: relative file name} (+ '_note')."""
    try:
        from bench import charts as charts_mod
    except ImportError as exc:
        if exc.name not in ("bench", "bench.charts"):
            return {"_note": f"not drawn ({exc})"}  # e.g. matplotlib missing
        try:  # run as a script (bench/ is sys.path[0]), not as `python -m bench`
            import charts as charts_mod  # type: ignore[no-redef]
        except ImportError as exc2:
            return {"_note": f"not drawn ({exc2})"}
    try:
        return charts_mod.write_charts(out, summaries, idle)
    except Exception as exc:  # charts are optional; never lose the report
        log(f"warning: charts failed: {exc}")
        return {"_note": f"not drawn ({type(exc).__name__}: {exc})"}


def _nan_to_none(obj: Any) -> Any:
    if isinstance(obj, float) and math.isnan(obj):
        return None
    if isinstance(obj, dict):
        return {k: _nan_to_none(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_nan_to_none(v) for v in obj]
    return obj


def _raise_nofile() -> str | None:
    """Soft RLIMIT_NOFILE up to the hard limit; an error text if that failed."""
    # Capped so HAProxy does not size its tables for a million sockets.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 65536:
        # Root (with CAP_SYS_RESOURCE) may raise the hard limit too; that lets
        # HAProxy take all 10,000 idle connections. Otherwise keep the hard one.
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, 65536))
            hard = 65536
    want = 65536 if hard == resource.RLIM_INFINITY else min(hard, 65536)
    if soft < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
        except (ValueError, OSError) as exc:
            return f"could not raise open-file limit from {soft}: {exc}"
    return None


def nofile_soft_limit() -> int:
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def nofile_hard_limit() -> int:
    return resource.getrlimit(resource.RLIMIT_NOFILE)[1]


def raise_nofile_limit() -> None:
    # Children inherit this (and raise it again in their preexec); a low soft
    # limit (often 1024) would make the proxies fail accept() or refuse to
    # start (HAProxy sizes maxconn from it), and the idle scenario needs it.
    err = _raise_nofile()
    if err:
        log(f"warning: {err}")


def _sigterm(signum: int, frame: FrameType | None) -> None:
    # Turn SIGTERM/SIGHUP into the same unwinding path as Ctrl-C so finally-blocks
    # stop every process we started.
    raise KeyboardInterrupt


def unwind_on_signals() -> None:
    """Make SIGINT, SIGTERM and SIGHUP raise KeyboardInterrupt, so that the
    finally blocks stop every process we started."""
    # SIGINT explicitly too: a shell starting us in the background sets it to
    # "ignore", which would leave Ctrl-C/kill -INT unable to clean up.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _sigterm)


def report_path(prefix: str, now: dt.datetime | None = None) -> Path:
    """bench/results/<prefix>-<date>-<time>.md, for a report made ``now``
    (UTC; default: this moment)."""
    now = now or dt.datetime.now(dt.UTC)
    return RESULTS_DIR / f"{prefix}-{now:%Y-%m-%d-%H%M%S}.md"


def save_report(text: str, output: Path | None, prefix: str, now: dt.datetime) -> Path:
    """Write a benchmark's Markdown report to ``output`` (default:
    ``report_path(prefix, now)``), print it, and say where it went."""
    out = output or report_path(prefix, now)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(text)
    log(f"report: {out}")
    return out


def discard_work(work: Path, keep: bool) -> None:
    """Remove a benchmark's work directory, or with ``keep`` (a --keep
    option) say where it stays."""
    if keep:
        log(f"kept {work} (configs, logs, tool output)")
    else:
        shutil.rmtree(work, ignore_errors=True)


def default_output(prefix: str) -> list[str]:
    """``--output`` for a report named ``<prefix>-<date>-<time>.md`` in
    bench/results (for bench/https.py and bench/workers.py)."""
    return ["--output", str(report_path(prefix))]


def main(argv: Sequence[str] | None = None) -> int:
    args = resolve_args(build_parser(), argv)
    # Called with argv (bench/https.py, bench/workers.py): the equivalent command.
    command = shlex.join([sys.executable, *(sys.argv if argv is None else ["-m", "bench", *argv])])
    unwind_on_signals()
    raise_nofile_limit()
    try:
        return run(args, command)
    except KeyboardInterrupt:
        log("interrupted; all started processes were stopped")
        return 130


if __name__ == "__main__":
    sys.exit(main())
