#!/usr/bin/env python3
"""CPU of one HTTPS request, lbproxy beside nginx, request by request.

    python bench/tls_cost.py [--instructions] [--requests 300] [--tls12]

For each proxy (``--proxies``, default lbproxy,nginx; each terminates TLS
with the same self-signed ECDSA certificate and proxies to one nginx
backend, as in compare.py's https scenarios, proxy on CPU 0) a Python client
on CPU 1 sends ``--requests`` requests one at a time, in two scenarios:
``keep-alive`` (one connection) and ``new-connection`` (``Connection:
close``; each connection offers the previous one's session, as wrk does, so
these are resumed handshakes; the report counts how many resumed).

Timed (default): the proxy process's user and system CPU per request, from
/proc over the counted requests. ``--instructions``: the proxy runs under
callgrind and the report gives user-space instructions per request, which
repeat from run to run (but callgrind's CPU lacks AVX-512, so OpenSSL takes
other code paths than natively: compare these between proxies, not with the
timed figures). ``--tls12`` caps the client at TLS 1.2 (an abbreviated
resumption, no key exchange), OpenSSL's default being TLS 1.3.

Sequential requests show the cost of one request without batching; the
loaded figures are bench/https.py's. Report: bench/results/tls-cost-*.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import socket
import ssl
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import compare as cmp  # the shared tool and process plumbing

REQUEST = f"GET / HTTP/1.1\r\nHost: {cmp.TLS_HOSTNAME}\r\n\r\n".encode()
CLOSING = f"GET / HTTP/1.1\r\nHost: {cmp.TLS_HOSTNAME}\r\nConnection: close\r\n\r\n".encode()


def _read_response(sock: ssl.SSLSocket) -> None:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed before the response head")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed before the end of the body")
        body += chunk


class Client:
    def __init__(self, port: int, tls12: bool) -> None:
        self.port = port
        self.ctx = cmp.unverified_tls_context()
        if tls12:
            self.ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        self.session: ssl.SSLSession | None = None
        self.resumed = 0
        self.kept: ssl.SSLSocket | None = None

    def _connect(self) -> ssl.SSLSocket:
        raw = socket.create_connection(("127.0.0.1", self.port), timeout=30)
        return self.ctx.wrap_socket(raw, server_hostname=cmp.TLS_HOSTNAME, session=self.session)

    def keep_alive(self) -> None:
        if self.kept is None:
            self.kept = self._connect()
        self.kept.sendall(REQUEST)
        _read_response(self.kept)

    def new_connection(self) -> None:
        with self._connect() as conn:
            conn.sendall(CLOSING)
            _read_response(conn)
            self.resumed += conn.session_reused
            self.session = conn.session

    def close(self) -> None:
        if self.kept is not None:
            self.kept.close()


def _cpu(pid: int) -> tuple[int, int]:
    """User and system clock ticks of ``pid`` and its descendants."""
    tree = cmp.process_tree(pid)
    return sum(st.user for st in tree), sum(st.system for st in tree)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--proxies", default="lbproxy,nginx")
    ap.add_argument(
        "--requests",
        type=int,
        default=None,
        help="new connections counted (default 300; timed 3000); keep-alive requests: 10x",
    )
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--instructions", action="store_true")
    ap.add_argument("--tls12", action="store_true")
    ap.add_argument("--output", type=Path)
    args = ap.parse_args()
    count = args.requests or (300 if args.instructions else 3000)
    if (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {1})  # the client beside the backend, away from the proxy
    nginx = cmp.find_tool("nginx", None)
    if nginx is None:
        print("needs nginx: run bench/install-tools.sh", file=sys.stderr)
        return 1
    build = cmp.tool_output([nginx, "-V"])
    work = Path(tempfile.mkdtemp(prefix="lbproxy-tls-cost-"))
    rows: list[str] = []
    try:
        backend_port = cmp.free_port()
        backend = cmp.start_nginx_backend(nginx, build, work, "backend", backend_port, {1})
        tls = cmp.make_tls_files(work / "tls")
        try:
            for proxy in args.proxies.split(","):
                for scenario in ("keep-alive", "new-connection"):
                    where = (work, nginx, build, backend_port, tls)
                    rows.append(_measure(args, proxy, scenario, count, *where))
        finally:
            backend.stop()
    finally:
        cmp.discard_work(work, keep=False)
    now = dt.datetime.now(dt.UTC)
    unit = "instructions/request" if args.instructions else "user / system CPU µs per request"
    lines = [
        f"# CPU per HTTPS request, one at a time — {now:%Y-%m-%d %H:%M:%S} UTC",
        "",
        f"Command: `{' '.join([sys.executable, *sys.argv])}`  ",
        f"{count:,} counted new connections (keep-alive: {10 * count:,} requests) after"
        f" {args.warmup} uncounted, client on CPU 1, proxy on"
        f" CPU 0, client TLS {'1.2 at most' if args.tls12 else 'as OpenSSL chooses (1.3)'}.",
        "",
        f"| proxy | scenario | {unit} | resumed |",
        "|---|---|---:|---:|",
        *rows,
    ]
    text = "\n".join(lines) + "\n"
    cmp.save_report(text, args.output, "tls-cost", now)
    return 0


def _measure(
    args: argparse.Namespace,
    proxy: str,
    scenario: str,
    count: int,
    work: Path,
    nginx: str,
    build: str,
    backend_port: int,
    tls: cmp.TlsFiles,
) -> str:
    port = cmp.free_port()
    name = f"{proxy}-{scenario}"
    if proxy == "nginx":
        d = work / name
        d.mkdir()
        conf = cmp.nginx_proxy_conf(d, build, port, backend_port, tls)
        if args.instructions:  # one process: the one callgrind counts
            conf = conf.replace("worker_processes 1;", "worker_processes 1;\nmaster_process off;")
        (d / "nginx.conf").write_text(conf)
        argv = cmp.nginx_backend_argv(nginx, d)
    else:
        (work / f"{name}.yaml").write_text(cmp.lbproxy_conf(port, backend_port, tls))
        argv = [sys.executable, "-m", "lbproxy", "--config", str(work / f"{name}.yaml")]
    if args.instructions:
        server = cmp.start_callgrind(
            name, argv, work, port, {0}, instr_atstart=False, cwd=cmp.REPO_ROOT
        )
    else:
        server = cmp.Managed(name, argv, work / f"{name}.log", {0}, cwd=cmp.REPO_ROOT)
        if why := cmp.wait_ready(server, port, 20, tls=True):
            server.stop()
            raise RuntimeError(f"{name}: {why}")
    client = Client(port, args.tls12)
    step = client.keep_alive if scenario == "keep-alive" else client.new_connection
    if scenario == "keep-alive":
        count *= 10  # cheap: more of them, for the clock's 10 ms ticks
    try:
        for _ in range(args.warmup):
            step()
        client.resumed = 0
        if args.instructions:
            cmp.callgrind_control(server.pid, ["-i", "on"], work)
        else:
            before = _cpu(server.pid)
        for _ in range(count):
            step()
        if args.instructions:
            cmp.callgrind_control(server.pid, ["-i", "off"], work)
            figure = f"{cmp.callgrind_total(server) / count:,.0f}"
        else:
            after = _cpu(server.pid)
            scale = 1e6 / cmp.CLK_TCK / count
            figure = f"{(after[0] - before[0]) * scale:.1f} / {(after[1] - before[1]) * scale:.1f}"
    finally:
        client.close()
        server.stop()
    resumed = f"{client.resumed}/{count}" if scenario == "new-connection" else "-"
    cmp.log(f"{name}: {figure} ({resumed})")
    return f"| {proxy} | {scenario} | {figure} | {resumed} |"


if __name__ == "__main__":
    raise SystemExit(main())
