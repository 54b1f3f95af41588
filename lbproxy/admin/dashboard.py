"""The live dashboard's numbers: a sampler over the backends' own counters.

The data path keeps cumulative counters per backend (``requests_total``,
``failures_total`` and the latency histogram ``hist``, whose buckets are
``lbproxy.http.pool.BUCKETS`` plus +Inf). ``DashboardSampler`` reads them
through a *counter source*, a callable returning ``Counters`` by (pool name,
backend address): ``counters_from_pools`` over one process's pools, or
``counters_from_snapshot`` over a ``lbproxy.metrics.MetricsSnapshot`` (the
merged snapshot of a supervisor's workers). It reads them once
a second while the admin server runs and keeps what changed in each second in
a ring of the last ``window`` (60) samples, so ``GET /api/dashboard`` can
answer with the last minute at once: per backend the requests/s and errors/s
of every second, the p99 latency of every second, and p50/p99 over the whole
minute. Nothing here writes to the data path's objects.

Latency quantiles come from histogram bucket deltas, as Prometheus'
``histogram_quantile`` does: find the bucket holding the rank ``q * count``
and interpolate linearly inside it (the first bucket's lower edge is 0). A
rank that falls in the +Inf bucket reports the highest finite bound (30 s),
so p99 says "at least 30 s" there. The answer is therefore an estimate good to
a bucket's width, not an exact order statistic.

Latencies are observed only while a listener counts requests for
``/metrics`` (``ListenerRuntime.metrics``, on when the config has an
``admin`` section): a Proxy started without one and given an AdminServer by
hand has request and failure rates but no latencies (``latency_counted`` in
the answer says so). ``requests_total`` counts tries sent (a retried request
counts on each backend it tried); ``failures_total`` counts tries that failed
(connect failure, reset, timeout, invalid response); the histogram counts
finished requests, on the backend that answered.

Backends are matched by (pool name, address), not by object: a reload or an
admin add/remove replaces the pool's ``BackendState`` objects. A counter that
went down since the last sample started again from zero (the histogram does
on every pool rebuild; the request and failure counts are carried over by
``PoolRuntime.adopt`` and only restart for a new pool), so that second's
delta is the new value (what the old object counted between the last sample
and the rebuild is lost, as is a restart whose new counts already passed the
old ones in every bucket within one sample: both at most one second's worth).
A backend that appears later starts from zero; one that leaves is dropped
from the answer (its past samples age out of the ring).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import hashlib
import logging
import re
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import TYPE_CHECKING, Any

from lbproxy.http.pool import BUCKETS

if TYPE_CHECKING:
    from lbproxy.http.pool import PoolRuntime
    from lbproxy.metrics import MetricsSnapshot

__all__ = [
    "CounterSource",
    "Counters",
    "DashboardSampler",
    "counters_from_pools",
    "counters_from_snapshot",
    "dashboard",
    "dashboard_page",
    "page_headers",
    "quantile",
    "summarize",
]

log = logging.getLogger("lbproxy")

INTERVAL = 1.0  # seconds between samples
WINDOW = 60  # samples kept: the last minute

Key = tuple[str, str]  # (pool name, backend address)
# A backend's cumulative (requests_total, failures_total, latency histogram:
# per-bucket counts, one per BUCKETS bound plus +Inf).
Counters = tuple[int, int, Sequence[int]]
CounterSource = Callable[[], Mapping[Key, Counters]]
_ZERO_HIST: tuple[int, ...] = (0,) * (len(BUCKETS) + 1)


def counters_from_pools(pools: Mapping[str, PoolRuntime]) -> dict[Key, Counters]:
    """Every backend's counters in one process's ``pools`` (``Proxy.pools``)."""
    out: dict[Key, Counters] = {}
    for name, pool in list(pools.items()):
        for b in list(pool.backends):
            out[(name, b.label)] = (b.requests_total, b.failures_total, tuple(b.hist))
    return out


def counters_from_snapshot(snap: MetricsSnapshot) -> dict[Key, Counters]:
    """Every backend's counters in a metrics snapshot (``lbproxy.metrics``;
    with workers, their merged snapshot)."""
    out: dict[Key, Counters] = {}
    for name, pool in snap["pools"].items():
        for label, b in pool["backends"].items():
            out[(name, label)] = (b["requests"], b["failures"], tuple(b["hist"]))
    return out


@functools.cache
def dashboard_page() -> bytes:
    """The page (``dashboard.html`` next to this module), read once."""
    return resources.files("lbproxy.admin").joinpath("dashboard.html").read_bytes()


def _digests(page: bytes, tag: str) -> str:
    pattern = re.compile(b"<" + tag.encode() + b">(.*?)</" + tag.encode() + b">", re.DOTALL)
    hashes = [hashlib.sha256(body).digest() for body in pattern.findall(page)]
    return " ".join(f"'sha256-{base64.b64encode(h).decode()}'" for h in hashes) or "'none'"


@functools.cache
def page_headers() -> dict[str, str]:
    """Headers for the page. Its Content-Security-Policy lets the browser run
    only the page's own inline script and style (by their SHA-256), fetch only
    from the admin API itself, and load nothing else (no outside assets, no
    frame around it)."""
    page = dashboard_page()
    csp = (
        f"default-src 'none'; script-src {_digests(page, 'script')};"
        f" style-src {_digests(page, 'style')}; connect-src 'self'; img-src data:;"
        " base-uri 'none';"
        " form-action 'none'; frame-ancestors 'none'"
    )
    return {
        "Content-Security-Policy": csp,
        "X-Frame-Options": "DENY",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-store",
    }


def quantile(q: float, counts: Sequence[int]) -> float | None:
    """The ``q`` quantile (0..1), in seconds, of histogram bucket ``counts``
    (non-cumulative, one per ``BUCKETS`` bound plus +Inf); None when empty.

    Linear interpolation within the bucket that holds rank ``q * total`` (as
    Prometheus' ``histogram_quantile``); the +Inf bucket reports the highest
    finite bound."""
    total = sum(counts)
    if total <= 0:
        return None
    rank = q * total
    below = 0
    for i, n in enumerate(counts):
        if n > 0 and below + n >= rank:
            if i >= len(BUCKETS):
                return BUCKETS[-1]
            lower = BUCKETS[i - 1] if i > 0 else 0.0
            upper = BUCKETS[i]
            return lower + (upper - lower) * max(0.0, rank - below) / n
        below += n
    return BUCKETS[-1]  # not reached: the loop ends at the last non-empty bucket


@dataclass(frozen=True, slots=True)
class Delta:
    """What one backend (or a pool, summed) did in one sample: tries, failed
    tries, finished requests by latency bucket, and their p99 (computed once,
    when the delta is made: the answer reads it for every poll)."""

    requests: int
    failures: int
    hist: tuple[int, ...]
    p99: float | None = field(default=None, compare=False)

    @classmethod
    def of(cls, requests: int, failures: int, hist: tuple[int, ...]) -> Delta:
        if requests == failures == 0 and hist == _ZERO_HIST:
            return _IDLE
        return cls(requests, failures, hist, quantile(0.99, hist))


_IDLE = Delta(0, 0, _ZERO_HIST)


@dataclass(frozen=True, slots=True)
class Sample:
    """One sampling interval: it ended at ``at`` (monotonic) and ``wall``
    (Unix time) and lasted ``seconds``; ``deltas`` has every backend that
    existed at its end."""

    at: float
    wall: float
    seconds: float
    deltas: dict[Key, Delta]


@dataclass(frozen=True, slots=True)
class _Reading:
    requests: int
    failures: int
    hist: tuple[int, ...]


def _since(now: int, before: int) -> int:
    # A counter below its last reading started again from zero.
    return now - before if now >= before else now


def _hist_since(now: tuple[int, ...], before: tuple[int, ...]) -> tuple[int, ...]:
    if now == before:
        return _ZERO_HIST
    if len(now) == len(before) and all(a >= b for a, b in zip(now, before, strict=True)):
        return tuple(a - b for a, b in zip(now, before, strict=True))
    return now  # restarted from zero: a pool rebuild (reload, admin add/remove)


class DashboardSampler:
    """Samples every backend that ``counters()`` reports each ``interval``
    seconds and keeps the last ``window`` samples. ``sample()`` takes one now
    (tests call it with their own clock values); ``start()``/``stop()`` run
    it as a task. ``counters`` is called once per sample, synchronously:
    e.g. ``lambda: counters_from_pools(proxy.pools)``, or
    ``lambda: counters_from_snapshot(latest_merged_snapshot)``."""

    def __init__(
        self,
        counters: CounterSource,
        *,
        interval: float = INTERVAL,
        window: int = WINDOW,
    ) -> None:
        self._counters = counters
        self.interval = interval
        self.window = window
        self.samples: deque[Sample] = deque(maxlen=window)
        self._last: dict[Key, _Reading] = {}
        self._last_at: float | None = None
        self._task: asyncio.Task[None] | None = None
        self._failed = False
        # dashboard()'s last answer from the samples: (last sample, layout, numbers).
        self.cache: tuple[Sample | None, Layout, Minute] | None = None

    # -- sampling ---------------------------------------------------------------

    def _read(self) -> Iterator[tuple[Key, _Reading]]:
        for key, (requests, failures, hist) in list(self._counters().items()):
            yield key, _Reading(requests, failures, tuple(hist))

    def sample(self, now: float | None = None, wall: float | None = None) -> Sample | None:
        """Read every backend's counters; append what changed since the last
        call (None on the first call, which only takes the baseline)."""
        at = time.monotonic() if now is None else now
        readings = dict(self._read())
        last, last_at = self._last, self._last_at
        self._last, self._last_at = readings, at
        if last_at is None:
            return None
        deltas: dict[Key, Delta] = {}
        for key, r in readings.items():
            before = last.get(key)
            if before is None:  # a backend that joined since: it started from zero
                deltas[key] = Delta.of(r.requests, r.failures, r.hist)
            else:
                deltas[key] = Delta.of(
                    _since(r.requests, before.requests),
                    _since(r.failures, before.failures),
                    _hist_since(r.hist, before.hist),
                )
        s = Sample(at, time.time() if wall is None else wall, max(at - last_at, 1e-9), deltas)
        self.samples.append(s)
        return s

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time()
        while True:
            due += self.interval
            delay = due - loop.time()
            if delay < 0:  # the loop was blocked: skip the missed ticks
                due = loop.time()
                delay = 0.0
            await asyncio.sleep(delay)
            try:
                self.sample()
            except Exception:  # never let a bug here stop the admin server
                if not self._failed:
                    log.exception("dashboard sampler failed (logged once; it keeps trying)")
                self._failed = True

    def start(self) -> None:
        """Take the baseline and sample every ``interval`` seconds (needs a running loop)."""
        if self._task is None:
            self.sample()
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # -- the answer -------------------------------------------------------------

    def deltas(self, key: Key) -> list[Delta | None]:
        """One backend's delta in every sample kept, oldest first (None where
        it did not exist)."""
        return [s.deltas.get(key) for s in self.samples]

    def seconds(self) -> list[float]:
        """How long each sample lasted, oldest first."""
        return [s.seconds for s in self.samples]

    def times(self) -> list[float]:
        """Unix time at the end of each sample, oldest first."""
        return [s.wall for s in self.samples]


def _summed(series: Sequence[Sequence[Delta | None]], n: int) -> list[Delta | None]:
    """Per sample, the sum of the ``n``-sample ``series`` of several backends
    (None where none of them existed)."""
    out: list[Delta | None] = []
    for i in range(n):
        here = [d for d in (one[i] for one in series) if d is not None]
        if not here:
            out.append(None)
            continue
        hists = [d.hist for d in here if d.hist is not _ZERO_HIST]
        hist = tuple(sum(c) for c in zip(*hists, strict=True)) if hists else _ZERO_HIST
        requests = sum(d.requests for d in here)
        failures = sum(d.failures for d in here)
        out.append(Delta.of(requests, failures, hist))
    return out


def summarize(deltas: Sequence[Delta | None], seconds: Sequence[float]) -> dict[str, Any]:
    """The numbers the page shows for a series of per-sample ``deltas`` (a
    backend's, or a pool's summed) lasting ``seconds`` each: the last
    sample's requests/s, totals and rates over the window, p50/p99 over the
    window, and per-sample series of requests/s, errors/s and p99 (None where
    there was no backend, or for p99 no finished request)."""
    rps: list[float | None] = []
    errors: list[float | None] = []
    p99: list[float | None] = []
    hists: list[tuple[int, ...]] = []
    requests = failures = 0
    span = 0.0
    for d, dt in zip(deltas, seconds, strict=True):
        if d is None:
            rps.append(None)
            errors.append(None)
            p99.append(None)
            continue
        rps.append(d.requests / dt)
        errors.append(d.failures / dt)
        p99.append(d.p99)
        requests += d.requests
        failures += d.failures
        span += dt
        if d.hist is not _ZERO_HIST:
            hists.append(d.hist)
    hist = [sum(column) for column in zip(*hists, strict=True)] if hists else list(_ZERO_HIST)
    return {
        "rps": rps[-1] if rps else None,  # over the last sample (about 1 s)
        "requests_1m": requests,
        "failures_1m": failures,
        "rps_1m": requests / span if span > 0 else None,
        "error_rate_1m": failures / requests if requests else None,
        "latency_count_1m": sum(hist),
        "p50_1m": quantile(0.5, hist),
        "p99_1m": quantile(0.99, hist),
        "series": {"rps": rps, "errors": errors, "p99": p99},
    }


Layout = tuple[tuple[str, tuple[str, ...]], ...]  # pools and their backends' addresses
Minute = dict[str, tuple[dict[str, Any], list[dict[str, Any]]]]


def _minute(sampler: DashboardSampler, layout: Layout) -> Minute:
    seconds = sampler.seconds()
    out: Minute = {}
    for name, addresses in layout:
        every = [sampler.deltas((name, address)) for address in addresses]
        pool = summarize(_summed(every, len(seconds)), seconds)
        out[name] = (pool, [summarize(deltas, seconds) for deltas in every])
    return out


def dashboard(
    sampler: DashboardSampler, status: dict[str, Any], latency_counted: bool
) -> dict[str, Any]:
    """``GET /api/dashboard``: ``status`` (``Proxy.status()``) with the
    sampler's last minute added to every backend and, summed, to every pool.
    Latencies are in seconds, rates per second. The minute's numbers change
    only with a new sample: computed once per sample (and set of backends),
    however many pages poll."""
    pools_now: dict[str, Any] = status.get("pools", {})
    layout: Layout = tuple(
        (name, tuple(b["address"] for b in pool.get("backends", [])))
        for name, pool in pools_now.items()
    )
    latest = sampler.samples[-1] if sampler.samples else None
    cached = sampler.cache
    if cached is not None and cached[0] is latest and cached[1] == layout:
        minute = cached[2]
    else:
        minute = _minute(sampler, layout)
        sampler.cache = (latest, layout, minute)
    pools: dict[str, Any] = {}
    for name, pool in pools_now.items():
        summary, per_backend = minute[name]
        entry = {k: v for k, v in pool.items() if k != "backends"}
        backends = [
            {**b, **stats} for b, stats in zip(pool.get("backends", []), per_backend, strict=True)
        ]
        pools[name] = {**entry, **summary, "backends": backends}
    return {
        "interval": sampler.interval,
        "window": sampler.window,
        "samples": len(sampler.samples),
        "times": sampler.times(),
        "now": time.time(),
        "latency_counted": latency_counted,
        "listeners": status.get("listeners", []),
        "pools": pools,
    }
