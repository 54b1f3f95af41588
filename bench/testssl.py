"""testssl.sh against an lbproxy TLS listener: every finding above OK/INFO.

    python bench/testssl.py [--full] [--timeout 900] [--output FILE]

Starts lbproxy with one HTTPS listener (``hsts`` on) in front of one of
its built-in sample backends, and scans it with
Debian's ``testssl`` (package ``testssl.sh``; ``bench/install-tools.sh``
installs it). The scan is ``--fast`` unless ``--full``.

The certificate is made for the run the way a site's would be: a private CA
(ECDSA P-256, ten years) issues an ECDSA P-256 certificate for
``bench.test`` (and 127.0.0.1), valid for 90 days, with a CRL distribution
point and an OCSP responder URL, and testssl is told to trust that CA
(``--add-ca``) and to reach ``bench.test`` at 127.0.0.1 (``--ip``). So the
certificate checks (chain of trust, name, expiry, revocation info) judge
the certificate as deployed, and what is left is about lbproxy: protocols,
ciphers, key exchange groups, renegotiation, compression, known attacks,
headers. The URLs are never fetched (testssl does not phone out unless
told to).

Writes bench/results/testssl-<date>-<time>.md (the table of findings above
OK/INFO, and the command); the exit status is 1 when any finding is rated
HIGH or CRITICAL (the issue's target), else 0.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import compare as cmp  # process plumbing

HOST = "bench.test"
RANKS = ("OK", "INFO", "LOW", "MEDIUM", "HIGH", "CRITICAL")


def _signing(ca: bool) -> Any:
    """Key usage of an ECDSA key: signatures, and for a CA certificates and CRLs."""
    from cryptography import x509

    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def make_certificates(d: Path) -> tuple[Path, Path, Path]:
    """(CA certificate, server certificate chain, server key) in ``d``."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID

    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "lbproxy bench CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_signing(ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, HOST)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=90))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName(HOST), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_signing(ca=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.CRLDistributionPoints(
                [
                    x509.DistributionPoint(
                        full_name=[x509.UniformResourceIdentifier("http://127.0.0.1/ca.crl")],
                        relative_name=None,
                        reasons=None,
                        crl_issuer=None,
                    )
                ]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityInformationAccess(
                [
                    x509.AccessDescription(
                        AuthorityInformationAccessOID.OCSP,
                        x509.UniformResourceIdentifier("http://127.0.0.1/ocsp"),
                    )
                ]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    ca_path, chain_path, key_path = d / "ca.pem", d / "chain.pem", d / "server.key"
    ca_path.write_bytes(ca.public_bytes(pem))
    chain_path.write_bytes(cert.public_bytes(pem) + ca.public_bytes(pem))
    key_path.write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return ca_path, chain_path, key_path


def lbproxy_config(port: int, chain: Path, key: Path) -> str:
    # One built-in sample backend: nothing else to start.
    return f"""\
sample_backends: 1
listeners:
  - name: tls
    bind: "127.0.0.1:{port}"
    tls:
      certificates: [{{cert: "{chain}", key: "{key}"}}]
    hsts: "max-age=31536000; includeSubDomains"
    routes:
      - match: {{path_prefix: /}}
        pool: samples
access_log: {{format: off}}
"""


def findings(report: Path) -> list[dict[str, str]]:
    """testssl's JSON findings rated above OK/INFO, worst first."""
    data = json.loads(report.read_text())
    rows = data if isinstance(data, list) else data.get("scanResult", [])
    out = [
        {k: str(r.get(k, "")) for k in ("severity", "id", "finding")}
        for r in rows
        if str(r.get("severity", "")) not in ("OK", "INFO", "DEBUG", "")
    ]
    rank = {name: i for i, name in enumerate(RANKS)}
    out.sort(key=lambda r: -rank.get(r["severity"], 0))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--full", action="store_true", help="every check (default: --fast)")
    ap.add_argument("--timeout", type=int, default=900, help="seconds the scan may take")
    ap.add_argument("--output", type=Path)
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args()
    testssl = shutil.which("testssl") or shutil.which("testssl.sh")
    if testssl is None:
        print("needs testssl (Debian testssl.sh): run bench/install-tools.sh", file=sys.stderr)
        return 2
    cmp.unwind_on_signals()
    work = Path(tempfile.mkdtemp(prefix="lbproxy-testssl-"))
    proxy: cmp.Managed | None = None
    try:
        ca, chain, key = make_certificates(work)
        port = cmp.free_port()
        conf = work / "lbproxy.yaml"
        conf.write_text(lbproxy_config(port, chain, key))
        proxy = cmp.Managed(
            "lbproxy",
            [sys.executable, "-m", "lbproxy", "--config", str(conf)],
            work / "lbproxy.log",
            None,
            cwd=cmp.REPO_ROOT,
        )
        if why := cmp.wait_ready(proxy, port, 60, tls=True, body=None):
            raise RuntimeError(f"lbproxy: {why}\n{cmp.tail(work / 'lbproxy.log')}")
        out = work / "testssl.json"
        argv = [
            testssl,
            "--quiet",
            "--color",
            "0",
            *([] if args.full else ["--fast"]),
            "--add-ca",
            str(ca),
            "--ip",
            "127.0.0.1",
            "--jsonfile",
            str(out),
            f"https://{HOST}:{port}/",
        ]
        shown = [Path(argv[0]).name, *argv[1:]]
        shown[shown.index(str(ca))] = "ca.pem"
        shown[shown.index(str(out))] = "out.json"
        cmp.log("running " + " ".join(shown))
        done = subprocess.run(argv, capture_output=True, text=True, timeout=args.timeout)
        if not out.exists():
            raise RuntimeError(f"testssl wrote no report (exit {done.returncode}):\n{done.stdout}")
        found = re.search(r"testssl\S*\s+(\d+\.\d+\S*)", cmp.tool_output([testssl, "--version"]))
        version = f"testssl {found[1]}" if found else "testssl"
        rows = findings(out)
    finally:
        if proxy is not None:
            proxy.stop()
        cmp.discard_work(work, args.keep)

    bad = [r for r in rows if r["severity"] in ("HIGH", "CRITICAL")]
    now = dt.datetime.now(dt.UTC)
    lines = [
        f"# testssl.sh against an lbproxy TLS listener — {now:%Y-%m-%d %H:%M:%S} UTC",
        "",
        f"Command: `python {' '.join(sys.argv)}`, which runs `{' '.join(shown)}`"
        f" ({version}) against lbproxy with one HTTPS listener (`hsts` on).",
        f"Certificate: ECDSA P-256 for `{HOST}` and 127.0.0.1, issued for the run by a private"
        " CA that testssl is told to trust (`--add-ca`), valid 90 days, with CRL and OCSP URLs.",
        "",
        f"Findings above OK/INFO: {len(rows)}; rated HIGH or CRITICAL: {len(bad)}.",
        "",
        "| severity | id | finding |",
        "|---|---|---|",
        *(f"| {r['severity']} | {r['id']} | {r['finding'].replace('|', '/')} |" for r in rows),
        "",
    ]
    text = "\n".join(lines)
    cmp.save_report(text, args.output, "testssl", now)
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
