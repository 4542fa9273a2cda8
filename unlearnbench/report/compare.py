"""Comparisons over the nested design of :mod:`unlearnbench.report.noise`: paired differences
over matched train seeds, and the gap to a reference.

- The gap to retrain is the paper's, from the mean columns, with a paired percentile-bootstrap
  interval over train seeds (Efron & Tibshirani, *An Introduction to the Bootstrap*, 1993, §13).
- Paired comparisons pair train seeds: d_i = (train-seed mean of A) - (train-seed mean of B),
  a paired t-test over the seeds both hold, with its interval and the minimum detectable effect
  at 5% two-sided level and 80% power, (t_{0.975,n-1} + t_{0.80,n-1}) * sd(d) / sqrt(n).
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from unlearnbench.report.noise import (
    CONFIDENCE,
    POWER,
    observations,
    sample_mean,
    sample_variance,
    t_quantile,
    train_means,
)


@dataclass(frozen=True)
class Paired:
    """A paired comparison over matched train seeds: the differences, their mean, 95% interval,
    two-sided p-value and the minimum detectable effect (None where n < 2)."""

    diffs: tuple[float, ...]

    @property
    def n(self) -> int:
        return len(self.diffs)

    @property
    def mean(self) -> float:
        return sample_mean(self.diffs) if self.diffs else math.nan

    @property
    def standard_error(self) -> float | None:
        return math.sqrt(sample_variance(self.diffs) / self.n) if self.n > 1 else None

    @property
    def half_width(self) -> float | None:
        se = self.standard_error
        return None if se is None else t_quantile(0.5 + CONFIDENCE / 2, self.n - 1) * se

    @property
    def p_value(self) -> float | None:
        from scipy.stats import t

        se = self.standard_error
        if se is None:
            return None
        if se == 0:
            return 1.0 if self.mean == 0 else 0.0
        return float(2 * t.sf(abs(self.mean) / se, self.n - 1))

    @property
    def detectable(self) -> float | None:
        """The smallest true mean difference this many seeds detect with 80% power at 5%."""
        se = self.standard_error
        if se is None:
            return None
        return (t_quantile(0.5 + CONFIDENCE / 2, self.n - 1) + t_quantile(POWER, self.n - 1)) * se

    def describe(self, digits: int = 2) -> str:
        """``+d [lo, hi] (n, p; MDE)`` or ``-`` without pairs."""
        if not self.diffs:
            return "-"
        if self.half_width is None:
            return f"{self.mean:+.{digits}f} (n={self.n}, no interval)"
        lo, hi = self.mean - self.half_width, self.mean + self.half_width
        return (
            f"{self.mean:+.{digits}f} [{lo:+.{digits}f}, {hi:+.{digits}f}] "
            f"(n={self.n}, p={self.p_value:.2g}, MDE {self.detectable:.{digits}f})"
        )


def paired(left: Mapping[int, float], right: Mapping[int, float]) -> Paired:
    """``left - right`` over the train seeds both hold."""
    return Paired(tuple(left[s] - right[s] for s in sorted(set(left) & set(right))))


def gap(
    ours: Mapping[str, float | None], reference: Mapping[str, float | None], names: Sequence[str]
) -> float | None:
    """The gap to a reference ("Disparity Ave.", Jia et al. 2023): the mean over the gap metrics
    ``names`` of |ours - reference's|; None unless every one is finite on both sides. The one
    gap function of the suite (leaderboard, claims, plots and tune call it)."""
    if not names:
        return None
    diffs = []
    for name in names:
        a, b = ours.get(name), reference.get(name)
        if a is None or b is None or not math.isfinite(a) or not math.isfinite(b):
            return None
        diffs.append(abs(a - b))
    return sum(diffs) / len(diffs)


def train_seed_gaps(
    rows: Sequence[Mapping[str, Any]], reference: Sequence[Mapping[str, Any]], names: Sequence[str]
) -> dict[int, float]:
    """Per train seed, the gap of ``rows``' train-seed means to ``reference``'s (same seed)."""
    ours = {n: train_means(observations(rows, n)) for n in names}
    ref = {n: train_means(observations(reference, n)) for n in names}
    seeds = sorted({s for values in ours.values() for s in values})
    out = {}
    for seed in seeds:
        found = gap({n: ours[n].get(seed) for n in names}, {n: ref[n].get(seed) for n in names}, names)
        if found is not None:
            out[seed] = found
    return out


BOOTSTRAP_RESAMPLES = 2000


@dataclass(frozen=True)
class GapEstimate:
    """The gap to a reference with a 95% paired percentile-bootstrap interval over train seeds
    (``low``/``high`` None with fewer than two paired seeds); ``n`` paired train seeds."""

    value: float
    low: float | None
    high: float | None
    n: int

    def text(self, digits: int = 2) -> str:
        if self.low is None or self.high is None:
            return f"{self.value:.{digits}f}"
        return f"{self.value:.{digits}f} [{self.low:.{digits}f}, {self.high:.{digits}f}]"


def gap_estimate(
    ours: Mapping[str, Mapping[int, float]],
    reference: Mapping[str, Mapping[int, float]],
    names: Sequence[str],
) -> GapEstimate | None:
    """The paper's gap ("Disparity Ave.", computed from the mean columns: :func:`gap` of each
    side's mean of its train-seed means) with a paired bootstrap interval: train seeds that both
    sides hold for every gap metric are resampled with replacement (seeded, so the same records
    give the same interval) and the gap recomputed from the resample's means. None unless every
    gap metric has values on both sides."""
    means = [
        {n: sample_mean(list(side[n].values())) if side.get(n) else None for n in names}
        for side in (ours, reference)
    ]
    value = gap(means[0], means[1], names)
    if value is None:
        return None
    seeds = sorted(set.intersection(*[set(ours[n]) & set(reference[n]) for n in names]))
    if len(seeds) < 2:
        return GapEstimate(value, None, None, len(seeds))
    rng = random.Random(0)
    draws = []
    for _ in range(BOOTSTRAP_RESAMPLES):
        pick = [rng.choice(seeds) for _ in seeds]
        a = {n: sample_mean([ours[n][s] for s in pick]) for n in names}
        b = {n: sample_mean([reference[n][s] for s in pick]) for n in names}
        draws.append(gap(a, b, names))
    draws.sort()
    lo = draws[int(0.025 * BOOTSTRAP_RESAMPLES)]
    hi = draws[int(0.975 * BOOTSTRAP_RESAMPLES) - 1]
    return GapEstimate(value, lo, hi, len(seeds))
