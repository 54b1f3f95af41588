"""The pure-Python twins serve real traffic end to end.

In-process tests use whatever ``lbproxy._fast.load`` chose at import (the
compiled modules in CI); this runs the proxy as a separate process with
``LBPROXY_NO_EXTENSIONS=1`` so the data path runs on the twins.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import aiohttp

from tests.support import lbproxy_process, named_backends, read_response

CONFIG = """
listeners:
  - name: t
    bind: "127.0.0.1:{port}"
    routes: [{match: {path_prefix: /}, pool: p}]
pools:
  p:
    balance: weighted_round_robin
    backends:
BACKENDS
access_log: {format: "off"}
"""


async def test_proxy_on_pure_twins(tmp_path: Path) -> None:
    env = dict(os.environ, LBPROXY_NO_EXTENSIONS="1")
    async with named_backends(3) as bs:
        weights = zip(bs, (5, 1, 1), strict=True)
        lines = "\n".join(f'      - {{address: "{b.address}", weight: {w}}}' for b, w in weights)
        async with lbproxy_process(CONFIG.replace("BACKENDS", lines), tmp_path, env) as lp:
            base = f"http://127.0.0.1:{lp.port}"
            async with aiohttp.ClientSession() as s:
                names = []
                for _ in range(7):
                    async with s.get(base + "/") as r:
                        names.append(r.headers["X-Backend"])
                async with s.post(base + "/up", data=b"x" * 100000, chunked=True) as r:
                    assert r.status == 200
                    assert (await r.text()).endswith(" 100000")
            # Strict framing is the scanner twin's job too.
            reader, writer = await asyncio.open_connection("127.0.0.1", lp.port)
            writer.write(
                b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
            )
            status, _, _ = await read_response(reader)
            writer.close()
    assert status == 400
    # The readiness probe only connected; weights 5,1,1 interleave smoothly.
    assert names == ["b0", "b0", "b1", "b0", "b2", "b0", "b0"]
    log = lp.stderr()
    assert "headers pure" in log and "balance pure" in log and "datapath pure" in log, log
    assert lp.returncode == 0
