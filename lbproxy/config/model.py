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
class HashKey:
    """Where a request's hash key comes from: ``client_ip``, ``path``, a path
    segment (``path_segment``, ``name`` = its 0-based index as text), or a
    named ``header``/``cookie``/``query`` parameter (``name`` lower-cased for
    headers, as sent for cookies and query parameters)."""

    source: str  # client_ip | path | path_segment | header | cookie | query
    name: str = ""

    def __str__(self) -> str:
        return f"{self.source}:{self.name}" if self.name else self.source


@dataclass(frozen=True, slots=True)
class GeoRegion:
    name: str
    pool: str
    failover: tuple[str, ...] = ()  # region names, tried in order


@dataclass(frozen=True, slots=True)
class GeoTarget:
    """``geo:`` route target: the client's region's pool, else its failovers."""

    regions: tuple[GeoRegion, ...]
    default: str  # region of a client no lookup places


@dataclass(frozen=True, slots=True)
class ShardRange:
    upto: int | None  # exclusive upper bound; None = open-ended (the last one)
    pool: str


@dataclass(frozen=True, slots=True)
class ShardTarget:
    """``shard:`` route target: a key from the request chooses the pool."""

    key: HashKey
    strategy: str  # hash | range | directory
    pools: tuple[str, ...] = ()  # hash
    ranges: tuple[ShardRange, ...] = ()  # range, ascending
    directory: str | None = None  # directory: CSV file of key,pool lines


@dataclass(frozen=True, slots=True)
class ReadWriteTarget:
    """``read_write:`` route target: safe methods to ``read``, others to ``write``."""

    read: str
    write: str
    stick_after_write: float = 0.0  # seconds; 0 = off
    cookie: str = "lbp_rw"  # the signed cookie that marks a recent writer


@dataclass(frozen=True, slots=True)
class SplitTarget:
    """``split:`` route target: a weighted choice between pools (canary)."""

    pools: tuple[tuple[str, int], ...]  # (pool, weight); weights >= 0, some > 0
    sticky: bool = False  # keep a client on its pool with a signed cookie
    cookie: str = "lbp_split"


Target = GeoTarget | ShardTarget | ReadWriteTarget | SplitTarget


