"""Route targets other than a pool: geo, shard, read/write and split.

The router maps a request to a route's target. For ``pool:`` routes that is
the pool itself and nothing here runs. For the others the client calls
``pick(ex, headers, peer, trusted, trusted_table)`` (``choose``, or its
compiled version where there is one) once per request,
after the exchange is made and before it starts: the chooser returns the
pool (and sets on ``ex`` what the access log or the response needs:
regions, a Set-Cookie line), or None with a local answer
(``ex.local_status``/``ex.reason``) when no pool can be named. The client
passes what it knows of its peer (its address, whether it is one of the
listener's ``trusted_proxies``, and their table) as arguments rather than
have choosers read them off ``ex.client``: each such read is an attribute
lookup on an extension type, and geo routes make several per request.

Choosers look their pools up by name in the listener's current pool table
(``self.pools``), so a pool replaced at run time (a backend added through
the admin API) is picked up without rebuilding them, and keeps the state an
operator set (split weights). A reload from the file makes new choosers:
the file decides again, as it does for backend weights.
"""

from __future__ import annotations

import math
import random
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from time import monotonic, time
from typing import TYPE_CHECKING, Any

from lbproxy._fast import load as _load_fast
from lbproxy.balance.keys import key_extractor
from lbproxy.config.model import (
    GeoTarget,
    ReadWriteTarget,
    Route,
    ShardTarget,
    SplitTarget,
)
from lbproxy.cookies import CookieSigner, find_cookie, set_cookie_line
from lbproxy.routing.shard import Directory, ShardChooser, WeightedChoice

if TYPE_CHECKING:
    from lbproxy.http.exchange import Exchange
    from lbproxy.http.listener import ListenerRuntime
    from lbproxy.http.pool import PoolRuntime
    from lbproxy.routing.geo import GeoResolver

__all__ = [
    "GeoChooser",
    "ReadWriteChooser",
    "ShardChooserRuntime",
    "SplitChooser",
    "TargetEnv",
    "build_targets",
    "client_address",
]

Headers = Sequence[tuple[bytes, bytes]]
# Compiled: geo routes read X-Forwarded-For on every request.
_cidr = _load_fast("cidr")
_forwarded = _cidr.forwarded_client
_geopick = _load_fast("geopick")
# Methods that read (RFC 9110 9.2.1): served by replicas.
SAFE_METHODS = frozenset({b"GET", b"HEAD", b"OPTIONS"})


class TargetEnv:
    """What choosers share within one proxy: the cookie signer and the geo
    resolver (None without a top-level ``geo``)."""

    __slots__ = ("geo", "signer")

    def __init__(self, signer: CookieSigner, geo: GeoResolver | None) -> None:
        self.signer = signer
        self.geo = geo


def client_address(peer: bytes, trusted: bool, headers: Headers, table: Any) -> bytes:
    """The address a request comes from: the peer, or, when the peer is a
    trusted proxy, the nearest address in X-Forwarded-For that is not one
    (``table``: the listener's trusted_proxies; see cidr's forwarded_client)."""
    if not trusted:
        return peer
    found: bytes = _forwarded(peer, headers, table)
    return found


