"""Cookies and route-target state with ``workers: 2``: a real supervisor and
worker processes (the CLI), real backends in this process, and batches of
simultaneous client connections, which the kernel spreads over both workers
(each batch checks that both workers held some of its connections)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp

from tests.support import (
    BackendServer,
    free_port,
    lbproxy_process,
    named_backends,
    read_response,
)

TOKEN = "worker-targets-token"
BATCH = 24  # connections held at once: both workers get some (p(all on one) ~ 1e-7)


def _config(bs: list[BackendServer], admin: int, csv: Path) -> str:
    """``{port}`` is left for lbproxy_process to fill in."""
    def one(i: int) -> str:
        return f'{{address: "{bs[i].address}"}}'

    return f"""
listeners:
  - name: web
    bind: "127.0.0.1:{{port}}"
    routes:
      - match: {{path_prefix: /split}}
        split: [{{pool: p0, weight: 1}}, {{pool: p1, weight: 1}}]
      - match: {{path_prefix: /shard}}
        shard: {{key: "header:X-Tenant", strategy: directory, directory: "{csv}"}}
      - match: {{path_prefix: /}}
        pool: app
pools:
  p0: {{backends: [{one(0)}]}}
  p1: {{backends: [{one(1)}]}}
  app:
    sticky: {{cookie: srv, secure: false}}
    backends: [{one(2)}, {one(3)}, {one(4)}]
