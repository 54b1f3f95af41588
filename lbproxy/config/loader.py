"""YAML text -> validated, frozen ``Config``, with every error reported at once.

Theory of operation: PyYAML only *composes* the document into a node tree, in
which every node keeps the line it started on; this module walks that tree
against the schema below and builds the model itself, so no value loses its
line. A reader that meets a bad value records an error and returns a harmless
default, letting the walk continue and find every other error; if any were
recorded the half-built config is dropped and ``ConfigError`` lists them all,
in file order.

Error format (users and ``lbproxy --check`` rely on it):
``pools.web.backends[1].address: not host:port, got "localhost" (line 14)``.

Semantics worth knowing:
- ``key: null`` (or an empty value) means "use the default" for every optional
  key, so a file can spell out a key without choosing a value. Required keys
  (listener ``name``/``bind``/``routes``, backend ``address``, ...) must have one.
- String-valued keys take the scalar exactly as written, so YAML 1.1's
  ``off``/``yes``/``010`` stay the text the user typed (``format: off``).
- Merge keys (``<<: *defaults``) work; top-level keys starting with ``x-`` are
  ignored so that anchors have somewhere to live.
- Keys the contract defines but this version does not implement are refused
  with "not supported yet" rather than silently ignored.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import os
import re
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import TYPE_CHECKING, TypeVar, cast

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from lbproxy.config.addresses import AddressError, is_host_name, parse_address
from lbproxy.config.errors import ConfigError
from lbproxy.config.model import (
    AccessLog,
    Address,
    Admin,
    Backend,
    CircuitBreaker,
    Config,
    GeoLookup,
    GeoRegion,
    GeoTarget,
    HashKey,
    HealthCheck,
    Keepalive,
    Listener,
    ListenerLimits,
    ListenerTimeouts,
    ListenerTls,
    OutlierDetection,
    Pool,
    PoolLimits,
    PoolTimeouts,
    ReadWriteTarget,
    Retries,
    Route,
    RouteMatch,
    ShardRange,
    ShardTarget,
    SplitTarget,
    Sticky,
    Target,
    Tracing,
    UpstreamTls,
)
from lbproxy.config.units import UnitError, parse_duration, parse_size

if TYPE_CHECKING:
    from lbproxy.tls import TlsSettings

try:
    from yaml import CSafeLoader as _YamlLoader
except ImportError:  # PyYAML built without libyaml: same behaviour, slower
    from yaml import SafeLoader as _YamlLoader  # type: ignore[assignment]

__all__ = ["load_config", "parse_config"]

_T = TypeVar("_T")
_K = TypeVar("_K")

# ---------------------------------------------------------------------------
# The schema: which keys each section knows, and which the contract defines
# but this version refuses ("later").

_TOP_KEYS = (
    "workers",
    "shutdown_timeout",
    "sample_backends",
    "listeners",
    "pools",
    "access_log",
    "tracing",
    "admin",
    "geo",
    "cookie_key",
)
_TOP_LATER = ("cluster",)
_LISTENER_KEYS = (
    "name",
    "bind",
    "tls",
    "redirect_http_to",
    "hsts",
    "proxy_protocol",
    "limits",
    "timeouts",
    "trusted_proxies",
    "routes",
)
_LISTENER_LATER: tuple[str, ...] = ()
_TLS_KEYS = ("certificates", "min_version", "alpn", "client_ca", "client_subject_header")
_CERT_KEYS = ("cert", "key")
_TLS_VERSIONS = ("1.2", "1.3")
_LISTENER_LIMIT_KEYS = ("max_connections", "max_header_bytes", "max_headers", "max_body_bytes")
_LISTENER_TIMEOUT_KEYS = ("header", "body", "idle")
_ROUTE_TARGETS = ("pool", "geo", "shard", "read_write", "split")
_ROUTE_KEYS = ("match", *_ROUTE_TARGETS)
_GEO_TARGET_KEYS = ("regions", "default")
_GEO_REGION_KEYS = ("pool", "failover")
_SHARD_KEYS = ("key", "strategy", "pools", "ranges", "directory")
_SHARD_STRATEGIES = ("hash", "range", "directory")
# Each strategy's own key: given with another strategy, it is a mistake.
_SHARD_ONLY = {"pools": "hash", "ranges": "range", "directory": "directory"}
_RANGE_KEYS = ("upto", "pool")
_READ_WRITE_KEYS = ("read", "write", "stick_after_write", "cookie")
_SPLIT_KEYS = ("pools", "sticky", "cookie")
_SPLIT_ITEM_KEYS = ("pool", "weight")
_GEO_LOOKUP_KEYS = ("trust_header", "networks", "database", "countries", "continents")
_CONTINENTS = ("AF", "AN", "AS", "EU", "NA", "OC", "SA")
_STICKY_KEYS = ("cookie", "ttl", "secure", "strict")
# A signing key shorter than this is guessable.
MIN_COOKIE_KEY = 16
_MATCH_KEYS = ("host", "path_prefix", "methods", "headers")
_POOL_KEYS = (
    "balance",
    "backends",
    "hash_key",
    "hash_balance_factor",
    "ewma_half_life",
    "slow_start",
    "health_check",
    "outlier_detection",
    "circuit_breaker",
    "panic_threshold",
    "limits",
    "retries",
    "timeouts",
    "keepalive",
    "upstream_tls",
    "sticky",
)
_UPSTREAM_TLS_KEYS = ("verify", "ca", "sni", "cert", "key")
_HEALTH_CHECK_KEYS = (
    "path",
    "interval",
    "timeout",
    "healthy_threshold",
    "unhealthy_threshold",
    "expect_status",
    "expect_body",
    "host",
)
_OUTLIER_KEYS = (
    "consecutive_failures",
    "base_ejection_time",
    "max_ejection_time",
    "max_ejection_percent",
)
_BREAKER_KEYS = (
    "failure_rate",
    "minimum_requests",
    "window",
    "open_duration",
    "half_open_requests",
)
_POOL_LIMIT_KEYS = ("max_connections", "max_pending", "queue_timeout")
_RETRY_KEYS = ("attempts", "on", "budget_ratio", "non_idempotent", "per_try_timeout")
_POOL_TIMEOUT_KEYS = ("connect", "response")
_KEEPALIVE_KEYS = ("max_idle_per_backend", "idle_timeout")
_BACKEND_KEYS = ("address", "weight", "zone", "backup")
_ACCESS_LOG_KEYS = ("format", "path")
_ADMIN_KEYS = ("bind", "token_env")
_TRACING_KEYS = ("request_id", "request_id_header", "traceparent")
# Headers whose lines the proxy itself reads for framing or writes: a request
# id under one of these names would corrupt the message.
_RESERVED_HEADERS = frozenset(
    {
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "te",
        "trailer",
        "upgrade",
        "proxy-connection",
        "expect",
        "via",
        "x-forwarded-for",
        "x-forwarded-proto",
        "x-forwarded-host",
        "forwarded",
        "x-real-ip",
        "traceparent",
        "tracestate",
    }
)

_BALANCE = (
    "round_robin",
    "weighted_round_robin",
    "least_connections",
    "power_of_two",
    "peak_ewma",
    "consistent_hash",
    "random",
    "first",
)
# Keys that only one algorithm reads: set for another, they are a mistake.
_BALANCE_ONLY = {
    "hash_key": "consistent_hash",
    "hash_balance_factor": "consistent_hash",
    "ewma_half_life": "peak_ewma",
}
_HASH_SOURCES = ("client_ip", "path")
_HASH_NAMED = ("header", "cookie", "query")
# More worker processes than this is a typo, not a machine.
MAX_WORKERS = 1024
# Config weights; the balancers work in WEIGHT_UNIT steps of these.
MAX_CONFIG_WEIGHT = 1000
_ACCESS_LOG_FORMATS = ("json", "combined", "off")
# What a retry may be made for, besides a backend's 5xx status (500..599).
_RETRY_FAILURES = ("connect_failure", "reset", "timeout")
_RETRY_ON_RULE = "must be connect_failure, reset, timeout or a status from 500 to 599"
# A health check passes only if expect_body is in this much of the response body.
HEALTH_CHECK_BODY_LIMIT = 64 * 1024
_STATUS_RANGE = re.compile(r"\s*(\d{3})\s*(?:-\s*(\d{3})\s*)?")
_STATUS_CLASS = re.compile(r"\s*([1-5])xx\s*", re.IGNORECASE)
_PERCENT = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*%\s*")
_PLAIN_NUMBER = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*")
# A request target as lbproxy's parser accepts one: visible ASCII; "#" never goes on the wire.
_CHECK_PATH = re.compile(r"/[!-\x22\x24-~]*")

# A "later" key set to one of these is the default, so accepting it changes nothing.
# Only proxy_protocol has a documented off value besides null; for the others
# (tls, sticky, ...) no off value is defined yet.
_LATER_OFF_IS_DEFAULT = frozenset({"proxy_protocol"})

_SAMPLES_POOL = "samples"
_SAMPLES_HOST = "127.0.0.1"
_SAMPLES_FIRST_PORT = 9101
_SAMPLES_MAX = 50
# Hosts whose port would clash with a sample backend bound on 127.0.0.1.
_LOOPBACK_CLASH_HOSTS = frozenset({"127.0.0.1", "0.0.0.0", "::", "localhost"})

# Names appear in metric labels, log lines and admin API URL paths
# (/api/pools/{pool}/...), so they are kept to characters that need no escaping.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_NAME_RULE = 'must be 1-64 letters, digits, "_", "-" or ".", starting with a letter or digit'
# RFC 9110 token: what an HTTP method or header field name may contain.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_PATH_FORBIDDEN = re.compile(r"[\s?#\x00-\x1f\x7f]")

_DEFAULT_CONFIG = Config(listeners=(), pools={})
_STICKY = Sticky()
_DEFAULT_LIMITS = ListenerLimits()
_DEFAULT_LISTENER_TIMEOUTS = ListenerTimeouts()
_DEFAULT_BACKEND = Backend(Address("", 0))
_DEFAULT_POOL = Pool("", ())
_DEFAULT_POOL_TIMEOUTS = PoolTimeouts()
_DEFAULT_KEEPALIVE = Keepalive()
_DEFAULT_HEALTH_CHECK = HealthCheck()
_DEFAULT_OUTLIER = OutlierDetection()
_DEFAULT_BREAKER = CircuitBreaker()
_DEFAULT_POOL_LIMITS = PoolLimits()
_DEFAULT_RETRIES = Retries()
_DEFAULT_ACCESS_LOG = AccessLog()
_DEFAULT_ADMIN = Admin()
_DEFAULT_TLS = ListenerTls(certificates=())
_DEFAULT_TRACING = Tracing()
# An environment variable name, as admin.token_env names one.
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Hosts that bind every address: one of them and any host on the same port clash.
_WILDCARD_HOSTS = frozenset({"0.0.0.0", "::"})
_NO_ADDRESS = _DEFAULT_BACKEND.address

# ---------------------------------------------------------------------------
# Public entry points


def tls_settings(tls: ListenerTls) -> TlsSettings:
    """What lbproxy.tls needs of a listener's ``tls`` section."""
    from lbproxy.tls import TlsSettings

    return TlsSettings(
        certificates=tls.certificates,
        min_version=tls.min_version,
        alpn=tls.alpn,
        client_ca=tls.client_ca,
    )


