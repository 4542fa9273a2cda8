"""Layer-wise weight distance of the evaluated model to a reference model (Golatkar et al.)."""

from __future__ import annotations

import math
from typing import ClassVar

import torch
from torch import nn

from unlearnbench.api import EvalContext, Metric, MetricValue


def weight_distance(model: nn.Module, reference: nn.Module) -> tuple[float, float, dict[str, float]]:
    """``(normalised, total, per_parameter)`` over the parameters both models name (buffers such
    as BatchNorm statistics excluded): ``per_parameter[n] = ||theta_n - theta0_n||_2``,
    ``total = sqrt(sum_n per_parameter[n]^2)`` and ``normalised = total / ||theta||_2`` with
    theta the evaluated model's parameters (0 when both are zero). float64 on the CPU."""
    mine = dict(model.named_parameters())
    theirs = dict(reference.named_parameters())
    if mine.keys() != theirs.keys():
        missing = sorted(mine.keys() ^ theirs.keys())
        raise ValueError(f"the models name different parameters: {missing[:5]}")
    per_parameter: dict[str, float] = {}
    squared = norm = 0.0
    for name, p in mine.items():
        a = p.detach().double().cpu()
        b = theirs[name].detach().double().cpu()
        if a.shape != b.shape:
            raise ValueError(f"parameter {name!r} has shape {tuple(a.shape)} and {tuple(b.shape)}")
        distance = float(torch.sum((a - b) ** 2))
        per_parameter[name] = math.sqrt(distance)
        squared += distance
        norm += float(torch.sum(a**2))
    total = math.sqrt(squared)
    return (total / math.sqrt(norm) if norm > 0 else 0.0), total, per_parameter


class _WeightDistance(Metric):
    """Weight distance to the reference in ``needs``; normalised total as the value, the plain l2
    total and the l2 of each parameter tensor (``l2:<name>``) in the details."""

    reference: ClassVar[str]

    def compute(self, ctx: EvalContext) -> MetricValue | None:
        reference = ctx.reference(self.reference).model
        if reference is None:
            return None
        normalised, total, per_parameter = weight_distance(ctx.model, reference)
        details: dict[str, float] = {"l2": total}
        details.update({f"l2:{name}": value for name, value in per_parameter.items()})
        return MetricValue(normalised, details)


class WeightDistanceOriginal(_WeightDistance):
    """Weight distance to the original (the pruned model before unlearning), after Golatkar et
    al. ("Eternal Sunshine of the Spotless Net", CVPR 2020; ``distance`` in SelectiveForgetting's
    ``Forgetting.ipynb``): sqrt(sum_l ||theta_l - theta0_l||^2 / sum_l ||theta_l||^2) over the
    parameter tensors l, theta the evaluated model, theta0 the original. The l2 of each tensor's
    difference and the plain total (SUPREME's ``layerwise_distance``) are in the details.
    Parameters only, as the source (BatchNorm statistics are buffers). 0 for the original
    itself: how far unlearning moved the weights."""

    name = "weight-distance-original"
    label = "WDist-original"
    higher_is_better = None
    needs = ("original",)
    reference = "original"


class WeightDistanceRetrain(_WeightDistance):
    """Weight distance to retrain (trained on the retain set under the original mask), after
    Golatkar et al. (CVPR 2020, the normalised ``distance`` of ``Forgetting.ipynb``, used there
    against the retrained model): sqrt(sum_l ||theta_l - theta_r,l||^2 / sum_l ||theta_l||^2),
    theta the evaluated model; per-tensor l2 and the plain total (SUPREME's
    ``layerwise_distance`` to retrain) in the details. 0 for the retrain model itself."""

    name = "weight-distance-retrain"
    label = "WDist-retrain"
    higher_is_better = False
    needs = ("retrain",)
    reference = "retrain"
