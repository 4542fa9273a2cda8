"""Population metrics: forgetting measured against pools of models (eps-score, u-lira, klom).

Each reads pool outputs through ``EvalContext.pool`` and returns a :class:`MetricValue` whose
details hold the per-example values (inf and nan stored as None), so a plot can show their
distribution. The math lives in :mod:`unlearnbench_metrics.pool_math`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from unlearnbench.api import EvalContext, Metric, MetricValue, PoolOutputs, margins
from unlearnbench_metrics.pool_math import (
    auc,
    balanced_accuracy,
    challenge_score,
    epsilon_bin_scores,
    example_epsilons,
    forgetting_quality,
    klom,
    lira_scores,
    summarise,
)


def json_list(values: np.ndarray) -> list[float | None]:
    """Per-example values as a JSON-ready list (non-finite values become None)."""
    return [float(v) if np.isfinite(v) else None for v in np.asarray(values, dtype=np.float64)]


def retrain_and_unlearned(ctx: EvalContext) -> tuple[PoolOutputs, PoolOutputs] | None:
    """The retrain and unlearned pools, or None when the forget set is empty."""
    retrain, unlearned = ctx.pool("retrain"), ctx.pool("unlearned")
    return None if retrain.margins["forget"].shape[1] == 0 else (retrain, unlearned)


class EpsScore(Metric):
    """NeurIPS 2023 Machine Unlearning Challenge score: F x RA_U/RA_R x TA_U/TA_R.

    Per forget example, epsilon from the FPR/FNR of threshold attacks that tell the retrain
    pool's margins from the unlearned pool's (:func:`pool_math.example_epsilons`), binned into
    H = 2/2^k over 13 bins of width 0.5; F is the mean H; RA and TA are the pools' mean retain
    and test accuracies (source: the organizers' "Evaluation for the NeurIPS Machine Unlearning
    Competition", 2023; Triantafillou et al., arXiv 2406.09073). Details: per-example
    ``epsilon`` and ``h``, ``F``, ``ra_ratio``, ``ta_ratio``. Deviations: margins as the attack
    feature; two-fold fitted thresholds as the attack family; no runtime cutoff.
    """

    name = "eps-score"
    label = "eps-score"
    unit = ""
    higher_is_better = True
    needs = ("pool:retrain", "pool:unlearned")

    @dataclass(frozen=True)
    class Params:
        delta: float = 1e-6
        split_seed: int = 0

    def compute(self, ctx: EvalContext) -> MetricValue | None:
        pools = retrain_and_unlearned(ctx)
        if pools is None:
            return None
        retrain, unlearned = pools
        eps = example_epsilons(
            retrain.margins["forget"],
            unlearned.margins["forget"],
            delta=self.params.delta,
            seed=self.params.split_seed,
        )
        f = forgetting_quality(eps)
        ra_u, ra_r = unlearned.accuracy("retain"), retrain.accuracy("retain")
        ta_u, ta_r = unlearned.accuracy("test"), retrain.accuracy("test")
        score = challenge_score(f, ra_u, ra_r, ta_u, ta_r)
        details = {
            "epsilon": json_list(eps),
            "h": json_list(epsilon_bin_scores(eps)),
            "F": f,
            "ra_ratio": ra_u / ra_r,
            "ta_ratio": ta_u / ta_r,
        }
        return MetricValue(score, details)


class ULiRA(Metric):
    """U-LiRA (Hayes et al., 2024, "Inexact unlearning needs more careful evaluations", arXiv
    2403.01218): a per-example likelihood-ratio attack on the evaluated model, Gaussians fitted
    to shadow models' margins with ("in") and without ("out") each example; the value is the
    attack's ROC AUC of forget examples against held-out examples (0.5: indistinguishable).

    The held-out examples are test examples of the forget set's own distribution: the test
    examples of the forgotten classes for class-wise forgetting (``forget_test``), the test split
    otherwise. One attack scores both sets (with ``global_variance``, one pair of standard
    deviations fitted over the forget and held-out examples together). Version 1 held out the
    other classes' test examples for class-wise forgetting and fitted the variances per set, so a
    model retrained without the class scored an AUC near 0 instead of 0.5.

    Details: ``accuracy`` (balanced, LR > 0), ``held_out`` (the split), per-example
    ``scores_forget`` / ``scores_held_out``. Deviation: the paper's in-models are trained with the
    example and then unlearned by the method under test; this reads a shadow pool trained with
    and without each example (plain online LiRA, Carlini et al., 2022, against the unlearned
    model), shared by every unlearner. The shadow pool must carry ``membership`` for the
    ``forget``, ``test`` and ``forget_test`` splits.
    """

    name = "u-lira"
    version = 2
    label = "U-LiRA AUC"
    unit = ""
    higher_is_better = None
    needs = ("pool:shadow",)

    @dataclass(frozen=True)
    class Params:
        global_variance: bool = True

    def compute(self, ctx: EvalContext) -> MetricValue | None:
        held_out = "forget_test" if len(ctx.splits["forget_test"]) else "test"
        if len(ctx.splits["forget"]) == 0 or len(ctx.splits[held_out]) == 0:
            return None
        shadow, splits = ctx.pool("shadow"), ("forget", held_out)
        # one attack for both splits: the global variances pool the forget and held-out examples
        joint = lira_scores(
            np.concatenate([margins(ctx.logits(s), ctx.labels(s)).numpy() for s in splits]),
            np.concatenate([shadow.margins[s] for s in splits], axis=1),
            np.concatenate([shadow.membership[s] for s in splits], axis=1),
            global_variance=self.params.global_variance,
        )
        n = len(ctx.splits["forget"])
        scores = {"forget": joint[:n], held_out: joint[n:]}
        details = {
            "accuracy": balanced_accuracy(scores["forget"], scores[held_out]),
            "held_out": held_out,
            "scores_forget": json_list(scores["forget"]),
            "scores_held_out": json_list(scores[held_out]),
        }
        return MetricValue(auc(scores["forget"], scores[held_out]), details)


class KLOM(Metric):
    """KLOM (Georgiev et al., 2024, "Attribute-to-Delete"; RoyRin/data-unlearning-bench): per
    forget example, KL(unlearned-pool margins || retrain-pool margins); the value is the median
    over the forget set (0: the unlearned models look retrained).

    Details: per-example ``kl``, ``p95`` and ``mean``. ``estimator`` ``binned`` is the source's
    20-bin histogram estimator (needs large pools, the source uses 100 oracles); the default
    ``gaussian`` fits a normal per pool and example, a deviation for small pools (see
    :func:`pool_math.klom`).
    """

    name = "klom"
    label = "KLOM"
    unit = ""
    higher_is_better = False
    needs = ("pool:retrain", "pool:unlearned")

    @dataclass(frozen=True)
    class Params:
        estimator: Literal["binned", "gaussian"] = "gaussian"
        bins: int = 20

    def compute(self, ctx: EvalContext) -> MetricValue | None:
        pools = retrain_and_unlearned(ctx)
        if pools is None:
            return None
        kl = klom(
            pools[1].margins["forget"],
            pools[0].margins["forget"],
            estimator=self.params.estimator,
            bins=self.params.bins,
        )
        summary = summarise(kl)
        details = {"kl": json_list(kl), "p95": summary["p95"], "mean": summary["mean"]}
        return MetricValue(summary["median"], details)
