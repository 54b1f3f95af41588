"""``workers: N``: a supervisor and worker processes, driven through the real
CLI with real clients, against aiohttp backends in this process."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import trustme
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from tests.support import (
    aiohttp_backend,
    client_connection,
    free_port,
    named_backends,
    read_response,
)

TOKEN = "s3cret-token"


def _config(backends: list[str], port: int, admin_port: int, extra: str = "") -> str:
    lines = "\n".join(f'      - {{address: "{b}"}}' for b in backends)
    return f"""
listeners:
  - name: web
    bind: "127.0.0.1:{port}"
    routes:
      - match: {{path_prefix: /}}
        pool: app
pools:
  app:
    backends:
{lines}
{extra}
workers: 2
shutdown_timeout: 3s
access_log: {{format: "off"}}
admin: {{bind: "127.0.0.1:{admin_port}"}}
"""


class Cluster:
    def __init__(self, proc: subprocess.Popen[bytes], port: int, admin: int, log: Path,
                 cfg: Path) -> None:
        self.proc = proc
        self.port = port
        self.admin = admin
        self.log = log
        self.cfg = cfg

    def text(self) -> str:
        return self.log.read_text()

    def worker_pids(self) -> list[int]:
        """The live workers' PIDs (children of the supervisor)."""
        path = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        return [int(p) for p in path.read_text().split()]

    async def wait_log(self, pattern: str, count: int = 1, timeout: float = 20) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(re.findall(pattern, self.text())) < count:
            assert self.proc.poll() is None, f"supervisor exited:\n{self.text()}"
            assert loop.time() < deadline, f"no {pattern!r} x{count} in:\n{self.text()}"
            await asyncio.sleep(0.05)

    async def metrics(self) -> dict[str, float]:
        async with aiohttp.ClientSession() as s:
            async with s.get(f"http://127.0.0.1:{self.admin}/metrics") as r:
                text = await r.text()
        out: dict[str, float] = {}
        for fam in text_string_to_metric_families(text):
            for sample in fam.samples:
                key = sample.name + str(sorted(sample.labels.items()))
                out[key] = sample.value
                out[sample.name] = out.get(sample.name + "#sum", 0.0) + sample.value
                out[sample.name + "#sum"] = out[sample.name]
        return out


@contextlib.asynccontextmanager
async def cluster(
    tmp_path: Path, config: str, port: int, admin: int, scheme: str = "http"
) -> AsyncIterator[Cluster]:
    cfg = tmp_path / "lb.yaml"
    cfg.write_text(config)
    log = tmp_path / "lbproxy.stderr"
    env = {**os.environ, "LBPROXY_ADMIN_TOKEN": TOKEN}
    with log.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "lbproxy", "--config", str(cfg)],
            stdout=subprocess.DEVNULL,
            stderr=err,
            env=env,
        )
    c = Cluster(proc, port, admin, log, cfg)
    try:
        await c.wait_log(rf"listening on {scheme}://127\.0\.0\.1")
        yield c
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise AssertionError(f"supervisor did not stop on SIGTERM:\n{c.text()}") from None
        assert code == 0, c.text()
        # Every worker went with it.
        assert "did not stop in time" not in c.text()


def _established_by_pid(pids: list[int], port: int) -> dict[int, int]:
    """Per process, its established TCP sockets whose local port is ``port``."""
    inodes: dict[str, bool] = {}
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, state, inode = fields[1], fields[3], fields[9]
        if state == "01" and int(local.split(":")[1], 16) == port:
            inodes[inode] = True
    counts = {}
    for pid in pids:
        n = 0
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                target = os.readlink(fd)
                m = re.fullmatch(r"socket:\[(\d+)\]", target)
                if m and m[1] in inodes:
                    n += 1
        counts[pid] = n
    return counts


async def test_connections_spread_over_workers(tmp_path: Path) -> None:
    port, admin = free_port(), free_port()
    async with named_backends(2) as bs:
        config = _config([b.address for b in bs], port, admin)
        async with cluster(tmp_path, config, port, admin) as c:
            conns = []
            try:
                for _ in range(24):
                    r, w = await asyncio.open_connection("127.0.0.1", port)
                    w.write(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
                    await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 5)
                    conns.append(w)
                counts = _established_by_pid(c.worker_pids(), port)
                assert len(counts) == 2
                assert sum(counts.values()) == 24
                assert all(n > 0 for n in counts.values()), counts
            finally:
                for w in conns:
                    w.close()


