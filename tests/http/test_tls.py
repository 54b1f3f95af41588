"""TLS termination, HSTS, HTTPS redirects, client certificates and the PROXY
protocol, through a real proxy with real clients (ssl, curl, raw sockets)."""

from __future__ import annotations

import asyncio
import io
import json
import os
import shutil
import socket
import ssl
import subprocess
import warnings
from pathlib import Path

import aiohttp
import pytest
import trustme
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from lbproxy import _fast as lbproxy_fast
from lbproxy.config import ConfigError, parse_config
from tests.support import aiohttp_backend, echo_request, read_response, running_proxy

CERTS = ("site.test", "*.wild.test")


@pytest.fixture
def pki(tmp_path: Path) -> dict[str, object]:
    ca = trustme.CA()
    files: dict[str, object] = {"ca": ca, "dir": tmp_path}
    for name in CERTS:
        cert = ca.issue_cert(name)
        stem = name.replace("*", "star")
        cert.cert_chain_pems[0].write_to_path(str(tmp_path / f"{stem}.pem"))
        for pem in cert.cert_chain_pems[1:]:
            pem.write_to_path(str(tmp_path / f"{stem}.pem"), append=True)
        cert.private_key_pem.write_to_path(str(tmp_path / f"{stem}.key"))
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    return files


def _tls_config(backend: str, d: Path, extra_tls: str = "", extra: str = "") -> str:
    return f"""
listeners:
  - name: secure
    bind: "127.0.0.1:0"
    tls:
      certificates:
        - {{cert: "{d}/site.test.pem", key: "{d}/site.test.key"}}
        - {{cert: "{d}/star.wild.test.pem", key: "{d}/star.wild.test.key"}}
{extra_tls}
{extra}
    routes:
      - match: {{path_prefix: /}}
        pool: web
pools:
  web:
    backends:
      - {{address: "{backend}"}}
access_log: {{format: "off"}}
"""


def _client_ctx(pki: dict[str, object]) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ca = pki["ca"]
    assert isinstance(ca, trustme.CA)
    ca.configure_trust(ctx)
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


async def _get(
    port: int, ctx: ssl.SSLContext, sni: str, head: str = ""
) -> tuple[int, dict[str, str], bytes, ssl.SSLObject]:
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=ctx, server_hostname=sni
    )
    try:
        writer.write(f"GET /x HTTP/1.1\r\nHost: {sni}\r\n{head}\r\n".encode())
        status, headers, body = await asyncio.wait_for(read_response(reader), 5)
        sslobj = writer.get_extra_info("ssl_object")
        return status, headers, body, sslobj
    finally:
        writer.close()


def _served_names(sslobj: ssl.SSLObject) -> set[str]:
    cert = sslobj.getpeercert()
    assert cert is not None
    return {v for k, v in cert.get("subjectAltName", ()) if k == "DNS"}


async def test_https_with_sni_and_forwarded_proto(pki: dict[str, object]) -> None:
    d = pki["dir"]
    assert isinstance(d, Path)
    async with aiohttp_backend(echo_request) as b:
        async with running_proxy(_tls_config(b.address, d)) as (proxy, port):
            ctx = _client_ctx(pki)
            status, _, body, sslobj = await _get(port, ctx, "site.test")
            assert status == 200 and _served_names(sslobj) == {"site.test"}
            assert sslobj.selected_alpn_protocol() == "http/1.1"
            assert sslobj.version() in ("TLSv1.2", "TLSv1.3")
            seen = {n.lower(): v for n, v in json.loads(body)["headers"]}
            assert seen["x-forwarded-proto"] == "https"
            status, _, _, sslobj = await _get(port, ctx, "a.wild.test")
            assert status == 200 and _served_names(sslobj) == {"*.wild.test"}
            shakes = [
                (s.labels, s.value)
                for fam in text_string_to_metric_families(proxy.metrics_text())
                for s in fam.samples
                if s.name == "lbproxy_tls_handshakes_total"
            ]
            assert sum(v for _, v in shakes) == 2
            assert {lab["listener"] for lab, _ in shakes} == {"secure"}
            assert {lab["version"] for lab, _ in shakes} <= {"TLSv1.2", "TLSv1.3"}


