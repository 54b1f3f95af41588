"""Access log: one line per exchange, JSON or Apache "combined".

Lines are buffered and flushed by the proxy's ticker (and at shutdown), so a
request costs one formatted line, never a write syscall of its own. Part of
the compiled data path (see ``lbproxy/http/__init__.py``): ``record`` reads
the exchange's fields as C attributes and hands them to
``lbproxy/_fast/logline.pyx``, which writes the JSON line as bytes.
"""

from __future__ import annotations

import json
import sys
import time
from typing import IO, TYPE_CHECKING, Protocol

from lbproxy._fast import load as _load_fast

if TYPE_CHECKING:
    from lbproxy.config.model import AccessLog, Route
    from lbproxy.http.client import ClientConnection
    from lbproxy.http.exchange import Exchange

_FLUSH_LINES = 512
_CACHE_MAX = 4096  # entries in the listener/route/pool/backend cache; cleared when full

json_line = _load_fast("logline").json_line


class _Sink(Protocol):
    def write(self, data: bytes, /) -> int: ...
    def flush(self) -> None: ...
    def close(self) -> None: ...


class AccessLogger:
    __slots__ = ("_fmt", "_json", "_lines", "_out", "_own", "_stamp", "_until", "_wheres", "format")

    def __init__(self, cfg: AccessLog) -> None:
        self.format = cfg.format
        self._json = cfg.format == "json"
        self._own = False
        self._out: _Sink | None = None
        if cfg.format != "off":
            if cfg.path == "-":
                self._out = _stdout()
            else:
                self._out = open(cfg.path, "ab")  # noqa: SIM115 - lives with the proxy
                self._own = True
        # Lines are bytes, written to the file's binary side: the JSON line is
        # made as bytes (lbproxy/_fast/logline.pyx), never a str to encode.
        self._lines: list[bytes] = []
        # The listener/route/pool/backend run of a JSON line, per combination.
        self._wheres: dict[tuple[object, ...], bytes] = {}
        self._fmt = "%Y-%m-%dT%H:%M:%S%z" if self._json else "%d/%b/%Y:%H:%M:%S %z"
        self._stamp = b""
        self._until = 0.0

    @property
    def enabled(self) -> bool:
        return self._out is not None

    def _clock(self, now: float) -> bytes:
        # strftime costs microseconds and its answer changes once a second:
        # the stamp is remade only when the monotonic clock passes the next
        # wall-clock second (``now`` is the caller's monotonic reading).
        if now < self._until:
            return self._stamp
        wall = time.time()
        second = int(wall)
        self._stamp = time.strftime(self._fmt, time.localtime(second)).encode()
        self._until = now + (second + 1 - wall)
        return self._stamp

    def _where(self, key: tuple[object, ...], route: Route | None) -> bytes:
        listener, _, pool, backend = key
        route_text = route_label(route)
        if len(self._wheres) >= _CACHE_MAX:
            self._wheres.clear()
        text = self._wheres[key] = (
            f'","listener":{_json_text(str(listener))}'
            f',"route":{_json_opt(route_text)}'
            f',"pool":{_json_opt(getattr(pool, "name", None))}'
            f',"backend":{_json_opt(getattr(backend, "label", None))},"client":'
        ).encode()
        return text

    def record(self, listener: str, client: ClientConnection, ex: Exchange, now: float) -> None:
        duration = now - ex.started_at
        status = ex.resp_status
        if self._json:
            # The route by id: a Route hashes in Python; kept alive by its
            # listener, so its id is not reused.
            where_key = (listener, id(ex.route), ex.pool, ex.backend)
            line = json_line(
                self._clock(now),
                self._wheres.get(where_key) or self._where(where_key, ex.route),
                client.client_ip,
                ex.method,
                ex.host,
                ex.target,
                status,
                ex.resp_bytes,
                ex.body_in,
                duration * 1000.0,
                ex.connect_s * 1000.0,  # 0: a reused connection, no field
                # The backend's time to answer: request head written -> response head read.
                (ex.head_at - ex.sent_at) * 1000.0 if ex.head_at and ex.sent_at else -1.0,
                ex.user_agent,
                ex.referer,
                ex.request_id,
                ex.traceparent,
                ex.attempts,  # clients never see retries; the log does
                _json_text(ex.reason).encode() if ex.reason else b"",
            )
            if ex.region:
                # Geo routes only; region names are config names (no escaping).
                line = b"".join(
                    (line[:-1], b',"region":"', ex.region, b'","served_region":"',
                     ex.served_region or ex.region, b'"}')
                )  # fmt: skip
        else:
            when = self._clock(now).decode()
            why = ex.reason.replace(" ", "_") if ex.reason else "-"
            referer = _quoted(ex.referer)
            agent = _quoted(ex.user_agent)
            line = (
                f"{client.client_ip.decode()} - - [{when}] "
                f'"{ex.method.decode("latin-1")} {ex.target.decode("latin-1")} HTTP/1.1" '
                f'{status or "-"} {ex.resp_bytes} "{referer}" "{agent}" {duration:.3f} {why}'
            ).encode()
        self._lines.append(line)
        if len(self._lines) >= _FLUSH_LINES:
            self.flush()

    def flush(self) -> None:
        out = self._out
        if out is None or not self._lines:
            return
        self._lines.append(b"")
        data = b"\n".join(self._lines)
        self._lines.clear()
        out.write(data)
        out.flush()

    def close(self) -> None:
        self.flush()
        if self._own and self._out is not None:
            self._out.close()
        self._out = None


def _stdout() -> _Sink:
    """Standard output's binary side (a replaced sys.stdout may have none)."""
    buffer: IO[bytes] | None = getattr(sys.stdout, "buffer", None)
    if buffer is not None:
        sys.stdout.flush()  # what was printed as text goes first
        return buffer
    return _TextSink(sys.stdout)


class _TextSink:
    """Bytes in, text out: for a sys.stdout replaced by a text-only stream."""

    def __init__(self, text: IO[str]) -> None:
        self._text = text

    def write(self, data: bytes) -> int:
        return self._text.write(data.decode("utf-8", "replace"))

    def flush(self) -> None:
        self._text.flush()

    def close(self) -> None:
        pass


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


def _json_opt(s: str | None) -> str:
    return "null" if s is None else _json_text(s)
