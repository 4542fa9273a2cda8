"""Per-train-seed numbers behind the leaderboards, the published plots and the claims check,
from result records only (the statistics themselves are in :mod:`unlearnbench.report.noise`).

A row's value at a train seed is the mean over its unlearning and evaluation repetitions
(:func:`noise.train_means`). Its gap at a train seed is :func:`compare.gap` of those means to the
``retrain`` rows' means at the same train seed and setting (protocol hash, data copy, forget set,
pruner, sparsity target), over the gap metrics (the records' ``metric_info[name]["gap"]``).
Comparisons pair train seeds; :class:`Verdict` turns the paired differences into supported /
not supported / inconclusive by their 95% interval.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from unlearnbench.reference_names import GAP_REFERENCE, ORIGINAL
from unlearnbench.report import compare, noise
from unlearnbench.report.record import ResultRecord

MIN_SEEDS = 3
"""Train seeds a comparison needs before it can be called supported or not supported."""
IOU_METRICS = ("gold-iou", "mask-iou")
"""The topology metric of the IoU plot and claim (c), the first one the records hold."""

SUPPORTED = "supported"
NOT_SUPPORTED = "not supported"
INCONCLUSIVE = "inconclusive"
NOT_APPLICABLE = "not applicable"

RULE = (
    "Train seeds are paired (each side's value at a seed is its mean over the unlearning and evaluation "
    "repetitions); d is the per-seed difference in the claimed direction, shown as mean [95% t-interval] "
    f"with the paired t-test's p and the minimum detectable effect (MDE: 80% power at 5%). Verdict: "
    f"**{SUPPORTED}** when n ≥ {MIN_SEEDS} train seeds and the interval lies above 0; "
    f"**{NOT_SUPPORTED}** when n ≥ {MIN_SEEDS} and mean(d) ≤ 0; **{INCONCLUSIVE}** otherwise (fewer "
    f"seeds, or an interval that holds 0: a true effect smaller than the MDE is not excluded); "
    f"**{NOT_APPLICABLE}** when the records hold no such pair."
)


class Verdict(compare.Paired):
    """A paired comparison over train seeds and what it says about a claim (:data:`RULE`)."""

    @property
    def label(self) -> str:
        if not self.diffs:
            return NOT_APPLICABLE
        if self.n >= MIN_SEEDS and self.mean <= 0:
            return NOT_SUPPORTED
        if self.n >= MIN_SEEDS and self.half_width is not None and self.mean - self.half_width > 0:
            return SUPPORTED
        return INCONCLUSIVE


def paired(left: Mapping[int, float], right: Mapping[int, float]) -> Verdict:
    """``left - right`` over the train seeds both hold."""
    return Verdict(tuple(left[s] - right[s] for s in sorted(set(left) & set(right))))


def load(records: Iterable[Mapping[str, Any]]) -> list[ResultRecord]:
    """The ``ok`` records as typed records."""
    typed = [ResultRecord.from_dict(r) for r in records]
    return [r for r in typed if r.ok]


def setting(record: ResultRecord) -> tuple[Any, ...]:
    """What a row is compared within: protocol hash, data copy, forget set, pruner, sparsity target."""
    return (record.protocol_hash, record.data_copy, record.forget_set, record.pruner, record.sparsity_target)


def approximate(records: Sequence[ResultRecord]) -> list[str]:
    """The unlearners (sorted) whose rows are neither the original model nor a reference (retrain)."""
    references = {r.unlearner for r in records if r.reference is not None}
    return sorted({r.unlearner for r in records} - references - {ORIGINAL})


def gap_metrics(record: ResultRecord) -> tuple[str, ...]:
    return tuple(n for n in record.metric_names if (record.metric_info.get(n) or {}).get("gap"))


def by_train_seed(records: Iterable[ResultRecord], metric: str) -> dict[int, float]:
    """Train seed -> the records' mean of ``metric`` at that seed (over its repetitions)."""
    return noise.train_means(noise.observations([r.to_dict() for r in records], metric))