class _Chooser(ABC):
    """What every route target does: choose a pool per request, and say
    which it would choose for /api/explain.

    The client calls ``pick``: ``choose`` itself, or where a target has a
    compiled version of it, that (GeoChooser's lbproxy._fast.geopick). A
    target that can read the request's field lines in place, without their
    (name, value) list, also has ``pick_lines(ex, data, start, stop, peer,
    trusted, trusted_table)``, the lines being ``data[start:stop]``; the
    client calls that when it has no list (ClientConnection.on_head)."""

    __slots__ = ("pick", "pick_lines", "pools")

    def __init__(self, pools: Mapping[str, PoolRuntime]) -> None:
        self.pools = pools
        self.pick: Callable[
            [Exchange, Headers, bytes, bool, Any], PoolRuntime | None
        ] = self.choose
        self.pick_lines: (
            Callable[[Exchange, bytes, int, int, bytes, bool, Any], PoolRuntime | None] | None
        ) = None

    @abstractmethod
    def choose(
        self, ex: Exchange, headers: Headers, peer: bytes, trusted: bool, trusted_table: Any
    ) -> PoolRuntime | None:
        """The pool for ``ex``, or None with a local answer (``ex.local_status``)."""

    @abstractmethod
    def explain(self, q: Query) -> tuple[str | None, str, dict[str, Any]]:
        """For /api/explain, without changing anything: the pool a request
        like ``q`` would go to (None: none, or chosen at random), why, and
        what the target looked at."""


class Query:
    """A request as /api/explain describes it (lbproxy/explain.py)."""

    __slots__ = ("client_ip", "headers", "lr", "method", "path")

    def __init__(
        self, method: bytes, path: bytes, headers: Headers, client_ip: bytes, lr: ListenerRuntime
    ) -> None:
        self.method = method
        self.path = path
        self.headers = headers
        self.client_ip = client_ip
        self.lr = lr  # its trusted_proxies decide which X-Forwarded-For hops count


class GeoChooser(_Chooser):
    """The client's region's pool; while it has no eligible backend, the
    first region in its failover list whose pool has one."""

    __slots__ = ("by_code", "default", "geo", "names", "order")

    def __init__(self, cfg: GeoTarget, pools: Mapping[str, PoolRuntime], env: TargetEnv) -> None:
        super().__init__(pools)
        self.geo = env.geo
        self.default = cfg.default
        by_name = {r.name: r for r in cfg.regions}
        self.names = frozenset(by_name)
        # Per client region: (region name as bytes, pool name) in the order tried.
        self.order: dict[str, tuple[tuple[bytes, str], ...]] = {
            r.name: tuple(
                (name.encode(), by_name[name].pool) for name in (r.name, *r.failover)
            )
            for r in cfg.regions
        }
        # The same, per code of the resolver (GeoResolver.code), so that the
        # data path goes from code to order by one index: a region this route
        # does not define takes the default's order, and so does code -1
        # (the last entry).
        known = self.geo.names if self.geo is not None else ()
        fallback = self.order[self.default]
        self.by_code: tuple[tuple[tuple[bytes, str], ...], ...] = (
            *(self.order.get(name, fallback) for name in known),
            fallback,
        )
        picker = _geopick.GeoPick(self)
        self.pick = picker.choose
        self.pick_lines = picker.choose_lines

    def _place(
        self, peer: bytes, trusted: bool, headers: Headers, table: Any
    ) -> tuple[str, str, bytes]:
        """The client's region among this route's, how it was found, and the
        address looked up."""
        geo = self.geo
        if geo is None:
            return self.default, "default", peer
        address = client_address(peer, trusted, headers, table)
        found, source = geo.region(address, trusted, headers)
        if found in self.names:
            return found, source, address
        return self.default, "default", address

    def choose(
        self, ex: Exchange, headers: Headers, peer: bytes, trusted: bool, trusted_table: Any
    ) -> PoolRuntime | None:
        # The client calls pick, the compiled GeoPick.choose, directly.
        return self.pick(ex, headers, peer, trusted, trusted_table)

    def explain(self, q: Query) -> tuple[str | None, str, dict[str, Any]]:
        trusted = q.lr.is_trusted(q.client_ip)
        region, source, address = self._place(q.client_ip, trusted, q.headers, q.lr.trusted_table)
        info: dict[str, Any] = {
            "kind": "geo",
            "client_address": address.decode("latin-1"),
            "region": region,
            "region_from": source,
        }
        skipped: list[str] = []
        for served, pool_name in self.order[region]:
            if self.pools[pool_name].serving:
                info["served_region"] = served.decode()
                why = (
                    f"failed over past {', '.join(skipped)} (no eligible backend)"
                    if skipped
                    else "its own region"
                )
                how = f"region {region} ({source}); served by {served.decode()}: {why}"
                return pool_name, how, info
            skipped.append(served.decode())
        home = self.order[region][0][1]
        info["served_region"] = region
        return home, f"region {region} ({source}); no region has an eligible backend", info


