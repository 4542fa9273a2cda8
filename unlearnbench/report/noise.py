"""Every number with its noise: means, 95% intervals and variance shares over the nested design
of train seeds, unlearning repetitions and evaluation repetitions.

A row's value y_ijk comes from train seed i (the original, its pruning and its references),
unlearning repetition j of that original (the unlearner's own randomness) and evaluation
repetition k of that unlearned model (shadow draws and other metric randomness): a two-stage
nested random-effects design, y_ijk = mu + T_i + U_ij + E_ijk (Searle, Casella & McCulloch,
*Variance Components*, Wiley 1992, §3.6 and §4.7; the split into training and unlearning
variance follows Lanyon et al., arXiv 2510.26714).

- The estimate is the unweighted mean of train-seed means (each the mean of its repetitions'
  means), so an original with more repetitions does not weigh more.
- The 95% interval is a Student-t interval over the I train-seed means (df = I - 1). Train seeds
  are the independent units: repetitions of one original share its noise, so they never narrow
  the interval by themselves (Lanyon et al.). With one train seed there is no interval.
- The variance components are the ANOVA (method-of-moments) estimators of that design with
  unweighted means: sigma2_E is the pooled within-model variance, sigma2_U the pooled variance of
  the repetition means within a train seed less sigma2_E / K~, sigma2_T the variance of the
  train-seed means less the repetition-level variance / J~ (K~, J~: harmonic mean group sizes;
  exact for balanced data), each truncated at 0. A level with one observation per group is not
  separable: its component is None and its variance is inside the level above.

Comparisons (paired tests, the gap to a reference) are in :mod:`unlearnbench.report.compare`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from statistics import harmonic_mean
from typing import Any

LEVELS = ("train", "unlearn", "eval")
"""The seed levels of a row, outermost first."""
CONFIDENCE = 0.95
POWER = 0.80


def t_quantile(q: float, df: int) -> float:
    from scipy.stats import t

    return float(t.ppf(q, df))


@dataclass(frozen=True)
class Observation:
    """One value of a row at its three seeds."""

    train: int
    unlearn: int
    eval: int
    value: float


def record_seeds(record: Mapping[str, Any]) -> tuple[int, int, int]:
    """A record's (train, unlearn, eval) seeds; records written before per-stage seeds had one
    seed for everything and evaluation seed 0."""
    seeds = record.get("seeds") or {}
    train = int(seeds.get("train", record["seed"]))
    return train, int(seeds.get("unlearn", train)), int(seeds.get("eval", 0))


def observations(records: Iterable[Mapping[str, Any]], metric: str) -> list[Observation]:
    """The finite values of ``metric`` in ``records`` at their seeds."""
    out = []
    for r in records:
        value = (r.get("metrics") or {}).get(metric)
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            out.append(Observation(*record_seeds(r), float(value)))
    return out


def sample_mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


def sample_variance(values: Sequence[float]) -> float:
    m = sample_mean(values)
    return sum((v - m) ** 2 for v in values) / (len(values) - 1)


def nested(obs: Iterable[Observation]) -> dict[int, dict[int, list[float]]]:
    """train seed -> unlearn seed -> evaluation values."""
    tree: dict[int, dict[int, list[float]]] = {}
    for o in obs:
        tree.setdefault(o.train, {}).setdefault(o.unlearn, []).append(o.value)
    return tree


def train_means(obs: Iterable[Observation]) -> dict[int, float]:
    """Each train seed's mean of its unlearning repetitions' means."""
    return {i: sample_mean([sample_mean(v) for v in reps.values()]) for i, reps in nested(obs).items()}


@dataclass(frozen=True)
class Summary:
    """A value with its noise: ``mean``, the 95% interval's ``half_width`` (None with one train
    seed), ``n`` = (train seeds, unlearning repetitions per seed, evaluation repetitions per
    model; the largest group where unbalanced) and the variance components by level (None where
    a level is not separable)."""

    mean: float
    half_width: float | None
    n: tuple[int, int, int]
    components: tuple[float | None, float | None, float | None]

    @property
    def low(self) -> float | None:
        return None if self.half_width is None else self.mean - self.half_width

    @property
    def high(self) -> float | None:
        return None if self.half_width is None else self.mean + self.half_width

    @property
    def shares(self) -> tuple[float | None, float | None, float | None] | None:
        """Each separable component's share of their sum (None when the sum is 0 or unknown)."""
        known = [c for c in self.components if c is not None]
        total = sum(known)
        if len(known) < 2 or total <= 0:
            return None
        return tuple(None if c is None else c / total for c in self.components)  # type: ignore[return-value]

    def covers(self, value: float) -> bool:
        """Whether the interval holds ``value`` (False without an interval)."""
        return self.half_width is not None and self.low <= value <= self.high  # type: ignore[operator]

    def design(self) -> str:
        """``IxJxK``, e.g. ``3x2x5``."""
        return "x".join(str(n) for n in self.n)


