"""Frozen, typed configuration objects: what the rest of lbproxy reads.

The loader (``lbproxy.config.loader``) builds these from YAML after validating
every key; code outside ``lbproxy.config`` never sees raw dictionaries.
Durations are float seconds, sizes are int bytes.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Address:
    host: str  # "127.0.0.1", "::1", "localhost", "0.0.0.0", "::"
    port: int

    def __str__(self) -> str:
        if ":" in self.host:
            return f"[{self.host}]:{self.port}"
        return f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class ListenerLimits:
    max_connections: int = 10000
    max_header_bytes: int = 16 * 1024
    max_headers: int = 100
    max_body_bytes: int = 10 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class ListenerTimeouts:
    header: float = 10.0
    body: float = 30.0
    idle: float = 60.0


@dataclass(frozen=True, slots=True)
class RouteMatch:
    host: str | None = None  # exact "api.example.com" or wildcard "*.example.com", lower case
    path_prefix: str | None = None
    methods: tuple[str, ...] | None = None  # upper case
    headers: tuple[tuple[str, str], ...] = ()  # (lower-case name, exact value)


@dataclass(frozen=True, slots=True)
class Route:
    match: RouteMatch
    pool: str


@dataclass(frozen=True, slots=True)
class Listener:
    name: str
    bind: Address
    routes: tuple[Route, ...]
    limits: ListenerLimits = field(default_factory=ListenerLimits)
    timeouts: ListenerTimeouts = field(default_factory=ListenerTimeouts)
    trusted_proxies: tuple[str, ...] = ()  # CIDR strings, already validated


@dataclass(frozen=True, slots=True)
class Backend:
    address: Address
    weight: int = 1
    zone: str | None = None
    backup: bool = False


@dataclass(frozen=True, slots=True)
class PoolTimeouts:
    connect: float = 2.0
    response: float = 30.0


@dataclass(frozen=True, slots=True)
class Keepalive:
    max_idle_per_backend: int = 32
    idle_timeout: float = 60.0


@dataclass(frozen=True, slots=True)
class HashKey:
    """Where a request's hash key comes from: ``client_ip``, ``path``, or a
    named ``header``/``cookie``/``query`` parameter (``name`` lower-cased for
    headers, as sent for cookies and query parameters)."""

    source: str  # client_ip | path | header | cookie | query
    name: str = ""

    def __str__(self) -> str:
        return f"{self.source}:{self.name}" if self.name else self.source


@dataclass(frozen=True, slots=True)
class Pool:
    name: str
    backends: tuple[Backend, ...]
    # round_robin | weighted_round_robin | least_connections | power_of_two |
    # peak_ewma | consistent_hash | random | first
    balance: str = "round_robin"
    hash_key: HashKey = field(default_factory=lambda: HashKey("client_ip"))
    hash_balance_factor: float = 0.0  # 0: unbounded; else >= 1 (consistent_hash)
    ewma_half_life: float = 5.0  # seconds (peak_ewma)
    slow_start: float = 0.0  # seconds; 0 = off
    timeouts: PoolTimeouts = field(default_factory=PoolTimeouts)
    keepalive: Keepalive = field(default_factory=Keepalive)


@dataclass(frozen=True, slots=True)
class AccessLog:
    format: str = "json"  # json | combined | off
    path: str = "-"  # "-" = stdout


@dataclass(frozen=True, slots=True)
class Config:
    listeners: tuple[Listener, ...]
    pools: dict[str, Pool]  # treat as read-only
    workers: int | None = 1  # None means "auto" (one per CPU)
    shutdown_timeout: float = 30.0
    sample_backends: int = 0
    access_log: AccessLog = field(default_factory=AccessLog)
    source: str | None = None  # path of the file this came from, for reloads
