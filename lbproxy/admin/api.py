"""The admin API: an aiohttp server on ``admin.bind`` (see docs/admin.md).

Reads (``GET``) are open to whoever can reach the address; every mutating call
needs ``Authorization: Bearer <token>``, the token being the value of the
environment variable ``admin.token_env`` names, read once when the server
starts. With that variable unset or empty the API is read-only. Every error is
a JSON object ``{"error": "...", "status": N}``; every change made is logged
at WARNING on the "lbproxy" logger with the client address.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from lbproxy.admin.dashboard import (
    DashboardSampler,
    counters_from_pools,
    dashboard,
    dashboard_page,
    page_headers,
)
from lbproxy.config.addresses import AddressError, parse_address
from lbproxy.config.errors import ConfigError
from lbproxy.config.loader import MAX_CONFIG_WEIGHT
from lbproxy.config.model import Admin

__all__ = ["AdminServer"]

log = logging.getLogger("lbproxy")

_ACTIONS = ("drain", "enable", "disable")
_MAX_BODY = 64 * 1024
_METRICS_TYPE = "text/plain; version=0.0.4"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ApiError(Exception):
    """An error answer: ``{"error": message, "status": status}`` (plus ``extra``)."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}
        self.extra = extra or {}


def _error(
    status: int,
    message: str,
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> web.Response:
    body: dict[str, Any] = {"error": message, "status": status, **(extra or {})}
    return web.json_response(body, status=status, headers=headers)


def _message(exc: BaseException) -> str:
    # str(KeyError("x")) is "'x'": use the argument itself.
    if exc.args and isinstance(exc.args[0], str):
        return exc.args[0]
    return str(exc) or type(exc).__name__


def _client(request: web.Request) -> str:
    return request.remote or "unknown"


@web.middleware
async def _json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error leaves as JSON, aiohttp's own (404, 405, 413) included."""
    try:
        return await handler(request)
    except ApiError as err:
        return _error(err.status, err.message, err.headers, err.extra)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        headers = {k: v for k, v in exc.headers.items() if k.lower() in ("allow",)}
        reason = exc.reason.lower() if exc.reason else "error"
        if exc.status == 404:
            reason = f"no such endpoint: {request.method} {request.path}"
        elif exc.status == 405:
            reason = f"method {request.method} not allowed on {request.path}"
        elif exc.status == 413:
            reason = f"request body too large (limit {_MAX_BODY} bytes)"
        return _error(exc.status, reason, headers)
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("admin %s: %s %s failed", _client(request), request.method, request.path)
        return _error(500, "internal error (see the lbproxy log)")


class AdminServer:
    """Serves the admin API for ``proxy`` on ``admin_cfg.bind``."""

    def __init__(self, proxy: Any, admin_cfg: Admin) -> None:
        self.proxy = proxy
        self.config = admin_cfg
        self._token: bytes | None = None
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self._reload_lock = asyncio.Lock()
        # The dashboard's last minute; reads the pools the proxy has at each sample.
        # With worker processes (lbproxy/workers/cluster.py) the counters are
        # the workers' merged snapshots, which the supervisor keeps fresh.
        counters = getattr(proxy, "dashboard_counters", None)
        self.sampler = DashboardSampler(
            counters or (lambda: counters_from_pools(self.proxy.pools))
        )
        self.app = self._make_app()

    # -- lifecycle --------------------------------------------------------------

    async def start(self) -> None:
        """Read the token from the environment and bind; ``OSError`` if the bind fails."""
        name = self.config.token_env
        token = os.environ.get(name, "") if name else ""
        self._token = token.encode("utf-8") if token else None
        runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await runner.setup()
        bind = self.config.bind
        site = web.TCPSite(runner, bind.host, bind.port, reuse_address=True)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self._site = site
        self.sampler.start()
        mode = (
            "read-write" if self._token is not None else f"read-only ({name or 'no token'} unset)"
        )
        log.info("admin API on http://%s:%d/ (%s)", bind.host, self.bound_port(), mode)

    async def stop(self) -> None:
        await self.sampler.stop()
        runner, self._runner, self._site = self._runner, None, None
        if runner is not None:
            await runner.cleanup()

    def bound_port(self) -> int:
        """The port actually bound (``admin.bind`` may say 0)."""
        site = self._site
        server = site._server if site is not None else None
        sockets = getattr(server, "sockets", None)
        if not sockets:
            raise RuntimeError("the admin server is not running")
        port: int = sockets[0].getsockname()[1]
        return port

    # -- routing ------------------------------------------------------------------

    def _make_app(self) -> web.Application:
        app = web.Application(middlewares=[_json_errors], client_max_size=_MAX_BODY)
        r = app.router
        r.add_get("/", self.index)
        r.add_get("/metrics", self.metrics)
        r.add_get("/api/status", self.status)
        r.add_get("/api/dashboard", self.dashboard)
        r.add_get("/api/explain", self.explain)
        r.add_post("/api/pools/{pool}/backends", self.add_backend)
        r.add_delete("/api/pools/{pool}/backends/{address}", self.remove_backend)
        r.add_put("/api/pools/{pool}/backends/{address}/weight", self.set_weight)
        r.add_post("/api/pools/{pool}/backends/{address}/{action}", self.backend_action)
        r.add_post("/api/reload", self.reload)
        route = "/api/listeners/{listener}/routes/{index}"
        r.add_put(route + "/split", self.set_split)
        r.add_get(route + "/shards", self.shards)
        r.add_put(route + "/shards/{key}", self.set_shard)
        r.add_delete(route + "/shards/{key}", self.delete_shard)
        return app

    # -- reads --------------------------------------------------------------------

    async def index(self, request: web.Request) -> web.StreamResponse:
        """The live dashboard (lbproxy/admin/dashboard.html): one page, no
        outside assets, polling ``/api/dashboard``."""
        return web.Response(
            body=dashboard_page(), content_type="text/html", charset="utf-8", headers=page_headers()
        )

    async def _fresh(self) -> None:
        # Worker processes answer over pipes: fetch their numbers before a read.
        refresh = getattr(self.proxy, "refresh", None)
        if refresh is not None:
            await refresh()

    async def status(self, request: web.Request) -> web.StreamResponse:
        await self._fresh()
        return web.json_response(self.proxy.status())

    async def dashboard(self, request: web.Request) -> web.StreamResponse:
        """``/api/status`` plus the last minute of rates and latencies."""
        # Latencies are observed only while the listeners count for /metrics.
        listeners = self.proxy.listeners.values()
        counted = bool(listeners) and all(lr.metrics for lr in listeners)
        await self._fresh()
        body = dashboard(self.sampler, self.proxy.status(), counted)
        body["read_only"] = self._token is None
        body["token_env"] = self.config.token_env
        return web.json_response(body, headers={"Cache-Control": "no-store"})

    async def explain(self, request: web.Request) -> web.StreamResponse:
        """Where would this request go, and why? Query: ``path`` (required),
        ``host``, ``method`` (GET), ``listener`` (the first), ``client``
        (client address for hash keys), ``header`` (``Name: value``, repeatable)."""
        from lbproxy.explain import explain

        q = request.query
        path = q.get("path")
        if not path or not path.startswith("/"):
            raise ApiError(422, 'give the request path as ?path=/... (it starts with "/")')
        headers: list[tuple[str, str]] = []
        for item in q.getall("header", []):
            name, colon, value = item.partition(":")
            if not colon or not name.strip():
                raise ApiError(422, f"header {item!r} is not 'Name: value'")
            headers.append((name.strip(), value.strip()))
        host = q.get("host", "")
        if host and not any(n.lower() == "host" for n, _ in headers):
            headers.append(("Host", host))
        try:
            answer = explain(
                self.proxy,
                listener=q.get("listener"),
                method=q.get("method", "GET").upper(),
                host=host,
                path=path,
                headers=headers,
                client_ip=q.get("client", "127.0.0.1"),
            )
        except KeyError as err:
            raise ApiError(404, str(err.args[0])) from None
        return web.json_response(answer)

    async def metrics(self, request: web.Request) -> web.StreamResponse:
        await self._fresh()
        text = self.proxy.metrics_text()
        return web.Response(body=text.encode("utf-8"), headers={"Content-Type": _METRICS_TYPE})

    # -- changes ------------------------------------------------------------------

    async def add_backend(self, request: web.Request) -> web.StreamResponse:
        self._authorize(request)
        pool = request.match_info["pool"]
        body = await _json_object(request, required=("address",), optional=("weight",))
        address = _address(body["address"], "address")
        weight = _weight(body.get("weight", 1))
        self._call(self.proxy.add_backend, pool, address, weight)
        self._logged(request, f"add {pool}/{address} weight {weight}")
        return web.json_response(self._pool_status(pool), status=201)

    async def remove_backend(self, request: web.Request) -> web.StreamResponse:
        self._authorize(request)
        pool = request.match_info["pool"]
        address = _address(request.match_info["address"], "the address in the URL")
        self._call(self.proxy.remove_backend, pool, address)
        self._logged(request, f"remove {pool}/{address} (draining first)")
        body = {"pool": pool, "address": address, "removing": True}
        entry = self._backend_status(pool, address)
        if entry is not None:
            body["backend"] = entry
        return web.json_response(body, status=202)

    async def backend_action(self, request: web.Request) -> web.StreamResponse:
        action = request.match_info["action"]
        if action not in _ACTIONS:
            raise ApiError(
                404, f"no action {action!r} for a backend (use drain, enable or disable)"
            )
        self._authorize(request)
        pool = request.match_info["pool"]
        address = _address(request.match_info["address"], "the address in the URL")
        args: tuple[object, ...] = (pool, address)
        if action == "drain" and request.can_read_body:
            # {"timeout": seconds}: how long sticky sessions may still come.
            body = await _json_object(request, required=(), optional=("timeout",))
            timeout = body.get("timeout")
            if timeout is not None:
                number = isinstance(timeout, (int, float)) and not isinstance(timeout, bool)
                if not number or timeout < 0:
                    raise ApiError(422, f"timeout must be seconds >= 0, got {json.dumps(timeout)}")
                args = (pool, address, float(timeout))
        self._call(getattr(self.proxy, action), *args)
        self._logged(request, f"{action} {pool}/{address}")
        return web.json_response(self._backend_status(pool, address) or {})

    async def set_weight(self, request: web.Request) -> web.StreamResponse:
        self._authorize(request)
        pool = request.match_info["pool"]
        address = _address(request.match_info["address"], "the address in the URL")
        body = await _json_object(request, required=("weight",))
        weight = _weight(body["weight"])
        self._call(self.proxy.set_weight, pool, address, weight)
        self._logged(request, f"weight {pool}/{address} = {weight}")
        return web.json_response(self._backend_status(pool, address) or {})

    async def reload(self, request: web.Request) -> web.StreamResponse:
        self._authorize(request)
        async with self._reload_lock:
            try:
                await self.proxy.reload()
            except ConfigError as err:
                log.warning(
                    "admin %s: reload refused, old config kept: %s",
                    _client(request),
                    "; ".join(err.errors),
                )
                raise ApiError(
                    422,
                    "reload refused; the running config is unchanged",
                    extra={"errors": list(err.errors)},
                ) from None
        self._logged(request, "reload")
        return web.json_response({"reloaded": True})

    # -- helpers ------------------------------------------------------------------

    def _authorize(self, request: web.Request) -> None:
        token = self._token
        if token is None:
            name = self.config.token_env or "no token variable"
            raise ApiError(
                403,
                f"the admin API is read-only because {name} is not set"
                " (set it in lbproxy's environment and restart to allow changes)",
            )
        header = request.headers.get("Authorization", "")
        scheme, _, given = header.strip().partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            raise ApiError(
                401,
                "this call needs an Authorization: Bearer <token> header",
                headers={"WWW-Authenticate": 'Bearer realm="lbproxy admin"'},
            )
        if not hmac.compare_digest(given.strip().encode("utf-8"), token):
            log.warning(
                "admin %s: wrong token for %s %s", _client(request), request.method, request.path
            )
            raise ApiError(403, "wrong token")

    def _call(self, method: Callable[..., object], *args: object) -> None:
        # Looked up per call: lbproxy.proxy may import this module, and may gain
        # Conflict after this was written.
        conflict = getattr(sys.modules.get("lbproxy.proxy"), "Conflict", None)
        try:
            method(*args)
        except Exception as exc:
            if isinstance(conflict, type) and isinstance(exc, conflict):
                raise ApiError(409, _message(exc)) from None
            if isinstance(exc, KeyError):
                raise ApiError(404, _message(exc)) from None
            if isinstance(exc, ValueError):
                raise ApiError(422, _message(exc)) from None
            raise

    # -- route targets: split weights, shard directories ------------------------------

    async def set_split(self, request: web.Request) -> web.StreamResponse:
        self._authorize(request)
        listener, index = _route_ref(request)
        body = await _json_object(request, required=("weights",))
        weights = body["weights"]
        if not isinstance(weights, dict) or not weights:
            raise ApiError(422, 'weights must be an object like {"v1": 90, "v2": 10}')
        checked = {str(name): _weight(value) for name, value in weights.items()}
        self._call(self.proxy.set_split, listener, index, checked)
        self._logged(request, f"split {listener} route {index}: {checked}")
        return web.json_response({"listener": listener, "route": index, "weights": checked})

    async def shards(self, request: web.Request) -> web.StreamResponse:
        listener, index = _route_ref(request)
        found: dict[str, str] = {}

        def read() -> None:
            found.update(self.proxy.shard_entries(listener, index))

        self._call(read)
        return web.json_response({"listener": listener, "route": index, "shards": found})

    async def set_shard(self, request: web.Request) -> web.StreamResponse:
        self._authorize(request)
        listener, index = _route_ref(request)
        key = request.match_info["key"]
        body = await _json_object(request, required=("pool",))
        pool = body["pool"]
        if not isinstance(pool, str):
            raise ApiError(422, f"pool must be a string, got {json.dumps(pool)}")
        self._call(self.proxy.set_shard, listener, index, key, pool)
        self._logged(request, f"shard {listener} route {index}: {key} -> {pool}")
        return web.json_response({"key": key, "pool": pool})

    async def delete_shard(self, request: web.Request) -> web.StreamResponse:
        self._authorize(request)
        listener, index = _route_ref(request)
        key = request.match_info["key"]
        self._call(self.proxy.delete_shard, listener, index, key)
        self._logged(request, f"shard {listener} route {index}: {key} removed")
        return web.json_response({"key": key, "removed": True})

    def _logged(self, request: web.Request, what: str) -> None:
        log.warning("admin %s: %s", _client(request), what)

    def _pool_status(self, pool: str) -> dict[str, Any]:
        pools: dict[str, Any] = self.proxy.status().get("pools", {})
        entry: dict[str, Any] = pools.get(pool, {})
        return entry

    def _backend_status(self, pool: str, address: str) -> dict[str, Any] | None:
        for entry in self._pool_status(pool).get("backends", []):
            if entry.get("address") == address:
                found: dict[str, Any] = entry
                return found
        return None


async def _json_object(
    request: web.Request, *, required: tuple[str, ...], optional: tuple[str, ...] = ()
) -> dict[str, Any]:
    raw = await request.read()
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ApiError(422, f"the request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise ApiError(422, "the request body must be a JSON object")
    known = (*required, *optional)
    for key in body:
        if key not in known:
            raise ApiError(
                422, f"unknown field {key!r} in the request body (known: {', '.join(known)})"
            )
    for key in required:
        if key not in body:
            raise ApiError(422, f"the request body is missing {key!r}")
    return body


def _route_ref(request: web.Request) -> tuple[str, int]:
    """The listener name and 0-based route index of a /api/listeners/... URL."""
    text = request.match_info["index"]
    if not text.isascii() or not text.isdigit():
        raise ApiError(404, f"route index must be a number from 0, got {text!r}")
    return request.match_info["listener"], int(text)


def _address(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise ApiError(422, f'{what} must be a string "host:port", got {json.dumps(value)}')
    try:
        return str(parse_address(value))
    except AddressError as exc:
        raise ApiError(422, f"{what}: {exc.reason}, got {json.dumps(value)}") from None


def _weight(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ApiError(
            422,
            f"weight must be an integer from 0 to {MAX_CONFIG_WEIGHT}, got {json.dumps(value)}",
        )
    if not 0 <= value <= MAX_CONFIG_WEIGHT:
        raise ApiError(422, f"weight must be an integer from 0 to {MAX_CONFIG_WEIGHT}, got {value}")
    return value