def test_a_key_that_does_not_match_is_a_config_error(pki: dict[str, object]) -> None:
    d = pki["dir"]
    assert isinstance(d, Path)
    cfg = _tls_config("127.0.0.1:9", d).replace(
        f"{d}/site.test.key", f"{d}/star.wild.test.key"
    )
    with pytest.raises(ConfigError) as err:
        parse_config(cfg)
    (message,) = err.value.errors
    assert message.startswith("listeners[0].tls.certificates:")
    assert f"{d}/star.wild.test.key" in message and "does not match" in message


async def test_tls_1_1_is_refused(pki: dict[str, object]) -> None:
    d = pki["dir"]
    assert isinstance(d, Path)
    async with aiohttp_backend() as b:
        async with running_proxy(_tls_config(b.address, d)) as (_, port):
            ctx = _client_ctx(pki)
            with warnings.catch_warnings():  # TLS 1.1 is deprecated: that is the point
                warnings.simplefilter("ignore", DeprecationWarning)
                ctx.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
                ctx.maximum_version = ssl.TLSVersion.TLSv1_1
            ctx.set_ciphers("ALL:@SECLEVEL=0")
            with pytest.raises((ssl.SSLError, ConnectionError)):
                await _get(port, ctx, "site.test")
            # The proxy is fine afterwards.
            assert (await _get(port, _client_ctx(pki), "site.test"))[0] == 200


async def test_curl_over_https(pki: dict[str, object]) -> None:
    # scripts/install-test-tools.sh installs curl: missing, this fails, not skips.
    assert shutil.which("curl") is not None, "curl is missing: run scripts/install-test-tools.sh"
    d = pki["dir"]
    assert isinstance(d, Path)
    async with aiohttp_backend() as b:
        async with running_proxy(_tls_config(b.address, d)) as (_, port):
            proc = await asyncio.create_subprocess_exec(
                "curl", "-sS", "--cacert", str(d / "ca.pem"),
                "--resolve", f"site.test:{port}:127.0.0.1",
                "-o", "/dev/null", "-w", "%{http_code} %{ssl_verify_result}",
                f"https://site.test:{port}/curl",
                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            )
            out, err = await asyncio.wait_for(proc.communicate(), 20)
            assert out.decode() == "200 0", err


async def test_hsts_on_https_responses(pki: dict[str, object]) -> None:
    d = pki["dir"]
    assert isinstance(d, Path)
    async with aiohttp_backend() as b:
        cfg = _tls_config(b.address, d, extra='    hsts: "max-age=31536000"')
        async with running_proxy(cfg) as (_, port):
            status, headers, _, _ = await _get(port, _client_ctx(pki), "site.test")
            assert status == 200
            assert headers["strict-transport-security"] == "max-age=31536000"


async def test_redirect_http_to_https() -> None:
    async with aiohttp_backend() as b:
        cfg = f"""
listeners:
  - name: plain
    bind: "127.0.0.1:0"
    redirect_http_to: "https://{{host}}:8443"
    routes:
      - match: {{path_prefix: /}}
        pool: web
pools:
  web:
    backends:
      - {{address: "{b.address}"}}
access_log: {{format: "off"}}
"""
        async with running_proxy(cfg) as (_, port):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /a/b?c=1 HTTP/1.1\r\nHost: example.test:8080\r\n\r\n")
            status, headers, _ = await asyncio.wait_for(read_response(reader), 5)
            writer.close()
    assert status == 308
    assert headers["location"] == "https://example.test:8443/a/b?c=1"
    assert b.requests == 0


