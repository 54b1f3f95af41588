"""A TLS listener scanned by sslyze against Mozilla's "intermediate" configuration.

sslyze (a subprocess, as a user would run it) checks protocol versions, cipher suites,
key-exchange groups, known vulnerabilities (Heartbleed, CCS injection, ROBOT, insecure
renegotiation, compression, TLS_FALLBACK_SCSV, extended master secret) and the
certificate. The certificate is issued for the test as Mozilla asks (ECDSA P-256 signed
with ECDSA-SHA256, valid under 366 days, the name in the SAN) by a trustme CA that
sslyze is given as an extra trust store, so a failure means the listener's TLS settings,
not the test certificate.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import sys
from pathlib import Path

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.support import aiohttp_backend, running_proxy

pytest.importorskip("sslyze")

NAME = "localhost"
SCAN_TIMEOUT = 90  # seconds; a scan of 127.0.0.1 takes a few


def _certificate(d: Path) -> tuple[Path, Path, Path]:
    """A trustme CA and a leaf for NAME that Mozilla's profile and sslyze accept.

    trustme's own leaves mark the SAN critical beside a non-empty subject, which the
    RFC 5280 path validation sslyze runs (cryptography's) refuses, and are valid for
    centuries; this leaf is signed with the CA's key, valid for 90 days.
    """
    ca = trustme.CA(key_type=trustme.KeyType.ECDSA)
    ca_key = serialization.load_pem_private_key(ca.private_key_pem.bytes(), None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    ca_cert = x509.load_pem_x509_certificate(ca.cert_pem.bytes())
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, NAME)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=90))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(NAME)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, False, False, False, False),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    cert, key_file, ca_file = d / "leaf.pem", d / "leaf.key", d / "ca.pem"
    cert.write_bytes(leaf.public_bytes(serialization.Encoding.PEM) + ca.cert_pem.bytes())
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    ca.cert_pem.write_to_path(str(ca_file))
    return cert, key_file, ca_file


def _config(backend: str, cert: Path, key: Path) -> str:
    return f"""
listeners:
  - name: secure
    bind: "127.0.0.1:0"
    tls:
      certificates:
        - {{cert: "{cert}", key: "{key}"}}
    routes:
      - match: {{path_prefix: /}}
        pool: web
pools:
  web:
    backends:
      - {{address: "{backend}"}}
access_log: {{format: "off"}}
"""


async def _sslyze(port: int, ca_file: Path, json_out: Path) -> tuple[int, str]:
    # "host:port{ip}" scans 127.0.0.1 while naming the server localhost (SNI and the
    # name the certificate is checked against).
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "sslyze",
        "--mozilla_config=intermediate",
        f"--certinfo_ca_file={ca_file}",
        f"--sni={NAME}",
        f"--json_out={json_out}",
        f"{NAME}:{port}{{127.0.0.1}}",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), SCAN_TIMEOUT)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return proc.returncode, out.decode(errors="replace")


def _accepted(result: dict[str, object], field: str) -> set[str]:
    attempt = result[field]
    assert isinstance(attempt, dict) and attempt["status"] == "COMPLETED", attempt
    suites = attempt["result"]["accepted_cipher_suites"]
    return {s["cipher_suite"]["name"] for s in suites}


@pytest.mark.timeout(SCAN_TIMEOUT + 30)
async def test_a_tls_listener_is_compliant_with_mozilla_intermediate(tmp_path: Path) -> None:
    cert, key, ca_file = _certificate(tmp_path)
    json_out = tmp_path / "sslyze.json"
    async with aiohttp_backend() as b:
        async with running_proxy(_config(b.address, cert, key)) as (_, port):
            rc, out = await _sslyze(port, ca_file, json_out)

    assert rc == 0 and f"{NAME}:{port}: OK - Compliant" in out, out
    [server] = json.loads(json_out.read_text())["server_scan_results"]
    assert server["scan_status"] == "COMPLETED", out
    result = server["scan_result"]
    for old in ("ssl_2_0", "ssl_3_0", "tls_1_0", "tls_1_1"):
        assert _accepted(result, f"{old}_cipher_suites") == set(), old
    assert _accepted(result, "tls_1_3_cipher_suites")
    assert all(
        "ECDHE" in s and ("GCM" in s or "CHACHA20" in s)
        for s in _accepted(result, "tls_1_2_cipher_suites")
    )
    [deployment] = result["certificate_info"]["result"]["certificate_deployments"]
    # Path validation (sslyze's includes the name) succeeds with the test CA only.
    trusted = {
        p["trust_store"]["name"]
        for p in deployment["path_validation_results"]
        if p["verified_certificate_chain"]
    }
    assert trusted == {"Supplied CA file"}, deployment["path_validation_results"]
