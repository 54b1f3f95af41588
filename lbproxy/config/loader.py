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
from typing import TypeVar, cast

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from lbproxy.config.addresses import AddressError, is_host_name, parse_address
from lbproxy.config.errors import ConfigError
from lbproxy.config.model import (
    AccessLog,
    Address,
    Backend,
    Config,
    HashKey,
    Keepalive,
    Listener,
    ListenerLimits,
    ListenerTimeouts,
    Pool,
    PoolTimeouts,
    Route,
    RouteMatch,
)
from lbproxy.config.units import UnitError, parse_duration, parse_size

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

_TOP_KEYS = ("workers", "shutdown_timeout", "sample_backends", "listeners", "pools", "access_log")
_TOP_LATER = ("geo", "cluster", "admin")
_LISTENER_KEYS = ("name", "bind", "limits", "timeouts", "trusted_proxies", "routes")
_LISTENER_LATER = ("tls", "redirect_http_to", "hsts", "proxy_protocol")
_LISTENER_LIMIT_KEYS = ("max_connections", "max_header_bytes", "max_headers", "max_body_bytes")
_LISTENER_TIMEOUT_KEYS = ("header", "body", "idle")
_ROUTE_KEYS = ("match", "pool")
_ROUTE_LATER = ("geo", "shard", "read_write", "split")
_ROUTE_TARGETS = ("pool", *_ROUTE_LATER)
_MATCH_KEYS = ("host", "path_prefix", "methods", "headers")
_POOL_KEYS = (
    "balance",
    "backends",
    "hash_key",
    "hash_balance_factor",
    "ewma_half_life",
    "slow_start",
    "timeouts",
    "keepalive",
)
_POOL_LATER = (
    "health_check",
    "outlier_detection",
    "circuit_breaker",
    "panic_threshold",
    "limits",
    "retries",
    "sticky",
    "upstream_tls",
)
_POOL_TIMEOUT_KEYS = ("connect", "response")
_KEEPALIVE_KEYS = ("max_idle_per_backend", "idle_timeout")
_BACKEND_KEYS = ("address", "weight", "zone", "backup")
_ACCESS_LOG_KEYS = ("format", "path")

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
# Config weights; the balancers work in WEIGHT_UNIT steps of these.
MAX_CONFIG_WEIGHT = 1000
_MULTI_WORKER = "more than one worker process is not supported yet in this version of lbproxy"
_ACCESS_LOG_FORMATS = ("json", "combined", "off")

# A "later" key set to one of these is the default, so accepting it changes nothing.
# Only proxy_protocol has a documented off value besides null; for the others
# (health_check, retries, ...) the eventual default may well be "on".
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
_DEFAULT_LIMITS = ListenerLimits()
_DEFAULT_LISTENER_TIMEOUTS = ListenerTimeouts()
_DEFAULT_BACKEND = Backend(Address("", 0))
_DEFAULT_POOL = Pool("", ())
_DEFAULT_POOL_TIMEOUTS = PoolTimeouts()
_DEFAULT_KEEPALIVE = Keepalive()
_DEFAULT_ACCESS_LOG = AccessLog()
_NO_ADDRESS = _DEFAULT_BACKEND.address

# ---------------------------------------------------------------------------
# Public entry points


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
        self, node: Node, path: str, *, minimum: int, maximum: int | None = None
    ) -> int | None:
        value: int | None = None
        if isinstance(node, ScalarNode) and node.tag == _INT:
            try:
                value = _SCALARS.construct_yaml_int(node)
            except ValueError:  # an explicit `!!int abc`
                value = None
        if value is None or value < minimum or (maximum is not None and value > maximum):
            expected = _int_expectation(minimum, maximum)
            self.fail(path, node, f"must be {expected}, got {_describe(node)}")
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
        pools = self.pools(m.get("pools"), m.at("pools"), sample_backends)
        listeners_node = m.get("listeners")
        listeners: tuple[Listener, ...] = ()
        if listeners_node is not None:
            listeners = self.listeners(listeners_node, m.at("listeners"))
        if sample_backends > 0:
            pools[_SAMPLES_POOL] = _samples_pool(sample_backends)
        return Config(
            listeners=listeners,
            pools=pools,
            workers=workers,
            shutdown_timeout=shutdown_timeout,
            sample_backends=sample_backends,
            access_log=access_log,
        )

    def workers(self, m: _Map) -> int | None:
        node = m.get("workers")
        if node is None:
            return _DEFAULT_CONFIG.workers
        if isinstance(node, ScalarNode) and node.tag == _STR and node.value == "auto":
            self.fail(m.at("workers"), node, _MULTI_WORKER)
            return _DEFAULT_CONFIG.workers
        if isinstance(node, ScalarNode) and node.tag == _INT:
            count = self.integer(node, m.at("workers"), minimum=1)
            if count is not None and count > 1:
                self.fail(m.at("workers"), node, _MULTI_WORKER)
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
        m = self.mapping(node, path, _POOL_KEYS, later=_POOL_LATER, required=("backends",))
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
            timeouts=self.pool_timeouts(m.get("timeouts"), m.at("timeouts")),
            keepalive=self.keepalive(m.get("keepalive"), m.at("keepalive")),
        )

    def hash_key(self, node: Node, path: str) -> HashKey | None:
        text = self.text(node, path)
        if text is None:
            return None
        source, colon, name = text.partition(":")
        if not colon and source in _HASH_SOURCES:
            return HashKey(source)
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
            "must be client_ip, path, header:NAME, cookie:NAME or query:NAME,"
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
        return Listener(
            name=name,
            bind=bind or _NO_ADDRESS,
            routes=routes,
            limits=self.listener_limits(m.get("limits"), m.at("limits")),
            timeouts=self.listener_timeouts(m.get("timeouts"), m.at("timeouts")),
            trusted_proxies=self.opt(m, "trusted_proxies", (), self.cidrs),
        )

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
        m = self.mapping(node, path, _ROUTE_KEYS, later=_ROUTE_LATER)
        if m is None:
            return None
        match = self.route_match(m.get("match"), m.at("match"))
        targets = [key for key in m.present if key in _ROUTE_TARGETS]
        if not targets:
            self.fail(path, node, 'has no target (add "pool: NAME")')
        elif len(targets) > 1:
            self.fail(
                path,
                node,
                f"has {len(targets)} targets ({', '.join(targets)}); a route has exactly one",
            )
        pool = self.opt(m, "pool", "", self.text)
        if pool and pool not in self._pool_names:
            hint = _did_you_mean(pool, self._pool_names)
            self.fail(m.at("pool"), m.get("pool"), f"no pool named {_quote(pool)}{hint}")
        return Route(match=match, pool=pool)

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
