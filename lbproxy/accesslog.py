"""Access log: one line per exchange, JSON or Apache "combined".

Lines are buffered and flushed by the proxy's ticker (and at shutdown), so a
request costs one formatted string, never a write syscall of its own.
"""

from __future__ import annotations

import json
import sys
import time
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    from lbproxy.config.model import AccessLog, Route
    from lbproxy.http.client import ClientConnection
    from lbproxy.http.exchange import Exchange

_FLUSH_LINES = 512
_CACHE_MAX = 4096  # entries per cache; cleared when full


class AccessLogger:
    def __init__(self, cfg: AccessLog) -> None:
        self.format = cfg.format
        self._own = False
        self._out: IO[str] | None = None
        if cfg.format != "off":
            if cfg.path == "-":
                self._out = sys.stdout
            else:
                self._out = open(cfg.path, "a", encoding="utf-8")  # noqa: SIM115 - lives with the proxy
                self._own = True
        self._lines: list[str] = []
        # JSON literals of values that repeat (methods, hosts, client
        # addresses), and of the listener/route/pool/backend part of a line.
        self._lits: dict[bytes, str] = {}
        self._wheres: dict[tuple[object, ...], str] = {}
        self._fmt = "%Y-%m-%dT%H:%M:%S%z" if cfg.format == "json" else "%d/%b/%Y:%H:%M:%S %z"
        self._stamp = ""
        self._until = 0.0

    @property
    def enabled(self) -> bool:
        return self._out is not None

    def _clock(self, now: float) -> str:
        # strftime costs microseconds and its answer changes once a second:
        # the stamp is remade only when the monotonic clock passes the next
        # wall-clock second (``now`` is the caller's monotonic reading).
        if now < self._until:
            return self._stamp
        wall = time.time()
        second = int(wall)
        self._stamp = time.strftime(self._fmt, time.localtime(second))
        self._until = now + (second + 1 - wall)
        return self._stamp

    def _lit(self, value: bytes) -> str:
        if len(self._lits) >= _CACHE_MAX:
            self._lits.clear()
        lit = self._lits[value] = _json_bytes(value)
        return lit

    def _where(self, key: tuple[object, ...]) -> str:
        listener, route, pool, backend = key
        route_text = route_label(route)  # type: ignore[arg-type]
        if len(self._wheres) >= _CACHE_MAX:
            self._wheres.clear()
        text = self._wheres[key] = (
            f'","listener":{_json_text(str(listener))}'
            f',"route":{_json_opt(route_text)}'
            f',"pool":{_json_opt(getattr(pool, "name", None))}'
            f',"backend":{_json_opt(getattr(backend, "label", None))},"client":'
        )
        return text

    def record(self, listener: str, client: ClientConnection, ex: Exchange, now: float) -> None:
        duration = now - ex.started_at
        status = ex.resp_status
        if self.format == "json":
            # Built by hand, not json.dumps of a dict (a third of the cost):
            # the fields are written in a fixed order, values that repeat are
            # cached as JSON literals, and a string goes through the JSON
            # escaper only when it needs escaping.
            lits = self._lits
            method = lits.get(ex.method) or self._lit(ex.method)
            host = lits.get(ex.host) or self._lit(ex.host)
            ip = lits.get(client.client_ip) or self._lit(client.client_ip)
            where_key = (listener, ex.route, ex.pool, ex.backend)
            where = self._wheres.get(where_key) or self._where(where_key)
            parts = [
                '{"time":"',
                self._clock(now),
                where,
                ip,
                ',"method":',
                method,
                ',"host":',
                host,
                ',"path":',
                _json_bytes(ex.target),
                f',"status":{status},"bytes":{ex.resp_bytes},"bytes_in":{ex.body_in}'
                f',"duration_ms":{duration * 1000.0:.3f}',
            ]
            if ex.connect_s:
                parts.append(f',"connect_ms":{ex.connect_s * 1000.0:.3f}')
            if ex.head_at and ex.sent_at:
                # The backend's time to answer: request head written -> response head read.
                parts.append(f',"response_ms":{(ex.head_at - ex.sent_at) * 1000.0:.3f}')
            if ex.user_agent:
                ua = ex.user_agent
                parts += (',"user_agent":', lits.get(ua) or self._lit(ua))
            if ex.referer:
                parts += (',"referer":', _json_bytes(ex.referer))
            if ex.request_id:
                parts += (',"request_id":', _json_bytes(ex.request_id))
            if ex.traceparent:
                parts += (',"traceparent":', _json_bytes(ex.traceparent))
            if ex.attempts > 1:
                parts.append(f',"tries":{ex.attempts}')  # clients never see retries; the log does
            if ex.reason:
                parts += (',"reason":', _json_text(ex.reason))
            parts.append("}")
            line = "".join(parts)
        else:
            when = self._clock(now)
            why = ex.reason.replace(" ", "_") if ex.reason else "-"
            referer = _quoted(ex.referer)
            agent = _quoted(ex.user_agent)
            line = (
                f"{client.client_ip.decode()} - - [{when}] "
                f'"{ex.method.decode("latin-1")} {ex.target.decode("latin-1")} HTTP/1.1" '
                f'{status or "-"} {ex.resp_bytes} "{referer}" "{agent}" {duration:.3f} {why}'
            )
        self._lines.append(line)
        if len(self._lines) >= _FLUSH_LINES:
            self.flush()

    def flush(self) -> None:
        out = self._out
        if out is None or not self._lines:
            return
        out.write("\n".join(self._lines) + "\n")
        self._lines.clear()
        out.flush()

    def close(self) -> None:
        self.flush()
        if self._own and self._out is not None:
            self._out.close()
        self._out = None


def _quoted(value: bytes) -> str:
    """A header value for a quoted log field: "-" when absent, quotes escaped."""
    if not value:
        return "-"
    return value.decode("latin-1").replace("\\", "\\\\").replace('"', '\\"')


def route_label(route: Route | None) -> str | None:
    """How a route is named in the log and in metric labels: host and prefix."""
    if route is None:
        return None
    m = route.match
    parts = [p for p in (m.host, m.path_prefix) if p]
    return " ".join(parts) if parts else "*"


def _json_text(s: str) -> str:
    """A JSON string literal, as json.dumps writes it (ASCII, escaped)."""
    if s.isascii() and s.isprintable() and '"' not in s and "\\" not in s:
        return '"' + s + '"'
    return json.dumps(s)


def _json_bytes(b: bytes) -> str:
    return _json_text(b.decode("latin-1"))


def _json_opt(s: str | None) -> str:
    return "null" if s is None else _json_text(s)
