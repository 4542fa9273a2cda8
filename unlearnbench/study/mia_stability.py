"""The MIA-stability study: does MIA-Efficacy swing with small changes of the forget size more
than the topology and output metrics against the gold model?

Xiao et al. (2025, arXiv 2507.18725; ``unpruning.md`` §4) claim that "a small change in the amount
of deleted data can produce arbitrary MIA results", even for the exact retrain + re-prune model.
:func:`run_study` sweeps the size of a random forget set in small steps (e.g. 1.0%, 1.1%, 1.2%
of the training pool; the sets are nested, drawn with one seed) over several seeds, for the
``retrain`` and ``gold`` references and any selected unlearners, one :class:`Pipeline` run per
size into ``OUT/<size>/``, all sharing ``OUT/artifacts`` (so each seed's original model and its
pruning are computed once). It records MIA-Efficacy, IoU with the gold mask (``gold-iou``) and
KL(gold || model) on D_f (``kl-gold-forget``) for every (method, size, seed).

The verdict (:func:`curve_stats`, :func:`verdict`) for metric m and method u, with V[s, i] the
value at seed s and forget size i (sizes in increasing order) and R_m = max - min of m over every
point of the study (all methods, sizes and seeds; the spread the metric shows between the
methods it must rank):

- ``step`` = mean over seeds s of max_i |V[s, i+1] - V[s, i]| / R_m: the largest change between
  neighbouring forget sizes within one run, as a fraction of the metric's range;
- ``seed_spread`` = max over i of std_s V[s, i] / R_m (sample std; 0 for one seed);
- ``cv`` = std_i(c_i) / |mean_i c_i|, c the seed-mean curve (coefficient of variation across
  sizes; None when the mean is 0), reported only.

A term with R_m = 0 (the metric is constant over the whole study) is 0. MIA swings more than the
topology metrics for method u when step(MIA-Efficacy) > max(step(gold-iou), step(kl-gold-forget));
the study's verdict counts the methods for which it does (ties count as not).
"""

from __future__ import annotations

import copy
import itertools
import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from unlearnbench.config.protocol import Protocol, resolve
from unlearnbench.errors import InvalidValueError
from unlearnbench.progress import ProgressSink
from unlearnbench.registry.catalog import Registry
from unlearnbench.run.context import RunSettings
from unlearnbench.run.plan import GAP_REFERENCE, GOLD, ORIGINAL

MIA = "mia-efficacy"
TOPOLOGY = ("gold-iou", "kl-gold-forget")
METRICS = (MIA, *TOPOLOGY)
LABELS = {
    MIA: "MIA-Efficacy (%)",
    "gold-iou": "IoU with gold mask",
    "kl-gold-forget": "KL-gold on D_f (nats)",
}
DEFAULT_FRACTIONS = (0.010, 0.011, 0.012, 0.013, 0.014, 0.015)


@dataclass(frozen=True)
class StudyConfig:
    """What to sweep: forget ``fractions`` of the pool, ``seeds``, ``unlearners`` (beside the
    ``retrain`` and ``gold`` references), the pruner and sparsity (None: the protocol's first
    pruner and first nonzero sparsity) and the seed of the forget-set draw."""

    fractions: tuple[float, ...] = DEFAULT_FRACTIONS
    seeds: tuple[int, ...] = (0, 1, 2)
    unlearners: tuple[str, ...] = ()
    pruner: str | None = None
    sparsity: float | None = None
    forget_seed: int = 0

    def __post_init__(self) -> None:
        if len(self.fractions) < 2 or any(not 0.0 < f < 1.0 for f in self.fractions):
            raise InvalidValueError(
                f"--fractions needs two or more values in (0, 1), got {list(self.fractions)}"
            )
        if len(set(self.fractions)) != len(self.fractions):
            raise InvalidValueError(f"--fractions repeats a value: {list(self.fractions)}")
        if not self.seeds:
            raise InvalidValueError("the study needs at least one seed")
        reserved = {ORIGINAL, GOLD}.intersection(self.unlearners)
        if reserved:
            raise InvalidValueError(
                f"--unlearner {sorted(reserved)[0]!r} names a reference row, not an unlearner"
            )


