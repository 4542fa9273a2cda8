"""The plots of a run or a published leaderboard (matplotlib, PNG and SVG), from its records only.

- ``tradeoff``: UA against RA per method (mean ± std over seeds), one panel per forget set,
  marker by sparsity target.
- ``gap``: the per-seed gap to retrain (:func:`stats.seed_gaps`) per approximate method, dense
  against each sparsity, one panel per forget set (rows without un-pruning).
- ``iou``: mask IoU with the gold topology (``gold-iou``), or with the retain topology
  (``mask-iou``) when the records hold no ``gold-iou``, per method at each sparsity > 0, with and
  without un-pruning.

Output is reproducible: the SVG carries no date and a fixed ``svg.hashsalt``, the PNG no
software tag; so the same records and matplotlib version give byte-identical SVG files.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from unlearnbench.paths import inside
from unlearnbench.report.record import ResultRecord
from unlearnbench.report.stats import approximate, iou_metric, load, mean_std, seed_gaps

PLOTS = ("tradeoff", "gap", "iou")
FORMATS = ("png", "svg")
STYLE = {"svg.hashsalt": "unlearnbench", "svg.fonttype": "path", "font.size": 8}
MARKERS = ("o", "^", "s", "D", "v", "P", "X")
IOU_LABELS = {
    "gold-iou": "IoU with the gold mask (gold-iou)",
    "mask-iou": "IoU with the retain topology (mask-iou)",
}


def _forgets(records: Sequence[ResultRecord]) -> list[str]:
    return sorted({r.forget_set for r in records})


def _panels(count: int, title: str) -> tuple[Any, list[Any]]:
    fig, axes = plt.subplots(1, max(count, 1), figsize=(4.2 * max(count, 1), 3.6), squeeze=False)
    fig.suptitle(title)
    return fig, list(axes[0])


def _tradeoff(records: Sequence[ResultRecord]) -> Any:
    fig, axes = _panels(len(_forgets(records)), "UA vs RA per method (mean ± std over seeds)")
    targets = sorted({r.sparsity_target for r in records})
    methods = sorted({r.method for r in records})
    colors = {m: plt.get_cmap("tab10")(i % 10) for i, m in enumerate(methods)}
    for ax, forget in zip(axes, _forgets(records), strict=False):
        for method in methods:
            for i, target in enumerate(targets):
                rows = [
                    r
                    for r in records
                    if (r.forget_set, r.method, r.sparsity_target) == (forget, method, target)
                ]
                ua = [r.metrics["ua"] for r in rows if r.metrics.get("ua") is not None]
                ra = [r.metrics["ra"] for r in rows if r.metrics.get("ra") is not None]
                if not ua or not ra:
                    continue
                (mx, sx), (my, sy) = mean_std(ra), mean_std(ua)
                label = f"{method} @ {target:g}"
                ax.errorbar(
                    mx,
                    my,
                    xerr=sx,
                    yerr=sy,
                    fmt=MARKERS[i % len(MARKERS)],
                    color=colors[method],
                    label=label,
                    capsize=2,
                )
        ax.set(title=f"forget {forget}", xlabel="RA (%)", ylabel="UA (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6, loc="best")
    return fig


def _bars(ax: Any, groups: Mapping[str, Mapping[str, list[float]]], ylabel: str) -> None:
    """Grouped bars: x = group (method), one bar per series (mean ± std)."""
    series = sorted({s for by in groups.values() for s in by})
    width = 0.8 / max(len(series), 1)
    for j, name in enumerate(series):
        xs, heights, errors = [], [], []
        for i, group in enumerate(groups):
            values = groups[group].get(name)
            if values:
                mean, std = mean_std(values)
                xs.append(i + (j - (len(series) - 1) / 2) * width)
                heights.append(mean)
                errors.append(std)
        ax.bar(xs, heights, width, yerr=errors, capsize=2, label=name)
    ax.set_xticks(range(len(groups)), list(groups), rotation=30, ha="right")
    ax.set_ylabel(ylabel)
    ax.grid(axis="y", alpha=0.3)
    if series:
        ax.legend(fontsize=6)


def _gap(records: Sequence[ResultRecord]) -> Any:
    gaps = seed_gaps(records)
    plain = [r for r in records if not r.unprune and r.row_id in gaps]
    fig, axes = _panels(
        len(_forgets(records)), "Gap to retrain per method: dense vs sparse (mean ± std of per-seed gaps)"
    )
    for ax, forget in zip(axes, _forgets(records), strict=False):
        groups: dict[str, dict[str, list[float]]] = {}
        for unlearner in approximate(plain):
            for r in plain:
                if (r.forget_set, r.unlearner) == (forget, unlearner):
                    label = "dense" if r.sparsity_target == 0.0 else f"{r.pruner} @ {r.sparsity_target:g}"
                    groups.setdefault(unlearner, {}).setdefault(label, []).append(gaps[r.row_id])
        _bars(ax, groups, "gap to retrain (points)")
        ax.set_title(f"forget {forget}")
    return fig


def _iou(records: Sequence[ResultRecord]) -> Any:
    metric = iou_metric(records)
    sparse = [r for r in records if r.sparsity_target > 0 and metric and r.metrics.get(metric) is not None]
    title = IOU_LABELS.get(metric or "", "mask IoU (no IoU metric in these records)")
    fig, axes = _panels(len(_forgets(records)), title + ", mean ± std over seeds")
    for ax, forget in zip(axes, _forgets(records), strict=False):
        groups: dict[str, dict[str, list[float]]] = {}
        for r in sorted(sparse, key=lambda r: (r.unlearner, r.unprune)):
            if r.forget_set == forget:
                series = f"{r.pruner} @ {r.sparsity_target:g}" + (f" + {r.unpruner}" if r.unprune else "")
                groups.setdefault(r.unlearner, {}).setdefault(series, []).append(float(r.metrics[metric]))  # type: ignore[index]
        _bars(ax, groups, "IoU")
        ax.set_title(f"forget {forget}")
    return fig


def write_plots(raw: Iterable[Mapping[str, Any]], out: Path) -> list[Path]:
    """Write every plot of :data:`PLOTS` as PNG and SVG into ``out``; returns the files written."""
    records = load(raw)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    with plt.rc_context(STYLE):
        for name, make in (("tradeoff", _tradeoff), ("gap", _gap), ("iou", _iou)):
            fig = make(records)
            fig.tight_layout()
            for ext in FORMATS:
                path = inside(out, f"{name}.{ext}")
                metadata = {"Date": None} if ext == "svg" else {"Software": None}
                fig.savefig(path, format=ext, metadata=metadata)
                written.append(path)
            plt.close(fig)
    return written