def method_key(record: ResultRecord) -> tuple[Any, ...]:
    """A row of a table: its setting and method (unlearner, un-prune, un-pruner)."""
    return (*setting(record), record.unlearner, record.unprune, record.unpruner)


def train_seed_gaps(records: Sequence[ResultRecord]) -> dict[tuple[Any, ...], dict[int, float]]:
    """:func:`method_key` -> train seed -> the gap to the retrain rows of that seed and setting
    (absent: no retrain row or a gap metric missing)."""
    rows: dict[tuple[Any, ...], list[ResultRecord]] = {}
    for r in records:
        rows.setdefault(method_key(r), []).append(r)
    retrain = {
        setting(r): [
            x for x in records if setting(x) == setting(r) and x.reference == GAP_REFERENCE and not x.unprune
        ]
        for r in records
    }
    out = {}
    for key, group in rows.items():
        names = gap_metrics(group[0])
        ref = retrain[setting(group[0])]
        found = compare.train_seed_gaps([r.to_dict() for r in group], [r.to_dict() for r in ref], names)
        if found:
            out[key] = found
    return out


def seed_gaps(records: Sequence[ResultRecord]) -> dict[str, float]:
    """Each record's gap to the retrain rows of its train seed and setting, by ``row_id`` (a
    record's own values against retrain's train-seed means)."""
    refs: dict[tuple[Any, ...], list[ResultRecord]] = {}
    for r in records:
        if r.reference == GAP_REFERENCE and not r.unprune:
            refs.setdefault(setting(r), []).append(r)
    means: dict[tuple[Any, ...], dict[str, dict[int, float]]] = {}
    gaps = {}
    for record in records:
        names = gap_metrics(record)
        ref = refs.get(setting(record))
        if ref is None or not names:
            continue
        table = means.setdefault(setting(record), {n: by_train_seed(ref, n) for n in names})
        train = noise.record_seeds(record.to_dict())[0]
        found = compare.gap(record.metrics, {n: (table.get(n) or {}).get(train) for n in names}, names)
        if found is not None:
            gaps[record.row_id] = found
    return gaps


def iou_metric(records: Sequence[ResultRecord]) -> str | None:
    """``gold-iou`` when any record has it, else ``mask-iou`` (IoU with the retain topology)."""
    for name in IOU_METRICS:
        if any(r.metrics.get(name) is not None for r in records):
            return name
    return None


def mean_interval(values: Sequence[float]) -> tuple[float, float]:
    """Mean and the half-width of its 95% t-interval (0 for one value): what plots draw over
    train-seed values."""
    if len(values) < 2:
        return (values[0] if values else math.nan), 0.0
    summary = noise.summarize([noise.Observation(i, i, 0, v) for i, v in enumerate(values)])
    assert summary is not None and summary.half_width is not None
    return summary.mean, summary.half_width


def fmt(by_seed: Mapping[int, float], digits: int = 2) -> str:
    """``mean ± half-width (n=I)`` of train-seed values (the 95% t-interval), ``-`` when empty."""
    if not by_seed:
        return "-"
    mean, half = mean_interval([by_seed[s] for s in sorted(by_seed)])
    spread = f" ± {half:.{digits}f}" if len(by_seed) > 1 else ""
    return f"{mean:.{digits}f}{spread} (n={len(by_seed)})"


def train_seed_records(records: Sequence[ResultRecord]) -> list[ResultRecord]:
    """One record per row and train seed: each metric the mean over that seed's unlearning and
    evaluation repetitions (what plots draw, so their intervals are over train seeds, as the
    tables'). Records without repetitions come back as they are."""
    groups: dict[tuple[Any, ...], list[ResultRecord]] = {}
    for r in records:
        groups.setdefault((*method_key(r), r.seed), []).append(r)
    out = []
    for group in groups.values():
        if len(group) == 1:
            out.append(group[0])
            continue
        names = dict.fromkeys(n for r in group for n in r.metrics)
        means = {n: by_train_seed(group, n).get(group[0].seed) for n in names}
        out.append(dataclasses.replace(group[0], metrics=means))
    return out