def summarize(obs: Sequence[Observation]) -> Summary | None:
    """The :class:`Summary` of ``obs`` (None when empty)."""
    if not obs:
        return None
    tree = nested(obs)
    models = [values for reps in tree.values() for values in reps.values()]
    means = train_means(obs)
    i = len(means)
    j_sizes = [len(reps) for reps in tree.values()]
    k_sizes = [len(values) for values in models]
    mean = sample_mean(list(means.values()))
    half = (
        None
        if i < 2
        else t_quantile(0.5 + CONFIDENCE / 2, i - 1) * math.sqrt(sample_variance(list(means.values())) / i)
    )
    k_h, j_h = harmonic_mean(k_sizes), harmonic_mean(j_sizes)
    within = [
        v
        for values in models
        if len(values) > 1
        for v in [sum((x - sample_mean(values)) ** 2 for x in values)]
    ]
    df_e = sum(k - 1 for k in k_sizes)
    sigma_e = sum(within) / df_e if df_e else None
    rep_ss = [
        sum(
            (sample_mean(v) - sample_mean([sample_mean(w) for w in reps.values()])) ** 2
            for v in reps.values()
        )
        for reps in tree.values()
    ]
    df_u = sum(j - 1 for j in j_sizes)
    ms_u = sum(rep_ss) / df_u if df_u else None
    sigma_u = None if ms_u is None else max(0.0, ms_u - (sigma_e or 0.0) / k_h)
    sigma_t = None
    if i > 1:
        below = ms_u / j_h if ms_u is not None else (sigma_e or 0.0) / k_h
        sigma_t = max(0.0, sample_variance(list(means.values())) - below)
    return Summary(mean, half, (i, max(j_sizes), max(k_sizes)), (sigma_t, sigma_u, sigma_e))


def summary_mean(obs: Sequence[Observation]) -> float | None:
    """The :class:`Summary` mean of ``obs`` (None when empty)."""
    found = summarize(obs)
    return None if found is None else found.mean


def share_text(summary: Summary, digits: int = 2) -> str:
    """The noise of a value by level: ``T 80 · U 15 · E 5 %`` (shares of the separable variance,
    where two or more levels are separable) and ``sd T 3.1 · U 1.2 · E 0.8`` (each component's
    standard deviation; ``-`` for a level not separable); ``-`` when no level varies."""
    known = [c for c in summary.components if c is not None]
    if not known or max(known) <= 1e-12 * (1.0 + summary.mean**2):  # round-off of equal values
        return "-"
    sds = " · ".join(
        f"{level[0].upper()} {'-' if c is None else f'{math.sqrt(c):.{digits}f}'}"
        for level, c in zip(LEVELS, summary.components, strict=True)
    )
    shares = summary.shares
    if shares is None:
        return f"sd {sds}"
    parts = " · ".join(
        f"{level[0].upper()} {'-' if x is None else f'{100 * x:.0f}'}"
        for level, x in zip(LEVELS, shares, strict=True)
    )
    return f"{parts} % (sd {sds})"