async def _load(
    port: int, seconds: float, concurrency: int, close: bool
) -> tuple[int, int, list[str]]:
    """GETs for ``seconds`` from ``concurrency`` tasks: (ok, failed, errors)."""
    ok = failed = 0
    errors: list[str] = []
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=close)

    async with aiohttp.ClientSession(connector=connector) as session:

        async def one() -> None:
            nonlocal ok, failed
            while loop.time() < end:
                try:
                    async with session.get(
                        f"http://127.0.0.1:{port}/x", timeout=aiohttp.ClientTimeout(total=10)
                    ) as r:
                        await r.read()
                        if r.status == 200:
                            ok += 1
                        else:
                            failed += 1
                            errors.append(f"status {r.status}")
                except (aiohttp.ClientError, TimeoutError) as exc:
                    failed += 1
                    errors.append(repr(exc))

        await asyncio.gather(*(one() for _ in range(concurrency)))
    return ok, failed, errors


async def test_reload_under_load_loses_nothing(tmp_path: Path) -> None:
    port, admin = free_port(), free_port()
    async with named_backends(2) as bs:
        config = _config([b.address for b in bs], port, admin)
        async with cluster(tmp_path, config, port, admin) as c:
            load = asyncio.ensure_future(_load(port, 5.0, 8, close=False))
            await asyncio.sleep(1.0)
            first = c.worker_pids()
            c.proc.send_signal(signal.SIGHUP)
            await c.wait_log(r"config reloaded from .*: 2 new workers serving")
            await asyncio.sleep(1.0)
            c.proc.send_signal(signal.SIGHUP)
            await c.wait_log(r"config reloaded from .*: 2 new workers serving", count=2)
            ok, failed, errors = await load
            assert failed == 0, errors[:5]
            assert ok > 100
            # New processes serve; the first generation has gone.
            await c.wait_log(r"worker \d \(pid \d+\) exited \(exit code 0\)", count=4)
            assert not set(first) & set(c.worker_pids())
            m = await c.metrics()
            assert m["lbproxy_config_reloads_total[('result', 'success')]"] == 2
            # Totals include what the retired workers counted.
            assert m["lbproxy_requests_total#sum"] == ok


async def test_invalid_reload_keeps_the_old_config(tmp_path: Path) -> None:
    port, admin = free_port(), free_port()
    async with aiohttp_backend() as b:
        config = _config([b.address], port, admin)
        async with cluster(tmp_path, config, port, admin) as c:
            pids = c.worker_pids()
            c.cfg.write_text(config.replace("pool: app", "pool: nowhere"))
            c.proc.send_signal(signal.SIGHUP)
            await c.wait_log(r"reload failed, keeping the old config")
            assert "routes[0].pool" in c.text()
            assert sorted(c.worker_pids()) == sorted(pids)
            ok, failed, errors = await _load(port, 0.5, 2, close=True)
            assert failed == 0 and ok > 0, errors[:3]
            m = await c.metrics()
            assert m["lbproxy_config_reloads_total[('result', 'failure')]"] == 1


async def test_killed_worker_costs_only_its_requests_and_restarts(tmp_path: Path) -> None:
    port, admin = free_port(), free_port()
    async with named_backends(2) as bs:
        config = _config([b.address for b in bs], port, admin)
        async with cluster(tmp_path, config, port, admin) as c:
            victim = c.worker_pids()[0]
            load = asyncio.ensure_future(_load(port, 3.0, 4, close=True))
            await asyncio.sleep(1.0)
            os.kill(victim, signal.SIGKILL)
            ok, failed, errors = await load
            # At most the requests in flight on that worker: one per client task.
            assert failed <= 4, errors
            assert ok > 50
            await c.wait_log(r"worker \d restarted \(pid \d+\)")
            assert f"(pid {victim}) died (signal SIGKILL)" in c.text()
            pids = c.worker_pids()
            assert len(pids) == 2 and victim not in pids
            ok, failed, errors = await _load(port, 0.5, 2, close=True)
            assert failed == 0 and ok > 0, errors[:3]


async def test_health_checks_run_once_for_all_workers(tmp_path: Path) -> None:
    checks = 0

    async def handler(request: web.Request) -> web.StreamResponse:
        nonlocal checks
        if request.path == "/health":
            checks += 1
        return web.Response(text="ok")

    port, admin = free_port(), free_port()
    extra = "    health_check: {path: /health, interval: 200ms, timeout: 150ms}"
    async with aiohttp_backend(handler) as b:
        config = _config([b.address], port, admin, extra).replace("workers: 2", "workers: 3")
        async with cluster(tmp_path, config, port, admin):
            before = checks
            await asyncio.sleep(2.0)
            seen = checks - before
    # About 10 probes in 2 s from one checker (jitter +-10%); three checkers
    # would make about 30.
    assert 6 <= seen <= 14, seen


