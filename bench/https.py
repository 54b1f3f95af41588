"""HTTPS termination: lbproxy against nginx with the same certificate, side
by side in one run.

    python bench/https.py [--duration 10] [--rounds 3]

A self-signed ECDSA P-256 certificate for ``bench.test`` is made for the run
(with ``cryptography``). nginx and lbproxy each terminate TLS on CPU 0 and
proxy to one nginx backend over plain HTTP; wrk and the backend run on CPU 1.
Two scenarios, proxies alternated round by round: ``keep-alive`` (wrk, 1
thread, 50 connections reused) and ``new connection`` (``Connection: close``:
a full TLS handshake per request). Reported: requests/s and the terminating
proxy's CPU microseconds per request (user+sys from /proc), medians, and
lbproxy's ratio to nginx. Report: bench/results/https-*.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import socket
import ssl
import statistics
import sys
import tempfile
import time
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

sys.path.insert(0, str(Path(__file__).resolve().parent))

import compare as cmp  # the shared tool and process plumbing

SCENARIOS = {"keep-alive": [], "new connection": ["-H", "Connection: close"]}


def _certificate(d: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bench.test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("bench.test")]), False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = d / "bench.pem", d / "bench.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def _lbproxy(work: Path, port: int, backend_port: int, cert: Path, key: Path) -> cmp.Managed:
    conf = cmp.lbproxy_conf(port, backend_port).replace(
        f'    bind: "127.0.0.1:{port}"\n',
        f'    bind: "127.0.0.1:{port}"\n'
        f'    tls: {{certificates: [{{cert: "{cert}", key: "{key}"}}]}}\n',
    )
    path = work / "lbproxy.yaml"
    path.write_text(conf)
    return cmp.Managed(
        "lbproxy",
        [sys.executable, "-m", "lbproxy", "--config", str(path)],
        work / "lbproxy.log",
        {0},
        cwd=cmp.REPO_ROOT,
    )


def _nginx(
    nginx: str, build: str, work: Path, port: int, backend_port: int, cert: Path, key: Path
) -> cmp.Managed:
    d = work / "nginx"
    d.mkdir(exist_ok=True)
    conf = cmp.nginx_proxy_conf(d, build, port, backend_port).replace(
        f"listen 127.0.0.1:{port};",
        f"listen 127.0.0.1:{port} ssl;\n"
        f"        ssl_certificate {cert};\n"
        f"        ssl_certificate_key {key};\n"
        "        ssl_protocols TLSv1.2 TLSv1.3;",
    )
    (d / "nginx.conf").write_text(conf)
    return cmp.Managed("nginx", cmp.nginx_backend_argv(nginx, d), work / "nginx.log", {0})


def _wait_ready(server: cmp.Managed, port: int, timeout: float) -> str | None:
    """Poll with HTTPS GETs (certificate not checked) until one gets 200."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    deadline = time.monotonic() + timeout
    reason = "no attempt"
    while time.monotonic() < deadline:
        if not server.alive():
            return f"exited with status {server.proc.returncode}: {reason}"
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as raw:
                with ctx.wrap_socket(raw, server_hostname="bench.test") as tls:
                    tls.sendall(b"GET / HTTP/1.1\r\nHost: bench.test\r\nConnection: close\r\n\r\n")
                    if tls.recv(64).startswith(b"HTTP/1.1 200"):
                        return None
                    reason = "not a 200"
        except OSError as exc:
            reason = str(exc)
        time.sleep(0.1)
    return f"not ready after {timeout:.0f}s (last: {reason})"


def _measure(
    wrk: str, server: cmp.Managed, port: int, extra: list[str], seconds: int
) -> tuple[float, float]:
    try:
        url = f"https://127.0.0.1:{port}/"
        options = ["-t1", "-c50", *extra]
        return cmp.wrk_cpu(wrk, options, url, seconds, {1}, server.pid, server.name)
    finally:
        server.stop()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--output", type=Path)
    args = ap.parse_args()
    wrk = cmp.find_tool("wrk", None)
    nginx = cmp.find_tool("nginx", None)
    if wrk is None or nginx is None:
        print("needs wrk and nginx: run bench/install-tools.sh", file=sys.stderr)
        return 1
    build = cmp.tool_output([nginx, "-V"])
    work = Path(tempfile.mkdtemp(prefix="lbproxy-https-"))
    work.chmod(0o755)  # nginx's worker (another user) reads the certificate
    cert, key = _certificate(work)
    results: dict[tuple[str, str], list[tuple[float, float]]] = {}
    backend: cmp.Managed | None = None
    try:
        backend_port = cmp.free_port()
        backend = cmp.start_nginx_backend(nginx, build, work, "backend", backend_port, {1})
        for rnd in range(args.rounds):
            for scenario, extra in SCENARIOS.items():
                order = ("lbproxy", "nginx") if rnd % 2 == 0 else ("nginx", "lbproxy")
                for proxy in order:
                    cmp.log(f"round {rnd + 1}/{args.rounds}: {scenario}, {proxy}")
                    port = cmp.free_port()
                    server = (
                        _lbproxy(work, port, backend_port, cert, key)
                        if proxy == "lbproxy"
                        else _nginx(nginx, build, work, port, backend_port, cert, key)
                    )
                    if why := _wait_ready(server, port, 30):
                        server.stop()
                        raise RuntimeError(f"{proxy}: {why}\n{cmp.tail(server.log_path)}")
                    results.setdefault((scenario, proxy), []).append(
                        _measure(wrk, server, port, extra, args.duration)
                    )
    finally:
        if backend is not None:
            backend.stop()
        shutil.rmtree(work, ignore_errors=True)

    now = dt.datetime.now(dt.UTC)
    lines = [
        f"# HTTPS termination — {now:%Y-%m-%d %H:%M:%S} UTC",
        "",
        f"Command: `{' '.join([sys.executable, *sys.argv])}`  ",
        "ECDSA P-256 certificate; proxy on CPU 0; nginx backend (plain HTTP) and wrk (1"
        f" thread, 50 connections) on CPU 1; {args.duration}s per run, {args.rounds} rounds,"
        " proxies alternated; medians.",
        "",
        "| scenario | lbproxy req/s | nginx req/s | lbproxy CPU µs/req | nginx CPU µs/req"
        " | CPU ratio (lbproxy ÷ nginx) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for scenario in SCENARIOS:
        lb = results[(scenario, "lbproxy")]
        ng = results[(scenario, "nginx")]
        lb_rps, ng_rps = (statistics.median(r for r, _ in x) for x in (lb, ng))
        lb_cpu, ng_cpu = (statistics.median(c for _, c in x) for x in (lb, ng))
        lines.append(
            f"| {scenario} | {lb_rps:.0f} | {ng_rps:.0f} | {lb_cpu:.1f} | {ng_cpu:.1f}"
            f" | {lb_cpu / ng_cpu:.2f}x |"
        )
    text = "\n".join(lines) + "\n"
    out = args.output or cmp.REPO_ROOT / "bench" / "results" / f"https-{now:%Y-%m-%d-%H%M%S}.md"
    out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