workers: 2
shutdown_timeout: 3s
access_log: {{format: "off"}}
admin: {{bind: "127.0.0.1:{admin}"}}
"""


class Running:
    def __init__(self, proc: subprocess.Popen[bytes], port: int, admin: int, log: Path) -> None:
        self.proc = proc
        self.port = port
        self.admin = admin
        self.log = log

    def worker_pids(self) -> list[int]:
        path = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        return [int(p) for p in path.read_text().split()]

    def established_by_pid(self) -> dict[int, int]:
        """Per worker, its established TCP sockets on the listener's port."""
        inodes = set()
        for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "01" and int(fields[1].split(":")[1], 16) == self.port:
                inodes.add(fields[9])
        counts = {}
        for pid in self.worker_pids():
            n = 0
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                with contextlib.suppress(OSError):
                    m = re.fullmatch(r"socket:\[(\d+)\]", os.readlink(fd))
                    if m and m[1] in inodes:
                        n += 1
            counts[pid] = n
        return counts

    async def batch(
        self, path: str, headers: dict[str, str] | None = None
    ) -> tuple[list[tuple[int, dict[str, str]]], dict[int, int]]:
        """``BATCH`` requests, each on its own new connection, all held open
        until every answer is in: (status, headers) each, and how many of the
        connections each worker held."""
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        request = f"GET {path} HTTP/1.1\r\nHost: t\r\n{extra}\r\n".encode()
        writers: list[asyncio.StreamWriter] = []
        try:
            streams = [await asyncio.open_connection("127.0.0.1", self.port) for _ in range(BATCH)]
            writers = [w for _, w in streams]
            for _, w in streams:
                w.write(request)

            async def answer(r: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
                status, hdrs, _ = await asyncio.wait_for(read_response(r), 5)
                return status, hdrs

            answers = [await answer(r) for r, _ in streams]
            spread = self.established_by_pid()
            return answers, spread
        finally:
            for w in writers:
                w.close()

    async def admin_call(self, method: str, path: str, body: object = None) -> tuple[int, object]:
        async with aiohttp.ClientSession() as s:
            async with s.request(
                method,
                f"http://127.0.0.1:{self.admin}{path}",
                json=body,
                headers={"Authorization": f"Bearer {TOKEN}"},
                timeout=aiohttp.ClientTimeout(total=10),
            ) as r:
                return r.status, await r.json()


@contextlib.asynccontextmanager
async def running(tmp_path: Path) -> AsyncIterator[tuple[Running, list[BackendServer], Path]]:
    admin = free_port()
    csv = tmp_path / "shards.csv"
    csv.write_text("acme,p0\nglobex,p1\n")
    env = {**os.environ, "LBPROXY_ADMIN_TOKEN": TOKEN}
    async with (
        named_backends(5) as bs,
        lbproxy_process(_config(bs, admin, csv), tmp_path, env=env) as lp,
    ):
        # The port accepts as soon as the supervisor holds it; the log line
        # comes once workers serve, and both must before a batch counts on it.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 20
        while not re.search(r"listening on http://127\.0\.0\.1", lp.stderr()):
            assert lp.returncode is None, f"lbproxy exited:\n{lp.stderr()}"
            assert loop.time() < deadline, f"lbproxy did not start:\n{lp.stderr()}"
            await asyncio.sleep(0.05)
        r = Running(lp.proc, lp.port, admin, lp.log)
        for _ in range(100):
            if len(r.worker_pids()) == 2:
                break
            await asyncio.sleep(0.05)
        yield r, bs, csv


def _both_workers(spread: dict[int, int]) -> None:
    assert len(spread) == 2 and all(n > 0 for n in spread.values()), spread
    assert sum(spread.values()) == BATCH, spread


def _cookie(headers: dict[str, str], name: str) -> str | None:
    line = headers.get("set-cookie", "")
    k, _, rest = line.partition("=")
    return rest.split(";", 1)[0] if k.strip() == name else None


async def test_sticky_sessions_stick_across_workers(tmp_path: Path) -> None:
    async with running(tmp_path) as (lb, _, _):
        # Without a cookie, requests are balanced over the pool's backends.
        answers, spread = await lb.batch("/")
        _both_workers(spread)
        assert {h["x-backend"] for _, h in answers} == {"b2", "b3", "b4"}
        cookies = {h["x-backend"]: _cookie(h, "srv") for _, h in answers}
        assert all(cookies.values()), answers
        # Each client, on new connections that land on both workers, stays on
        # its backend: the workers sign and check cookies with one key.
        for backend, value in cookies.items():
            answers, spread = await lb.batch("/", {"Cookie": f"srv={value}"})
            _both_workers(spread)
            assert [(s, h["x-backend"]) for s, h in answers] == [(200, backend)] * BATCH


async def test_split_weights_set_through_the_admin_api_reach_every_worker(tmp_path: Path) -> None:
    async with running(tmp_path) as (lb, _, _csv):
        answers, _ = await lb.batch("/split")
        assert {h["x-backend"] for _, h in answers} == {"b0", "b1"}

        code, body = await lb.admin_call(
            "PUT", "/api/listeners/web/routes/0/split", {"weights": {"p0": 0}}
        )
        assert code == 200, body
        # The change is sent to the workers: allow it a moment to arrive.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 2
        while True:
            answers, spread = await lb.batch("/split")
            _both_workers(spread)
            seen = [h["x-backend"] for _, h in answers]
            if seen == ["b1"] * BATCH:
                break
            assert loop.time() < deadline, f"a worker kept the old weights: {seen}"
            await asyncio.sleep(0.1)


async def test_shard_directory_edits_reach_every_worker(tmp_path: Path) -> None:
    async with running(tmp_path) as (lb, _, csv):
        answers, _ = await lb.batch("/shard", {"X-Tenant": "acme"})
        assert [h["x-backend"] for _, h in answers] == ["b0"] * BATCH
        # A directory edit through the admin API: written to the file, which
        # every worker reloads within its poll.
        code, body = await lb.admin_call(
            "PUT", "/api/listeners/web/routes/1/shards/acme", {"pool": "p1"}
        )
        assert code == 200, body
        assert "acme,p1" in csv.read_text()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 4
        while True:
            answers, spread = await lb.batch("/shard", {"X-Tenant": "acme"})
            _both_workers(spread)
            seen = [h.get("x-backend", str(s)) for s, h in answers]
            if seen == ["b1"] * BATCH:
                break
            assert loop.time() < deadline, seen
            await asyncio.sleep(0.1)
        code, body = await lb.admin_call("GET", "/api/listeners/web/routes/1/shards")
        assert (code, body) == (
            200,
            {"listener": "web", "route": 1, "shards": {"acme": "p1", "globex": "p1"}},
        )