async def test_client_certificates(pki: dict[str, object]) -> None:
    d = pki["dir"]
    ca = pki["ca"]
    assert isinstance(d, Path) and isinstance(ca, trustme.CA)
    extra_tls = f'      client_ca: "{d}/ca.pem"\n      client_subject_header: X-Client-Cert-Subject'
    alice = ca.issue_cert("alice@example.test", common_name="alice")
    async with aiohttp_backend(echo_request) as b:
        async with running_proxy(_tls_config(b.address, d, extra_tls)) as (_, port):
            ctx = _client_ctx(pki)
            alice.configure_cert(ctx)
            status, _, body, _ = await _get(
                port, ctx, "site.test", "X-Client-Cert-Subject: CN=mallory\r\n"
            )
            assert status == 200
            headers = json.loads(body)["headers"]
            seen = [v for n, v in headers if n.lower() == "x-client-cert-subject"]
            assert len(seen) == 1 and "CN=alice" in seen[0] and "mallory" not in seen[0]
            # Without a client certificate: no request gets through.
            with pytest.raises((ssl.SSLError, ConnectionError, asyncio.IncompleteReadError)):
                await _get(port, _client_ctx(pki), "site.test")


async def test_certificates_reload_and_a_broken_one_keeps_the_old(pki: dict[str, object]) -> None:
    d = pki["dir"]
    assert isinstance(d, Path)
    async with aiohttp_backend() as b:
        async with running_proxy(_tls_config(b.address, d)) as (proxy, port):
            ctx = _client_ctx(pki)
            first = (await _get(port, ctx, "site.test"))[3].getpeercert()
            # A new certificate for the same name, from the same CA.
            ca = pki["ca"]
            assert isinstance(ca, trustme.CA)
            fresh = ca.issue_cert("site.test", "extra.site.test")
            fresh.cert_chain_pems[0].write_to_path(str(d / "site.test.pem"))
            fresh.private_key_pem.write_to_path(str(d / "site.test.key"))
            await proxy.reload(proxy.config)
            _, _, _, sslobj = await _get(port, ctx, "site.test")
            assert _served_names(sslobj) == {"site.test", "extra.site.test"}
            # A broken certificate file: the reload keeps the last good one.
            (d / "site.test.pem").write_text("not a certificate")
            await proxy.reload(proxy.config)
            _, _, _, sslobj = await _get(port, ctx, "site.test")
            assert _served_names(sslobj) == {"site.test", "extra.site.test"}
            assert sslobj.getpeercert() != first


def _plain_config(backend: str) -> str:
    return f"""
listeners:
  - name: behind-l4
    bind: "127.0.0.1:0"
    proxy_protocol: true
    routes:
      - match: {{path_prefix: /}}
        pool: web
pools:
  web:
    backends:
      - {{address: "{backend}"}}
access_log: {{format: "off"}}
"""


async def test_proxy_protocol_v1_and_v2(tmp_path: Path) -> None:
    async with aiohttp_backend(echo_request) as b:
        async with running_proxy(_plain_config(b.address)) as (_, port):
            v1 = b"PROXY TCP4 203.0.113.7 10.0.0.1 51000 80\r\n"
            v2 = (
                b"\r\n\r\n\x00\r\nQUIT\n"  # signature
                + b"\x21\x11\x00\x0c"  # v2 PROXY, TCP over IPv4, 12 bytes
                + bytes([198, 51, 100, 9]) + bytes([10, 0, 0, 1])
                + (52000).to_bytes(2, "big") + (80).to_bytes(2, "big")
            )
            for header, ip in ((v1, "203.0.113.7"), (v2, "198.51.100.9")):
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(header + b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
                status, _, body = await asyncio.wait_for(read_response(reader), 5)
                writer.close()
                seen = {n.lower(): v for n, v in json.loads(body)["headers"]}
                assert status == 200 and seen["x-forwarded-for"] == ip
            # Without the header, or with a broken one: closed, nothing answered.
            for bad in (b"GET / HTTP/1.1\r\nHost: t\r\n\r\n", b"PROXY TCP4 1.2.3.999 x y z\r\n"):
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(bad)
                assert await asyncio.wait_for(reader.read(), 5) == b""
                writer.close()


async def test_certificate_swapped_on_disk_while_clients_connect(pki: dict[str, object]) -> None:
    """Files replaced under load: the watcher reloads them within its poll
    interval, and no handshake or request fails meanwhile."""
    d = pki["dir"]
    ca = pki["ca"]
    assert isinstance(d, Path) and isinstance(ca, trustme.CA)
    async with aiohttp_backend() as b:
        async with running_proxy(_tls_config(b.address, d)) as (_, port):
            ctx = _client_ctx(pki)
            failures: list[str] = []
            names: list[set[str]] = []
            stop = asyncio.Event()

            async def client() -> None:
                while not stop.is_set():
                    try:
                        status, _, _, sslobj = await _get(port, ctx, "site.test")
                        if status != 200:
                            failures.append(f"status {status}")
                        names.append(_served_names(sslobj))
                    except (OSError, ssl.SSLError, asyncio.IncompleteReadError) as exc:
                        failures.append(repr(exc))

            clients = [asyncio.ensure_future(client()) for _ in range(4)]
            await asyncio.sleep(0.3)
            fresh = ca.issue_cert("site.test", "v2.site.test")
            # Written as a reload tool would: to a new file, then renamed over.
            for suffix, pem in (("pem", fresh.cert_chain_pems[0]), ("key", fresh.private_key_pem)):
                tmp = d / f"site.test.{suffix}.new"
                pem.write_to_path(str(tmp))
                tmp.replace(d / f"site.test.{suffix}")
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 10  # the watcher polls every 2 s
            while not (names and "v2.site.test" in names[-1]):
                assert loop.time() < deadline, "the new certificate was not served"
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.3)
            stop.set()
            await asyncio.gather(*clients)
    assert failures == []
    assert len(names) > 20 and names[0] == {"site.test"}
    assert names[-1] == {"site.test", "v2.site.test"}


