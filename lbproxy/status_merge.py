"""``/api/status`` for several processes: one control proxy and its workers.

With worker processes, each worker is a full ``Proxy`` serving traffic and
the supervisor runs a *control* ``Proxy`` of the same config that serves
none: it runs the active health checks and holds the admin state (drain,
disable, weights). ``merge_status(control, workers)`` folds their
``Proxy.status()`` dicts into one of the same shape, plus ``"workers": N``
(how many worker dicts were merged). The inputs are not changed.

Rules:

- The layout comes from ``control``: its listeners, pools and backends, in
  its order, and every field not named below (listener name and bind, pool
  settings such as ``balance``, a backend's ``address``, ``weight``,
  ``effective_weight``, ``backup``; any field added later). A pool or
  backend that only workers have (not yet in, or already out of, the
  control's config) is dropped; one the control has and a worker lacks (just
  added) counts as zeros in that worker.
- Listeners: ``active_connections`` is the sum over the workers (matched by
  listener name).
- Pools: ``panic`` is true if the control or any worker is in panic;
  ``in_flight`` and ``queued`` are summed over the workers.
- Backends (matched by pool name and ``address``): ``active_connections``,
  ``idle_connections``, ``requests_total`` and ``failures_total`` are summed
  over the workers. ``breaker`` is the worst over the workers (``open`` >
  ``half_open`` > ``closed``; the control's when there are no workers).
  ``state``, the first rule that applies:

  1. the control says ``draining`` or ``disabled`` (its admin state): it is
     ``draining`` while the summed ``active_connections`` is above 0 and
     the control or some worker says ``draining``, else ``disabled``. (The
     control itself serves nothing, so its own ``state_of`` already turns a
     draining backend into ``disabled``; the workers' word keeps
     ``draining`` while they finish requests.)
  2. the control says ``unhealthy`` (health checks run in the control);
  3. some worker says ``ejected`` (outlier detection runs per worker);
  4. ``healthy``.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

__all__ = ["merge_status"]

LISTENER_SUMS = ("active_connections",)
POOL_SUMS = ("in_flight", "queued")
POOL_ANY = ("panic",)
BACKEND_SUMS = ("active_connections", "idle_connections", "requests_total", "failures_total")
BREAKER_SEVERITY = {"closed": 0, "half_open": 1, "open": 2}


def _by(items: Any, key: str) -> dict[str, Any]:
    return {item[key]: item for item in items or () if isinstance(item, dict) and key in item}


def _state(control: str, workers: list[str], active: int) -> str:
    if control in ("draining", "disabled"):
        draining = control == "draining" or "draining" in workers
        return "draining" if draining and active > 0 else "disabled"
    if control == "unhealthy":
        return "unhealthy"
    if "ejected" in workers:
        return "ejected"
    return "healthy"


def _backend(control: dict[str, Any], workers: list[dict[str, Any] | None]) -> dict[str, Any]:
    out = dict(control)
    present = [w for w in workers if w is not None]
    for field in BACKEND_SUMS:
        out[field] = sum(int(w.get(field, 0)) for w in present)
    out["state"] = _state(
        str(control.get("state", "healthy")),
        [str(w.get("state", "")) for w in present],
        out["active_connections"],
    )
    breakers = [str(w.get("breaker", "closed")) for w in present]
    if breakers:
        out["breaker"] = max(breakers, key=lambda s: BREAKER_SEVERITY.get(s, 0))
    return out


def _pool(control: dict[str, Any], workers: list[dict[str, Any] | None]) -> dict[str, Any]:
    out = {k: copy.deepcopy(v) for k, v in control.items() if k != "backends"}
    present = [w for w in workers if w is not None]
    for field in POOL_SUMS:
        if field in control:
            out[field] = sum(int(w.get(field, 0)) for w in present)
    for field in POOL_ANY:
        if field in control:
            out[field] = bool(control[field]) or any(bool(w.get(field)) for w in present)
    worker_backends = [_by(w.get("backends"), "address") if w else {} for w in workers]
    out["backends"] = [
        _backend(b, [wb.get(b["address"]) for wb in worker_backends])
        for b in control.get("backends", [])
    ]
    return out


def merge_status(control: dict[str, Any], workers: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One ``Proxy.status()``-shaped dict for the control proxy and its
    workers (the rules are in the module docstring)."""
    out = {k: copy.deepcopy(v) for k, v in control.items() if k not in ("listeners", "pools")}
    worker_listeners = [_by(w.get("listeners"), "name") for w in workers]
    listeners = []
    for lst in control.get("listeners", []):
        entry = dict(lst)
        same = [wl[lst["name"]] for wl in worker_listeners if lst.get("name") in wl]
        for field in LISTENER_SUMS:
            if field in lst:
                entry[field] = sum(int(w.get(field, 0)) for w in same)
        listeners.append(entry)
    out["listeners"] = listeners
    worker_pools: list[dict[str, Any]] = [w.get("pools") or {} for w in workers]
    out["pools"] = {
        name: _pool(pool, [wp.get(name) for wp in worker_pools])
        for name, pool in (control.get("pools") or {}).items()
    }
    out["workers"] = len(workers)
    return out
