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
    from lbproxy.config.model import AccessLog
    from lbproxy.http.client import ClientConnection
    from lbproxy.http.exchange import Exchange

_FLUSH_LINES = 512


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

    @property
    def enabled(self) -> bool:
        return self._out is not None

    def record(self, listener: str, client: ClientConnection, ex: Exchange, now: float) -> None:
        duration = now - ex.started_at
        status = ex.resp_status
        if self.format == "json":
            entry = {
                "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "listener": listener,
                "client": client.client_ip.decode(),
                "method": ex.method.decode("latin-1"),
                "host": ex.host.decode("latin-1"),
                "path": ex.target.decode("latin-1"),
                "status": status,
                "bytes": ex.resp_bytes,
                "duration_ms": round(duration * 1000, 3),
                "route": _route_name(ex),
                "pool": ex.pool.name if ex.pool is not None else None,
                "backend": ex.backend.label if ex.backend is not None else None,
            }
            if ex.user_agent:
                entry["user_agent"] = ex.user_agent.decode("latin-1")
            if ex.referer:
                entry["referer"] = ex.referer.decode("latin-1")
            if ex.attempts > 1:
                entry["tries"] = ex.attempts  # the client never sees retries; the log does
            if ex.reason:
                entry["reason"] = ex.reason
            line = json.dumps(entry, separators=(",", ":"))
        else:
            when = time.strftime("%d/%b/%Y:%H:%M:%S %z")
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


def _route_name(ex: Exchange) -> str | None:
    route = ex.route
    if route is None:
        return None
    m = route.match
    parts = [p for p in (m.host, m.path_prefix) if p]
    return " ".join(parts) if parts else "*"
