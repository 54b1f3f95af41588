"""What the admin API sees of a supervisor and its workers: one proxy.

``AdminServer`` drives a ``Proxy``; with workers it drives this instead.
Reads (status, metrics, the dashboard) are the workers' snapshots merged
(lbproxy/metrics.py ``merge``, lbproxy/status_merge.py) over the control
proxy's own view (health, admin state, weights); ``refresh`` fetches fresh
snapshots and the admin server awaits it before answering a read. Changes go
through the supervisor, which validates them on the control proxy and sends
them to every worker. Routes and pools for ``/api/explain`` are the control
proxy's.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from lbproxy.admin.dashboard import Counters, Key, counters_from_snapshot
from lbproxy.metrics import MetricsSnapshot, merge, render, snapshot
from lbproxy.status_merge import merge_status

if TYPE_CHECKING:
    from lbproxy.config.model import Config
    from lbproxy.http.listener import ListenerRuntime
    from lbproxy.http.pool import PoolRuntime
    from lbproxy.workers.supervisor import Supervisor

__all__ = ["Cluster"]


class Cluster:
    def __init__(self, supervisor: Supervisor) -> None:
        self.supervisor = supervisor
        self._snaps: list[dict[str, Any]] = []

    # -- what the admin server reads --------------------------------------------------
    @property
    def config(self) -> Config:
        return self.supervisor.config

    @property
    def pools(self) -> dict[str, PoolRuntime]:
        return self.supervisor.control.pools

    @property
    def listeners(self) -> dict[str, ListenerRuntime]:
        return self.supervisor.control.listeners

    @property
    def reloads(self) -> dict[str, int]:
        return self.supervisor.reloads

    async def refresh(self) -> None:
        """Fetch every serving worker's snapshot (reads use the latest)."""
        self._snaps = await self.supervisor.snapshots()

    async def keep_fresh(self, interval: float = 1.0) -> None:
        """Refresh every ``interval`` seconds, for the dashboard's sampler
        (which reads ``dashboard_counters`` on its own one-second clock)."""
        while True:
            await self.refresh()
            await asyncio.sleep(interval)

    def dashboard_counters(self) -> dict[Key, Counters]:
        return counters_from_snapshot(self.merged_metrics())

    def status(self) -> dict[str, Any]:
        merged = merge_status(
            self.supervisor.control.status(), [s["status"] for s in self._snaps]
        )
        merged["workers"] = len(self._snaps)
        return merged

    def merged_metrics(self) -> MetricsSnapshot:
        parts = [snapshot(self.supervisor.control), *(s["metrics"] for s in self._snaps)]
        if self.supervisor.retired_numbers is not None:
            parts.append(self.supervisor.retired_numbers)
        merged = merge(parts)
        merged["reloads"] = dict(self.supervisor.reloads)
        return merged

    def metrics_text(self) -> str:
        return render(self.merged_metrics())

    # -- changes --------------------------------------------------------------------
    def drain(self, pool: str, address: str, timeout: float | None = None) -> None:
        self.supervisor.admin_change("drain", pool, address, timeout)

    def enable(self, pool: str, address: str) -> None:
        self.supervisor.admin_change("enable", pool, address)

    def disable(self, pool: str, address: str) -> None:
        self.supervisor.admin_change("disable", pool, address)

    def set_weight(self, pool: str, address: str, weight: int) -> None:
        self.supervisor.admin_change("set_weight", pool, address, weight)

    def add_backend(self, pool: str, address: str, weight: int = 1) -> None:
        self.supervisor.admin_change("add_backend", pool, address, weight)

    def remove_backend(self, pool: str, address: str) -> None:
        self.supervisor.admin_change("remove_backend", pool, address)

    def set_split(self, listener: str, index: int, weights: dict[str, int]) -> None:
        self.supervisor.admin_change("set_split", listener, index, weights)

    # A shard directory's file is its truth: the control proxy writes it and
    # every worker reloads it within its poll (lbproxy/routing/shard.py), so
    # the change is neither sent to workers nor replayed over a later edit.
    def set_shard(self, listener: str, index: int, key: str, pool: str) -> None:
        self.supervisor.control.set_shard(listener, index, key, pool)

    def delete_shard(self, listener: str, index: int, key: str) -> None:
        self.supervisor.control.delete_shard(listener, index, key)

    def shard_entries(self, listener: str, index: int) -> dict[str, str]:
        return self.supervisor.control.shard_entries(listener, index)

    async def reload(self, config: Config | None = None) -> None:
        await self.supervisor.reload(config)