def load_config(path: str | os.PathLike[str]) -> Config:
    """Read and validate the config file at ``path``; ``Config.source`` is set to it."""
    name = os.fspath(path)
    try:
        with open(name, "rb") as file:
            data = file.read()
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ConfigError([f"{name}: cannot read config file: {reason}"]) from exc
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ConfigError([f"{name}: not UTF-8 text (line {line})"]) from None
    return parse_config(text, source=name)


def parse_config(text: str, source: str | None = None) -> Config:
    """Validate YAML ``text`` into a ``Config``; raise ``ConfigError`` listing every problem."""
    try:
        root = yaml.compose(text, Loader=_YamlLoader)
    except yaml.YAMLError as exc:
        raise ConfigError([_yaml_error(exc, text)]) from None
    builder = _Builder()
    config = builder.config(root)
    if builder.issues:
        raise ConfigError(builder.issues.messages())
    return replace(config, source=source)


def _yaml_error(exc: yaml.YAMLError, text: str) -> str:
    if isinstance(exc, yaml.MarkedYAMLError):
        # PyYAML words these as "<context>\n<problem>", e.g. "expected a single
        # document in the stream" / "but found another document".
        problem = (exc.problem or exc.context or "unreadable").removeprefix("but ")
        mark = exc.problem_mark or exc.context_mark
        message = f"invalid YAML: {problem}"
        if exc.problem and exc.context:
            context_mark = exc.context_mark
            if context_mark is None or mark is None or context_mark.line == mark.line:
                message += f" ({exc.context})"
            else:
                message += f" ({exc.context} at line {context_mark.line + 1})"
        if mark is not None and text[mark.index : mark.index + 1] == "\t":
            message += " (YAML does not allow tabs for indentation)"
        return message + (f" (line {mark.line + 1})" if mark is not None else "")
    if isinstance(exc, yaml.reader.ReaderError):
        line = text[: exc.position].count("\n") + 1
        return f"invalid YAML: {exc.reason} (line {line})"
    return f"invalid YAML: {exc}"  # pragma: no cover - PyYAML raises only the two above


# ---------------------------------------------------------------------------
# Nodes: kinds, lines, descriptions


_TAG = "tag:yaml.org,2002:"
_STR = _TAG + "str"
_INT = _TAG + "int"
_FLOAT = _TAG + "float"
_BOOL = _TAG + "bool"
_NULL = _TAG + "null"
_TIMESTAMP = _TAG + "timestamp"
_MERGE = _TAG + "merge"
# Scalars whose source text is a usable string: `zone: 1` is zone "1", `format: off` is "off".
_TEXT_TAGS = frozenset({_STR, _INT, _FLOAT, _BOOL, _TIMESTAMP})

# Used only for its scalar converters (int "0x1f", "1_000"; bool "yes"/"off"), which
# read nothing but the node handed to them.
_SCALARS = SafeConstructor()


def _line(node: Node) -> int:
    return int(node.start_mark.line) + 1


def _is_null(node: Node) -> bool:
    return isinstance(node, ScalarNode) and node.tag == _NULL


def _quote(text: str) -> str:
    if len(text) > 80:
        text = text[:77] + "..."
    return json.dumps(text, ensure_ascii=False)


def _describe(node: Node) -> str:
    """How an error names what it got: ``"abc"``, ``-1``, ``a list``, ``off (a boolean)``."""
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    value = str(node.value)
    if node.tag == _STR:
        return _quote(value)
    if node.tag in (_INT, _FLOAT):
        return value
    if node.tag == _NULL:
        return "null"
    if node.tag == _BOOL:
        return f"{value} (a boolean)"
    if node.tag == _TIMESTAMP:
        return f"{value} (a date)"
    return f"{_quote(value)} tagged {node.tag}"


def _closest(word: str, candidates: Collection[str]) -> str | None:
    by_lower = {candidate.lower(): candidate for candidate in candidates}
    lowered = word.lower()
    close = difflib.get_close_matches(lowered, list(by_lower), n=1)
    if close:
        return by_lower[close[0]]
    # difflib misses abbreviations ("path" for "path_prefix", "max_body" for
    # "max_body_bytes"), which are the commonest slip after typos.
    if len(lowered) >= 3:
        for candidate, original in by_lower.items():
            if candidate.startswith(lowered):
                return original
    return None


def _did_you_mean(word: str, candidates: Collection[str]) -> str:
    closest = _closest(word, candidates)
    return "" if closest is None else f" (did you mean {_quote(closest)}?)"


_SIMPLE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def _key_path(path: str, key: str) -> str:
    part = f".{key}" if _SIMPLE_KEY.fullmatch(key) else f"[{_quote(key)}]"
    if not path:
        return part.removeprefix(".")
    return path + part


def _seconds(value: float) -> str:
    """A duration for an error message: 2s, 250ms, 5m, 1h."""
    if value >= 60 and value % 3600 == 0:
        return f"{value / 3600:g}h"
    if value >= 60 and value % 60 == 0:
        return f"{value / 60:g}m"
    if 0 < value < 1:
        return f"{value * 1000:g}ms"
    return f"{value:g}s"


def _int_expectation(minimum: int, maximum: int | None) -> str:
    if maximum is not None:
        return f"an integer from {minimum} to {maximum}"
    if minimum == 1:
        return "a positive integer"
    return f"an integer >= {minimum}"


# ---------------------------------------------------------------------------
# Error collection


class _Issues:
    def __init__(self) -> None:
        self._items: list[tuple[int, str]] = []

    def add(self, path: str, node: Node | None, reason: str) -> None:
        where = path or "config"
        if node is None:
            self._items.append((0, f"{where}: {reason}"))
        else:
            line = _line(node)
            self._items.append((line, f"{where}: {reason} (line {line})"))

    def __len__(self) -> int:
        return len(self._items)

    def messages(self) -> list[str]:
        # Stable: errors on one line keep the order the walk found them in.
        return [message for _, message in sorted(self._items, key=lambda item: item[0])]


@dataclass
class _Map:
    """One YAML mapping after key checks: recognised keys and their nodes."""

    path: str
    values: dict[str, Node] = field(default_factory=dict)  # null values included
    keys: dict[str, Node] = field(default_factory=dict)
    present: list[str] = field(default_factory=list)  # non-null keys, "later" ones too

    def get(self, key: str) -> Node | None:
        node = self.values.get(key)
        return None if node is None or _is_null(node) else node

    def at(self, key: str) -> str:
        return _key_path(self.path, key)


# ---------------------------------------------------------------------------
# The walk


