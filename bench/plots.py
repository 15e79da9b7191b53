"""PNG charts for the benchmark and the load test, written next to their JSON.

Two kinds, each a column of panels (one per measurement level, or per driver):

* ``latency_chart``: the distribution of turn latencies — a histogram and, beside it,
  the cumulative distribution with p50/p95/p99 marked — one series per variant;
* ``throughput_chart``: events per second over time (replies, errors), one series each.

Matplotlib draws without pyplot (a ``Figure`` on the Agg canvas): no display, no
global state, nothing left open between charts.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from bench.harness import percentile
from bench.load_report import per_second

Series = Mapping[str, Sequence[float]]
"""Label → values (latencies in ms, or moments in seconds from the start)."""
Panels = Mapping[str, Series]
"""Panel title → its series."""
MARKED = (50, 95, 99)
DPI = 100


def latency_chart(panels: Panels, path: Path, title: str) -> Path:
    """Histogram and CDF of each panel's latency series (milliseconds) to ``path``."""
    figure, rows = _figure(len(panels), columns=2, title=title)
    colors = _colors(panels)
    for (name, series), (histogram, cdf) in zip(panels.items(), rows, strict=True):
        series = {label: _finite(values) for label, values in series.items()}
        everything = [v for values in series.values() for v in values]
        if not everything:
            _empty(histogram, name)
            _empty(cdf, name)
            continue
        top = max(everything)
        bins = [top * i / 40 for i in range(41)] if top > 0 else 10
        for label, values in series.items():
            if not values:
                continue
            color = colors[label]
            histogram.hist(
                values, bins=bins, alpha=0.55, color=color, label=f"{label} (n={len(values)})"
            )
            ordered = sorted(values)
            shares = [(i + 1) / len(ordered) for i in range(len(ordered))]
            marks = {q: percentile(ordered, q) for q in MARKED}
            legend = " · ".join(f"p{q} {at:,.0f}" for q, at in marks.items())
            cdf.step(ordered, shares, where="post", color=color, label=f"{label}: {legend} ms")
            for at in marks.values():
                cdf.axvline(at, color=color, linestyle=":", linewidth=0.8)
        histogram.set(title=name, xlabel="turn latency (ms)", ylabel="turns")
        cdf.set(title=f"{name}: cumulative", xlabel="turn latency (ms)", ylabel="share of turns")
        cdf.set_ylim(0, 1.02)
        histogram.legend(fontsize=8)
        cdf.legend(fontsize=8, loc="lower right")
    return _save(figure, path)


def throughput_chart(
    panels: Panels,
    path: Path,
    title: str,
    unit: str = "turns completed / s",
    stop_at: float | None = None,
) -> Path:
    """Each panel's series of moments (seconds from its start) counted per second;
    ``stop_at`` marks when the senders stopped sending."""
    figure, rows = _figure(len(panels), columns=1, title=title)
    colors = _colors(panels)
    for (name, series), (axes,) in zip(panels.items(), rows, strict=True):
        drawn = False
        for label, moments in series.items():
            counts = per_second(_finite(moments))
            if not counts:
                continue
            seconds = list(range(len(counts) + 1))
            axes.stairs(
                counts, seconds, color=colors[label], label=f"{label} ({len(_finite(moments))})"
            )
            drawn = True
        if not drawn:
            _empty(axes, name)
            continue
        if stop_at is not None:
            axes.axvline(
                stop_at, color="grey", linestyle="--", linewidth=0.8, label="sending stops"
            )
        axes.set(title=name, xlabel="seconds from start", ylabel=unit)
        axes.set_ylim(bottom=0)
        axes.legend(fontsize=8)
    return _save(figure, path)


def _figure(panels: int, columns: int, title: str) -> tuple[Figure, list[list[Axes]]]:
    rows = max(1, panels)
    figure = Figure(figsize=(6.5 * columns, 3.4 * rows), dpi=DPI, layout="constrained")
    figure.suptitle(title)
    grid = figure.subplots(rows, columns, squeeze=False)
    return figure, [list(row) for row in grid]


def _colors(panels: Panels) -> dict[str, str]:
    """One colour per series label across a chart's panels, in order of first use."""
    labels = dict.fromkeys(label for series in panels.values() for label in series)
    return {label: f"C{i % 10}" for i, label in enumerate(labels)}


def _finite(values: Sequence[float]) -> list[float]:
    return [float(v) for v in values if not math.isnan(v) and not math.isinf(v)]


def _empty(axes: Axes, name: str) -> None:
    axes.set_title(name)
    axes.set_axis_off()
    axes.text(0.5, 0.5, "no data", ha="center", va="center", transform=axes.transAxes)


def _save(figure: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(figure)
    figure.savefig(path, format="png")
    return path