class ShardChooserRuntime(_Chooser):
    """A key from the request names the pool; no key or no mapping: 400."""

    __slots__ = ("chooser", "directory", "key_of")

    def __init__(
        self, cfg: ShardTarget, pools: Mapping[str, PoolRuntime], known: frozenset[str]
    ) -> None:
        super().__init__(pools)
        self.key_of = key_extractor(cfg.key)
        self.directory = (
            Directory(cfg.directory, known_pools=known) if cfg.directory is not None else None
        )
        self.chooser = ShardChooser(cfg, self.directory)

    def choose(
        self, ex: Exchange, headers: Headers, peer: bytes, trusted: bool, trusted_table: Any
    ) -> PoolRuntime | None:
        directory = self.directory
        if directory is not None:
            directory.maybe_reload(monotonic())
        key = self.key_of(headers, ex.target, peer)
        name, why = self.chooser.choose(key)
        if name is None:
            ex.local_status = 400
            ex.reason = why
            ex.client_fault = True
            return None
        return self.pools[name]

    def explain(self, q: Query) -> tuple[str | None, str, dict[str, Any]]:
        key = self.key_of(q.headers, q.path, q.client_ip)
        name, why = self.chooser.choose(key)
        info: dict[str, Any] = {
            "kind": "shard",
            "key": None if key is None else key.decode("latin-1"),
            "strategy": self.chooser.strategy,
        }
        if name is None:
            return None, f"400: {why}", info
        return name, f"shard key maps to {name}", info


class ReadWriteChooser(_Chooser):
    """Safe methods to ``read``, the rest to ``write``; after a write, that
    client reads from ``write`` for ``stick_after_write`` (a signed cookie
    holding the time it ends), so it reads its own writes."""

    __slots__ = ("cookie", "purpose", "read", "signer", "stick", "write")

    def __init__(
        self, cfg: ReadWriteTarget, pools: Mapping[str, PoolRuntime], env: TargetEnv
    ) -> None:
        super().__init__(pools)
        self.read = cfg.read
        self.write = cfg.write
        self.stick = int(cfg.stick_after_write + 0.999)  # whole seconds, rounded up
        self.cookie = cfg.cookie.encode()
        self.purpose = b"rw:" + self.cookie
        self.signer = env.signer

    def _wrote_lately(self, headers: Headers) -> bool:
        """The client carries a valid cookie from a write within the window."""
        if not self.stick:
            return False
        value = find_cookie(headers, self.cookie)
        return value is not None and self.signer.unseal(self.purpose, value, time()) is not None

    def choose(
        self, ex: Exchange, headers: Headers, peer: bytes, trusted: bool, trusted_table: Any
    ) -> PoolRuntime | None:
        if ex.method in SAFE_METHODS:
            return self.pools[self.write if self._wrote_lately(headers) else self.read]
        if self.stick:
            # Rounded up: the window lasts at least stick_after_write.
            until = math.ceil(time() + self.stick)
            value = self.signer.seal(self.purpose, b"w", until)
            ex.resp_extra += set_cookie_line(
                self.cookie, value, self.stick, secure=ex.client.lr.proto == b"https"
            )
        return self.pools[self.write]

    def explain(self, q: Query) -> tuple[str | None, str, dict[str, Any]]:
        info: dict[str, Any] = {"kind": "read_write", "read": self.read, "write": self.write}
        if q.method not in SAFE_METHODS:
            return self.write, f"{q.method.decode()} writes: the write pool", info
        if self._wrote_lately(q.headers):
            return self.write, "a read within stick_after_write of a write: the write pool", info
        return self.read, f"{q.method.decode()} reads: the read pool", info