@dataclass(frozen=True, slots=True)
class Route:
    match: RouteMatch
    pool: str  # "" when ``target`` is set
    target: Target | None = None  # a route target other than a pool
    # A route is a dict key per request (metrics counts, access-log cache):
    # its hash is computed once, from the same fields equality compares.
    _hash: int = field(default=0, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_hash", hash((self.match, self.pool, self.target)))

    def __hash__(self) -> int:
        return self._hash

    def __reduce__(self) -> tuple[type[Route], tuple[RouteMatch, str, Target | None]]:
        # Rebuilt, not restored: string hashes differ between processes (a
        # worker unpickles its config), so the cached hash is made again.
        return (Route, (self.match, self.pool, self.target))

    def pools(self) -> tuple[str, ...]:
        """Every pool this route can send a request to."""
        t = self.target
        if t is None:
            return (self.pool,)
        if isinstance(t, GeoTarget):
            names = [r.pool for r in t.regions]
        elif isinstance(t, ShardTarget):
            names = [*t.pools, *(r.pool for r in t.ranges)]
        elif isinstance(t, ReadWriteTarget):
            names = [t.read, t.write]
        else:
            names = [p for p, _ in t.pools]
        return tuple(dict.fromkeys(names))


@dataclass(frozen=True, slots=True)
class ListenerTls:
    """``listeners[].tls``: terminate TLS (lbproxy.tls builds the contexts)."""

    certificates: tuple[tuple[str, str], ...]  # (cert, key) files; the first is the default
    min_version: str = "1.2"  # "1.2" | "1.3"
    alpn: tuple[str, ...] = ("http/1.1",)
    client_ca: str | None = None  # require client certificates signed by it
    # With client_ca: the header that carries the verified client subject
    # upstream (None: not sent).
    client_subject_header: str | None = None


@dataclass(frozen=True, slots=True)
class Listener:
    name: str
    bind: Address
    routes: tuple[Route, ...]
    limits: ListenerLimits = field(default_factory=ListenerLimits)
    timeouts: ListenerTimeouts = field(default_factory=ListenerTimeouts)
    trusted_proxies: tuple[str, ...] = ()  # CIDR strings, already validated
    tls: ListenerTls | None = None
    redirect_http_to: str | None = None  # plain listener: 308 to this ("{host}", "{path}")
    hsts: str | None = None  # TLS listener: Strict-Transport-Security value
    proxy_protocol: bool = False  # a PROXY protocol v1/v2 header starts every connection


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
class UpstreamTls:
    """``pools.*.upstream_tls``: TLS to the backends (re-encryption)."""

    verify: bool = True  # check the backend's certificate and name
    ca: str | None = None  # CA file; None: the system's trust store
    sni: str | None = None  # name sent and verified; None: the backend's host
    cert: str | None = None  # client certificate for backends that ask for one
    key: str | None = None


@dataclass(frozen=True, slots=True)
class Keepalive:
    max_idle_per_backend: int = 32
    idle_timeout: float = 60.0


@dataclass(frozen=True, slots=True)
class HealthCheck:
    """Active health checks: one ``GET path`` per backend every ``interval``."""

    path: str = "/healthz"  # starts with "/"; may carry a query string
    interval: float = 2.0  # seconds
    timeout: float = 1.0  # seconds; always shorter than interval
    healthy_threshold: int = 2  # consecutive passes that bring a backend up (1..100)
    unhealthy_threshold: int = 3  # consecutive failures that take it down (1..100)
    expect_status: tuple[int, int] = (200, 399)  # inclusive range within 100..599
    expect_body: str | None = None  # must occur in the first 64 KiB of the body
    host: str | None = None  # Host header ("name" or "name:port"); None = backend address


@dataclass(frozen=True, slots=True)
class OutlierDetection:
    """Passive ejection of backends that fail real requests in a row."""

    consecutive_failures: int = 5  # 1..1000
    base_ejection_time: float = 30.0  # seconds; times the ejection count
    max_ejection_time: float = 300.0  # seconds; >= base_ejection_time
    max_ejection_percent: int = 50  # 0..100 of the pool's backends


@dataclass(frozen=True, slots=True)
class CircuitBreaker:
    """Per-backend breaker on the failed share of recent requests."""

    failure_rate: float = 0.5  # fraction in (0, 1]
    minimum_requests: int = 20  # 1..100000 finished within window before it can open
    window: float = 10.0  # seconds
    open_duration: float = 30.0  # seconds
    half_open_requests: int = 3  # 1..1000


@dataclass(frozen=True, slots=True)
class PoolLimits:
    """Requests in flight to a pool's backends, and the queue beyond them."""

    max_connections: int = 1000  # >= 1
    max_pending: int = 100  # >= 0; 0 = no queue
    queue_timeout: float = 1.0  # seconds


@dataclass(frozen=True, slots=True)
class Retries:
    """``attempts`` counts every try, the first included: 1 means no retries."""

    attempts: int = 2  # 1..10
    # connect_failure | reset | timeout | a backend status "500".."599", as written, no repeats
    on: tuple[str, ...] = ("connect_failure", "reset", "502", "503", "504")
    budget_ratio: float = 0.2  # fraction 0..1 of the pool's requests in flight
    non_idempotent: bool = False
    per_try_timeout: float | None = None  # seconds; None = timeouts.response


@dataclass(frozen=True, slots=True)
class Sticky:
    """``pools.*.sticky``: cookie-inserted session affinity."""

    cookie: str = "lbp_sticky"
    ttl: float = 3600.0  # seconds; Max-Age of the cookie and its signed expiry; 0 = session
    secure: bool = True
    strict: bool = False  # True: 503 when the pinned backend can't serve, not another backend


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
    health_check: HealthCheck | None = None  # None = no active checks
    outlier_detection: OutlierDetection | None = None  # None = off
    circuit_breaker: CircuitBreaker | None = None  # None = off
    panic_threshold: float = 0.5  # fraction 0..1 of primaries eligible; 0 = never panic
    limits: PoolLimits | None = None  # None = unlimited
    retries: Retries = field(default_factory=Retries)  # Retries(attempts=1) = off
    timeouts: PoolTimeouts = field(default_factory=PoolTimeouts)
    keepalive: Keepalive = field(default_factory=Keepalive)
    upstream_tls: UpstreamTls | None = None
    sticky: Sticky | None = None


@dataclass(frozen=True, slots=True)
class GeoLookup:
    """Top-level ``geo:``: how a request's region is found, first hit wins."""

    trust_header: str | None = None  # region header, believed from trusted_proxies only
    networks: tuple[tuple[str, str], ...] = ()  # (CIDR, region), CIDRs normalised
    database: str | None = None  # MaxMind DB file (country or city)
    countries: tuple[tuple[str, str], ...] = ()  # (ISO 3166 alpha-2, upper case; region)
    continents: tuple[tuple[str, str], ...] = ()  # (continent code, upper case; region)


@dataclass(frozen=True, slots=True)
class AccessLog:
    format: str = "json"  # json | combined | off
    path: str = "-"  # "-" = stdout


@dataclass(frozen=True, slots=True)
class Tracing:
    """Request ids and W3C trace context (``lbproxy.tracing``); both off by default."""

    request_id: bool = False  # accept or create one, send it upstream and back
    request_id_header: str = "X-Request-ID"
    traceparent: bool = False  # keep the trace id, new span id; create when missing


@dataclass(frozen=True, slots=True)
class Admin:
    """The admin API server (``lbproxy.admin``)."""

    bind: Address = field(default_factory=lambda: Address("127.0.0.1", 9901))
    # Name of the environment variable holding the bearer token, read when the
    # server starts; unset or empty (or None here) = read-only API.
    token_env: str | None = "LBPROXY_ADMIN_TOKEN"


@dataclass(frozen=True, slots=True)
class Config:
    listeners: tuple[Listener, ...]
    pools: dict[str, Pool]  # treat as read-only
    workers: int | None = 1  # None means "auto" (one per CPU)
    shutdown_timeout: float = 30.0
    sample_backends: int = 0
    access_log: AccessLog = field(default_factory=AccessLog)
    tracing: Tracing = field(default_factory=Tracing)
    admin: Admin | None = None  # None = no admin API server
    geo: GeoLookup | None = None
    # Key that signs the proxy's cookies (sticky, read_write, split); None =
    # random, made once per start and shared by the workers.
    cookie_key: str | None = None
    source: str | None = None  # path of the file this came from, for reloads
