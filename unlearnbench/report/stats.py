"""Per-seed numbers behind the published plots and the claims check, from result records only.

The gap of one record is paired with the ``retrain`` record of the same seed and setting
(protocol hash, forget set, pruner, sparsity target): the mean over the gap metrics (the records'
``metric_info[name]["gap"]``) of |metric - retrain's|. Comparisons pair seeds, and
:func:`verdict` turns the paired differences into supported / not supported / inconclusive.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from unlearnbench.reference_names import GAP_REFERENCE, ORIGINAL
from unlearnbench.report.record import ResultRecord

MIN_SEEDS = 3
"""Seeds a comparison needs before it can be called supported or not supported."""
STANDARD_ERRORS = 2.0
"""How many standard errors the mean paired difference must exceed to call a claim supported."""
IOU_METRICS = ("gold-iou", "mask-iou")
"""The topology metric of the IoU plot and claim (c), the first one the records hold."""

SUPPORTED = "supported"
NOT_SUPPORTED = "not supported"
INCONCLUSIVE = "inconclusive"
NOT_APPLICABLE = "not applicable"

RULE = (
    f"Seeds are paired; d is the per-seed difference in the claimed direction. Verdict: **{SUPPORTED}** when "
    f"n ≥ {MIN_SEEDS} seeds and mean(d) > {STANDARD_ERRORS:g} standard errors (sd(d)/√n); "
    f"**{NOT_SUPPORTED}** when n ≥ {MIN_SEEDS} and mean(d) ≤ 0; "
    f"**{INCONCLUSIVE}** otherwise (fewer seeds, or 0 < mean(d) ≤ "
    f"{STANDARD_ERRORS:g} SE); **{NOT_APPLICABLE}** when the records hold no such pair."
)


def load(records: Iterable[Mapping[str, Any]]) -> list[ResultRecord]:
    """The ``ok`` records as typed records."""
    typed = [ResultRecord.from_dict(r) for r in records]
    return [r for r in typed if r.ok]


def setting(record: ResultRecord) -> tuple[Any, ...]:
    """What a row is compared within: protocol hash, forget set, pruner, sparsity target."""
    return (record.protocol_hash, record.forget_set, record.pruner, record.sparsity_target)


def approximate(records: Sequence[ResultRecord]) -> list[str]:
    """The unlearners (sorted) whose rows are neither the original model nor a reference (retrain)."""
    references = {r.unlearner for r in records if r.reference is not None}
    return sorted({r.unlearner for r in records} - references - {ORIGINAL})


def gap_metrics(record: ResultRecord) -> tuple[str, ...]:
    return tuple(n for n in record.metric_names if (record.metric_info.get(n) or {}).get("gap"))


def seed_gaps(records: Sequence[ResultRecord]) -> dict[str, float]:
    """Each record's gap to the retrain record of its seed and setting (absent: no retrain row or a
    gap metric is missing)."""
    retrain = {(*setting(r), r.seed): r for r in records if r.reference == GAP_REFERENCE and not r.unprune}
    gaps = {}
    for record in records:
        ref = retrain.get((*setting(record), record.seed))
        names = gap_metrics(record)
        if ref is None or not names:
            continue
        pairs = [(record.metrics.get(n), ref.metrics.get(n)) for n in names]
        if all(a is not None and b is not None for a, b in pairs):
            gaps[record.row_id] = sum(abs(a - b) for a, b in pairs) / len(pairs)  # type: ignore[operator]
    return gaps


def iou_metric(records: Sequence[ResultRecord]) -> str | None:
    """``gold-iou`` when any record has it, else ``mask-iou`` (IoU with the retain topology)."""
    for name in IOU_METRICS:
        if any(r.metrics.get(name) is not None for r in records):
            return name
    return None


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for one value)."""
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, 0.0
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def fmt(values: Sequence[float], digits: int = 2) -> str:
    """``mean ± std (n)`` of ``values``, ``-`` when empty."""
    if not values:
        return "-"
    mean, std = mean_std(values)
    return f"{mean:.{digits}f} ± {std:.{digits}f} (n={len(values)})"


@dataclass(frozen=True)
class Verdict:
    """The paired comparison: per-seed differences and what they say about the claim."""

    diffs: tuple[float, ...]

    @property
    def n(self) -> int:
        return len(self.diffs)

    @property
    def standard_error(self) -> float:
        return mean_std(self.diffs)[1] / math.sqrt(self.n) if self.n else math.nan

    @property
    def label(self) -> str:
        if not self.diffs:
            return NOT_APPLICABLE
        mean = mean_std(self.diffs)[0]
        if self.n >= MIN_SEEDS and mean > STANDARD_ERRORS * self.standard_error and mean > 0:
            return SUPPORTED
        if self.n >= MIN_SEEDS and mean <= 0:
            return NOT_SUPPORTED
        return INCONCLUSIVE

    def describe(self, digits: int = 2) -> str:
        if not self.diffs:
            return "-"
        mean = mean_std(self.diffs)[0]
        return f"{mean:+.{digits}f} (SE {self.standard_error:.{digits}f}, n={self.n})"


def paired(left: Mapping[int, float], right: Mapping[int, float]) -> Verdict:
    """``left - right`` over the seeds both hold."""
    return Verdict(tuple(left[s] - right[s] for s in sorted(set(left) & set(right))))
