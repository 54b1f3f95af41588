"""The library API: Proxy as an async context manager, status, weights, reload."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest

import lbproxy
from tests.support import named_backends, simple_config


async def _names(port: int, n: int, path: str = "/") -> list[str]:
    async with aiohttp.ClientSession() as s:
        out = []
        for _ in range(n):
            async with s.get(f"http://127.0.0.1:{port}{path}") as r:
                out.append(r.headers.get("X-Backend", str(r.status)))
        return out


async def test_proxy_context_manager_status_and_set_weight() -> None:
    async with named_backends(2) as bs:
        config = lbproxy.parse_config(
            simple_config(*[b.address for b in bs], balance="weighted_round_robin")
        )
        async with lbproxy.Proxy(config) as proxy:
            (host, port) = proxy.addresses()["test"]
            assert host == "127.0.0.1" and port > 0
            assert await _names(port, 4) == ["b0", "b1", "b0", "b1"]
            proxy.set_weight("web", bs[1].address, 3)
            names = await _names(port, 8)
            assert names.count("b1") == 6 and names.count("b0") == 2
            status = proxy.status()
            backends = status["pools"]["web"]["backends"]
            assert [b["address"] for b in backends] == [b.address for b in bs]
            assert sum(b["requests_total"] for b in backends) == 12
            assert backends[1]["weight"] == 3
            assert backends[1]["effective_weight"] == 3.0
            with pytest.raises(KeyError):
                proxy.set_weight("nope", bs[0].address, 1)
            with pytest.raises(ValueError, match="between 0 and 1000"):
                proxy.set_weight("web", bs[0].address, 1001)
        # Stopped: the port no longer accepts.
        with pytest.raises(OSError):
            await asyncio.open_connection("127.0.0.1", port)


async def test_reload_swaps_routes_and_a_bad_file_keeps_the_old_config(tmp_path: Path) -> None:
    async with named_backends(2) as bs:
        cfg = tmp_path / "lb.yaml"
        cfg.write_text(simple_config(bs[0].address))
        async with lbproxy.Proxy(lbproxy.load_config(cfg)) as proxy:
            port = proxy.addresses()["test"][1]
            reader, writer = await asyncio.open_connection("127.0.0.1", port)  # idle, kept
            assert await _names(port, 2) == ["b0", "b0"]

            cfg.write_text(simple_config(bs[1].address).replace("127.0.0.1:0", f"127.0.0.1:{port}"))
            await proxy.reload()
            assert await _names(port, 2) == ["b1", "b1"]

            cfg.write_text("listeners: [oops")
            with pytest.raises(lbproxy.ConfigError) as err:
                await proxy.reload()
            assert "line" in str(err.value)
            assert await _names(port, 2) == ["b1", "b1"]

            # A connection opened before the reloads is served by the new config.
            writer.write(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            assert b"X-Backend: b1" in head
            writer.close()


async def test_failed_bind_on_reload_changes_nothing(tmp_path: Path) -> None:
    async with named_backends(2) as bs:
        cfg = tmp_path / "lb.yaml"
        cfg.write_text(simple_config(bs[0].address))
        async with lbproxy.Proxy(lbproxy.load_config(cfg)) as proxy:
            port = proxy.addresses()["test"][1]
            # The new config keeps the listener but adds one on a port that is
            # taken (the backend's own): the reload must fail as a whole.
            text = simple_config(bs[1].address).replace("127.0.0.1:0", f"127.0.0.1:{port}")
            text = text.replace(
                "listeners:\n",
                f'listeners:\n  - name: other\n    bind: "{bs[0].address}"\n'
                "    routes: [{match: {path_prefix: /}, pool: web}]\n",
            )
            with pytest.raises(lbproxy.ConfigError) as err:
                await proxy.reload(lbproxy.parse_config(text))
            assert bs[0].address in str(err.value)
            assert await _names(port, 2) == ["b0", "b0"]
            assert list(proxy.addresses()) == ["test"]


async def test_heap_settled_only_when_asked() -> None:
    """An embedding program's heap is left alone; the command line's proxy
    (settle_heap=True) freezes what start-up built, and again after a reload,
    while garbage made later is still collected."""
    import gc

    gc.unfreeze()
    try:
        async with named_backends(1) as bs:
            config = lbproxy.parse_config(simple_config(bs[0].address))
            async with lbproxy.Proxy(config) as proxy:
                assert gc.get_freeze_count() == 0
                assert await _names(proxy.addresses()["test"][1], 1) == ["b0"]
            proxy = lbproxy.Proxy(config, settle_heap=True)
            await proxy.start()
            try:
                frozen = gc.get_freeze_count()
                assert frozen > 10_000  # modules, config, tables: all of start-up
                assert await _names(proxy.addresses()["test"][1], 2) == ["b0", "b0"]

                class Node:
                    other: object = None

                a, b = Node(), Node()
                a.other, b.other = b, a  # a cycle made after start-up
                del a, b
                assert gc.collect() >= 2  # collected: it was not frozen
                await proxy.reload(lbproxy.parse_config(simple_config(bs[0].address)))
                assert gc.get_freeze_count() > 10_000  # frozen again, with the new config
                assert await _names(proxy.addresses()["test"][1], 1) == ["b0"]
            finally:
                await proxy.stop(timeout=2)
    finally:
        gc.unfreeze()
