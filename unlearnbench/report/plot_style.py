"""The drawing vocabulary of :mod:`.plots`: one style (colour and marker) per method, means with
95% t-intervals over seeds, panel grids, reference lines and a legend right of the panels."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.colors import to_hex

from unlearnbench.reference_names import ORIGINAL
from unlearnbench.report.record import ResultRecord
from unlearnbench.report.stats import mean_interval

COLORS = (
    *(to_hex(c) for c in matplotlib.colormaps["tab10"].colors),
    "#000000",
    *(to_hex(c) for c in matplotlib.colormaps["tab20b"].colors[::4]),
    *(to_hex(c) for c in matplotlib.colormaps["tab20"].colors[1::2]),
)
"""26 colours: matplotlib's tab10, black, the five dark hues of tab20b, then tab20's ten light hues."""
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">")
"""9 markers; 9 and 26 are coprime, so the i-th style (colour i mod 26, marker i mod 9) repeats after 234."""
LEGEND_WIDTH = 2.4
"""Inches added to a figure's width for the legend right of its panels."""
INTERVAL_NOTE = "mean over seeds; bars: 95% t-interval where a method has ≥ 2 seeds"


@dataclass(frozen=True)
class Style:
    """How one method is drawn."""

    color: str
    marker: str


def method_order(records: Sequence[ResultRecord]) -> list[str]:
    """The methods of ``records``: ``original``, then the reference rows' (sorted), then the rest sorted."""
    methods = {r.method for r in records}
    original = sorted(m for m in methods if m == ORIGINAL)
    references = sorted({r.method for r in records if r.reference is not None} - set(original))
    return original + references + sorted(methods - set(original) - set(references))


def method_styles(methods: Sequence[str]) -> dict[str, Style]:
    """One style per method, in the given order: the i-th gets colour i mod 26 and marker i mod 9,
    so up to 234 methods get distinct (colour, marker) pairs, up to 26 distinct colours (the first 16
    of them dark) and up to 9 distinct markers."""
    return {
        m: Style(COLORS[i % len(COLORS)], MARKERS[i % len(MARKERS)])
        for i, m in enumerate(dict.fromkeys(methods))
    }


def _target(target: float) -> str:
    return "dense" if target == 0.0 else f"sparsity {target:g}"


@dataclass(frozen=True)
class Line:
    """A reference line: a mean with its interval's half-width; ``always``: drawn even far from the
    points (else named at the panel's top when drawing it would flatten them)."""

    mean: float
    half: float
    linestyle: str
    always: bool = False


Panel = tuple[str, float]
"""(forget set, sparsity target)."""
Points = dict[Panel, dict[str, list[float]]]
"""Per panel and method, one value per record (seed)."""


def metric_points(records: Sequence[ResultRecord], metric: str, sparse_only: bool = False) -> Points:
    points: Points = {}
    for r in records:
        value = r.metrics.get(metric)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            continue
        if sparse_only and r.sparsity_target <= 0:
            continue
        points.setdefault((r.forget_set, r.sparsity_target), {}).setdefault(r.method, []).append(float(value))
    return points


def grid(panels: Iterable[Panel], title: str, width: float = 3.6) -> tuple[Any, dict[Panel, Any]]:
    """A figure with one row per forget set and one column per sparsity target (``width`` inches each)."""
    keys = sorted(set(panels))
    forgets = sorted({f for f, _ in keys})
    targets = sorted({t for _, t in keys})
    fig, axes = plt.subplots(
        len(forgets),
        len(targets),
        figsize=(width * len(targets) + LEGEND_WIDTH, 2.9 * len(forgets) + 0.3),
        squeeze=False,
        layout="constrained",
    )
    fig.suptitle(title)
    found = {}
    for i, forget in enumerate(forgets):
        for j, target in enumerate(targets):
            ax = axes[i][j]
            if (forget, target) in keys:
                found[(forget, target)] = ax
                ax.set_title(f"forget {forget} · {_target(target)}")
                ax.grid(alpha=0.3)
            else:
                ax.set_axis_off()
    return fig, found


def legend(
    fig: Any, handles: Mapping[str, Any], order: Sequence[str], extra: Mapping[str, Any] | None = None
) -> None:
    """One legend for the figure, right of the panels, methods in ``order`` then reference lines."""
    extra = extra or {}
    labels = [m for m in order if m in handles] + list(extra)
    if labels:
        fig.legend(
            [handles.get(label, extra.get(label)) for label in labels],
            labels,
            loc="outside right center",
            fontsize=7,
            frameon=False,
        )


def point(
    ax: Any, x: float, y: Sequence[float], style: Style, label: str, xs: Sequence[float] | None = None
) -> Any:
    """One method's mean (and interval where there are several seeds) at ``x`` (or the mean of ``xs``)."""
    my, ey = mean_interval(y)
    mx, ex = mean_interval(xs) if xs is not None else (x, 0.0)
    return ax.errorbar(
        mx,
        my,
        xerr=ex if ex > 0 else None,
        yerr=ey if ey > 0 else None,
        fmt=style.marker,
        color=style.color,
        markersize=5,
        capsize=2,
        elinewidth=0.8,
        label=label,
    )


def dots(
    fig_title: str,
    points: Points,
    styles: Mapping[str, Style],
    ylabel: str,
    lines: Mapping[Panel, Mapping[str, Line]] | None = None,
) -> Any:
    """Per panel, one point per method along x (the methods in style order) and reference lines
    (by label); a line far outside the points' range is named at the panel's top instead of
    stretching the axis, unless it is drawn ``always``."""
    most = max(len(by) for by in points.values())
    fig, axes = grid(points, fig_title, width=max(3.6, 0.3 * most + 1.2))
    handles: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for panel, ax in axes.items():
        methods = [m for m in styles if m in points[panel]]
        values = []
        for x, method in enumerate(methods):
            handles[method] = point(ax, float(x), points[panel][method], styles[method], method)
            mean, half = mean_interval(points[panel][method])
            values += [mean - half, mean + half]
        panel_lines = (lines or {}).get(panel, {})
        near = {k: v for k, v in panel_lines.items() if v.always or _near(v.mean, values)}
        values += [v for line in near.values() for v in (line.mean - line.half, line.mean + line.half)]
        low, high = min(values), max(values)
        pad = (high - low) * 0.15 or max(abs(high) * 0.05, 0.01)
        ax.set_ylim(low - pad, high + pad)
        far = []
        for label, line in panel_lines.items():
            if label in near:
                extra[label] = ax.axhline(line.mean, color="0.25", linestyle=line.linestyle, linewidth=1.0)
                if line.half > 0:
                    ax.axhspan(
                        line.mean - line.half, line.mean + line.half, color="0.5", alpha=0.15, linewidth=0
                    )
            else:
                far.append(f"{label}: {line.mean:.3f} {'↑' if line.mean > high else '↓'}")
        if far:
            ax.text(0.99, 0.98, "\n".join(far), transform=ax.transAxes, ha="right", va="top", fontsize=7)
        ax.set_xticks(range(len(methods)), methods, rotation=35, ha="right")
        ax.set_xlim(-0.6, len(methods) - 0.4)
        ax.set_ylabel(ylabel)
    legend(fig, handles, list(styles), extra)
    return fig


def _near(value: float, values: Sequence[float]) -> bool:
    """Whether a reference line at ``value`` fits the points' range without flattening them (at most
    twice the range away)."""
    low, high = min(values), max(values)
    span = max(high - low, abs(high) * 0.1, 1e-9)
    return low - 2 * span <= value <= high + 2 * span