_PP_V1 = b"PROXY TCP4 203.0.113.7 10.0.0.1 51000 443\r\n"
_PP_V2 = (
    b"\r\n\r\n\x00\r\nQUIT\n"  # signature
    + b"\x21\x11\x00\x0c"  # v2 PROXY, TCP over IPv4, 12 bytes
    + bytes([198, 51, 100, 9])
    + bytes([10, 0, 0, 1])
    + (52000).to_bytes(2, "big")
    + (443).to_bytes(2, "big")
)


def _https_after_header(port: int, header: bytes, ctx: ssl.SSLContext, sni: str) -> bytes:
    """Send ``header`` and the ClientHello in one write (as an L4 balancer
    often does), finish the handshake, and return the response to one GET."""
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(inc, out, server_hostname=sni)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        first = True
        while True:
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                sock.sendall((header if first else b"") + out.read())
                first = False
                chunk = sock.recv(65536)
                if not chunk:
                    raise ConnectionError("closed during the handshake") from None
                inc.write(chunk)
        tls.write(f"GET / HTTP/1.1\r\nHost: {sni}\r\nConnection: close\r\n\r\n".encode())
        sock.sendall(out.read())
        response = b""
        while True:
            try:
                data = tls.read(65536)
            except ssl.SSLWantReadError:
                chunk = sock.recv(65536)
                if not chunk:
                    return response
                inc.write(chunk)
                continue
            except ssl.SSLZeroReturnError:
                return response
            if not data:
                return response
            response += data