class SplitChooser(_Chooser):
    """A weighted choice between pools (canary). With ``sticky``, a signed
    cookie keeps a client on its pool while that pool keeps a weight."""

    __slots__ = ("choice", "cookie", "purpose", "signer", "sticky", "weights")

    def __init__(self, cfg: SplitTarget, pools: Mapping[str, PoolRuntime], env: TargetEnv) -> None:
        super().__init__(pools)
        self.weights = dict(cfg.pools)
        self.choice = WeightedChoice(cfg.pools)
        self.sticky = cfg.sticky
        self.cookie = cfg.cookie.encode()
        self.purpose = b"split:" + self.cookie
        self.signer = env.signer

    def set_weights(self, weights: Mapping[str, int]) -> None:
        """Change some pools' weights (the admin API); the others keep theirs."""
        unknown = [name for name in weights if name not in self.weights]
        if unknown:
            # The route exists; the request names a pool it does not split to.
            raise ValueError(f"not a pool of this split: {', '.join(sorted(unknown))}")
        merged = {**self.weights, **weights}
        choice = WeightedChoice(tuple(merged.items()))  # ValueError: all zero
        self.weights = merged
        self.choice = choice

    def _kept(self, headers: Headers) -> str | None:
        """With ``sticky``: the pool the client's valid cookie names, while
        that pool keeps a weight."""
        if not self.sticky:
            return None
        value = find_cookie(headers, self.cookie)
        if value is None:
            return None
        payload = self.signer.unseal(self.purpose, value, time())
        if payload is None:
            return None
        name = payload.decode("ascii", "replace")
        return name if self.weights.get(name, 0) > 0 else None

    def choose(
        self, ex: Exchange, headers: Headers, peer: bytes, trusted: bool, trusted_table: Any
    ) -> PoolRuntime | None:
        kept = self._kept(headers)
        if kept is not None:
            return self.pools[kept]
        name = self.choice.pick(random.random())
        if self.sticky:
            value = self.signer.seal(self.purpose, name.encode(), 0)
            ex.resp_extra += set_cookie_line(
                self.cookie, value, None, secure=ex.client.lr.proto == b"https"
            )
        return self.pools[name]

    def explain(self, q: Query) -> tuple[str | None, str, dict[str, Any]]:
        info: dict[str, Any] = {"kind": "split", "weights": dict(self.weights)}
        kept = self._kept(q.headers)
        if kept is not None:
            return kept, f"the client's split cookie keeps it on {kept}", info
        return None, "a weighted random choice between the pools", info


def build_targets(
    routes: Sequence[Route],
    pools: Mapping[str, PoolRuntime],
    env: TargetEnv,
    old: Mapping[Route, _Chooser] | None = None,
) -> dict[Route, _Chooser]:
    """A chooser for every route that is not a plain ``pool:`` route. A route
    in ``old`` keeps that chooser (its run-time state: split weights), pointed
    at the new ``pools``: for a pool replaced through the admin API. A reload
    passes no ``old``: the file decides again, as it does for weights."""
    out: dict[Route, _Chooser] = {}
    known = frozenset(pools)
    for route in routes:
        t = route.target
        if t is None:
            continue
        previous = old.get(route) if old else None
        if previous is not None:
            previous.pools = pools
            out[route] = previous
            continue
        chooser: _Chooser
        if isinstance(t, GeoTarget):
            chooser = GeoChooser(t, pools, env)
        elif isinstance(t, ShardTarget):
            chooser = ShardChooserRuntime(t, pools, known)
        elif isinstance(t, ReadWriteTarget):
            chooser = ReadWriteChooser(t, pools, env)
        else:
            chooser = SplitChooser(t, pools, env)
        out[route] = chooser
    return out
