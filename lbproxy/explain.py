"""Explain a routing decision: which route a request would match, which pool
serves it, and for every backend of that pool whether it could be picked now
and, if not, why (weight 0, disabled, draining, unhealthy, ejected, breaker
open, backup waiting behind eligible primaries).

It reads the running state and changes nothing: no balancer is asked to pick
(a pick moves round-robin cursors and random generators), except that for
``consistent_hash`` the key's owner on the ring is looked up, which is a pure
query. Served by the admin API as ``GET /api/explain``.
"""

from __future__ import annotations

from collections.abc import Sequence
from time import monotonic
from typing import TYPE_CHECKING, Any

from lbproxy.balance import WEIGHT_UNIT
from lbproxy.balance.base import PickContext
from lbproxy.http.accesslog import route_label
from lbproxy.http.pool import DISABLED, DRAINING, BackendState, PoolRuntime
from lbproxy.routing.targets import Query

if TYPE_CHECKING:
    from lbproxy.proxy import Proxy


def _why_not(pool: PoolRuntime, b: BackendState, now: float) -> str | None:
    if b.weight == 0:
        return "weight 0"
    if b.admin_state == DISABLED:
        return "disabled through the admin API"
    if b.admin_state == DRAINING:
        return "draining"
    if b.health is not None and not b.health.healthy:
        return "unhealthy (active health checks failing)"
    if pool.outlier is not None and pool.outlier.ejected(b.index, now):
        return "ejected by outlier detection"
    if b.breaker is not None and b.breaker.state(now) == "open":
        return "circuit breaker open"
    return None


def explain(
    proxy: Proxy,
    *,
    listener: str | None,
    method: str,
    host: str,
    path: str,
    headers: Sequence[tuple[str, str]],
    client_ip: str,
) -> dict[str, Any]:
    """Why a request would go where it goes (see the module docstring)."""
    if listener is None:
        listener = next(iter(proxy.listeners), "")
    lr = proxy.listeners.get(listener)
    if lr is None:
        raise KeyError(f"no listener named {listener!r}")
    raw_headers = [(n.encode("latin-1"), v.encode("latin-1")) for n, v in headers]
    found = lr.router.match(host.encode("latin-1"), path.encode("latin-1"),
                            method.encode("latin-1"), raw_headers)  # fmt: skip
    answer: dict[str, Any] = {
        "listener": listener,
        "request": {"method": method, "host": host, "path": path, "headers": dict(headers)},
    }
    if found is None:
        answer["route"] = None
        answer["decision"] = "404: no route of this listener matches"
        return answer
    route, target = found
    now = monotonic()
    answer["route"] = route_label(route)
    if isinstance(target, PoolRuntime):
        pool = target
    else:
        # A geo, shard, read/write or split route: its chooser says which pool.
        q = Query(method.encode("latin-1"), path.encode("latin-1"), raw_headers,
                  client_ip.encode(), lr)  # fmt: skip
        name, how, info = target.explain(q)
        answer["target"] = {**info, "decision": how}
        if name is None:
            answer["pool"] = None
            answer["decision"] = how
            return answer
        pool = target.pools[name]
    answer["pool"] = pool.name
    answer["balance"] = pool.config.balance
    answer["panic"] = pool.panic
    backends = []
    for b in pool.backends:
        reason = _why_not(pool, b, now)
        entry: dict[str, Any] = {
            "address": b.label,
            "tier": "backup" if b.backup else "primary",
            "eligible": reason is None,
            "takes_new_requests": b.usable and b.weight > 0,
            "effective_weight": b.effective_weight() / WEIGHT_UNIT,
            "active_requests": b.active,
        }
        if reason is not None:
            entry["why_not"] = reason
            if pool.panic and not b.backup and b.usable:
                entry["why_not"] += "; used anyway: the pool is in panic"
        backends.append(entry)
    usable_primaries = [e for e in backends if e["tier"] == "primary" and e["takes_new_requests"]]
    if usable_primaries:
        for e in backends:
            if e["tier"] == "backup" and "why_not" not in e:
                e["why_not"] = "backup: used only while no primary can be picked"
    answer["backends"] = backends
    candidates = [e["address"] for e in backends if e["takes_new_requests"] and "why_not" not in e]
    if pool.panic:
        candidates = [e["address"] for e in backends if e["takes_new_requests"]]
    answer["candidates"] = candidates
    pinned = pool.sticky.pinned(raw_headers) if pool.sticky is not None else None
    if pool.sticky is not None:
        answer["sticky"] = {
            "cookie": pool.sticky.cookie.decode(),
            "pinned": None if pinned is None else pinned.label,
        }
    if pinned is not None and pool.sticky is not None and pool.sticky.can_serve(pinned, now):
        answer["decision"] = f"the sticky cookie pins {pinned.label}"
    elif pinned is not None and pool.sticky is not None and pool.sticky.strict:
        answer["decision"] = f"503: the sticky cookie pins {pinned.label}, which cannot serve"
    elif not candidates:
        answer["decision"] = "503: no backend of the pool can be picked"
    elif pool.key_of is not None:
        key = pool.key_of(raw_headers, path.encode("latin-1"), client_ip.encode())
        answer["hash_key"] = None if key is None else key.decode("latin-1")
        if key is None:
            answer["decision"] = f"no {pool.config.hash_key} in the request: round robin"
        else:
            tier = pool._primary if usable_primaries else pool._backup
            # A ring lookup with no load bound and no filter changes nothing.
            ctx = PickContext(hash_key=key)
            i = tier.balancer.pick(ctx, None)
            owner = tier.backends[i].label if i >= 0 else None
            answer["decision"] = f"key owner on the ring: {owner}"
            answer["key_owner"] = owner
    else:
        answer["decision"] = f"{pool.config.balance} picks among the candidates"
    return answer
