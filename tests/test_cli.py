"""The ``lbproxy`` command, run for real as ``python -m lbproxy`` in a subprocess."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

import lbproxy
from tests.support import (
    aiohttp_backend,
    client_connection,
    free_port,
    poll_until,
    read_response,
)

REPO = Path(__file__).resolve().parent.parent
RUN_TIMEOUT = 30.0


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lbproxy", *args],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        cwd=REPO,
        check=False,
    )


def write(tmp_path: Path, text: str, name: str = "lb.yaml") -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return str(path)


def config_text(bind: str, backend: str, extra: str = "") -> str:
    return f"""
listeners:
  - name: public
    bind: "{bind}"
    routes:
      - match: {{path_prefix: /}}
        pool: web
pools:
  web:
    backends:
      - {{address: "{backend}"}}
access_log: {{format: "off"}}
{extra}"""


def test_version() -> None:
    result = run_cli("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"lbproxy {lbproxy.__version__}"


def test_check_accepts_a_valid_file(tmp_path: Path) -> None:
    path = write(tmp_path, config_text("127.0.0.1:18080", "127.0.0.1:9001"))
    result = run_cli("--config", path, "--check")
    assert result.returncode == 0, result.stderr
    assert "valid" in result.stderr


def test_check_accepts_the_shipped_demo_config() -> None:
    result = run_cli("--config", "configs/demo.yaml", "--check")
    assert result.returncode == 0, result.stderr


def test_check_lists_every_error_with_key_path_and_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        listeners:
          - name: public
            bind: "127.0.0.1:99999"
            routes:
              - match: {path_prefix: /}
                pool: web
        pools:
          web:
            balance: round_robbin
            backends:
              - {address: "127.0.0.1:9001", weight: -1}
            timeoutz: {connect: 1s}
        """,
    )
    result = run_cli("--config", path, "--check")
    assert result.returncode == 1, result.stderr
    err = result.stderr
    expected = [
        ("listeners[0].bind", 3),
        ("pools.web.balance", 9),
        ("pools.web.backends[0].weight", 11),
        ("pools.web.timeoutz", 12),
    ]
    lines = err.splitlines()
    for key, line in expected:
        matching = [x for x in lines if key + ":" in x and f"line {line}" in x]
        assert matching, f"no error for {key} at line {line} in:\n{err}"
    assert 'did you mean "round_robin"' in err
    assert 'did you mean "timeouts"' in err


def test_check_on_an_unreadable_file_exits_1(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.yaml")
    result = run_cli("--config", missing, "--check")
    assert result.returncode == 1
    assert "nope.yaml" in result.stderr


def test_invalid_config_without_check_exits_1_and_serves_nothing(tmp_path: Path) -> None:
    path = write(tmp_path, config_text("127.0.0.1:18080", "127.0.0.1:9001", "bogus: 1\n"))
    result = run_cli("--config", path)
    assert result.returncode == 1
    assert "bogus" in result.stderr


def test_missing_config_is_a_usage_error() -> None:
    result = run_cli()
    assert result.returncode == 2
    assert "--config" in result.stderr


@pytest.mark.parametrize("args", [["--workers", "zero"], ["--no-such-flag"]])
def test_bad_arguments_are_a_usage_error(tmp_path: Path, args: list[str]) -> None:
    path = write(tmp_path, config_text("127.0.0.1:18080", "127.0.0.1:9001"))
    result = run_cli("--config", path, *args)
    assert result.returncode == 2, result.stderr
    assert args[0] in result.stderr


def test_port_already_bound_exits_3_naming_the_address(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        path = write(tmp_path, config_text(f"127.0.0.1:{port}", "127.0.0.1:9001"))
        result = run_cli("--config", path)
    assert result.returncode == 3, result.stderr
    assert f"127.0.0.1:{port}" in result.stderr


# -- running: graceful shutdown on signals ---------------------------------------------


@contextlib.asynccontextmanager
async def lbproxy_process(
    config_path: str, log_path: Path
) -> AsyncIterator[asyncio.subprocess.Process]:
    """``python -m lbproxy --config FILE`` with stdout and stderr in ``log_path``;
    killed (by PID) if still running at the end."""
    with open(log_path, "wb") as log:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "lbproxy",
            "--config",
            config_path,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            cwd=REPO,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.kill()
        await asyncio.wait_for(proc.wait(), RUN_TIMEOUT)


async def wait_listening(proc: asyncio.subprocess.Process, log_path: Path, port: int) -> None:
    def ready() -> bool:
        if proc.returncode is not None:
            raise AssertionError(f"lbproxy exited early:\n{log_path.read_text()}")
        pattern = rf"listening on http://127\.0\.0\.1:{port}\b"
        return re.search(pattern, log_path.read_text()) is not None

    await poll_until(ready, 15.0, f"lbproxy to listen on port {port}")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_signal_drains_the_request_in_flight_then_exits_0(
    tmp_path: Path, signum: signal.Signals
) -> None:
    arrived = asyncio.Event()

    async def slow(request: web.Request) -> web.StreamResponse:
        arrived.set()
        await asyncio.sleep(1.0)  # the slow backend under test, not a synchronisation
        return web.Response(text="slow done")

    async with aiohttp_backend(slow) as backend:
        port = free_port()
        path = write(tmp_path, config_text(f"127.0.0.1:{port}", backend.address))
        log_path = tmp_path / "lbproxy.log"
        async with lbproxy_process(path, log_path) as proc:
            await wait_listening(proc, log_path, port)
            async with client_connection(port) as (reader, writer):
                writer.write(b"GET /slow HTTP/1.1\r\nHost: t\r\n\r\n")
                await asyncio.wait_for(arrived.wait(), 10)
                proc.send_signal(signum)
                status, _, body = await asyncio.wait_for(read_response(reader), 10)
                assert (status, body) == (200, b"slow done"), log_path.read_text()
            code = await asyncio.wait_for(proc.wait(), 15)
            log = log_path.read_text()
            assert code == 0, log
            assert signum.name in log


@pytest.mark.parametrize("workers", [1, 2])
async def test_the_startup_log_gives_each_listener_its_scheme(tmp_path: Path, workers: int) -> None:
    """A TLS listener is announced with https://, a plain one with http://,
    by the single process and by a supervisor of workers alike."""
    import trustme

    ca = trustme.CA()
    leaf = ca.issue_cert("site.test")
    cert, key = tmp_path / "site.pem", tmp_path / "site.key"
    leaf.cert_chain_pems[0].write_to_path(str(cert))
    leaf.private_key_pem.write_to_path(str(key))
    plain, secure = free_port(), free_port()
    path = write(
        tmp_path,
        textwrap.dedent(
            f"""\
            workers: {workers}
            listeners:
              - name: plain
                bind: "127.0.0.1:{plain}"
                routes: [{{match: {{path_prefix: /}}, pool: web}}]
              - name: secure
                bind: "127.0.0.1:{secure}"
                tls: {{certificates: [{{cert: "{cert}", key: "{key}"}}]}}
                routes: [{{match: {{path_prefix: /}}, pool: web}}]
            pools:
              web:
                backends: [{{address: "127.0.0.1:9"}}]
            """
        ),
    )
    log_path = tmp_path / "lbproxy.log"
    async with lbproxy_process(path, log_path) as proc:
        await wait_listening(proc, log_path, plain)

        def announced() -> bool:
            return f"listening on https://127.0.0.1:{secure} (listener secure" in (
                log_path.read_text()
            )

        await poll_until(announced, 15.0, "the TLS listener's announcement")
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), RUN_TIMEOUT)
    assert f"http://127.0.0.1:{secure}" not in log_path.read_text()
