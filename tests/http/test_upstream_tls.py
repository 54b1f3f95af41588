"""``upstream_tls``: the proxy speaks TLS to HTTPS backends (aiohttp with
trustme certificates), verifies them, presents a client certificate, and
pools the connections like plain ones."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trustme
from aiohttp import web

from lbproxy.config import ConfigError, parse_config
from tests.support import get, running_proxy


class TlsBackend:
    def __init__(self) -> None:
        self.port = 0
        self.connections = 0
        self.requests = 0
        self.subjects: list[str] = []


@contextlib.asynccontextmanager
async def https_backend(ctx: ssl.SSLContext) -> AsyncIterator[TlsBackend]:
    state = TlsBackend()

    async def handler(request: web.Request) -> web.StreamResponse:
        state.requests += 1
        peer = request.transport.get_extra_info("peercert") if request.transport else None
        if peer:
            state.subjects.append(str(peer.get("subject")))
        return web.Response(text=f"secure {request.path}")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ctx)
    await site.start()
    server = runner.server
    assert server is not None
    made = server.connection_made

    def counting(*args: object, **kwargs: object) -> object:
        state.connections += 1
        return made(*args, **kwargs)  # type: ignore[arg-type]

    server.connection_made = counting  # type: ignore[method-assign]
    sockets = getattr(site._server, "sockets", None)
    assert sockets
    state.port = sockets[0].getsockname()[1]
    try:
        yield state
    finally:
        await runner.cleanup()


@pytest.fixture
def pki(tmp_path: Path) -> tuple[trustme.CA, Path]:
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    client = ca.issue_cert("lbproxy.client.test")
    client.cert_chain_pems[0].write_to_path(str(tmp_path / "client.pem"))
    client.private_key_pem.write_to_path(str(tmp_path / "client.key"))
    trustme.CA().cert_pem.write_to_path(str(tmp_path / "other-ca.pem"))
    return ca, tmp_path


def _server_ctx(ca: trustme.CA, *names: str) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*names).configure_cert(ctx)
    return ctx


def _config(port: int, upstream_tls: str) -> str:
    return f"""
listeners:
  - name: test
    bind: "127.0.0.1:0"
    routes:
      - match: {{path_prefix: /}}
        pool: web
pools:
  web:
    upstream_tls: {upstream_tls}
    backends:
      - {{address: "127.0.0.1:{port}"}}
access_log: {{format: "off"}}
"""


async def test_verified_and_pooled(pki: tuple[trustme.CA, Path]) -> None:
    ca, d = pki
    async with https_backend(_server_ctx(ca, "backend.test")) as b:
        cfg = _config(b.port, f'{{ca: "{d}/ca.pem", sni: backend.test}}')
        async with running_proxy(cfg) as (_, port):
            for i in range(5):
                status, _, body = await get(port, f"/r{i}")
                assert status == 200 and body == f"secure /r{i}".encode()
    assert b.requests == 5
    assert b.connections == 1  # one TLS connection, kept alive and reused


async def test_the_backend_ip_is_the_name_by_default(pki: tuple[trustme.CA, Path]) -> None:
    ca, d = pki
    async with https_backend(_server_ctx(ca, "127.0.0.1")) as b:
        async with running_proxy(_config(b.port, f'{{ca: "{d}/ca.pem"}}')) as (_, port):
            assert (await get(port, "/"))[0] == 200


async def test_a_backend_that_fails_verification_is_a_502(pki: tuple[trustme.CA, Path]) -> None:
    ca, d = pki
    async with https_backend(_server_ctx(ca, "backend.test")) as b:
        for upstream in (
            f'{{ca: "{d}/other-ca.pem", sni: backend.test}}',  # not our CA
            f'{{ca: "{d}/ca.pem", sni: other.test}}',  # not its name
        ):
            async with running_proxy(_config(b.port, upstream)) as (_, port):
                assert (await get(port, "/"))[0] == 502
        assert b.requests == 0
        # verify: false takes any certificate (a lab backend, say).
        cfg = _config(b.port, f'{{verify: false, ca: "{d}/other-ca.pem"}}')
        async with running_proxy(cfg) as (_, port):
            assert (await get(port, "/"))[0] == 200


async def test_client_certificate_to_the_backend(pki: tuple[trustme.CA, Path]) -> None:
    ca, d = pki
    ctx = _server_ctx(ca, "backend.test")
    ctx.verify_mode = ssl.CERT_REQUIRED
    ca.configure_trust(ctx)
    async with https_backend(ctx) as b:
        plain = _config(b.port, f'{{ca: "{d}/ca.pem", sni: backend.test}}')
        async with running_proxy(plain) as (_, port):
            assert (await get(port, "/"))[0] == 502  # the backend wants a certificate
        with_cert = _config(
            b.port,
            f'{{ca: "{d}/ca.pem", sni: backend.test, cert: "{d}/client.pem",'
            f' key: "{d}/client.key"}}',
        )
        async with running_proxy(with_cert) as (_, port):
            assert (await get(port, "/"))[0] == 200
    assert b.requests == 1


def test_upstream_tls_config_errors(pki: tuple[trustme.CA, Path]) -> None:
    _, d = pki
    for upstream, message in (
        (f'{{cert: "{d}/client.pem"}}', "cert and key go together"),
        ("{ca: /nonexistent.pem}", 'file "/nonexistent.pem" does not exist'),
        (f'{{ca: "{d}/client.key"}}', "not a PEM certificate"),
        (f'{{cert: "{d}/client.pem", key: "{d}/ca.pem"}}', "not a PEM private key"),
    ):
        with pytest.raises(ConfigError) as err:
            parse_config(_config(9, upstream))
        (error,) = err.value.errors
        assert error.startswith("pools.web.upstream_tls") and message in error, error


async def test_health_checks_speak_tls(pki: tuple[trustme.CA, Path]) -> None:
    ca, d = pki
    async with https_backend(_server_ctx(ca, "backend.test")) as b:
        for ca_file, state in (("ca.pem", "healthy"), ("other-ca.pem", "unhealthy")):
            cfg = _config(b.port, f'{{ca: "{d}/{ca_file}", sni: backend.test}}').replace(
                "    upstream_tls:",
                "    health_check: {path: /health, interval: 100ms, timeout: 80ms,"
                " unhealthy_threshold: 1}\n    upstream_tls:",
            )
            async with running_proxy(cfg) as (proxy, _):
                backend = proxy.pools["web"].backends[0]
                loop = asyncio.get_running_loop()
                deadline = loop.time() + 5
                while backend.checks_ok + backend.checks_failed < 2:
                    assert loop.time() < deadline
                    await asyncio.sleep(0.05)
                (entry,) = proxy.status()["pools"]["web"]["backends"]
                assert entry["state"] == state
    assert b.requests >= 2  # the good CA's probes arrived over TLS
