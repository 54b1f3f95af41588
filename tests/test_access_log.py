"""Access log lines, JSON and combined, written to a file by a real proxy."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from tests.support import aiohttp_backend, read_response, running_proxy, simple_config


def _config(backend: str, fmt: str, path: Path) -> str:
    return simple_config(backend).replace(
        'access_log: {format: "off"}', f'access_log: {{format: {fmt}, path: "{path}"}}'
    )


async def _requests(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        b'GET /a?x=1 HTTP/1.1\r\nHost: site.test\r\nUser-Agent: probe "1"\r\n'
        b"Referer: http://ref.test/\r\n\r\n"
    )
    assert (await read_response(reader))[0] == 200
    writer.write(b"GET /b HTTP/1.1\r\nHost: site.test\r\nTransfer-Encoding: gzip\r\n\r\n")
    assert (await read_response(reader))[0] == 400
    writer.close()


async def _lines(path: Path, n: int) -> list[str]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5
    while True:
        lines = path.read_text().splitlines() if path.exists() else []
        if len(lines) >= n or loop.time() > deadline:
            return lines
        await asyncio.sleep(0.05)


async def test_json_access_log(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    async with aiohttp_backend() as b:
        async with running_proxy(_config(b.address, "json", log)) as (_, port):
            await _requests(port)
            lines = await _lines(log, 2)
    ok, bad = (json.loads(line) for line in lines)
    assert ok["status"] == 200 and ok["method"] == "GET" and ok["path"] == "/a?x=1"
    assert ok["host"] == "site.test" and ok["backend"] == b.address and ok["pool"] == "web"
    assert ok["user_agent"] == 'probe "1"' and ok["referer"] == "http://ref.test/"
    assert ok["bytes"] > 0 and ok["duration_ms"] >= 0 and "reason" not in ok
    assert ok["bytes_in"] == 0  # a GET: no request body
    # A fresh upstream connection: its connect time, and the backend's answer time.
    assert 0 <= ok["connect_ms"] <= ok["duration_ms"]
    assert 0 <= ok["response_ms"] <= ok["duration_ms"]
    assert "connect_ms" not in bad and "response_ms" not in bad
    assert bad["status"] == 400 and bad["reason"] == "unsupported Transfer-Encoding"


async def test_combined_access_log(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    async with aiohttp_backend() as b:
        async with running_proxy(_config(b.address, "combined", log)) as (_, port):
            await _requests(port)
            lines = await _lines(log, 2)
    assert lines[0].startswith("127.0.0.1 - - [")
    assert '"GET /a?x=1 HTTP/1.1" 200 ' in lines[0]
    assert '"http://ref.test/" "probe \\"1\\""' in lines[0]
    assert lines[1].endswith("unsupported_Transfer-Encoding")
