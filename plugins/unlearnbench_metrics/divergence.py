"""Output-distribution metrics of the teacher papers and SUPREME: ZRF, JS divergence to retrain,
activation distance.

All work on the softmax of the fp32 logits (``EvalContext.logits``), in float64, natural log.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch

from unlearnbench.api import EvalContext, Metric, MetricValue
from unlearnbench_metrics.seeds import derived_seed, evaluation_seed

RETRAIN = "retrain"
INCOMPETENT = "zrf-incompetent"
"""The purpose ZRF's incompetent-teacher seed is derived for (:func:`seeds.derived_seed`)."""


def _probabilities(logits: torch.Tensor) -> torch.Tensor:
    return torch.softmax(logits.double(), dim=1)


def js_divergence(logits_p: torch.Tensor, logits_q: torch.Tensor) -> torch.Tensor:
    """Per-row Jensen-Shannon divergence of softmax(p) and softmax(q) in nats:
    JS = KL(p || m) / 2 + KL(q || m) / 2 with m = (p + q) / 2 (0 <= JS <= ln 2; 0 log 0 = 0)."""
    p, q = _probabilities(logits_p), _probabilities(logits_q)
    m = (p + q) / 2

    def kl_to_m(a: torch.Tensor) -> torch.Tensor:
        return torch.where(a > 0, a * (torch.log(a) - torch.log(m)), torch.zeros_like(a)).sum(dim=1)

    return ((kl_to_m(p) + kl_to_m(q)) / 2).clamp_min(0.0)


def reference_code_js(logits_p: torch.Tensor, logits_q: torch.Tensor) -> float:
    """The quantity the Bad Teaching code's ``JSDiv`` returns (``metrics.py``):
    ``0.5 * F.kl_div(log p, m) + 0.5 * F.kl_div(log q, m)`` with the default reduction, i.e.
    (KL(m || p) + KL(m || q)) / 2 summed over rows and classes and divided by N x K: not the JS
    divergence (reversed KL arguments, averaged over classes as well as examples)."""
    p, q = _probabilities(logits_p), _probabilities(logits_q)
    m = (p + q) / 2
    log_m = torch.log(m)
    return float(((m * (log_m - torch.log(p))).mean() + (m * (log_m - torch.log(q))).mean()) / 2)


def activation_distances(logits_p: torch.Tensor, logits_q: torch.Tensor) -> torch.Tensor:
    """Per-row l2 distance between softmax(p) and softmax(q) (0 <= d <= sqrt 2)."""
    return torch.linalg.vector_norm(_probabilities(logits_p) - _probabilities(logits_q), dim=1)


def incompetent_seed(seed: int) -> int:
    """The seed ZRF's randomly initialised teacher is built with for evaluation seed ``seed``."""
    return derived_seed(seed, INCOMPETENT)


class ZeroRetrainForgetting(Metric):
    """ZRF, zero retrain forgetting (Chundawat et al., "Can Bad Teaching Induce Forgetting?
    Unlearning in Deep Networks using an Incompetent Teacher", AAAI 2023, Sec. "Evaluation
    metrics"): ZRF = 1 - (1/n_f) sum_i JS(M(x_i), T_d(x_i)) over the forget set, M the evaluated
    model and T_d a randomly initialised (incompetent) model of the same architecture.

    1 when the model answers the forget set as the random model does; it needs no retrained
    model. T_d is built by the model plugin, as the original's initialisation is, with the seed
    :func:`incompetent_seed` derives from the evaluation seed (``seed``, :mod:`seeds`): the same
    T_d for every row, never the row's own initialisation; it is evaluated dense, in eval mode.
    JS in nats, so ZRF lies in [1 - ln 2, 1]. Deviation: the paper's formula, not the reference
    code's ``JSDiv`` (reversed KL arguments, averaged over classes too; :func:`reference_code_js`),
    whose ZRF is in the details as ``zrf_reference_code`` (None where a probability underflows
    to 0). Two-sided: compare with the retrain row. None for an empty forget set.
    """

    seeded = True
    name = "zrf"
    label = "ZRF"
    higher_is_better = None

    @dataclass(frozen=True)
    class Params:
        seed: int = 0

    def compute(self, ctx: EvalContext) -> MetricValue | None:
        forget = ctx.splits["forget"]
        if len(forget) == 0:
            return None
        teacher = ctx.fresh_model(incompetent_seed(evaluation_seed(ctx, self.params.seed)))
        teacher_logits = ctx.engine.logits(teacher, forget)
        logits = ctx.logits("forget")
        zrf = 1.0 - float(js_divergence(logits, teacher_logits).mean())
        quirk = 1.0 - reference_code_js(logits, teacher_logits)
        return MetricValue(zrf, {"zrf_reference_code": quirk if math.isfinite(quirk) else None})


class _ToRetrain(Metric):
    """A per-example distance between the model's and the retrain reference's softmax outputs,
    averaged over ``split``; None for an empty split."""

    needs = (RETRAIN,)
    higher_is_better = False
    split: ClassVar[str]

    def distances(self, logits: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def compute(self, ctx: EvalContext) -> float | None:
        if len(ctx.splits[self.split]) == 0:
            return None
        reference = ctx.logits(self.split, reference=RETRAIN)
        return float(self.distances(ctx.logits(self.split), reference).mean())


class _JSRetrain(_ToRetrain):
    """Mean JS divergence (nats) between the model's and retrain's softmax outputs."""

    unit = "nats"

    def distances(self, logits: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        return js_divergence(logits, reference)


class JSRetrainForget(_JSRetrain):
    """JS divergence to retrain on the forget set: (1/n) sum_i JS(M(x_i), M_retrain(x_i)) in
    nats, the JS of the Bad Teaching paper (Chundawat et al., AAAI 2023) taken against the
    retrained model, as SUPREME's ``jsdiv`` (forget split) and the UUEF evaluation ("Are We Truly
    Forgetting?", Kim et al. 2025) compare outputs with retrain. 0 for the retrain model itself.
    Deviation: the JS divergence itself, not SUPREME's ``1 - ZRF(reference, model)``, which goes
    through the Bad Teaching code's ``JSDiv`` (see ``zrf``)."""

    name = "js-retrain-forget"
    label = "JS-retrain-Df"
    split = "forget"


class JSRetrainTest(_JSRetrain):
    """JS divergence to retrain on the test set (without forgotten classes for class-wise
    forgetting): as ``js-retrain-forget`` on held-out data (SUPREME's ``jsdiv`` on its test
    split)."""

    name = "js-retrain-test"
    label = "JS-retrain-test"
    split = "test"


class ActivationDistance(_ToRetrain):
    """Activation distance to retrain on the forget set (Chundawat et al., AAAI 2023, after
    Golatkar et al., CVPR 2020 / ECCV 2020): (1/n_f) sum_i ||softmax(M(x_i)) -
    softmax(M_retrain(x_i))||_2, the mean l2 distance between the output probabilities (the Bad
    Teaching code's ``actv_dist``). 0 for the retrain model itself, at most sqrt 2. SUPREME's
    ``actv_dist`` takes the square root of the mean squared distance instead; we keep the
    source's mean. None for an empty forget set."""

    name = "activation-distance"
    label = "ActDist-retrain"
    split = "forget"

    def distances(self, logits: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        return activation_distances(logits, reference)