@dataclass(frozen=True)
class StudyPoint:
    """One evaluated row: the method (``retrain``, ``gold`` or an unlearner) at one size and seed."""

    method: str
    fraction: float
    forget_size: int
    seed: int
    values: Mapping[str, float | None]


@dataclass(frozen=True)
class CurveStats:
    """The swing statistics of one (method, metric) curve; see the module docstring."""

    method: str
    metric: str
    step: float
    seed_spread: float
    cv: float | None


@dataclass(frozen=True)
class Verdict:
    """Per method: step(MIA) against the largest topology step, and the count over methods."""

    mia_step: Mapping[str, float]
    topology_step: Mapping[str, float]
    swings_more: Mapping[str, bool]

    @property
    def count(self) -> int:
        return sum(self.swings_more.values())

    def sentence(self) -> str:
        """The verdict in one sentence, from the numbers."""
        n, k = len(self.swings_more), self.count
        parts = ", ".join(
            f"{m} {self.mia_step[m]:.2f} vs {self.topology_step[m]:.2f}" for m in sorted(self.swings_more)
        )
        answer = "MIA-Efficacy swings more" if 2 * k > n else "MIA-Efficacy does not swing more"
        return (
            f"{answer} than the topology metrics (IoU, KL with gold) for {k} of {n} methods "
            "(largest size-to-size step as a fraction of each metric's range, MIA vs the larger "
            f"of IoU and KL: {parts})."
        )


@dataclass(frozen=True)
class StudyResult:
    config: StudyConfig
    pruner: str
    sparsity: float
    points: tuple[StudyPoint, ...]
    failed: tuple[str, ...]
    stats: tuple[CurveStats, ...]
    verdict: Verdict


def forget_name(fraction: float) -> str:
    return f"random-{fraction * 100:.2f}pct"


def study_protocol(protocol: Protocol, fraction: float, config: StudyConfig) -> Protocol:
    """``protocol`` with one random forget set of ``fraction``, the study's seeds, methods and
    metrics, and no un-prune rows."""
    raw: dict[str, Any] = copy.deepcopy(dict(protocol.raw))
    raw["forget"] = [
        {"name": forget_name(fraction), "kind": "random", "fraction": fraction, "seed": config.forget_seed}
    ]
    raw["seeds"] = list(config.seeds)
    raw.setdefault("prune", {})["pruners"] = [config.pruner]
    raw["prune"]["sparsities"] = [config.sparsity]
    raw.setdefault("unlearn", {})["unlearners"] = list(dict.fromkeys([GAP_REFERENCE, *config.unlearners]))
    raw.setdefault("unprune", {})["modes"] = [False]
    raw.setdefault("evaluate", {})["metrics"] = list(METRICS)
    return resolve(raw, f"{protocol.source} (mia-stability {forget_name(fraction)})")


def resolved_config(protocol: Protocol, config: StudyConfig) -> StudyConfig:
    """``config`` with the protocol's first pruner and first nonzero sparsity filled in."""
    sparsity = config.sparsity
    if sparsity is None:
        sparsity = next((s for s in protocol.prune.sparsities if s > 0.0), None)
    if not sparsity:
        raise InvalidValueError("the study compares masks with the gold mask: give a sparsity > 0")
    return replace(config, pruner=config.pruner or protocol.prune.pruners[0], sparsity=sparsity)


