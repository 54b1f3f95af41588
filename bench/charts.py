"""PNG charts for bench/compare.py reports (matplotlib, optional).

``write_charts`` draws, next to the Markdown report, one PNG per load scenario
(req/s and proxy CPU µs/request per proxy, side by side), one for the latency
scenario (p50, p99 and p99.9 per proxy and for "direct", no proxy), one for
the workers scenario (req/s and CPU µs/request per proxy, grouped by worker
count; its summaries come as workers-1, workers-2, ...) and one for the idle
scenario (RSS KiB per idle connection). It raises ImportError when matplotlib
is missing; compare.py then notes that in the report and carries on.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display needed; must precede pyplot

import matplotlib.pyplot as plt

# lbproxy variants stand out; the rest are grey-ish reference points.
COLORS = {
    "lbproxy": "#1f77b4",
    "lbproxy-pure": "#6baed6",
    "nginx": "#2ca02c",
    "haproxy": "#ff7f0e",
    "aiohttp-naive": "#9467bd",
    "bare-relay": "#8c564b",
    "pproxy": "#8c8c8c",
    "direct": "#4d4d4d",
}
# The scenario drawn as latency percentiles instead of req/s + CPU.
LATENCY_SCENARIO = "latency"
# Summaries "workers-N" are drawn together, as one chart "workers".
WORKERS_PREFIX = "workers-"
PERCENTILES = (
    ("p50", "p50_ms", "#9ecae1"),
    ("p99", "p99_ms", "#3182bd"),
    ("p99.9", "p999_ms", "#08519c"),
)


def _bars(ax: Any, labels: list[str], values: list[float], title: str, fmt: str) -> None:
    colors = [COLORS.get(label.split(" ")[0], "#7f7f7f") for label in labels]
    shown = [0.0 if math.isnan(v) else v for v in values]
    bars = ax.bar(labels, shown, color=colors)
    for bar, v in zip(bars, values, strict=True):
        text = "n/a" if math.isnan(v) else format(v, fmt)
        ax.annotate(
            text,
            (bar.get_x() + bar.get_width() / 2, bar.get_height()),
            ha="center",
            va="bottom",
            fontsize=8,
        )
    ax.set_title(title, fontsize=10)
    ax.tick_params(axis="x", labelrotation=20, labelsize=8)
    ax.margins(y=0.15)


def _latency_chart(out: Path, scen: str, rows: Sequence[Any]) -> str | None:
    """Grouped bars: p50, p99, p99.9 (ms) per contender, "direct" included."""
    ok = [r for r in rows if r.ok_rounds]
    if not ok:
        return None
    labels = [r.proxy + (" (L4)" if r.proxy == "pproxy" else "") for r in ok]
    fig, ax = plt.subplots(figsize=(max(6.0, 1.5 * len(ok) + 2), 4))
    width = 0.8 / len(PERCENTILES)
    for i, (name, attr, color) in enumerate(PERCENTILES):
        values = [float(getattr(r, attr)) for r in ok]
        xs = [k + (i - (len(PERCENTILES) - 1) / 2) * width for k in range(len(ok))]
        shown = [0.0 if math.isnan(v) else v for v in values]
        bars = ax.bar(xs, shown, width, label=name, color=color)
        for bar, v in zip(bars, values, strict=True):
            ax.annotate(
                "n/a" if math.isnan(v) else f"{v:.2f}",
                (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                ha="center",
                va="bottom",
                fontsize=7,
            )
    ax.set_xticks(range(len(ok)), labels)
    ax.tick_params(axis="x", labelrotation=20, labelsize=8)
    ax.set_ylabel("ms")
    ax.margins(y=0.15)
    ax.legend(fontsize=8)
    rate = next((r.target_rps for r in ok if not math.isnan(r.target_rps)), float("nan"))
    ax.set_title(
        f"latency at a fixed {rate:,.0f} req/s (lower is better; direct = no proxy)",
        fontsize=10,
    )
    fig.suptitle(f"scenario: {scen}")
    fig.tight_layout()
    name = f"{out.stem}-{scen}.png"
    fig.savefig(out.parent / name, dpi=100)
    plt.close(fig)
    return name


def _workers_chart(out: Path, by_n: dict[int, Sequence[Any]]) -> str | None:
    """Grouped bars per worker count N: req/s and CPU µs/req, one bar per proxy."""
    proxies = list(dict.fromkeys(r.proxy for rows in by_n.values() for r in rows if r.ok_rounds))
    if not proxies:
        return None
    counts = sorted(by_n)
    fig, axes = plt.subplots(1, 2, figsize=(max(10.0, 2.2 * len(counts) + 4), 4))
    width = 0.8 / len(proxies)
    panels = (
        ("rps", "requests/s (higher is better)", ",.0f"),
        ("cpu_us_per_req", "proxy CPU µs/request (lower is better)", ",.1f"),
    )
    for ax, (attr, title, fmt) in zip(axes, panels, strict=True):
        for i, proxy in enumerate(proxies):
            rows = {n: next((r for r in by_n[n] if r.proxy == proxy), None) for n in counts}
            values = [
                float(getattr(row, attr)) if row is not None and row.ok_rounds else float("nan")
                for row in rows.values()
            ]
            xs = [k + (i - (len(proxies) - 1) / 2) * width for k in range(len(counts))]
            shown = [0.0 if math.isnan(v) else v for v in values]
            bars = ax.bar(xs, shown, width, label=proxy, color=COLORS.get(proxy, "#7f7f7f"))
            for bar, v in zip(bars, values, strict=True):
                ax.annotate(
                    "n/a" if math.isnan(v) else format(v, fmt),
                    (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                    ha="center",
                    va="bottom",
                    fontsize=7,
                )
        ax.set_xticks(range(len(counts)), [f"{n} worker{'s' if n > 1 else ''}" for n in counts])
        ax.set_title(title, fontsize=10)
        ax.margins(y=0.15)
    axes[0].legend(fontsize=8)
    fig.suptitle("scenario: workers (nothing pinned)")
    fig.tight_layout()
    name = f"{out.stem}-workers.png"
    fig.savefig(out.parent / name, dpi=100)
    plt.close(fig)
    return name


def write_charts(
    out: Path, summaries: dict[str, Sequence[Any]], idle: Sequence[Any]
) -> dict[str, str]:
    """Write PNGs next to `out` (the .md path); returns {scenario: file name}."""
    written: dict[str, str] = {}
    by_n = {
        int(scen.removeprefix(WORKERS_PREFIX)): rows
        for scen, rows in summaries.items()
        if scen.startswith(WORKERS_PREFIX)
    }
    if by_n and (drawn := _workers_chart(out, by_n)):
        written["workers"] = drawn
    for scen, rows in summaries.items():
        if scen.startswith(WORKERS_PREFIX):
            continue
        if scen == LATENCY_SCENARIO:
            drawn = _latency_chart(out, scen, rows)
            if drawn:
                written[scen] = drawn
            continue
        ok = [r for r in rows if r.ok_rounds]
        if not ok:
            continue
        labels = [r.proxy + (" (L4)" if r.proxy == "pproxy" else "") for r in ok]
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
        _bars(ax1, labels, [r.rps for r in ok], "requests/s (higher is better)", ",.0f")
        _bars(
            ax2,
            labels,
            [r.cpu_us_per_req for r in ok],
            "proxy CPU µs/request (lower is better)",
            ",.1f",
        )
        fig.suptitle(f"scenario: {scen}")
        fig.tight_layout()
        name = f"{out.stem}-{scen}.png"
        fig.savefig(out.parent / name, dpi=100)
        plt.close(fig)
        written[scen] = name
    good = [r for r in idle if r.opened]
    if good:
        fig, ax = plt.subplots(figsize=(6, 4))
        _bars(
            ax,
            [r.proxy for r in good],
            [r.kib_per_conn for r in good],
            f"RSS KiB per idle keep-alive connection ({good[0].target:,})",
            ".2f",
        )
        fig.tight_layout()
        name = f"{out.stem}-idle.png"
        fig.savefig(out.parent / name, dpi=100)
        plt.close(fig)
        written["idle"] = name
    return written
