"""The pure-Python twins serve real traffic end to end.

In-process tests use whatever ``lbproxy._fast.load`` chose at import (the
compiled modules in CI); this runs the proxy as a separate process with
``LBPROXY_NO_EXTENSIONS=1`` so the data path runs on the twins.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp

from tests.support import free_port, named_backends, read_response


async def test_proxy_on_pure_twins(tmp_path: Path) -> None:
    async with named_backends(3) as bs:
        port = free_port()
        cfg = tmp_path / "lb.yaml"
        backends = "\n".join(
            f'      - {{address: "{b.address}", weight: {w}}}'
            for b, w in zip(bs, (5, 1, 1), strict=True)
        )
        cfg.write_text(
            f"""
listeners:
  - name: t
    bind: "127.0.0.1:{port}"
    routes: [{{match: {{path_prefix: /}}, pool: p}}]
pools:
  p:
    balance: weighted_round_robin
    backends:
{backends}
access_log: {{format: "off"}}
"""
        )
        env = dict(os.environ, LBPROXY_NO_EXTENSIONS="1")
        proc = subprocess.Popen(
            [sys.executable, "-m", "lbproxy", "--config", str(cfg)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=env,
        )
        try:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 15
            async with aiohttp.ClientSession() as s:
                while True:
                    try:
                        async with s.get(f"http://127.0.0.1:{port}/warm"):
                            break
                    except aiohttp.ClientConnectionError:
                        assert proc.poll() is None, "proxy exited"
                        assert loop.time() < deadline, "proxy did not start"
                        await asyncio.sleep(0.05)
                names = []
                for _ in range(7):
                    async with s.get(f"http://127.0.0.1:{port}/") as r:
                        names.append(r.headers["X-Backend"])
                async with s.post(
                    f"http://127.0.0.1:{port}/up", data=b"x" * 100000, chunked=True
                ) as r:
                    assert r.status == 200
                    assert (await r.text()).endswith(" 100000")
            # Strict framing is the scanner twin's job too.
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(
                b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
            )
            status, _, _ = await read_response(reader)
            writer.close()
            assert status == 400
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            assert proc.stderr is not None
            log = proc.stderr.read().decode()
            proc.stderr.close()
    # The warm-up request took the first weighted slot.
    assert names == ["b0", "b1", "b0", "b2", "b0", "b0", "b0"]
    assert "headers pure" in log and "balance pure" in log, log
    assert proc.returncode == 0