async def test_health_flip_reaches_every_worker(tmp_path: Path) -> None:
    sick = False
    proxied = 0

    async def handler(request: web.Request) -> web.StreamResponse:
        nonlocal proxied
        if request.path == "/health":
            return web.Response(status=503 if sick else 200)
        proxied += 1
        return web.Response(text="a")

    port, admin = free_port(), free_port()
    extra = (
        "    health_check: {path: /health, interval: 100ms, timeout: 80ms,"
        " healthy_threshold: 1, unhealthy_threshold: 1}"
    )
    async with aiohttp_backend(handler) as a, aiohttp_backend(name="b") as b:
        config = _config([a.address, b.address], port, admin, extra)
        async with cluster(tmp_path, config, port, admin) as c:
            sick = True
            await c.wait_log(r"backend 127\.0\.0\.1:\d+ is down")
            await asyncio.sleep(0.3)
            served_by_a = proxied
            ok, failed, _ = await _load(port, 1.0, 4, close=True)
            assert failed == 0 and ok > 20
            assert proxied == served_by_a  # no worker still sends it traffic
            assert b.requests >= ok


async def test_admin_drain_reaches_every_worker_and_totals_add_up(tmp_path: Path) -> None:
    port, admin = free_port(), free_port()
    async with named_backends(2) as bs:
        config = _config([b.address for b in bs], port, admin)
        async with cluster(tmp_path, config, port, admin) as c:
            ok, failed, _ = await _load(port, 1.0, 4, close=True)
            assert failed == 0
            m = await c.metrics()
            assert m["lbproxy_requests_total#sum"] == ok
            assert m["lbproxy_backend_requests_total#sum"] == ok
            async with aiohttp.ClientSession() as s:
                url = f"http://127.0.0.1:{admin}/api/pools/app/backends/{bs[0].address}/drain"
                async with s.post(url) as r:
                    assert r.status == 401  # no token
                async with s.post(url, headers={"Authorization": f"Bearer {TOKEN}"}) as r:
                    assert r.status == 200, await r.text()
                async with s.get(f"http://127.0.0.1:{admin}/api/status") as r:
                    status = await r.json()
            assert status["workers"] == 2
            backends = {x["address"]: x for x in status["pools"]["app"]["backends"]}
            assert backends[bs[0].address]["state"] in ("draining", "disabled")
            assert sum(x["requests_total"] for x in backends.values()) == ok
            before = bs[0].requests
            more, failed, _ = await _load(port, 1.0, 4, close=True)
            assert failed == 0 and more > 20
            assert bs[0].requests == before


async def test_workers_that_cannot_start_fail_the_start(tmp_path: Path) -> None:
    # A sitecustomize that only worker processes trip over (they are started
    # as `python -m lbproxy.workers.child`): the supervisor must give up,
    # say why, leave nothing running and exit non-zero.
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(
        "import sys\n"
        "if 'lbproxy.workers.child' in sys.orig_argv:\n"
        "    raise SystemExit(7)\n"
    )
    port, admin = free_port(), free_port()
    async with aiohttp_backend() as b:
        cfg = tmp_path / "lb.yaml"
        cfg.write_text(_config([b.address], port, admin))
        path = os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH")) if p)
        env = {**os.environ, "PYTHONPATH": path}
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "lbproxy", "--config", str(cfg),
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
        )
        _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 1
    assert re.search(rb"lbproxy: worker \d exited before serving \(exit code \d+\)", err), err
    with contextlib.suppress(OSError):
        _, w = await asyncio.open_connection("127.0.0.1", port)
        w.close()
        raise AssertionError("the listener is still open")