def run_study(
    protocol: Protocol,
    registry: Registry,
    settings: RunSettings,
    config: StudyConfig,
    *,
    progress: ProgressSink | None = None,
) -> StudyResult:
    """One run per forget size into ``settings.out/<size>/``, sharing ``settings.artifacts``."""
    from unlearnbench.run.pipeline import Pipeline

    config = resolved_config(protocol, config)
    points, failed = [], []
    for fraction in sorted(config.fractions):
        sized = study_protocol(protocol, fraction, config)
        run_settings = replace(
            settings, out=Path(settings.out) / forget_name(fraction), artifact_root=settings.artifacts
        )
        for record in Pipeline(sized, registry, run_settings, progress=progress).run():
            if record["unlearner"] == ORIGINAL:
                continue
            if record["status"] != "ok":
                where = f"{record['unlearner']} at {forget_name(fraction)} seed {record['seed']}"
                failed.append(f"{where}: {record['error']}")
                continue
            values = {m: record["metrics"].get(m) for m in METRICS}
            points.append(
                StudyPoint(record["unlearner"], fraction, record["forget_size"], record["seed"], values)
            )
    stats = curve_stats(points)
    assert config.pruner is not None and config.sparsity is not None
    return StudyResult(
        config, config.pruner, config.sparsity, tuple(points), tuple(failed), stats, verdict(stats)
    )


def _matrix(points: Sequence[StudyPoint], method: str, metric: str) -> list[list[float]]:
    """V[s][i]: the metric's values per seed, over the sizes in increasing order (missing dropped)."""
    seeds = sorted({p.seed for p in points if p.method == method})
    rows = []
    for seed in seeds:
        run = sorted((p for p in points if p.method == method and p.seed == seed), key=lambda p: p.fraction)
        rows.append([float(v) for p in run if (v := p.values.get(metric)) is not None and math.isfinite(v)])
    return rows


def curve_stats(points: Sequence[StudyPoint]) -> tuple[CurveStats, ...]:
    """The swing statistics of every (method, metric) curve in ``points``."""
    out = []
    for metric in METRICS:
        every = [float(v) for p in points if (v := p.values.get(metric)) is not None and math.isfinite(v)]
        spread = (max(every) - min(every)) if every else 0.0
        for method in sorted({p.method for p in points}):
            rows = [r for r in _matrix(points, method, metric) if r]
            if not rows:
                continue
            steps = [max((abs(b - a) for a, b in itertools.pairwise(r)), default=0.0) for r in rows]
            size = min(len(r) for r in rows)
            columns = [[r[i] for r in rows] for i in range(size)]
            seed_sd = max((statistics.stdev(c) if len(c) > 1 else 0.0) for c in columns)
            curve = [statistics.fmean(c) for c in columns]
            mean = statistics.fmean(curve)
            cv = None if mean == 0 else (statistics.pstdev(curve) / abs(mean))
            scale = 1.0 / spread if spread > 0 else 0.0
            out.append(CurveStats(method, metric, statistics.fmean(steps) * scale, seed_sd * scale, cv))
    return tuple(out)


def verdict(stats: Sequence[CurveStats]) -> Verdict:
    """Per method, whether step(MIA) exceeds the largest topology step (methods with an MIA curve)."""
    by = {(s.method, s.metric): s for s in stats}
    methods = sorted({s.method for s in stats if s.metric == MIA})
    mia = {m: by[(m, MIA)].step for m in methods}
    topo = {m: max((by[(m, t)].step for t in TOPOLOGY if (m, t) in by), default=0.0) for m in methods}
    return Verdict(mia, topo, {m: mia[m] > topo[m] for m in methods})


def summary(points: Sequence[StudyPoint]) -> dict[tuple[str, float], dict[str, tuple[float, float, int]]]:
    """(method, fraction) -> metric -> (mean, sample std (0 for one seed), number of seeds)."""
    out: dict[tuple[str, float], dict[str, tuple[float, float, int]]] = {}
    for key in sorted({(p.method, p.fraction) for p in points}):
        found = [p for p in points if (p.method, p.fraction) == key]
        cells = {}
        for metric in METRICS:
            vals = [float(v) for p in found if (v := p.values.get(metric)) is not None and math.isfinite(v)]
            if vals:
                sd = statistics.stdev(vals) if len(vals) > 1 else 0.0
                cells[metric] = (statistics.fmean(vals), sd, len(vals))
        out[key] = cells
    return out
