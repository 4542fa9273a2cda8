"""The references' training budgets and validation curves, from the records' provenance.

A reference that stands for exact unlearning (``retrain``, ``gold``) is only as good as its
training: if it stops while its validation accuracy still rises, every approximate method looks
far from it. For each reference row (and the ``original`` it replaces) the section shows the
epochs of its last training stage, the whole path's epochs where the records hold them, the mean
validation accuracy after each epoch of that stage over train seeds, and whether the curve is
flat at the end: the gain over the last quarter of its epochs is below :data:`PLATEAU_POINTS`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from unlearnbench.report.record import ResultRecord

PLATEAU_POINTS = 0.5
"""A curve whose last quarter of epochs gains less than this many points is at its plateau."""
LAST_STAGE = {
    "original": ("prune", "original"),
    "retrain": ("unlearn", "retain-dense"),
    "gold": ("retain-topology",),
}
"""The stage whose training a reference row's curve shows, first found in its provenance."""
PATH = {"original": ("original", "prune"), "retrain": ("unlearn",), "gold": ("retain-topology",)}
"""The stages of a row's own training path that its records name."""


def _curve(record: ResultRecord, reference: str) -> tuple[int | None, int | None, list[float]]:
    """(last stage's epochs, path epochs, validation accuracy after each epoch of the last stage)."""
    prov = record.provenance
    stage = next((s for s in LAST_STAGE[reference] if s in prov), None)
    if stage is None:
        return None, None, []
    points = [float(p[2]) for p in prov[stage].get("val_curve") or []]
    epochs = prov[stage].get("epochs")
    path = [prov[s].get("epochs") for s in PATH[reference] if s in prov]
    total = sum(path) if path and all(e is not None for e in path) else None
    return epochs, total, points


def plateau_gain(curve: list[float]) -> float | None:
    """The gain over the last quarter of the epochs (None for fewer than 4 points)."""
    if len(curve) < 4:
        return None
    return curve[-1] - curve[math.floor(0.75 * len(curve)) - 1]


def render_references(raw: Iterable[Mapping[str, Any]]) -> str:
    """The ``## References`` section, or nothing when no reference row carries a curve."""
    rows: dict[tuple[Any, ...], list[tuple[int | None, int | None, list[float]]]] = {}
    for record in (ResultRecord.from_dict(r) for r in raw):
        reference = "original" if record.unlearner == "original" else record.reference
        if not record.ok or record.unprune or reference not in LAST_STAGE:
            continue
        found = _curve(record, reference)
        if found[2]:
            key = (record.forget_set, record.pruner, record.sparsity_target, reference)
            rows.setdefault(key, []).append(found)
    if not rows:
        return ""
    lines = [
        "## References",
        "",
        "Each reference's budget and validation curve (mean over train seeds of the validation accuracy "
        "after each epoch of its last training stage; the whole path's epochs where the records hold them). "
        f"At plateau: the last quarter of the epochs gains < {PLATEAU_POINTS} points.",
        "",
        "| forget set | pruner @ sparsity | row | epochs (path) | validation accuracy by epoch (%) | "
        "last-quarter gain | at plateau | train seeds |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for (forget, pruner, target, reference), found in sorted(rows.items()):
        length = min(len(c) for _, _, c in found)
        mean = [sum(c[i] for _, _, c in found) / len(found) for i in range(length)]
        epochs = {e for e, _, _ in found}
        paths = {p for _, p, _ in found}
        shown = f"{'/'.join(str(e) for e in sorted(x for x in epochs if x is not None)) or '-'}"
        shown += f" ({'/'.join(str(p) for p in sorted(x for x in paths if x is not None)) or '-'})"
        gain = plateau_gain(mean)
        flat = "-" if gain is None else "yes" if gain < PLATEAU_POINTS else "**no**"
        curve = " → ".join(f"{v:.1f}" for v in mean)
        lines.append(
            f"| `{forget}` | {pruner} @ {target:g} | {reference} | {shown} | {curve} "
            f"| {'-' if gain is None else f'{gain:+.2f}'} | {flat} | {len(found)} |"
        )
    return "\n".join(lines) + "\n"
