"""The admin API end to end: a real Proxy in front of real backends, an
AdminServer on 127.0.0.1:0, and an aiohttp client speaking to both."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import textwrap
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

import lbproxy
from lbproxy.admin import AdminServer
from lbproxy.config import Address, ConfigError, parse_config
from lbproxy.config.model import Admin
from tests.support import BackendServer, named_backends, running_proxy

TOKEN = "s3cret-token"
ENV = "LBPROXY_TEST_ADMIN_TOKEN"
AUTH = {"Authorization": f"Bearer {TOKEN}"}

CONFIG = """
listeners:
  - name: test
    bind: "127.0.0.1:0"
    routes:
      - match: {{path_prefix: /}}
        pool: web
pools:
  web:
    balance: {balance}
    backends:
{backends}
"""


def config_text(addresses: list[str], balance: str = "round_robin") -> str:
    lines = "\n".join(f'      - {{address: "{a}"}}' for a in addresses)
    return CONFIG.format(balance=balance, backends=lines)


@dataclass
class Env:
    proxy: lbproxy.Proxy
    proxy_port: int
    admin: AdminServer
    backends: list[BackendServer]
    http: aiohttp.ClientSession

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.admin.bound_port()}"

    def addr(self, i: int) -> str:
        return self.backends[i].address

    async def call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any, aiohttp.ClientResponse]:
        async with self.http.request(
            method, self.base + path, json=json, data=data, headers=headers
        ) as resp:
            if resp.content_type == "application/json":
                body: Any = await resp.json()
            else:
                body = await resp.text()
            return resp.status, body, resp

    async def status(self) -> dict[str, Any]:
        code, body, _ = await self.call("GET", "/api/status")
        assert code == 200
        result: dict[str, Any] = body
        return result

    async def backend(self, address: str) -> dict[str, Any]:
        for entry in (await self.status())["pools"]["web"]["backends"]:
            if entry["address"] == address:
                found: dict[str, Any] = entry
                return found
        raise AssertionError(f"{address} not in status")

    async def traffic(self, n: int) -> list[int]:
        """Send ``n`` requests through the proxy; how many each backend got."""
        before = [b.requests for b in self.backends]
        for _ in range(n):
            async with self.http.get(f"http://127.0.0.1:{self.proxy_port}/x") as resp:
                assert resp.status == 200
                await resp.read()
        return [b.requests - was for b, was in zip(self.backends, before, strict=True)]


@contextlib.asynccontextmanager
async def admin_env(
    monkeypatch: pytest.MonkeyPatch,
    *,
    token: str | None = TOKEN,
    n: int = 2,
    balance: str = "round_robin",
) -> AsyncIterator[Env]:
    if token is None:
        monkeypatch.delenv(ENV, raising=False)
    else:
        monkeypatch.setenv(ENV, token)
    async with named_backends(n) as backends:
        text = config_text([b.address for b in backends], balance)
        async with running_proxy(text) as (proxy, port):
            admin = AdminServer(proxy, Admin(Address("127.0.0.1", 0), ENV))
            await admin.start()
            try:
                async with aiohttp.ClientSession() as http:
                    yield Env(proxy, port, admin, backends, http)
            finally:
                await admin.stop()


# --- reads ---------------------------------------------------------------------------


async def test_status_json_shape(monkeypatch: pytest.MonkeyPatch) -> None:
    async with admin_env(monkeypatch) as env:
        code, body, resp = await env.call("GET", "/api/status")
        assert code == 200
        assert resp.content_type == "application/json"
        assert body == env.proxy.status()
        assert [lst["name"] for lst in body["listeners"]] == ["test"]
        assert list(body["pools"]) == ["web"]
        backends = body["pools"]["web"]["backends"]
        assert [b["address"] for b in backends] == [env.addr(0), env.addr(1)]
        for entry in backends:
            assert {
                "address",
                "weight",
                "state",
                "breaker",
                "active_connections",
                "requests_total",
                "failures_total",
            } <= set(entry)
            assert entry["state"] == "healthy"
            assert entry["breaker"] == "closed"
            assert entry["weight"] == 1


async def test_admin_port_is_not_the_proxy_port(monkeypatch: pytest.MonkeyPatch) -> None:
    async with admin_env(monkeypatch) as env:
        assert env.admin.bound_port() not in (0, env.proxy_port)
        # The proxy's port does not answer admin calls, and the admin's does not proxy.
        async with env.http.get(f"http://127.0.0.1:{env.proxy_port}/api/status") as resp:
            assert resp.headers.get("X-Backend") in ("b0", "b1")


async def test_index_page_links_status_and_metrics(monkeypatch: pytest.MonkeyPatch) -> None:
    async with admin_env(monkeypatch) as env:
        code, body, resp = await env.call("GET", "/")
        assert code == 200
        assert resp.content_type == "text/html"
        assert "<title>lbproxy dashboard</title>" in body  # tests/admin/test_dashboard.py
        assert 'href="/api/status"' in body and 'href="/metrics"' in body


async def test_metrics_are_served_in_prometheus_text(monkeypatch: pytest.MonkeyPatch) -> None:
    async with admin_env(monkeypatch) as env:
        async with env.http.get(env.base + "/metrics") as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"] == "text/plain; version=0.0.4"
            text = await resp.text()
    names = {f.name for f in text_string_to_metric_families(text)}
    assert {"lbproxy_requests", "lbproxy_backend_up", "lbproxy_config_reloads"} <= names


async def test_reads_need_no_token(monkeypatch: pytest.MonkeyPatch) -> None:
    async with admin_env(monkeypatch, token=None) as env:
        assert (await env.call("GET", "/api/status"))[0] == 200
        assert (await env.call("GET", "/"))[0] == 200


# --- authorization -------------------------------------------------------------------

# (method, path, json body); "{b0}" is the first backend's address.
MUTATING = [
    ("POST", "/api/pools/web/backends", {"address": "127.0.0.1:1", "weight": 1}),
    ("DELETE", "/api/pools/web/backends/{b0}", None),
    ("POST", "/api/pools/web/backends/{b0}/drain", None),
    ("POST", "/api/pools/web/backends/{b0}/enable", None),
    ("POST", "/api/pools/web/backends/{b0}/disable", None),
    ("PUT", "/api/pools/web/backends/{b0}/weight", {"weight": 2}),
    ("POST", "/api/reload", None),
]
IDS = ["add", "remove", "drain", "enable", "disable", "weight", "reload"]


@pytest.mark.parametrize(("method", "path", "body"), MUTATING, ids=IDS)
async def test_mutating_calls_without_token_get_401(
    monkeypatch: pytest.MonkeyPatch, method: str, path: str, body: Any
) -> None:
    async with admin_env(monkeypatch) as env:
        before = await env.status()
        url = path.replace("{b0}", env.addr(0))
        for headers in ({}, {"Authorization": f"Basic {TOKEN}"}, {"Authorization": "Bearer "}):
            code, answer, resp = await env.call(method, url, json=body, headers=headers)
            assert code == 401, answer
            assert answer["status"] == 401
            assert "Bearer" in answer["error"]
            assert resp.headers["WWW-Authenticate"].startswith("Bearer")
        assert await env.status() == before


@pytest.mark.parametrize(("method", "path", "body"), MUTATING, ids=IDS)
async def test_mutating_calls_with_wrong_token_get_403(
    monkeypatch: pytest.MonkeyPatch, method: str, path: str, body: Any
) -> None:
    async with admin_env(monkeypatch) as env:
        before = await env.status()
        url = path.replace("{b0}", env.addr(0))
        for wrong in ("nope", TOKEN + "x", TOKEN[:-1]):
            headers = {"Authorization": f"Bearer {wrong}"}
            code, answer, _ = await env.call(method, url, json=body, headers=headers)
            assert (code, answer) == (403, {"error": "wrong token", "status": 403})
        assert await env.status() == before


@pytest.mark.parametrize(("method", "path", "body"), MUTATING, ids=IDS)
@pytest.mark.parametrize("token", [None, ""], ids=["unset", "empty"])
async def test_read_only_without_token_variable(
    monkeypatch: pytest.MonkeyPatch, method: str, path: str, body: Any, token: str | None
) -> None:
    async with admin_env(monkeypatch, token=token) as env:
        before = await env.status()
        url = path.replace("{b0}", env.addr(0))
        code, answer, _ = await env.call(method, url, json=body, headers=AUTH)
        assert code == 403
        assert answer["status"] == 403
        assert f"read-only because {ENV} is not set" in answer["error"]
        assert await env.status() == before


async def test_token_is_read_when_the_server_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    async with admin_env(monkeypatch) as env:
        monkeypatch.setenv(ENV, "changed-later")
        url = f"/api/pools/web/backends/{env.addr(0)}/disable"
        assert (await env.call("POST", url, headers=AUTH))[0] == 200
        wrong = {"Authorization": "Bearer changed-later"}
        assert (await env.call("POST", url, headers=wrong))[0] == 403


# --- changes with the right token ----------------------------------------------------


async def test_drain_stops_new_requests_and_enable_restores(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async with admin_env(monkeypatch) as env:
        assert await env.traffic(10) == [5, 5]
        b0 = env.addr(0)
        with caplog.at_level(logging.WARNING, logger="lbproxy"):
            code, body, _ = await env.call(
                "POST", f"/api/pools/web/backends/{b0}/drain", headers=AUTH
            )
        assert code == 200, body
        assert body["address"] == b0
        assert body["state"] in ("draining", "disabled")
        assert f"admin 127.0.0.1: drain web/{b0}" in caplog.messages
        assert (await env.backend(b0))["state"] in ("draining", "disabled")
        assert await env.traffic(10) == [0, 10]

        code, body, _ = await env.call("POST", f"/api/pools/web/backends/{b0}/enable", headers=AUTH)
        assert code == 200, body
        assert body["state"] == "healthy"
        assert sum(await env.traffic(10)) == 10
        assert env.backends[0].requests > 5


async def test_disable(monkeypatch: pytest.MonkeyPatch) -> None:
    async with admin_env(monkeypatch) as env:
        b1 = env.addr(1)
        code, body, _ = await env.call(
            "POST", f"/api/pools/web/backends/{b1}/disable", headers=AUTH
        )
        assert code == 200, body
        assert body["state"] == "disabled"
        assert (await env.backend(b1))["state"] == "disabled"
        assert await env.traffic(6) == [6, 0]


async def test_url_encoded_address(monkeypatch: pytest.MonkeyPatch) -> None:
    async with admin_env(monkeypatch) as env:
        encoded = env.addr(1).replace(":", "%3A")
        async with env.http.post(
            f"{env.base}/api/pools/web/backends/{encoded}/disable", headers=AUTH
        ) as resp:
            assert resp.status == 200
            assert (await resp.json())["address"] == env.addr(1)


async def test_weight_change_shifts_shares(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async with admin_env(monkeypatch, balance="weighted_round_robin") as env:
        assert await env.traffic(10) == [5, 5]
        b0 = env.addr(0)
        with caplog.at_level(logging.WARNING, logger="lbproxy"):
            code, body, _ = await env.call(
                "PUT", f"/api/pools/web/backends/{b0}/weight", json={"weight": 3}, headers=AUTH
            )
        assert code == 200, body
        assert body["address"] == b0 and body["weight"] == 3
        assert f"admin 127.0.0.1: weight web/{b0} = 3" in caplog.messages
        assert (await env.backend(b0))["weight"] == 3
        shares = await env.traffic(40)
        assert 28 <= shares[0] <= 32, shares

        code, _, _ = await env.call(
            "PUT", f"/api/pools/web/backends/{b0}/weight", json={"weight": 0}, headers=AUTH
        )
        assert code == 200
        assert await env.traffic(8) == [0, 8]


async def test_add_backend_gets_traffic_and_duplicate_is_409(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async with admin_env(monkeypatch, n=3) as env:
        b2 = env.addr(2)
        # Start with two backends in the pool: take the third out of the config.
        code, _, _ = await env.call("DELETE", f"/api/pools/web/backends/{b2}", headers=AUTH)
        assert code == 202
        await wait_for(lambda: gone(env, b2))
        assert (await env.traffic(6))[2] == 0

        with caplog.at_level(logging.WARNING, logger="lbproxy"):
            code, body, _ = await env.call(
                "POST",
                "/api/pools/web/backends",
                json={"address": b2, "weight": 2},
                headers=AUTH,
            )
        assert code == 201, body
        assert b2 in [b["address"] for b in body["backends"]]
        assert f"admin 127.0.0.1: add web/{b2} weight 2" in caplog.messages
        assert (await env.backend(b2))["weight"] == 2
        assert (await env.traffic(12))[2] > 0

        code, body, _ = await env.call(
            "POST", "/api/pools/web/backends", json={"address": b2}, headers=AUTH
        )
        assert code == 409, body
        assert body["status"] == 409 and b2 in body["error"]


async def test_add_backend_weight_defaults_to_1(monkeypatch: pytest.MonkeyPatch) -> None:
    async with admin_env(monkeypatch) as env:
        code, body, _ = await env.call(
            "POST", "/api/pools/web/backends", json={"address": "127.0.0.1:1"}, headers=AUTH
        )
        assert code == 201, body
        assert (await env.backend("127.0.0.1:1"))["weight"] == 1


async def test_remove_backend_drains_then_removes(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async with admin_env(monkeypatch) as env:
        b0 = env.addr(0)
        with caplog.at_level(logging.WARNING, logger="lbproxy"):
            code, body, _ = await env.call("DELETE", f"/api/pools/web/backends/{b0}", headers=AUTH)
        assert code == 202, body
        assert body["pool"] == "web" and body["address"] == b0
        assert any(m.startswith(f"admin 127.0.0.1: remove web/{b0}") for m in caplog.messages)
        await wait_for(lambda: gone(env, b0))
        assert await env.traffic(6) == [0, 6]
        # The pool's last backend cannot go.
        code, body, _ = await env.call(
            "DELETE", f"/api/pools/web/backends/{env.addr(1)}", headers=AUTH
        )
        assert code == 409, body
        assert body["status"] == 409
        # The removed one is unknown now.
        code, body, _ = await env.call("POST", f"/api/pools/web/backends/{b0}/enable", headers=AUTH)
        assert code == 404, body


async def gone(env: Env, address: str) -> bool:
    backends = (await env.status())["pools"]["web"]["backends"]
    return address not in [b["address"] for b in backends]


async def wait_for(check: Any, timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.02)


# --- bad inputs ----------------------------------------------------------------------


async def expect(
    env: Env, code: int, method: str, path: str, json: Any = None, data: bytes | None = None
) -> str:
    got, body, resp = await env.call(method, path, json=json, data=data, headers=AUTH)
    assert got == code, body
    assert resp.content_type == "application/json"
    assert set(body) >= {"error", "status"} and body["status"] == code
    message: str = body["error"]
    return message


async def test_unknown_pool_is_404(monkeypatch: pytest.MonkeyPatch) -> None:
    async with admin_env(monkeypatch) as env:
        b0 = env.addr(0)
        for method, path, body in [
            ("POST", "/api/pools/nope/backends", {"address": "127.0.0.1:1"}),
            ("DELETE", f"/api/pools/nope/backends/{b0}", None),
            ("POST", f"/api/pools/nope/backends/{b0}/drain", None),
            ("POST", f"/api/pools/nope/backends/{b0}/enable", None),
            ("POST", f"/api/pools/nope/backends/{b0}/disable", None),
            ("PUT", f"/api/pools/nope/backends/{b0}/weight", {"weight": 1}),
        ]:
            assert "nope" in await expect(env, 404, method, path, json=body)


async def test_unknown_backend_is_404(monkeypatch: pytest.MonkeyPatch) -> None:
    async with admin_env(monkeypatch) as env:
        ghost = "127.0.0.1:1"
        for method, path, body in [
            ("DELETE", f"/api/pools/web/backends/{ghost}", None),
            ("POST", f"/api/pools/web/backends/{ghost}/drain", None),
            ("POST", f"/api/pools/web/backends/{ghost}/enable", None),
            ("POST", f"/api/pools/web/backends/{ghost}/disable", None),
            ("PUT", f"/api/pools/web/backends/{ghost}/weight", {"weight": 1}),
        ]:
            assert ghost in await expect(env, 404, method, path, json=body)


async def test_unknown_action_and_endpoints_are_json_404_405(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with admin_env(monkeypatch) as env:
        b0 = env.addr(0)
        assert "frobnicate" in await expect(
            env, 404, "POST", f"/api/pools/web/backends/{b0}/frobnicate"
        )
        assert "/api/nothing" in await expect(env, 404, "GET", "/api/nothing")
        await expect(env, 405, "GET", "/api/reload")
        await expect(env, 405, "PATCH", f"/api/pools/web/backends/{b0}/weight")


@pytest.mark.parametrize("address", ["localhost", "127.0.0.1:99999", "a b:80", "127.0.0.1:0"])
async def test_bad_address_is_422(monkeypatch: pytest.MonkeyPatch, address: str) -> None:
    async with admin_env(monkeypatch) as env:
        before = await env.status()
        message = await expect(
            env, 422, "POST", "/api/pools/web/backends", json={"address": address}
        )
        assert "address" in message
        encoded = quote(address, safe="")
        await expect(env, 422, "POST", f"/api/pools/web/backends/{encoded}/drain")
        await expect(env, 422, "PUT", f"/api/pools/web/backends/{encoded}/weight", {"weight": 1})
        assert await env.status() == before


@pytest.mark.parametrize("weight", [1001, -1, "x", "2", 1.5, True, None, [1]])
async def test_bad_weight_is_422(monkeypatch: pytest.MonkeyPatch, weight: Any) -> None:
    async with admin_env(monkeypatch) as env:
        before = await env.status()
        b0 = env.addr(0)
        message = await expect(
            env, 422, "PUT", f"/api/pools/web/backends/{b0}/weight", {"weight": weight}
        )
        assert "weight must be an integer from 0 to 1000" in message
        body = {"address": "127.0.0.1:1", "weight": weight}
        assert "weight" in await expect(env, 422, "POST", "/api/pools/web/backends", body)
        assert await env.status() == before


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        (b"{not json", "not valid JSON"),
        (b"", "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b'"weight"', "must be a JSON object"),
        (b"{}", "missing 'weight'"),
        (b'{"weight": 2, "extra": 1}', "unknown field 'extra'"),
    ],
)
async def test_bad_json_body_is_422(
    monkeypatch: pytest.MonkeyPatch, data: bytes, needle: str
) -> None:
    async with admin_env(monkeypatch) as env:
        b0 = env.addr(0)
        path = f"/api/pools/web/backends/{b0}/weight"
        assert needle in await expect(env, 422, "PUT", path, data=data)


async def test_add_without_address_is_422(monkeypatch: pytest.MonkeyPatch) -> None:
    async with admin_env(monkeypatch) as env:
        message = await expect(env, 422, "POST", "/api/pools/web/backends", {"weight": 1})
        assert "missing 'address'" in message
        message = await expect(env, 422, "POST", "/api/pools/web/backends", {"address": 9001})
        assert "address" in message


async def test_huge_body_is_json_413(monkeypatch: pytest.MonkeyPatch) -> None:
    async with admin_env(monkeypatch) as env:
        b0 = env.addr(0)
        data = b'{"weight": 1, "pad": "' + b"x" * 100_000 + b'"}'
        await expect(env, 413, "PUT", f"/api/pools/web/backends/{b0}/weight", data=data)


# --- reload ---------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def file_env(monkeypatch: pytest.MonkeyPatch, path: Path, n: int = 2) -> AsyncIterator[Env]:
    monkeypatch.setenv(ENV, TOKEN)
    async with named_backends(n) as backends:
        path.write_text(config_text([backends[0].address]))
        async with lbproxy.Proxy(lbproxy.load_config(path)) as proxy:
            port = next(iter(proxy.addresses().values()))[1]
            admin = AdminServer(proxy, Admin(Address("127.0.0.1", 0), ENV))
            await admin.start()
            try:
                async with aiohttp.ClientSession() as http:
                    yield Env(proxy, port, admin, backends, http)
            finally:
                await admin.stop()


async def test_reload_reads_the_file_and_drops_api_changes(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "lb.yaml"
    async with file_env(monkeypatch, path) as env:
        assert await env.traffic(4) == [4, 0]
        b0, b1 = env.addr(0), env.addr(1)
        code, _, _ = await env.call(
            "PUT", f"/api/pools/web/backends/{b0}/weight", json={"weight": 7}, headers=AUTH
        )
        assert code == 200
        path.write_text(config_text([b0, b1]))
        with caplog.at_level(logging.WARNING, logger="lbproxy"):
            code, body, _ = await env.call("POST", "/api/reload", headers=AUTH)
        assert (code, body) == (200, {"reloaded": True})
        assert "admin 127.0.0.1: reload" in caplog.messages
        status = await env.status()
        entries = status["pools"]["web"]["backends"]
        assert [(b["address"], b["weight"]) for b in entries] == [(b0, 1), (b1, 1)]
        assert await env.traffic(4) == [2, 2]


async def test_reload_with_a_broken_file_is_422_and_keeps_serving(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = tmp_path / "lb.yaml"
    async with file_env(monkeypatch, path) as env:
        before = await env.status()
        path.write_text(config_text([env.addr(0)]).replace("round_robin", "round_robbin"))
        code, body, _ = await env.call("POST", "/api/reload", headers=AUTH)
        assert code == 422, body
        assert body["status"] == 422
        assert "unchanged" in body["error"]
        assert len(body["errors"]) == 1
        assert body["errors"][0].startswith("pools.web.balance: must be one of")
        assert "(line 10)" in body["errors"][0]
        assert await env.status() == before
        assert await env.traffic(3) == [3, 0]

        path.write_text("listeners: [\n")
        code, body, _ = await env.call("POST", "/api/reload", headers=AUTH)
        assert code == 422 and body["errors"]
        assert await env.traffic(2) == [2, 0]


async def test_reload_of_a_proxy_not_from_a_file_is_422(monkeypatch: pytest.MonkeyPatch) -> None:
    async with admin_env(monkeypatch) as env:
        code, body, _ = await env.call("POST", "/api/reload", headers=AUTH)
        assert code == 422
        assert body["errors"] == ["reload: this proxy was not started from a file"]


# --- the admin address ---------------------------------------------------------------


def test_a_listener_cannot_bind_the_admin_address() -> None:
    text = textwrap.dedent(
        """\
        listeners:
          - name: test
            bind: "127.0.0.1:9901"
            routes:
              - pool: web
        pools:
          web:
            backends:
              - address: "127.0.0.1:9001"
        admin: {bind: "127.0.0.1:9901"}
        """
    )
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    assert info.value.errors == [
        'admin.bind: "127.0.0.1:9901" is already used by listener "test"'
        ' (listeners[0].bind "127.0.0.1:9901"); the admin API needs an address of its own'
        " (line 10)"
    ]


async def test_start_fails_when_the_address_is_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    async with admin_env(monkeypatch) as env:
        taken = Admin(Address("127.0.0.1", env.proxy_port), ENV)
        second = AdminServer(env.proxy, taken)
        with pytest.raises(OSError):
            await second.start()
        await second.stop()
        with pytest.raises(RuntimeError):
            second.bound_port()