async def test_proxy_protocol_before_tls(pki: dict[str, object]) -> None:
    """A TLS listener behind an L4 balancer: the PROXY header comes in the
    clear, then TLS; the client address comes from the header, whether the
    ClientHello follows in the same segment or later."""
    d = pki["dir"]
    assert isinstance(d, Path)
    ctx = _client_ctx(pki)
    extra = "    proxy_protocol: true\n    timeouts: {header: 1s}"
    async with aiohttp_backend(echo_request) as b:
        async with running_proxy(_tls_config(b.address, d, extra=extra)) as (_, port):
            for header, ip in ((_PP_V1, "203.0.113.7"), (_PP_V2, "198.51.100.9")):
                # The header alone first, TLS after it has been read.
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(header)
                await writer.drain()
                await writer.start_tls(ctx, server_hostname="site.test")
                writer.write(b"GET / HTTP/1.1\r\nHost: site.test\r\n\r\n")
                status, _, body = await asyncio.wait_for(read_response(reader), 5)
                ssl_object = writer.get_extra_info("ssl_object")
                writer.close()
                seen = {n.lower(): v for n, v in json.loads(body)["headers"]}
                assert status == 200 and seen["x-forwarded-for"] == ip
                assert seen["x-forwarded-proto"] == "https"
                assert _served_names(ssl_object) == {"site.test"}  # SNI still chooses
                # Header and ClientHello in one write.
                raw = await asyncio.to_thread(
                    _https_after_header, port, header, ctx, "other.wild.test"
                )
                head, _, body = raw.partition(b"\r\n\r\n")
                assert head.startswith(b"HTTP/1.1 200 ")
                seen = {n.lower(): v for n, v in json.loads(body)["headers"]}
                assert seen["x-forwarded-for"] == ip

            # No header (TLS straight away), a broken one, or none in time: closed.
            with pytest.raises((ConnectionError, ssl.SSLError, OSError)):
                await asyncio.open_connection(
                    "127.0.0.1", port, ssl=ctx, server_hostname="site.test"
                )
            for sent in (b"PROXY TCP4 1.2.3.999 x y z\r\n", b"PROXY TCP4 203.0.113.7"):
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(sent)
                started = asyncio.get_running_loop().time()
                assert await asyncio.wait_for(reader.read(), 5) == b""
                if not sent.endswith(b"\r\n"):  # incomplete: the header timeout closes it
                    assert asyncio.get_running_loop().time() - started >= 0.9
                writer.close()


async def test_big_bodies_keep_alive_and_websocket_over_tls(pki: dict[str, object]) -> None:
    """Bodies larger than every buffer on the way (so reading pauses and
    resumes on both sides), several requests on one TLS connection, and a
    WebSocket tunnel, all through the TLS listener."""
    d = pki["dir"]
    assert isinstance(d, Path)

    async def handler(request: web.Request) -> web.StreamResponse:
        if request.path == "/ws":
            ws = web.WebSocketResponse()
            await ws.prepare(request)
            async for msg in ws:
                await ws.send_bytes(msg.data[::-1])
            return ws
        body = await request.read()
        return web.Response(body=body[::-1])

    upload = os.urandom(8 << 20)
    async with aiohttp_backend(handler) as b:
        async with running_proxy(_tls_config(b.address, d)) as (_, port):
            connector = aiohttp.TCPConnector(ssl=_client_ctx(pki), limit=1)
            async with aiohttp.ClientSession(connector=connector) as s:
                url = f"https://127.0.0.1:{port}"  # SNI and the name checked: site.test
                for size in (len(upload), 10, 100_000):
                    body = io.BytesIO(upload[:size])
                    async with s.post(f"{url}/echo", data=body, server_hostname="site.test") as r:
                        assert r.status == 200
                        assert await r.read() == upload[:size][::-1]
                async with s.ws_connect(f"{url}/ws", server_hostname="site.test") as ws:
                    for size in (5, 1 << 20):
                        await ws.send_bytes(upload[:size])
                        msg = await ws.receive(timeout=10)
                        assert msg.data == upload[:size][::-1]


async def test_tls_runs_in_pure_python_where_openssl_is_not_reachable(
    pki: dict[str, object], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Where the compiled engine cannot use the listener's SSL_CTX (another
    Python's object layout, say), the listener serves through the twin."""
    d = pki["dir"]
    assert isinstance(d, Path)
    monkeypatch.setattr("lbproxy.tls.libssl.ctx_pointer", lambda ctx: None)
    async with aiohttp_backend(echo_request) as b:
        async with running_proxy(_tls_config(b.address, d)) as (proxy, port):
            status, _, _, sslobj = await _get(port, _client_ctx(pki), "site.test")
            assert status == 200 and _served_names(sslobj) == {"site.test"}
            front = next(iter(proxy.listeners.values())).tls_front
            assert type(front).__module__ == "lbproxy._fast.tlsconn_py"
    if not lbproxy_fast.NO_EXTENSIONS:
        assert "TLS runs in pure Python" in caplog.text