class _Builder:
    def __init__(self) -> None:
        self.issues = _Issues()
        self._pool_names: set[str] = set()
        self._sample_ports = range(0)
        self._listener_names: dict[str, str] = {}
        self._binds: dict[Address, str] = {}
        self._geo_routes: list[tuple[str, Node]] = []

    def fail(self, path: str, node: Node | None, reason: str) -> None:
        self.issues.add(path, node, reason)

    # -- generic readers: record an error and return None on a bad value ---------

    def mapping(
        self,
        node: Node,
        path: str,
        known: Collection[str] | None,
        *,
        later: Collection[str] = (),
        required: Collection[str] = (),
        extensions: bool = False,
    ) -> _Map | None:
        """Check a mapping's keys; ``known=None`` accepts any (names: pools, headers)."""
        if not isinstance(node, MappingNode):
            self.fail(path, node, f"must be a mapping, got {_describe(node)}")
            return None
        result = _Map(path)
        first_line: dict[str, int] = {}
        suggested: set[str] = set()
        for key_node, value, merged in self._pairs(node, path, {id(node)}):
            if not (isinstance(key_node, ScalarNode) and key_node.tag in _TEXT_TAGS):
                self.fail(path, key_node, f"keys must be names, got {_describe(key_node)}")
                continue
            key = str(key_node.value)
            child = _key_path(path, key)
            if key in first_line:
                # A key given explicitly overrides the same key merged in with <<.
                if not merged:
                    self.fail(child, key_node, f"duplicate key (first at line {first_line[key]})")
                continue
            first_line[key] = _line(key_node)
            if known is None or key in known:
                result.values[key] = value
                result.keys[key] = key_node
                if not _is_null(value):
                    result.present.append(key)
            elif key in later:
                if not self._is_default(key, value):
                    self.fail(child, key_node, "not supported yet in this version of lbproxy")
                    result.present.append(key)
            elif extensions and key.startswith("x-"):
                continue
            else:
                closest = _closest(key, [*known, *later])
                if closest is None:
                    hint = f" (known keys: {', '.join(known)})"
                else:
                    suggested.add(closest)
                    hint = f" (did you mean {_quote(closest)}?)"
                self.fail(child, key_node, "unknown key" + hint)
        for key in required:
            if key not in result.values:
                if key not in suggested:  # the typo's own error already points here
                    self.fail(_key_path(path, key), node, "required key is missing")
            elif _is_null(result.values[key]):
                self.fail(_key_path(path, key), result.values[key], "required, got null")
        return result

    def _pairs(
        self, node: MappingNode, path: str, expanded: set[int]
    ) -> list[tuple[Node, Node, bool]]:
        """Key/value pairs with ``<<`` merges expanded after the explicit keys.

        Per the YAML merge-key spec explicit keys win, then earlier merged mappings
        over later ones; the caller keeps the first occurrence of each key. So a
        mapping met a second time (a cycle, or merged twice) adds nothing, and
        skipping it keeps expansion linear however the anchors nest.
        """
        explicit: list[tuple[Node, Node, bool]] = []
        merged: list[tuple[Node, Node, bool]] = []
        for key_node, value in cast(list[tuple[Node, Node]], node.value):
            if key_node.tag != _MERGE:
                explicit.append((key_node, value, False))
                continue
            if isinstance(value, MappingNode):
                sources = [value]
            elif isinstance(value, SequenceNode) and all(
                isinstance(item, MappingNode) for item in value.value
            ):
                sources = cast(list[MappingNode], value.value)
            else:
                self.fail(
                    _key_path(path, "<<"),
                    value,
                    f"must be a mapping or a list of mappings to merge, got {_describe(value)}",
                )
                continue
            for source in sources:
                if id(source) in expanded:
                    continue
                expanded.add(id(source))
                for key, item, _ in self._pairs(source, path, expanded):
                    merged.append((key, item, True))
        return explicit + merged

    def _is_default(self, key: str, value: Node) -> bool:
        if _is_null(value):
            return True
        return (
            key in _LATER_OFF_IS_DEFAULT
            and isinstance(value, ScalarNode)
            and value.tag == _BOOL
            and not _SCALARS.construct_yaml_bool(value)
        )

    def sequence(self, node: Node, path: str) -> list[Node] | None:
        if not isinstance(node, SequenceNode):
            self.fail(path, node, f"must be a list, got {_describe(node)}")
            return None
        return list(cast(list[Node], node.value))

    def text(self, node: Node, path: str) -> str | None:
        if isinstance(node, ScalarNode) and node.tag in _TEXT_TAGS:
            return str(node.value)
        self.fail(path, node, f"must be a string, got {_describe(node)}")
        return None

    def name(self, node: Node, path: str) -> str | None:
        value = self.text(node, path)
        if value is not None and not _NAME.fullmatch(value):
            self.fail(path, node, f"{_NAME_RULE}, got {_describe(node)}")
            return None
        return value

    def choice(
        self, node: Node, path: str, options: Sequence[str], later: Sequence[str] = ()
    ) -> str | None:
        value = self.text(node, path)
        if value is None or value in options:
            return value
        if value in later:
            self.fail(
                path, node, f"{_quote(value)} is not supported yet in this version of lbproxy"
            )
        else:
            hint = _did_you_mean(value, [*options, *later])
            self.fail(
                path, node, f"must be one of {', '.join(options)}, got {_describe(node)}{hint}"
            )
        return None

    def integer(
        self, node: Node, path: str, *, minimum: int, maximum: int | None = None, hint: str = ""
    ) -> int | None:
        value: int | None = None
        if isinstance(node, ScalarNode) and node.tag == _INT:
            try:
                value = _SCALARS.construct_yaml_int(node)
            except ValueError:  # an explicit `!!int abc`
                value = None
        if value is None or value < minimum or (maximum is not None and value > maximum):
            expected = _int_expectation(minimum, maximum)
            self.fail(path, node, f"must be {expected}{hint}, got {_describe(node)}")
            return None
        return value

    def boolean(self, node: Node, path: str) -> bool | None:
        if isinstance(node, ScalarNode) and node.tag == _BOOL:
            return _SCALARS.construct_yaml_bool(node)
        self.fail(path, node, f"must be true or false, got {_describe(node)}")
        return None

    def duration(self, node: Node, path: str, *, positive: bool) -> float | None:
        raw = self._number_or_text(node)
        if raw is None:
            self.fail(path, node, f"must be a duration like 250ms, 2s or 1m, got {_describe(node)}")
            return None
        try:
            seconds = parse_duration(raw)
        except UnitError as exc:
            self.fail(path, node, f"{exc.reason}, got {_describe(node)}")
            return None
        if positive and seconds == 0:
            self.fail(path, node, f"must be longer than zero, got {_describe(node)}")
            return None
        return seconds

    def size(self, node: Node, path: str, *, positive: bool) -> int | None:
        raw = self._number_or_text(node)
        if raw is None or isinstance(raw, float):
            self.fail(path, node, f"must be a size like 512, 16KiB or 10MiB, got {_describe(node)}")
            return None
        try:
            size = parse_size(raw)
        except UnitError as exc:
            self.fail(path, node, f"{exc.reason}, got {_describe(node)}")
            return None
        if positive and size == 0:
            self.fail(path, node, f"must be more than zero bytes, got {_describe(node)}")
            return None
        return size

    def _number_or_text(self, node: Node) -> str | int | float | None:
        if not isinstance(node, ScalarNode):
            return None
        try:
            if node.tag == _INT:
                return _SCALARS.construct_yaml_int(node)
            if node.tag == _FLOAT:
                return _SCALARS.construct_yaml_float(node)
        except ValueError:
            return None
        return str(node.value) if node.tag == _STR else None

    def address(self, node: Node, path: str, *, any_port: bool = False) -> Address | None:
        text = self.text(node, path)
        if text is None:
            return None
        try:
            return parse_address(text, any_port=any_port)
        except AddressError as exc:
            self.fail(path, node, f"{exc.reason}, got {_describe(node)}")
            return None

    def opt(self, m: _Map, key: str, default: _T, read: Callable[[Node, str], _T | None]) -> _T:
        """``read`` the value at ``key``; ``default`` when absent, null or invalid."""
        node = m.get(key)
        if node is None:
            return default
        value = read(node, m.at(key))
        return default if value is None else value

    # -- top level ----------------------------------------------------------------

    def config(self, root: Node | None) -> Config:
        if root is None or _is_null(root):
            self.fail("", None, 'the file is empty; it needs at least "listeners"')
            return _DEFAULT_CONFIG
        m = self.mapping(
            root, "", _TOP_KEYS, later=_TOP_LATER, required=("listeners",), extensions=True
        )
        if m is None:
            return _DEFAULT_CONFIG
        workers = self.workers(m)
        shutdown_timeout = self.opt(
            m,
            "shutdown_timeout",
            _DEFAULT_CONFIG.shutdown_timeout,
            lambda node, path: self.duration(node, path, positive=False),
        )
        sample_backends = self.sample_backends(m)
        access_log = self.access_log(m.get("access_log"), m.at("access_log"))
        tracing = self.tracing(m.get("tracing"), m.at("tracing"))
        pools = self.pools(m.get("pools"), m.at("pools"), sample_backends)
        listeners_node = m.get("listeners")
        listeners: tuple[Listener, ...] = ()
        if listeners_node is not None:
            listeners = self.listeners(listeners_node, m.at("listeners"))
        if sample_backends > 0:
            pools[_SAMPLES_POOL] = _samples_pool(sample_backends)
        admin = self.admin(m.get("admin"), m.at("admin"), listeners)
        geo = self.opt(m, "geo", None, self.geo_lookup)
        if geo is None and m.get("geo") is None:
            for path, node in self._geo_routes:
                self.fail(
                    path,
                    node,
                    "a geo route needs the top-level geo section (how a client's region is found)",
                )
        cookie_key = self.opt(m, "cookie_key", None, self.cookie_key)
        return Config(
            listeners=listeners,
            pools=pools,
            workers=workers,
            shutdown_timeout=shutdown_timeout,
            sample_backends=sample_backends,
            access_log=access_log,
            tracing=tracing,
            admin=admin,
            geo=geo,
            cookie_key=cookie_key,
        )

    def workers(self, m: _Map) -> int | None:
        node = m.get("workers")
        if node is None:
            return _DEFAULT_CONFIG.workers
        if isinstance(node, ScalarNode) and node.tag == _STR and node.value == "auto":
            return None  # one per CPU, counted when the supervisor starts
        if isinstance(node, ScalarNode) and node.tag == _INT:
            count = self.integer(node, m.at("workers"), minimum=1)
            if count is not None and count > MAX_WORKERS:
                self.fail(m.at("workers"), node, f"must be at most {MAX_WORKERS}, got {count}")
                return _DEFAULT_CONFIG.workers
            return _DEFAULT_CONFIG.workers if count is None else count
        self.fail(
            m.at("workers"), node, f"must be a positive integer or auto, got {_describe(node)}"
        )
        return _DEFAULT_CONFIG.workers

    def sample_backends(self, m: _Map) -> int:
        node = m.get("sample_backends")
        if node is None:
            return 0
        count = self.integer(node, m.at("sample_backends"), minimum=0, maximum=_SAMPLES_MAX)
        if count is None:
            # The user still meant to have the pool: routes naming it should not
            # each get a second, misleading "no pool" error.
            self._pool_names.add(_SAMPLES_POOL)
            return 0
        if count > 0:
            self._pool_names.add(_SAMPLES_POOL)
            self._sample_ports = range(_SAMPLES_FIRST_PORT, _SAMPLES_FIRST_PORT + count)
        return count

    def log_path(self, node: Node, path: str) -> str | None:
        value = self.non_empty_text(node, path)
        if value is not None and value != "-":
            # Checked here so that --check catches it, not a traceback at start.
            folder = os.path.dirname(os.path.abspath(value))
            if not os.path.isdir(folder):
                self.fail(path, node, f"directory {_quote(folder)} does not exist")
                return None
        return value

    def access_log(self, node: Node | None, path: str) -> AccessLog:
        if node is None:
            return _DEFAULT_ACCESS_LOG
        m = self.mapping(node, path, _ACCESS_LOG_KEYS)
        if m is None:
            return _DEFAULT_ACCESS_LOG
        return AccessLog(
            format=self.opt(
                m,
                "format",
                _DEFAULT_ACCESS_LOG.format,
                lambda node, path: self.choice(node, path, _ACCESS_LOG_FORMATS),
            ),
            path=self.opt(m, "path", _DEFAULT_ACCESS_LOG.path, self.log_path),
        )

    def tracing(self, node: Node | None, path: str) -> Tracing:
        if node is None:
            return _DEFAULT_TRACING
        m = self.mapping(node, path, _TRACING_KEYS)
        if m is None:
            return _DEFAULT_TRACING
        return Tracing(
            request_id=self.opt(m, "request_id", _DEFAULT_TRACING.request_id, self.boolean),
            request_id_header=self.opt(
                m, "request_id_header", _DEFAULT_TRACING.request_id_header, self.header_name
            ),
            traceparent=self.opt(m, "traceparent", _DEFAULT_TRACING.traceparent, self.boolean),
        )

    def header_name(self, node: Node, path: str) -> str | None:
        text = self.text(node, path)
        if text is None:
            return None
        name = text.strip()
        if not _TOKEN.fullmatch(name):
            self.fail(path, node, f"{_quote(name)} is not a valid header name")
            return None
        if name.lower() in _RESERVED_HEADERS:
            self.fail(path, node, f"{_quote(name)} is a header the proxy manages itself")
            return None
        return name

    def admin(self, node: Node | None, path: str, listeners: Sequence[Listener]) -> Admin | None:
        if node is None:
            return None  # no admin section (or admin: null): no admin API server
        m = self.mapping(node, path, _ADMIN_KEYS)
        if m is None:
            return None
        bind = self.opt(
            m,
            "bind",
            _DEFAULT_ADMIN.bind,
            lambda node, path: self.address(node, path, any_port=True),
        )
        # The default address can clash too: then the error points at the section.
        self._check_admin_bind(bind, m.at("bind"), m.get("bind") or node, listeners)
        return Admin(
            bind=bind,
            token_env=self.opt(m, "token_env", _DEFAULT_ADMIN.token_env, self.env_name),
        )

    def _check_admin_bind(
        self, bind: Address, path: str, node: Node, listeners: Sequence[Listener]
    ) -> None:
        if bind.port == 0:  # the OS picks a free port: nothing to clash with
            return
        for index, listener in enumerate(listeners):
            other = listener.bind
            if other.port != bind.port or other.port == 0:
                continue
            if other.host == bind.host or {other.host, bind.host} & _WILDCARD_HOSTS:
                self.fail(
                    path,
                    node,
                    f"{_quote(str(bind))} is already used by listener {_quote(listener.name)}"
                    f" (listeners[{index}].bind {_quote(str(other))}); the admin API needs"
                    " an address of its own",
                )
                return
        ports = self._sample_ports
        if bind.port in ports and bind.host in _LOOPBACK_CLASH_HOSTS:
            self.fail(
                path,
                node,
                f"port {bind.port} is taken by the sample backends"
                f" ({_SAMPLES_HOST}:{ports.start}-{ports.stop - 1})",
            )

    def env_name(self, node: Node, path: str) -> str | None:
        value = self.text(node, path)
        if value is not None and not _ENV_NAME.fullmatch(value):
            self.fail(
                path,
                node,
                "must be the name of an environment variable (letters, digits and"
                f' "_", not starting with a digit), got {_describe(node)}',
            )
            return None
        return value

    def non_empty_text(self, node: Node, path: str) -> str | None:
        value = self.text(node, path)
        if value == "":
            self.fail(path, node, "must not be empty")
            return None
        return value

    # -- pools --------------------------------------------------------------------

    def pools(self, node: Node | None, path: str, sample_backends: int) -> dict[str, Pool]:
        if node is None:
            return {}
        m = self.mapping(node, path, None)
        if m is None:
            return {}
        self._pool_names.update(m.values)
        pools: dict[str, Pool] = {}
        for name, value in m.values.items():
            pool_path = m.at(name)
            key_node = m.keys[name]
            if not _NAME.fullmatch(name):
                self.fail(pool_path, key_node, f"pool names {_NAME_RULE}, got {_quote(name)}")
            if name == _SAMPLES_POOL and sample_backends > 0:
                self.fail(
                    pool_path,
                    key_node,
                    'the name "samples" is taken by the pool that sample_backends creates',
                )
            pools[name] = self.pool(name, value, pool_path)
        return pools

    def pool(self, name: str, node: Node, path: str) -> Pool:
        m = self.mapping(node, path, _POOL_KEYS, required=("backends",))
        if m is None:
            return _DEFAULT_POOL
        backends_node = m.get("backends")
        backends: tuple[Backend, ...] = ()
        if backends_node is not None:
            backends = self.backends(backends_node, m.at("backends"))
        balance = self.opt(
            m,
            "balance",
            _DEFAULT_POOL.balance,
            lambda node, path: self.choice(node, path, _BALANCE),
        )
        for key, algorithm in _BALANCE_ONLY.items():
            given = m.get(key)
            if given is not None and balance != algorithm:
                default = "" if m.get("balance") is not None else ", the default"
                self.fail(
                    m.at(key),
                    given,
                    f"only used with balance: {algorithm} (this pool balances by"
                    f" {balance}{default})",
                )
        return Pool(
            name=name,
            backends=backends,
            balance=balance,
            hash_key=self.opt(m, "hash_key", _DEFAULT_POOL.hash_key, self.hash_key),
            hash_balance_factor=self.opt(
                m, "hash_balance_factor", _DEFAULT_POOL.hash_balance_factor, self.balance_factor
            ),
            ewma_half_life=self.opt(
                m, "ewma_half_life", _DEFAULT_POOL.ewma_half_life, self.positive_duration
            ),
            slow_start=self.opt(
                m,
                "slow_start",
                _DEFAULT_POOL.slow_start,
                lambda node, path: self.duration(node, path, positive=False),
            ),
            health_check=self.health_check(m.get("health_check"), m.at("health_check")),
            outlier_detection=self.outlier_detection(
                m.get("outlier_detection"), m.at("outlier_detection")
            ),
            circuit_breaker=self.circuit_breaker(m.get("circuit_breaker"), m.at("circuit_breaker")),
            panic_threshold=self.opt(
                m,
                "panic_threshold",
                _DEFAULT_POOL.panic_threshold,
                lambda node, path: self.fraction(node, path, zero=True),
            ),
            limits=self.pool_limits(m.get("limits"), m.at("limits")),
            retries=self.retries(m.get("retries"), m.at("retries")),
            timeouts=self.pool_timeouts(m.get("timeouts"), m.at("timeouts")),
            keepalive=self.keepalive(m.get("keepalive"), m.at("keepalive")),
            upstream_tls=self.opt(m, "upstream_tls", None, self.upstream_tls),
            sticky=self.opt(m, "sticky", None, self.sticky),
        )

    def sticky(self, node: Node, path: str) -> Sticky | None:
        if isinstance(node, ScalarNode) and node.tag == _BOOL:
            # "sticky: true" takes every default; "false" is the same as leaving it out.
            return Sticky() if _SCALARS.construct_yaml_bool(node) else None
        m = self.mapping(node, path, _STICKY_KEYS)
        if m is None:
            return None
        return Sticky(
            cookie=self.opt(m, "cookie", _STICKY.cookie, self.cookie_name),
            ttl=self.opt(
                m, "ttl", _STICKY.ttl, lambda node, path: self.duration(node, path, positive=False)
            ),
            secure=self.opt(m, "secure", _STICKY.secure, self.boolean),
            strict=self.opt(m, "strict", _STICKY.strict, self.boolean),
        )

    def cookie_name(self, node: Node, path: str) -> str | None:
        text = self.text(node, path)
        if text is None:
            return None
        if not _TOKEN.fullmatch(text):
            self.fail(path, node, f"{_quote(text)} is not a valid cookie name")
            return None
        return text

    def upstream_tls(self, node: Node, path: str) -> UpstreamTls | None:
        errors = len(self.issues)
        m = self.mapping(node, path, _UPSTREAM_TLS_KEYS)
        if m is None:
            return None
        cfg = UpstreamTls(
            verify=self.opt(m, "verify", True, self.boolean),
            ca=self.opt(m, "ca", None, self.existing_file),
            sni=self.opt(m, "sni", None, self.non_empty_text),
            cert=self.opt(m, "cert", None, self.existing_file),
            key=self.opt(m, "key", None, self.existing_file),
        )
        if (cfg.cert is None) != (cfg.key is None) and len(self.issues) == errors:
            self.fail(path, node, "cert and key go together (a client certificate needs both)")
        if len(self.issues) != errors:
            return None
        from lbproxy.tls import TlsError, client_context

        try:
            client_context(cfg.verify, cfg.ca, cfg.cert, cfg.key)
        except TlsError as err:
            self.fail(path, node, str(err))
            return None
        return cfg

    def hash_key(self, node: Node, path: str) -> HashKey | None:
        text = self.text(node, path)
        if text is None:
            return None
        source, colon, name = text.partition(":")
        if not colon and source in _HASH_SOURCES:
            return HashKey(source)
        if colon and source == "path_segment":
            index = name.strip()
            if index.isascii() and index.isdigit() and int(index) < 64:
                return HashKey(source, str(int(index)))
            self.fail(path, node, f"path_segment needs an index from 0 to 63, got {_quote(name)}")
            return None
        if colon and source in _HASH_NAMED and name.strip():
            name = name.strip()
            if source == "header":
                if not _TOKEN.fullmatch(name):
                    self.fail(path, node, f"{_quote(name)} is not a valid header name")
                    return None
                name = name.lower()
            return HashKey(source, name)
        self.fail(
            path,
            node,
            "must be client_ip, path, path_segment:N, header:NAME, cookie:NAME or query:NAME,"
            f" got {_describe(node)}",
        )
        return None

    def balance_factor(self, node: Node, path: str) -> float | None:
        value = self._number_or_text(node)
        if isinstance(value, (int, float)) and value >= 1:
            return float(value)
        self.fail(
            path,
            node,
            "must be a number of at least 1 (1.25 lets a backend take 25% more than"
            f" the average), got {_describe(node)}",
        )
        return None

    def backends(self, node: Node, path: str) -> tuple[Backend, ...]:
        items = self.sequence(node, path)
        if items is None:
            return ()
        if not items:
            self.fail(path, node, "must list at least one backend")
        backends: list[Backend] = []
        first_use: dict[Address, str] = {}
        for index, item in enumerate(items):
            item_path = f"{path}[{index}]"
            if isinstance(item, ScalarNode) and item.tag == _STR:
                self.fail(
                    item_path,
                    item,
                    f"must be a mapping, got {_describe(item)}"
                    f" (write {{address: {_quote(str(item.value))}}})",
                )
                continue
            m = self.mapping(item, item_path, _BACKEND_KEYS, required=("address",))
            if m is None:
                continue
            address = self.opt(m, "address", None, self.address)
            if address is not None:
                if address in first_use:
                    self.fail(
                        m.at("address"),
                        m.get("address"),
                        f"{_quote(str(address))} is already used by {first_use[address]}",
                    )
                else:
                    first_use[address] = item_path
            backends.append(
                Backend(
                    address=address or _NO_ADDRESS,
                    weight=self.opt(
                        m,
                        "weight",
                        _DEFAULT_BACKEND.weight,
                        # 0 takes no new requests (a standby switched off);
                        # times WEIGHT_UNIT the ceiling is the balancers' MAX_WEIGHT.
                        lambda node, path: self.integer(
                            node, path, minimum=0, maximum=MAX_CONFIG_WEIGHT
                        ),
                    ),
                    zone=self.opt(m, "zone", _DEFAULT_BACKEND.zone, self.non_empty_text),
                    backup=self.opt(m, "backup", _DEFAULT_BACKEND.backup, self.boolean),
                )
            )
        return tuple(backends)

    def pool_timeouts(self, node: Node | None, path: str) -> PoolTimeouts:
        if node is None:
            return _DEFAULT_POOL_TIMEOUTS
        m = self.mapping(node, path, _POOL_TIMEOUT_KEYS)
        if m is None:
            return _DEFAULT_POOL_TIMEOUTS
        return PoolTimeouts(
            connect=self.opt(m, "connect", _DEFAULT_POOL_TIMEOUTS.connect, self.positive_duration),
            response=self.opt(
                m, "response", _DEFAULT_POOL_TIMEOUTS.response, self.positive_duration
            ),
        )

    def keepalive(self, node: Node | None, path: str) -> Keepalive:
        if node is None:
            return _DEFAULT_KEEPALIVE
        m = self.mapping(node, path, _KEEPALIVE_KEYS)
        if m is None:
            return _DEFAULT_KEEPALIVE
        return Keepalive(
            max_idle_per_backend=self.opt(
                m,
                "max_idle_per_backend",
                _DEFAULT_KEEPALIVE.max_idle_per_backend,
                lambda node, path: self.integer(node, path, minimum=0),
            ),
            idle_timeout=self.opt(
                m, "idle_timeout", _DEFAULT_KEEPALIVE.idle_timeout, self.positive_duration
            ),
        )

    def positive_duration(self, node: Node, path: str) -> float | None:
        return self.duration(node, path, positive=True)

    # -- pool resilience: health checks, outlier detection, breakers, limits, retries

    def section(self, node: Node, path: str, keys: Collection[str], off: str) -> _Map | None:
        """A feature's mapping; ``true``/``false`` get a hint on how to say what was meant."""
        if isinstance(node, ScalarNode) and node.tag == _BOOL:
            hint = off if not _SCALARS.construct_yaml_bool(node) else "write {} for the defaults"
            self.fail(path, node, f"must be a mapping, got {_describe(node)} ({hint})")
            return None
        return self.mapping(node, path, keys)

    def _bounded_int(
        self, minimum: int, maximum: int | None = None
    ) -> Callable[[Node, str], int | None]:
        return lambda node, path: self.integer(node, path, minimum=minimum, maximum=maximum)

    def _in_order(
        self,
        m: _Map,
        low_key: str,
        low: float,
        high_key: str,
        high: float,
        *,
        strict: bool,
        blame_high: bool,
    ) -> None:
        """Report ``low`` >= ``high`` (``low > high`` unless ``strict``) on a key the user wrote.

        With both written the error goes on the high key if ``blame_high``, else the low one.
        """
        if low < high or (low == high and not strict):
            return
        low_node = m.get(low_key)
        high_node = m.get(high_key)
        if high_node is not None and (blame_high or low_node is None):
            relation = "longer than" if strict else "at least"
            default = "" if low_node is not None else ", the default"
            self.fail(
                m.at(high_key),
                high_node,
                f"must be {relation} {low_key} ({_seconds(low)}{default}),"
                f" got {_describe(high_node)}",
            )
        elif low_node is not None:
            relation = "shorter than" if strict else "at most"
            default = "" if high_node is not None else ", the default"
            self.fail(
                m.at(low_key),
                low_node,
                f"must be {relation} {high_key} ({_seconds(high)}{default}),"
                f" got {_describe(low_node)}",
            )

    def health_check(self, node: Node | None, path: str) -> HealthCheck | None:
        if node is None:
            return None
        m = self.section(node, path, _HEALTH_CHECK_KEYS, "leave it out or write null for none")
        if m is None:
            return None
        d = _DEFAULT_HEALTH_CHECK
        threshold = self._bounded_int(1, 100)
        errors = len(self.issues)
        interval = self.opt(m, "interval", d.interval, self.positive_duration)
        timeout = self.opt(m, "timeout", d.timeout, self.positive_duration)
        if len(self.issues) == errors:
            self._in_order(
                m, "timeout", timeout, "interval", interval, strict=True, blame_high=False
            )
        return HealthCheck(
            path=self.opt(m, "path", d.path, self.check_path),
            interval=interval,
            timeout=timeout,
            healthy_threshold=self.opt(m, "healthy_threshold", d.healthy_threshold, threshold),
            unhealthy_threshold=self.opt(
                m, "unhealthy_threshold", d.unhealthy_threshold, threshold
            ),
            expect_status=self.opt(m, "expect_status", d.expect_status, self.expect_status),
            expect_body=self.opt(m, "expect_body", d.expect_body, self.expect_body),
            host=self.opt(m, "host", d.host, self.check_host),
        )

    def check_path(self, node: Node, path: str) -> str | None:
        text = self.text(node, path)
        if text is None:
            return None
        if not text.startswith("/"):
            self.fail(path, node, f'must start with "/", got {_describe(node)}')
            return None
        if not _CHECK_PATH.fullmatch(text):
            self.fail(
                path,
                node,
                f'must be a URL path of visible ASCII characters, without spaces or "#",'
                f" got {_describe(node)}",
            )
            return None
        return text

    def expect_status(self, node: Node, path: str) -> tuple[int, int] | None:
        text: str | None = None
        if isinstance(node, ScalarNode) and node.tag in (_STR, _INT):
            text = str(node.value)
        match = None if text is None else _STATUS_RANGE.fullmatch(text)
        if match is not None:
            low = int(match.group(1))
            high = low if match.group(2) is None else int(match.group(2))
            if 100 <= low <= high <= 599:
                return low, high
            if 100 <= high < low <= 599:
                self.fail(
                    path,
                    node,
                    f"must be a range from the lower status to the higher (like"
                    f' "{high}-{low}"), got {_describe(node)}',
                )
                return None
        hint = ""
        status_class = None if text is None else _STATUS_CLASS.fullmatch(text)
        if status_class is not None:
            hundreds = int(status_class.group(1)) * 100
            hint = f' (did you mean "{hundreds}-{hundreds + 99}"?)'
        self.fail(
            path,
            node,
            'must be a status like 200 or a range like "200-399", from 100 to 599,'
            f" got {_describe(node)}{hint}",
        )
        return None

    def expect_body(self, node: Node, path: str) -> str | None:
        text = self.non_empty_text(node, path)
        if text is not None and len(text.encode()) > HEALTH_CHECK_BODY_LIMIT:
            self.fail(
                path,
                node,
                "must be at most 64 KiB (only the first 64 KiB of the body are searched)",
            )
            return None
        return text

    def check_host(self, node: Node, path: str) -> str | None:
        """A Host header for health checks: a host name or address, optionally with a port."""
        text = self.non_empty_text(node, path)
        if text is None:
            return None
        has_port = "]:" in text if text.startswith("[") else ":" in text
        try:
            parse_address(text if has_port else f"{text}:80")
        except AddressError:
            self.fail(
                path,
                node,
                'must be a host name or address with an optional port (like "api.example.com",'
                f' "api.example.com:8080" or "[::1]:8080"), got {_describe(node)}',
            )
            return None
        return text

    def fraction(self, node: Node, path: str, *, zero: bool) -> float | None:
        """A share: a number from 0 to 1 or a percentage ("50%"); ``zero`` admits 0."""
        value: float | None = None
        raw = self._number_or_text(node)
        if isinstance(raw, (int, float)):
            value = float(raw)
        elif isinstance(raw, str):
            percent = _PERCENT.fullmatch(raw)
            plain = _PLAIN_NUMBER.fullmatch(raw)
            if percent is not None:
                value = float(Decimal(percent.group(1)) / 100)
            elif plain is not None:
                value = float(Decimal(plain.group(1)))
        if value is not None and (0 < value <= 1 or (zero and value == 0)):
            return value
        rule = "from 0 to 1" if zero else "above 0 and at most 1,"
        hint = ""
        if isinstance(raw, int) and 1 < raw <= 100:
            hint = f' (did you mean "{raw}%"?)'
        self.fail(
            path,
            node,
            f'must be a number {rule} or a percentage like "50%", got {_describe(node)}{hint}',
        )
        return None

    def whole_percent(self, node: Node, path: str) -> int | None:
        """0..100, as an integer or a string like "50%"."""
        if isinstance(node, ScalarNode) and node.tag == _STR:
            match = re.fullmatch(r"\s*(\d{1,3})\s*%\s*", str(node.value))
            if match is not None and int(match.group(1)) <= 100:
                return int(match.group(1))
        elif isinstance(node, ScalarNode) and node.tag == _INT:
            value = self._number_or_text(node)
            if isinstance(value, int) and 0 <= value <= 100:
                return value
        self.fail(
            path,
            node,
            f'must be an integer from 0 to 100 or a percentage like "50%", got {_describe(node)}',
        )
        return None

    def outlier_detection(self, node: Node | None, path: str) -> OutlierDetection | None:
        if node is None:
            return None
        m = self.section(node, path, _OUTLIER_KEYS, "leave it out or write null to turn it off")
        if m is None:
            return None
        d = _DEFAULT_OUTLIER
        errors = len(self.issues)
        base = self.opt(m, "base_ejection_time", d.base_ejection_time, self.positive_duration)
        most = self.opt(m, "max_ejection_time", d.max_ejection_time, self.positive_duration)
        if len(self.issues) == errors:
            self._in_order(
                m,
                "base_ejection_time",
                base,
                "max_ejection_time",
                most,
                strict=False,
                blame_high=True,
            )
        return OutlierDetection(
            consecutive_failures=self.opt(
                m, "consecutive_failures", d.consecutive_failures, self._bounded_int(1, 1000)
            ),
            base_ejection_time=base,
            max_ejection_time=most,
            max_ejection_percent=self.opt(
                m, "max_ejection_percent", d.max_ejection_percent, self.whole_percent
            ),
        )

    def circuit_breaker(self, node: Node | None, path: str) -> CircuitBreaker | None:
        if node is None:
            return None
        m = self.section(node, path, _BREAKER_KEYS, "leave it out or write null to turn it off")
        if m is None:
            return None
        d = _DEFAULT_BREAKER
        return CircuitBreaker(
            failure_rate=self.opt(
                m,
                "failure_rate",
                d.failure_rate,
                lambda node, path: self.fraction(node, path, zero=False),
            ),
            minimum_requests=self.opt(
                m, "minimum_requests", d.minimum_requests, self._bounded_int(1, 100_000)
            ),
            window=self.opt(m, "window", d.window, self.positive_duration),
            open_duration=self.opt(m, "open_duration", d.open_duration, self.positive_duration),
            half_open_requests=self.opt(
                m, "half_open_requests", d.half_open_requests, self._bounded_int(1, 1000)
            ),
        )

    def pool_limits(self, node: Node | None, path: str) -> PoolLimits | None:
        if node is None:
            return None
        m = self.section(node, path, _POOL_LIMIT_KEYS, "leave it out or write null for no limits")
        if m is None:
            return None
        d = _DEFAULT_POOL_LIMITS
        return PoolLimits(
            max_connections=self.opt(m, "max_connections", d.max_connections, self._bounded_int(1)),
            max_pending=self.opt(m, "max_pending", d.max_pending, self._bounded_int(0)),
            queue_timeout=self.opt(m, "queue_timeout", d.queue_timeout, self.positive_duration),
        )

    def retries(self, node: Node | None, path: str) -> Retries:
        d = _DEFAULT_RETRIES
        if node is None:
            return d
        m = self.section(node, path, _RETRY_KEYS, "write {attempts: 1} to turn retries off")
        if m is None:
            return d
        return Retries(
            attempts=self.opt(
                m,
                "attempts",
                d.attempts,
                lambda node, path: self.integer(
                    node,
                    path,
                    minimum=1,
                    maximum=10,
                    hint=" (every try counts, the first included: 1 means no retries)",
                ),
            ),
            on=self.opt(m, "on", d.on, self.retry_on),
            budget_ratio=self.opt(
                m,
                "budget_ratio",
                d.budget_ratio,
                lambda node, path: self.fraction(node, path, zero=True),
            ),
            non_idempotent=self.opt(m, "non_idempotent", d.non_idempotent, self.boolean),
            per_try_timeout=self.opt(
                m, "per_try_timeout", d.per_try_timeout, self.positive_duration
            ),
        )

    def retry_on(self, node: Node, path: str) -> tuple[str, ...] | None:
        items = self.sequence(node, path)
        if items is None:
            return None
        if not items:
            self.fail(
                path,
                node,
                "must list at least one failure to retry on (write attempts: 1 to turn"
                " retries off)",
            )
            return None
        reasons: dict[str, str] = {}  # reason -> path of its first mention
        for index, item in enumerate(items):
            item_path = f"{path}[{index}]"
            reason = self.retry_reason(item, item_path)
            if reason is None:
                continue
            if reason in reasons:
                self.fail(
                    item_path, item, f"{_quote(reason)} is already listed at {reasons[reason]}"
                )
                continue
            reasons[reason] = item_path
        return tuple(reasons) if len(reasons) == len(items) else None

    def retry_reason(self, node: Node, path: str) -> str | None:
        if isinstance(node, ScalarNode) and node.tag in (_STR, _INT):
            text = str(node.value).strip()
            if text in _RETRY_FAILURES:
                return text
            if text.isascii() and text.isdigit() and 500 <= int(text) <= 599:
                return str(int(text))
            hint = "" if text.isdigit() else _did_you_mean(text, _RETRY_FAILURES)
            self.fail(path, node, f"{_RETRY_ON_RULE}, got {_describe(node)}{hint}")
            return None
        self.fail(path, node, f"{_RETRY_ON_RULE}, got {_describe(node)}")
        return None

    # -- listeners ----------------------------------------------------------------

    def listeners(self, node: Node, path: str) -> tuple[Listener, ...]:
        items = self.sequence(node, path)
        if items is None:
            return ()
        if not items:
            self.fail(path, node, "must list at least one listener")
        listeners = (self.listener(item, f"{path}[{index}]") for index, item in enumerate(items))
        return tuple(listener for listener in listeners if listener is not None)

    def listener(self, node: Node, path: str) -> Listener | None:
        m = self.mapping(
            node, path, _LISTENER_KEYS, later=_LISTENER_LATER, required=("name", "bind", "routes")
        )
        if m is None:
            return None
        name = self.opt(m, "name", "", self.name)
        if name:
            self._claim(self._listener_names, name, f"listener name {_quote(name)}", m, "name")
        bind = self.opt(m, "bind", None, lambda node, path: self.address(node, path, any_port=True))
        if bind is not None:
            self._check_bind(bind, m)
        routes_node = m.get("routes")
        routes: tuple[Route, ...] = ()
        if routes_node is not None:
            routes = self.routes(routes_node, m.at("routes"))
        tls = self.opt(m, "tls", None, self.listener_tls)
        redirect = self.opt(m, "redirect_http_to", None, self.redirect_target)
        if redirect is not None and tls is not None:
            self.fail(
                m.at("redirect_http_to"),
                m.get("redirect_http_to"),
                "only on a plain listener (this one terminates TLS)",
            )
        hsts = self.opt(m, "hsts", None, self.non_empty_text)
        if hsts is not None and tls is None:
            self.fail(m.at("hsts"), m.get("hsts"), "only on a listener with tls")
        return Listener(
            name=name,
            bind=bind or _NO_ADDRESS,
            routes=routes,
            limits=self.listener_limits(m.get("limits"), m.at("limits")),
            timeouts=self.listener_timeouts(m.get("timeouts"), m.at("timeouts")),
            trusted_proxies=self.opt(m, "trusted_proxies", (), self.cidrs),
            tls=tls,
            redirect_http_to=redirect,
            hsts=hsts,
            proxy_protocol=self.opt(m, "proxy_protocol", False, self.boolean),
        )

    def listener_tls(self, node: Node, path: str) -> ListenerTls | None:
        errors = len(self.issues)
        m = self.mapping(node, path, _TLS_KEYS, required=("certificates",))
        if m is None:
            return None
        certs: list[tuple[str, str]] = []
        certs_node = m.get("certificates")
        items = self.sequence(certs_node, m.at("certificates")) if certs_node is not None else None
        if items is not None and not items:
            self.fail(m.at("certificates"), m.get("certificates"), "must list at least one")
        for index, item in enumerate(items or []):
            item_path = f"{m.at('certificates')}[{index}]"
            c = self.mapping(item, item_path, _CERT_KEYS, required=("cert", "key"))
            if c is None:
                continue
            cert = self.opt(c, "cert", None, self.existing_file)
            key = self.opt(c, "key", None, self.existing_file)
            if cert is not None and key is not None:
                certs.append((cert, key))
        alpn = self.opt(m, "alpn", _DEFAULT_TLS.alpn, self.alpn)
        client_ca = self.opt(m, "client_ca", None, self.existing_file)
        subject = self.opt(m, "client_subject_header", None, self.header_name)
        if subject is not None and client_ca is None:
            self.fail(
                m.at("client_subject_header"),
                m.get("client_subject_header"),
                "needs client_ca (there is no verified client certificate without it)",
            )
        min_version = self.opt(
            m,
            "min_version",
            _DEFAULT_TLS.min_version,
            lambda node, path: self.choice(node, path, _TLS_VERSIONS),
        )
        if not certs or len(self.issues) != errors:
            return None  # the section's own errors first: no certificate loading over them
        tls = ListenerTls(
            certificates=tuple(certs),
            min_version=min_version,
            alpn=alpn,
            client_ca=client_ca,
            client_subject_header=subject,
        )
        # Load them now, so that --check and a reload catch a key that does
        # not match its certificate, not the listener at start.
        from lbproxy.tls import CertificateStore, TlsError

        try:
            CertificateStore(tls_settings(tls))
        except TlsError as err:
            self.fail(m.at("certificates"), certs_node, str(err))
            return None
        return tls

    def existing_file(self, node: Node, path: str) -> str | None:
        value = self.non_empty_text(node, path)
        if value is not None and not os.path.isfile(value):
            self.fail(path, node, f"file {_quote(value)} does not exist")
            return None
        return value

    def alpn(self, node: Node, path: str) -> tuple[str, ...] | None:
        items = self.sequence(node, path)
        if items is None:
            return None
        names = []
        for index, item in enumerate(items):
            text = self.text(item, f"{path}[{index}]")
            if text is None:
                continue
            if text not in ("http/1.1", "http/1.0"):
                self.fail(f"{path}[{index}]", item, "lbproxy speaks http/1.1 (and http/1.0) only")
                continue
            names.append(text)
        if not items:
            self.fail(path, node, "must list at least one protocol")
        return tuple(names) or None

    def redirect_target(self, node: Node, path: str) -> str | None:
        text = self.non_empty_text(node, path)
        if text is None:
            return None
        if not text.startswith("https://") or len(text) <= len("https://"):
            self.fail(path, node, 'must be an https:// URL such as "https://{host}:8443"')
            return None
        rest = text[len("https://") :]
        try:
            rest.format(host="h", path="/")
        except (KeyError, IndexError, ValueError):
            self.fail(path, node, "may use only {host} and {path} as placeholders")
            return None
        return text

    def _claim(self, owners: dict[_K, str], value: _K, what: str, m: _Map, key: str) -> None:
        """Record that listener ``m.path`` uses ``value``; an error if another did first."""
        if value in owners:
            self.fail(m.at(key), m.get(key), f"{what} is already used by {owners[value]}")
        else:
            owners[value] = m.path

    def _check_bind(self, bind: Address, m: _Map) -> None:
        if bind.port != 0:  # every port-0 listener gets a port of its own
            self._claim(self._binds, bind, _quote(str(bind)), m, "bind")
        ports = self._sample_ports
        if bind.port in ports and bind.host in _LOOPBACK_CLASH_HOSTS:
            self.fail(
                m.at("bind"),
                m.get("bind"),
                f"port {bind.port} is taken by the sample backends"
                f" ({_SAMPLES_HOST}:{ports.start}-{ports.stop - 1})",
            )

    def listener_limits(self, node: Node | None, path: str) -> ListenerLimits:
        if node is None:
            return _DEFAULT_LIMITS
        m = self.mapping(node, path, _LISTENER_LIMIT_KEYS)
        if m is None:
            return _DEFAULT_LIMITS

        def positive_int(node: Node, path: str) -> int | None:
            return self.integer(node, path, minimum=1)

        return ListenerLimits(
            max_connections=self.opt(
                m, "max_connections", _DEFAULT_LIMITS.max_connections, positive_int
            ),
            max_header_bytes=self.opt(
                m,
                "max_header_bytes",
                _DEFAULT_LIMITS.max_header_bytes,
                lambda node, path: self.size(node, path, positive=True),
            ),
            max_headers=self.opt(m, "max_headers", _DEFAULT_LIMITS.max_headers, positive_int),
            # 0 is a real setting: a front for GET-only services refusing every body.
            max_body_bytes=self.opt(
                m,
                "max_body_bytes",
                _DEFAULT_LIMITS.max_body_bytes,
                lambda node, path: self.size(node, path, positive=False),
            ),
        )

    def listener_timeouts(self, node: Node | None, path: str) -> ListenerTimeouts:
        defaults = _DEFAULT_LISTENER_TIMEOUTS
        if node is None:
            return defaults
        m = self.mapping(node, path, _LISTENER_TIMEOUT_KEYS)
        if m is None:
            return defaults
        return ListenerTimeouts(
            header=self.opt(m, "header", defaults.header, self.positive_duration),
            body=self.opt(m, "body", defaults.body, self.positive_duration),
            idle=self.opt(m, "idle", defaults.idle, self.positive_duration),
        )

    def cidrs(self, node: Node, path: str) -> tuple[str, ...] | None:
        items = self.sequence(node, path)
        if items is None:
            return None
        networks: dict[str, None] = {}  # ordered set: duplicates are harmless
        for index, item in enumerate(items):
            item_path = f"{path}[{index}]"
            text = self.text(item, item_path)
            if text is None:
                continue
            try:
                network = ipaddress.ip_network(text, strict=False)
            except ValueError:
                self.fail(
                    item_path,
                    item,
                    f"not a CIDR (like 10.0.0.0/8 or 2001:db8::/32), got {_describe(item)}",
                )
                continue
            networks[str(network)] = None
        return tuple(networks)

    # -- routes -------------------------------------------------------------------

    def routes(self, node: Node, path: str) -> tuple[Route, ...]:
        items = self.sequence(node, path)
        if items is None:
            return ()
        if not items:
            self.fail(path, node, "must list at least one route")
        routes = (self.route(item, f"{path}[{index}]") for index, item in enumerate(items))
        return tuple(route for route in routes if route is not None)

    def route(self, node: Node, path: str) -> Route | None:
        m = self.mapping(node, path, _ROUTE_KEYS)
        if m is None:
            return None
        match = self.route_match(m.get("match"), m.at("match"))
        targets = [key for key in m.present if key in _ROUTE_TARGETS]
        if not targets:
            self.fail(path, node, 'has no target (add "pool: NAME")')
            return Route(match=match, pool="")
        if len(targets) > 1:
            self.fail(
                path,
                node,
                f"has {len(targets)} targets ({', '.join(targets)}); a route has exactly one",
            )
            return Route(match=match, pool="")
        kind = targets[0]
        target_node = m.get(kind)
        assert target_node is not None
        if kind == "pool":
            return Route(match=match, pool=self.opt(m, "pool", "", self.pool_ref))
        target: Target | None
        if kind == "geo":
            target = self.geo_target(target_node, m.at("geo"))
            if target is not None:
                self._geo_routes.append((m.at("geo"), target_node))
        elif kind == "shard":
            target = self.shard_target(target_node, m.at("shard"))
        elif kind == "read_write":
            target = self.read_write_target(target_node, m.at("read_write"))
        else:
            target = self.split_target(target_node, m.at("split"))
        return Route(match=match, pool="", target=target)

    def pool_ref(self, node: Node, path: str) -> str | None:
        """The name of a pool defined under ``pools``."""
        name = self.text(node, path)
        if name is None:
            return None
        if name not in self._pool_names:
            hint = _did_you_mean(name, self._pool_names)
            self.fail(path, node, f"no pool named {_quote(name)}{hint}")
            return None
        return name

    # -- route targets other than a pool ---------------------------------------------

    def geo_target(self, node: Node, path: str) -> GeoTarget | None:
        m = self.mapping(node, path, _GEO_TARGET_KEYS, required=("regions", "default"))
        if m is None:
            return None
        regions_node = m.get("regions")
        if regions_node is None:
            return None
        rm = self.mapping(regions_node, m.at("regions"), None)
        if rm is None:
            return None
        if not rm.present:
            self.fail(m.at("regions"), regions_node, "must name at least one region")
            return None
        errors = len(self.issues)
        names = list(rm.present)
        found: list[tuple[str, str, list[tuple[str, Node]]]] = []
        for name in names:
            rpath = rm.at(name)
            if not _NAME.fullmatch(name):
                self.fail(rpath, rm.keys[name], f"{_quote(name)} is not a valid region name")
                continue
            r = self.mapping(rm.values[name], rpath, _GEO_REGION_KEYS, required=("pool",))
            if r is None:
                continue
            pool = self.opt(r, "pool", "", self.pool_ref)
            failover: list[tuple[str, Node]] = []
            fnode = r.get("failover")
            if fnode is not None:
                for index, item in enumerate(self.sequence(fnode, r.at("failover")) or ()):
                    other = self.text(item, f"{r.at('failover')}[{index}]")
                    if other is not None:
                        failover.append((other, item))
            found.append((name, pool, failover))
        for name, _, failover in found:
            seen: set[str] = set()
            for index, (other, item) in enumerate(failover):
                fpath = f"{rm.at(name)}.failover[{index}]"
                if other not in names:
                    hint = _did_you_mean(other, names)
                    self.fail(fpath, item, f"no region named {_quote(other)}{hint}")
                elif other == name:
                    self.fail(fpath, item, "a region does not fail over to itself")
                elif other in seen:
                    self.fail(fpath, item, f"region {_quote(other)} is listed twice")
                seen.add(other)
        default = self.opt(m, "default", "", self.text)
        if default and default not in names:
            hint = _did_you_mean(default, names)
            self.fail(m.at("default"), m.get("default"), f"no region named {_quote(default)}{hint}")
        if len(self.issues) != errors:
            return None
        return GeoTarget(
            regions=tuple(
                GeoRegion(name, pool, tuple(o for o, _ in failover))
                for name, pool, failover in found
            ),
            default=default,
        )

    def shard_target(self, node: Node, path: str) -> ShardTarget | None:
        m = self.mapping(node, path, _SHARD_KEYS, required=("key", "strategy"))
        if m is None:
            return None
        errors = len(self.issues)
        key = self.opt(m, "key", None, self.hash_key)
        strategy = self.opt(
            m, "strategy", "", lambda node, path: self.choice(node, path, _SHARD_STRATEGIES)
        )
        if not strategy:
            return None
        for name, only in _SHARD_ONLY.items():
            given = m.get(name)
            if given is not None and only != strategy:
                self.fail(m.at(name), given, f"only used with strategy: {only}")
        needed = next(k for k, v in _SHARD_ONLY.items() if v == strategy)
        if m.get(needed) is None:
            self.fail(path, node, f"strategy {strategy} needs {needed}")
            return None
        pools: tuple[str, ...] = ()
        ranges: tuple[ShardRange, ...] = ()
        directory: str | None = None
        if strategy == "hash":
            pools = self.opt(m, "pools", (), self.pool_list)
        elif strategy == "range":
            ranges = self.opt(m, "ranges", (), self.shard_ranges)
        else:
            directory = self.opt(m, "directory", None, self.shard_directory)
        if len(self.issues) != errors or key is None:
            return None
        return ShardTarget(
            key=key, strategy=strategy, pools=pools, ranges=ranges, directory=directory
        )

    def pool_list(self, node: Node, path: str) -> tuple[str, ...] | None:
        items = self.sequence(node, path)
        if items is None:
            return None
        if not items:
            self.fail(path, node, "must name at least one pool")
            return None
        names: list[str] = []
        for index, item in enumerate(items):
            name = self.pool_ref(item, f"{path}[{index}]")
            if name is None:
                continue
            if name in names:
                self.fail(f"{path}[{index}]", item, f"pool {_quote(name)} is listed twice")
                continue
            names.append(name)
        return tuple(names)

    def shard_ranges(self, node: Node, path: str) -> tuple[ShardRange, ...] | None:
        items = self.sequence(node, path)
        if items is None:
            return None
        if not items:
            self.fail(path, node, "must list at least one range")
            return None
        ranges: list[ShardRange] = []
        previous: int | None = None
        for index, item in enumerate(items):
            ipath = f"{path}[{index}]"
            r = self.mapping(item, ipath, _RANGE_KEYS, required=("pool",))
            if r is None:
                continue
            pool = self.opt(r, "pool", "", self.pool_ref)
            upto_node = r.get("upto")
            upto: int | None = None
            if upto_node is not None:
                upto = self.integer(upto_node, r.at("upto"), minimum=1)
                if upto is None:
                    continue
                if previous is not None and upto <= previous:
                    self.fail(
                        r.at("upto"),
                        upto_node,
                        f"ranges go up: {upto} is not above the previous upto ({previous})",
                    )
                previous = upto
            elif index != len(items) - 1:
                self.fail(ipath, item, "only the last range may leave out upto (open-ended)")
            ranges.append(ShardRange(upto, pool))
        return tuple(ranges)

    def shard_directory(self, node: Node, path: str) -> str | None:
        name = self.existing_file(node, path)
        if name is None:
            return None
        from lbproxy.routing.shard import Directory, DirectoryError

        try:
            Directory(name, known_pools=self._pool_names)
        except (DirectoryError, OSError) as err:
            self.fail(path, node, str(err))
            return None
        return name

    def read_write_target(self, node: Node, path: str) -> ReadWriteTarget | None:
        m = self.mapping(node, path, _READ_WRITE_KEYS, required=("read", "write"))
        if m is None:
            return None
        errors = len(self.issues)
        target = ReadWriteTarget(
            read=self.opt(m, "read", "", self.pool_ref),
            write=self.opt(m, "write", "", self.pool_ref),
            stick_after_write=self.opt(
                m,
                "stick_after_write",
                0.0,
                lambda node, path: self.duration(node, path, positive=False),
            ),
            cookie=self.opt(m, "cookie", "lbp_rw", self.cookie_name),
        )
        return target if len(self.issues) == errors else None

    def split_target(self, node: Node, path: str) -> SplitTarget | None:
        # Either the list of {pool, weight} itself, or {pools: [...], sticky, cookie}.
        errors = len(self.issues)
        sticky = False
        cookie = "lbp_split"
        items_node: Node | None = node
        items_path = path
        if isinstance(node, MappingNode):
            m = self.mapping(node, path, _SPLIT_KEYS, required=("pools",))
            if m is None:
                return None
            sticky = self.opt(m, "sticky", False, self.boolean)
            cookie = self.opt(m, "cookie", cookie, self.cookie_name)
            items_node = m.get("pools")
            items_path = m.at("pools")
        if items_node is None:
            return None
        items = self.sequence(items_node, items_path)
        if items is None:
            return None
        if not items:
            self.fail(items_path, items_node, "must list at least one pool")
            return None
        pools: list[tuple[str, int]] = []
        for index, item in enumerate(items):
            ipath = f"{items_path}[{index}]"
            r = self.mapping(item, ipath, _SPLIT_ITEM_KEYS, required=("pool", "weight"))
            if r is None:
                continue
            pool = self.opt(r, "pool", "", self.pool_ref)
            weight = self.opt(
                r,
                "weight",
                -1,
                lambda node, path: self.integer(node, path, minimum=0, maximum=MAX_CONFIG_WEIGHT),
            )
            if pool and any(p == pool for p, _ in pools):
                self.fail(r.at("pool"), r.get("pool"), f"pool {_quote(pool)} is listed twice")
                continue
            pools.append((pool, weight))
        if len(self.issues) == errors and not any(w > 0 for _, w in pools):
            self.fail(items_path, items_node, "at least one weight must be above 0")
        if len(self.issues) != errors:
            return None
        return SplitTarget(pools=tuple(pools), sticky=sticky, cookie=cookie)

    # -- top-level geo lookup and cookie key -------------------------------------------

    def geo_lookup(self, node: Node, path: str) -> GeoLookup | None:
        m = self.mapping(node, path, _GEO_LOOKUP_KEYS)
        if m is None:
            return None
        errors = len(self.issues)
        lookup = GeoLookup(
            trust_header=self.opt(m, "trust_header", None, self.header_name),
            networks=self.opt(m, "networks", (), self.region_networks),
            database=self.opt(m, "database", None, self.geo_database),
            countries=self.opt(
                m, "countries", (), lambda node, path: self.region_codes(node, path, None)
            ),
            continents=self.opt(
                m, "continents", (), lambda node, path: self.region_codes(node, path, _CONTINENTS)
            ),
        )
        no_database = (lookup.countries or lookup.continents) and lookup.database is None
        if no_database and len(self.issues) == errors:
            self.fail(path, node, "countries and continents need a database to look up")
        return lookup if len(self.issues) == errors else None

    def region_networks(self, node: Node, path: str) -> tuple[tuple[str, str], ...] | None:
        m = self.mapping(node, path, None)
        if m is None:
            return None
        out: list[tuple[str, str]] = []
        seen: dict[str, str] = {}
        for text in m.present:
            npath = m.at(text)
            try:
                network = ipaddress.ip_network(text, strict=True)
            except ValueError as err:
                self.fail(
                    npath, m.keys[text], f"not a CIDR (like 10.1.0.0/16 or 2001:db8::/32): {err}"
                )
                continue
            region = self.text(m.values[text], npath)
            if region is None:
                continue
            key = str(network)
            if key in seen:
                self.fail(npath, m.keys[text], f"network {key} is listed twice (as {seen[key]})")
                continue
            seen[key] = text
            out.append((key, region))
        return tuple(out)

    def region_codes(
        self, node: Node, path: str, allowed: Sequence[str] | None
    ) -> tuple[tuple[str, str], ...] | None:
        """``{region: [CODE, ...]}`` as (code, region) pairs; a code in one region only."""
        m = self.mapping(node, path, None)
        if m is None:
            return None
        out: list[tuple[str, str]] = []
        owner: dict[str, str] = {}
        for region in m.present:
            items = self.sequence(m.values[region], m.at(region))
            for index, item in enumerate(items or ()):
                ipath = f"{m.at(region)}[{index}]"
                code = self.text(item, ipath)
                if code is None:
                    continue
                code = code.strip().upper()
                if allowed is not None and code not in allowed:
                    self.fail(ipath, item, f"not a continent code ({', '.join(allowed)})")
                    continue
                if allowed is None and not (len(code) == 2 and code.isascii() and code.isalpha()):
                    self.fail(ipath, item, f"not an ISO 3166 country code (like DE), got {code!r}")
                    continue
                if code in owner:
                    self.fail(ipath, item, f"{code} is already in region {_quote(owner[code])}")
                    continue
                owner[code] = region
                out.append((code, region))
        return tuple(out)

    def geo_database(self, node: Node, path: str) -> str | None:
        name = self.existing_file(node, path)
        if name is None:
            return None
        import maxminddb

        try:
            maxminddb.open_database(name).close()
        except (OSError, ValueError, maxminddb.InvalidDatabaseError) as err:
            self.fail(path, node, f"{_quote(name)} is not a MaxMind DB: {err}")
            return None
        return name

    def cookie_key(self, node: Node, path: str) -> str | None:
        text = self.text(node, path)
        if text is not None and len(text) < MIN_COOKIE_KEY:
            self.fail(path, node, f"must be at least {MIN_COOKIE_KEY} characters")
            return None
        return text

    def route_match(self, node: Node | None, path: str) -> RouteMatch:
        if node is None:
            return RouteMatch()
        m = self.mapping(node, path, _MATCH_KEYS)
        if m is None:
            return RouteMatch()
        methods_node = m.get("methods")
        return RouteMatch(
            host=self.opt(m, "host", "", self.match_host) or None,
            path_prefix=self.opt(m, "path_prefix", None, self.path_prefix),
            methods=None if methods_node is None else self.methods(methods_node, m.at("methods")),
            headers=self.match_headers(m.get("headers"), m.at("headers")),
        )

    def match_host(self, node: Node, path: str) -> str | None:
        """Lower-cased host or ``*.suffix``; "" for ``*`` (any host, as if omitted)."""
        text = self.text(node, path)
        if text is None:
            return None
        host = text.lower()
        if host == "*":
            return ""
        wildcard = host.startswith("*.")
        bare = host[2:] if wildcard else host
        if bare.startswith("[") and bare.endswith("]") and not wildcard:
            # Stored as written: the router compares it with the Host header verbatim.
            try:
                ipaddress.IPv6Address(bare[1:-1])
            except ValueError:
                pass
            else:
                return host
        elif is_host_name(bare):
            return host
        port_hint = " (without a port)" if re.search(r":\d*$", bare) else ""
        self.fail(
            path,
            node,
            f'must be a host name like "api.example.com" or "*.example.com"{port_hint},'
            f" got {_describe(node)}",
        )
        return None

    def path_prefix(self, node: Node, path: str) -> str | None:
        text = self.text(node, path)
        if text is None:
            return None
        if not text.startswith("/"):
            self.fail(path, node, f'must start with "/", got {_describe(node)}')
            return None
        if _PATH_FORBIDDEN.search(text):
            self.fail(
                path, node, f'must be a URL path without spaces, "?" or "#", got {_describe(node)}'
            )
            return None
        return text

    def methods(self, node: Node, path: str) -> tuple[str, ...] | None:
        items = self.sequence(node, path)
        if items is None:
            return None
        if not items:
            self.fail(path, node, "must list at least one method (leave methods out to match any)")
            return None
        methods: dict[str, None] = {}
        for index, item in enumerate(items):
            item_path = f"{path}[{index}]"
            text = self.text(item, item_path)
            if text is None:
                continue
            if not _TOKEN.fullmatch(text):
                self.fail(item_path, item, f"not an HTTP method, got {_describe(item)}")
                continue
            methods[text.upper()] = None
        return tuple(methods)

    def match_headers(self, node: Node | None, path: str) -> tuple[tuple[str, str], ...]:
        if node is None:
            return ()
        m = self.mapping(node, path, None)
        if m is None:
            return ()
        headers: dict[str, str] = {}
        first_line: dict[str, int] = {}
        for name, value_node in m.values.items():
            header_path = m.at(name)
            key_node = m.keys[name]
            if not _TOKEN.fullmatch(name):
                self.fail(header_path, key_node, f"not an HTTP header name, got {_quote(name)}")
                continue
            lowered = name.lower()
            if lowered in first_line:
                self.fail(
                    header_path,
                    key_node,
                    f"duplicate header (first at line {first_line[lowered]};"
                    " header names ignore case)",
                )
                continue
            first_line[lowered] = _line(key_node)
            value = self.text(value_node, header_path)
            if value is not None:
                headers[lowered] = value
        return tuple(headers.items())


def _samples_pool(count: int) -> Pool:
    backends = tuple(
        Backend(Address(_SAMPLES_HOST, _SAMPLES_FIRST_PORT + index)) for index in range(count)
    )
    return Pool(name=_SAMPLES_POOL, backends=backends, balance="round_robin")