async def test_pool_limit_holds_across_workers(tmp_path: Path) -> None:
    in_flight = peak = 0

    async def handler(request: web.Request) -> web.StreamResponse:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.3)
        in_flight -= 1
        return web.Response(text="ok")

    port, admin = free_port(), free_port()
    extra = "    limits: {max_connections: 2, max_pending: 50, queue_timeout: 10s}"
    async with aiohttp_backend(handler) as b:
        config = _config([b.address], port, admin, extra)
        async with cluster(tmp_path, config, port, admin):

            async def one() -> int:
                async with client_connection(port) as (reader, writer):
                    writer.write(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
                    return (await asyncio.wait_for(read_response(reader), 15))[0]

            tasks = []
            for _ in range(8):
                tasks.append(asyncio.ensure_future(one()))
                await asyncio.sleep(0.01)
            statuses = await asyncio.gather(*tasks)
    assert statuses == [200] * 8
    # Each worker alone would allow 2: with the connections spread over both,
    # up to 4 would reach the backend at once.
    assert peak == 2


async def test_least_connections_counts_every_worker(tmp_path: Path) -> None:
    release = asyncio.Event()
    held: dict[str, int] = {}

    def holding(name: str) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handler(request: web.Request) -> web.StreamResponse:
            held[name] = held.get(name, 0) + 1
            await release.wait()
            return web.Response(text=name)

        return handler

    port, admin = free_port(), free_port()
    async with aiohttp_backend(holding("a")) as a, aiohttp_backend(holding("b")) as b:
        config = _config([a.address, b.address], port, admin).replace(
            "  app:\n", "  app:\n    balance: least_connections\n"
        )
        async with cluster(tmp_path, config, port, admin):
            conns = []
            try:
                for i in range(6):
                    # A new connection each: the kernel spreads them over the
                    # workers; each worker must see what the others hold.
                    r, w = await asyncio.open_connection("127.0.0.1", port)
                    w.write(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
                    conns.append((r, w))
                    loop = asyncio.get_running_loop()
                    deadline = loop.time() + 5
                    while sum(held.values()) < i + 1:
                        assert loop.time() < deadline, held
                        await asyncio.sleep(0.01)
                    await asyncio.sleep(0.1)  # more than the workers' sync interval
                assert held == {"a": 3, "b": 3}
            finally:
                release.set()
                for _, w in conns:
                    w.close()


async def test_open_breakers_survive_a_reload(tmp_path: Path) -> None:
    port, admin = free_port(), free_port()
    dead = f"127.0.0.1:{free_port()}"  # nothing listens: every try fails to connect
    extra = (
        "    circuit_breaker: {failure_rate: 50%, minimum_requests: 3, window: 10s,"
        " open_duration: 60s, half_open_requests: 1}"
    )
    async with aiohttp_backend() as good:
        config = _config([good.address, dead], port, admin, extra)
        async with cluster(tmp_path, config, port, admin) as c:

            async def breaker() -> str:
                async with aiohttp.ClientSession() as s:
                    async with s.get(f"http://127.0.0.1:{admin}/api/status") as r:
                        status = await r.json()
                (b,) = [x for x in status["pools"]["app"]["backends"] if x["address"] == dead]
                return str(b["breaker"])

            # Connect failures are retried on the good backend: clients see
            # only 200s, and every worker's breaker for the dead one opens.
            ok, failed, errors = await _load(port, 1.5, 4, close=True)
            assert failed == 0 and ok > 20, errors[:3]
            assert await breaker() == "open"
            c.proc.send_signal(signal.SIGHUP)
            await c.wait_log(r"config reloaded from .*: 2 new workers serving")
            await c.wait_log(r"worker \d \(pid \d+\) exited \(exit code 0\)", count=2)
            # Only the new workers answer now: they took the open breakers over.
            assert await breaker() == "open"
            before = good.requests
            ok, failed, _ = await _load(port, 0.5, 2, close=True)
            assert failed == 0 and good.requests - before == ok


async def test_tls_sessions_resume_on_every_worker(tmp_path: Path) -> None:
    """The workers share one session-ticket key: a client's session resumes
    whichever worker its next connection reaches (SO_REUSEPORT spreads them)."""
    ca = trustme.CA()
    leaf = ca.issue_cert("site.test")
    leaf.cert_chain_pems[0].write_to_path(str(tmp_path / "site.pem"))
    leaf.private_key_pem.write_to_path(str(tmp_path / "site.key"))
    port, admin = free_port(), free_port()
    pair = f'{{cert: "{tmp_path}/site.pem", key: "{tmp_path}/site.key"}}'
    tls = f"    tls: {{certificates: [{pair}]}}\n"
    async with named_backends(1) as bs:
        config = _config([b.address for b in bs], port, admin).replace(
            f'    bind: "127.0.0.1:{port}"\n', f'    bind: "127.0.0.1:{port}"\n{tls}'
        )
        async with cluster(tmp_path, config, port, admin, scheme="https") as c:
            ctx = ssl.create_default_context()
            ca.configure_trust(ctx)
            for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
                ctx.maximum_version = version
                reused, workers = await asyncio.to_thread(
                    _resuming_client, ctx, port, c.worker_pids(), 24
                )
                assert len(workers) == 2  # both workers served some of them
                assert reused[0] is False and all(reused[1:]), (version, reused)


def _resuming_client(
    ctx: ssl.SSLContext, port: int, pids: list[int], n: int
) -> tuple[list[bool], set[int]]:
    """``n`` HTTPS requests, each on a new connection offering the previous
    one's session: whether each resumed, and which workers served them."""
    session = None
    reused: list[bool] = []
    workers: set[int] = set()
    for _ in range(n):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            with ctx.wrap_socket(raw, server_hostname="site.test", session=session) as tls:
                tls.sendall(b"GET / HTTP/1.1\r\nHost: site.test\r\n\r\n")
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = tls.recv(4096)
                    assert chunk, "closed before the response"
                    data += chunk
                counts = _established_by_pid(pids, port)
                workers |= {pid for pid, k in counts.items() if k}
                reused.append(tls.session_reused)
                session = tls.session
    return reused, workers
