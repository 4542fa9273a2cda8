"""The plots of a run or a published leaderboard (matplotlib, PNG and SVG), from its records only.

- ``tradeoff``: UA against RA per method, one panel per forget set and sparsity target.
- ``gap``: the per-seed gap to retrain (:func:`stats.seed_gaps`) per approximate method, dense
  against each sparsity (one line per method), one panel per forget set (rows without un-pruning).
- ``iou``: mask IoU with the gold topology (``gold-iou``), or with the retain topology
  (``mask-iou``) when the records hold no ``gold-iou``, per method at each sparsity > 0, with and
  without un-pruning; the ``gold`` row and the seed baseline (``seed-baseline-iou``: gold at
  another seed) are reference lines, not points.
- ``metric-<name>`` (:func:`write_metric_plots`): any metric the records hold, plugin metrics
  included, per method, one panel per forget set and sparsity target.

Every method has one style (colour and marker, :func:`method_styles`) in every plot of one
call (distinct colours for up to 26 methods, distinct pairs for up to 234); the legend sits
outside the panels. A point is the mean over seeds; its bars are the 95% t-interval over seeds,
drawn only where a method has two or more seeds. A plot without data is not written (and any
earlier file of that name is removed): the skip is logged.

Output is reproducible: the SVG carries no date and a fixed ``svg.hashsalt``, the PNG no
software tag; so the same records and matplotlib version give byte-identical SVG files.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from unlearnbench.paths import inside
from unlearnbench.reference_names import UNPRUNE_GAP_REFERENCE
from unlearnbench.report.plot_style import (
    INTERVAL_NOTE,
    LEGEND_WIDTH,
    Line,
    Panel,
    Points,
    Style,
    dots,
    grid,
    legend,
    method_order,
    method_styles,
    metric_points,
    point,
)
from unlearnbench.report.record import ResultRecord
from unlearnbench.report.stats import (
    approximate,
    iou_metric,
    load,
    mean_interval,
    seed_gaps,
    train_seed_records,
)

logger = logging.getLogger(__name__)

PLOTS = ("tradeoff", "gap", "iou")
FORMATS = ("png", "svg")
STYLE = {"svg.hashsalt": "unlearnbench", "svg.fonttype": "path", "font.size": 8}
SEED_BASELINE = "seed-baseline-iou"
IOU_LABELS = {
    "gold-iou": "IoU with the gold mask (gold-iou)",
    "mask-iou": "IoU with the retain topology (mask-iou)",
}


def _tradeoff_data(
    records: Sequence[ResultRecord],
) -> dict[Panel, dict[str, tuple[list[float], list[float]]]]:
    data: dict[Panel, dict[str, tuple[list[float], list[float]]]] = {}
    for r in records:
        ua, ra = r.metrics.get("ua"), r.metrics.get("ra")
        if ua is None or ra is None:
            continue
        xs, ys = data.setdefault((r.forget_set, r.sparsity_target), {}).setdefault(r.method, ([], []))
        xs.append(float(ra))
        ys.append(float(ua))
    return data


def _tradeoff(records: Sequence[ResultRecord], styles: Mapping[str, Style]) -> Any | None:
    data = _tradeoff_data(records)
    if not data:
        return None
    fig, axes = grid(data, f"UA vs RA per method\n{INTERVAL_NOTE}")
    handles: dict[str, Any] = {}
    for panel, ax in axes.items():
        for method in styles:
            if method in data[panel]:
                ra, ua = data[panel][method]
                handles[method] = point(ax, 0.0, ua, styles[method], method, xs=ra)
        ax.set(xlabel="RA (%)", ylabel="UA (%)")
    legend(fig, handles, list(styles))
    return fig


def _setting(r: ResultRecord) -> tuple[float, str]:
    return (r.sparsity_target, "dense" if r.sparsity_target == 0.0 else f"{r.pruner} @ {r.sparsity_target:g}")


def _gap_data(records: Sequence[ResultRecord]) -> dict[str, dict[str, dict[tuple[float, str], list[float]]]]:
    gaps = seed_gaps(records)
    plain = [r for r in records if not r.unprune and r.row_id in gaps]
    methods = set(approximate(plain))
    data: dict[str, dict[str, dict[tuple[float, str], list[float]]]] = {}
    for r in plain:
        if r.unlearner in methods:
            by = data.setdefault(r.forget_set, {}).setdefault(r.method, {})
            by.setdefault(_setting(r), []).append(gaps[r.row_id])
    return data


def _gap(records: Sequence[ResultRecord], styles: Mapping[str, Style]) -> Any | None:
    data = _gap_data(records)
    if not data:
        return None
    fig, axes = plt.subplots(
        1, len(data), figsize=(3.8 * len(data) + LEGEND_WIDTH, 3.4), squeeze=False, layout="constrained"
    )
    fig.suptitle(f"Gap to retrain (per seed), dense vs sparse\n{INTERVAL_NOTE}")
    handles: dict[str, Any] = {}
    for ax, forget in zip(axes[0], sorted(data), strict=True):
        settings = sorted({s for by in data[forget].values() for s in by})
        where = {s: i for i, s in enumerate(settings)}
        methods = [m for m in styles if m in data[forget]]
        for k, method in enumerate(methods):
            dodge = (k - (len(methods) - 1) / 2) * 0.04
            style = styles[method]
            by = data[forget][method]
            xs = [where[s] + dodge for s in sorted(by)]
            means = [mean_interval(by[s])[0] for s in sorted(by)]
            ax.plot(xs, means, color=style.color, linewidth=0.8, alpha=0.7)
            for x, s in zip(xs, sorted(by), strict=True):
                handles[method] = point(ax, x, by[s], style, method)
        ax.set_xticks(range(len(settings)), [label for _, label in settings])
        ax.set_xlim(-0.5, len(settings) - 0.5)
        ax.set(title=f"forget {forget}", ylabel="gap to retrain (points)")
        ax.grid(alpha=0.3)
    legend(fig, handles, list(styles))
    return fig


def _iou_data(records: Sequence[ResultRecord]) -> tuple[str | None, Points]:
    metric = iou_metric(records)
    if metric is None:
        return None, {}
    rows = [r for r in records if r.reference != UNPRUNE_GAP_REFERENCE]
    return metric, metric_points(rows, metric, sparse_only=True)


def _per_seed(records: Iterable[ResultRecord], metric: str) -> list[float]:
    """One value per seed (the mean of the seed's rows: a baseline every row of a seed shares)."""
    by: dict[int, list[float]] = {}
    for r in records:
        value = r.metrics.get(metric)
        if value is not None:
            by.setdefault(r.seed, []).append(float(value))
    return [sum(v) / len(v) for _, v in sorted(by.items())]


def _iou(records: Sequence[ResultRecord], styles: Mapping[str, Style]) -> Any | None:
    metric, points = _iou_data(records)
    if metric is None or not points:
        return None
    lines: dict[Panel, dict[str, Line]] = {}
    for panel in points:
        same = [r for r in records if (r.forget_set, r.sparsity_target) == panel]
        gold = [
            float(r.metrics[metric])
            for r in same
            if r.reference == UNPRUNE_GAP_REFERENCE and r.metrics.get(metric) is not None
        ]  # type: ignore[arg-type]
        found = {}
        if gold:
            found["gold (reference)"] = Line(*mean_interval(gold), "--")
        baseline = _per_seed(same, SEED_BASELINE) if metric == "gold-iou" else []
        if baseline:
            found["seed baseline (gold vs gold at another seed)"] = Line(
                *mean_interval(baseline), ":", always=True
            )
        lines[panel] = found
    title = f"{IOU_LABELS.get(metric, metric)}\n{INTERVAL_NOTE}"
    return dots(title, points, styles, "IoU", lines)


PLOT_MAKERS: dict[str, Callable[[Sequence[ResultRecord], Mapping[str, Style]], Any | None]] = {
    "tradeoff": _tradeoff,
    "gap": _gap,
    "iou": _iou,
}
MISSING = {
    "tradeoff": "no ok record has both ua and ra",
    "gap": "no approximate unlearner's row has a retrain row of its seed and setting with every gap metric",
    "iou": "no ok record at a sparsity > 0 has gold-iou or mask-iou",
}


def available_plots(raw: Iterable[Mapping[str, Any]]) -> list[str]:
    """The plots of :data:`PLOTS` that ``raw`` has data for (the others are not written)."""
    records = train_seed_records(load(raw))
    has = {
        "tradeoff": bool(_tradeoff_data(records)),
        "gap": bool(_gap_data(records)),
        "iou": bool(_iou_data(records)[1]),
    }
    return [name for name in PLOTS if has[name]]


def _save(fig: Any, out: Path, name: str) -> list[Path]:
    written = []
    for ext in FORMATS:
        path = inside(out, f"{name}.{ext}")
        metadata = {"Date": None} if ext == "svg" else {"Software": None}
        fig.savefig(path, format=ext, metadata=metadata, bbox_inches="tight")
        written.append(path)
    plt.close(fig)
    return written


def _skip(out: Path, name: str, why: str) -> None:
    logger.warning("plot %s not written: %s", name, why)
    for ext in FORMATS:
        (out / f"{name}.{ext}").unlink(missing_ok=True)


def make_figures(raw: Iterable[Mapping[str, Any]]) -> dict[str, Any | None]:
    """Each plot of :data:`PLOTS` as a matplotlib figure, or None when the records hold no data for it
    (the caller closes the figures); one method style for all of them."""
    records = train_seed_records(load(raw))
    styles = method_styles(method_order(records))
    with plt.rc_context(STYLE):
        return {name: make(records, styles) for name, make in PLOT_MAKERS.items()}


def write_plots(raw: Iterable[Mapping[str, Any]], out: Path) -> list[Path]:
    """Write every plot of :data:`PLOTS` that has data as PNG and SVG into ``out``; returns the files
    written. A plot without data is skipped (logged) and an old file of its name removed."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    with plt.rc_context(STYLE):
        for name, fig in make_figures(raw).items():
            if fig is None:
                _skip(out, name, MISSING[name])
            else:
                written += _save(fig, out, name)
    return written


def metric_names(raw: Iterable[Mapping[str, Any]]) -> list[str]:
    """Every metric some ok record has a value of, sorted."""
    return sorted({n for r in load(raw) for n, v in r.metrics.items() if v is not None})


def metric_file(metric: str) -> str:
    """The file stem of a metric's plot: ``metric-<name>`` (characters outside [A-Za-z0-9._-] as _)."""
    return "metric-" + re.sub(r"[^A-Za-z0-9._-]", "_", metric)


def metric_figure(raw: Iterable[Mapping[str, Any]], metric: str) -> Any | None:
    """The ``metric-<name>`` figure: per method, one panel per forget set and sparsity target; any
    metric the records hold, plugin metrics included; None when no ok record has a value of it."""
    records = train_seed_records(load(raw))
    points = metric_points(records, metric)
    if not points:
        return None
    styles = method_styles(method_order(records))
    info: Mapping[str, Any] = next((r.metric_info[metric] for r in records if metric in r.metric_info), {})
    unit = info.get("unit") or ""
    label = f"{info.get('label', metric)}" + (f" ({unit})" if unit else "")
    with plt.rc_context(STYLE):
        return dots(f"{label} per method\n{INTERVAL_NOTE}", points, styles, label)


def write_metric_plots(raw: Iterable[Mapping[str, Any]], out: Path, metrics: Sequence[str]) -> list[Path]:
    """Write :func:`metric_figure` of each metric as ``metric-<name>`` PNG and SVG into ``out``; a
    metric no ok record has a value of is skipped (logged)."""
    records = [r.to_dict() for r in load(raw)]
    out.mkdir(parents=True, exist_ok=True)
    written = []
    with plt.rc_context(STYLE):
        for metric in metrics:
            fig = metric_figure(records, metric)
            if fig is None:
                _skip(out, metric_file(metric), f"no ok record has a value of {metric}")
            else:
                written += _save(fig, out, metric_file(metric))
    return written
