"""Selective Synaptic Dampening (SSD), its loss-free variant (LFSSD) and adaptive SSD (ASSD)."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from unlearnbench.api import Engine, ImageSplit, Mask, Unlearner, UnlearnTask

log = logging.getLogger(__name__)

Importance = dict[str, torch.Tensor]


def importances(
    model: nn.Module, engine: Engine, split: ImageSplit, batch_size: int, label_free: bool = False
) -> Importance:
    """The reference's ``ParameterPerturber.calc_importance`` in eval mode, batches in order: the
    sum over batches of the squared gradient of the batch-mean CE (SSD) or of the absolute
    gradient of the batch mean of ||f(x)||_2^2 (``label_free``, LFSSD), divided by the number
    of batches."""
    model.eval()
    params = dict(model.named_parameters())
    out = {n: torch.zeros_like(p) for n, p in params.items()}
    batches = 0
    with torch.enable_grad():
        for x, y in engine.batches(split, batch_size, None, shuffle=False):
            logits = model(x)
            loss = logits.float().pow(2).sum(dim=1).mean() if label_free else F.cross_entropy(logits, y)
            grads = torch.autograd.grad(loss, list(params.values()), allow_unused=True)
            for (n, _), g in zip(params.items(), grads, strict=True):
                if g is not None:
                    out[n] += g.abs() if label_free else g.pow(2)
            batches += 1
    return {n: v / max(1, batches) for n, v in out.items()}


def dampen(
    model: nn.Module,
    full: Importance,
    forget: Importance,
    alpha: float,
    lam: float,
    mask: Mask | None,
) -> int:
    """SSD's ``modify_weight`` in place: where I_Df > alpha I_D, theta *= min(lambda I_D / I_Df, 1);
    every other parameter unchanged. Pruned entries (``mask``) are never selected. Returns the
    number of parameter entries dampened."""
    keep = {} if mask is None else mask.tensors
    count = 0
    with torch.no_grad():
        for n, p in model.named_parameters():
            selected = forget[n] > alpha * full[n]
            if n in keep:
                selected &= keep[n].to(p.device)
            if not bool(selected.any()):
                continue
            factor = (lam * full[n][selected] / forget[n][selected]).clamp(max=1.0)
            p[selected] = p[selected] * factor.to(p.dtype)
            count += int(selected.sum())
    if mask is not None:
        mask.apply_(model)
    return count


def _report(task: UnlearnTask, who: str, count: int, total: int, alpha: float) -> None:
    task.log(0, "dampened", count)
    task.log(0, "dampened_fraction", count / max(1, total))
    if count == 0:
        log.warning(
            "%s selected no parameter (alpha %.4g, forget set %d of %d training examples): the model is "
            "returned unchanged",
            who,
            alpha,
            len(task.forget),
            len(task.forget) + len(task.retain),
        )


def _full_split(task: UnlearnTask) -> ImageSplit:
    """D, the retain set followed by the forget set (the reference's ``ConcatDataset``)."""
    retain, forget = task.retain, task.forget.to(task.retain.images.device)
    return ImageSplit(torch.cat([retain.images, forget.images]), torch.cat([retain.labels, forget.labels]))


class SelectiveSynapticDampening(Unlearner):
    """SSD (Foster, Schoepf & Brintrup, AAAI 2024; ``if-loops/selective-synaptic-dampening``
    ``src/ssd.py:ParameterPerturber`` and ``forget_random_strategies.py:ssd_tuning``): importances
    I_D over the training data (retain then forget) and I_Df over the forget set, each the mean
    over batches of the squared gradient of the batch CE (diagonal Fisher), in eval mode; every
    parameter with I_Df > alpha I_D is multiplied by min(lambda I_D / I_Df, 1), the others are
    unchanged. Defaults: alpha 10, lambda 1, batch 128 (the reference's). With alpha = 10 and a
    forget set of 1/alpha of the data or more, SSD can select nothing (the model comes back
    unchanged): the count of dampened entries is logged (``dampened`` at epoch 0) with a warning
    when it is 0, and the harness flags such rows unchanged. Deviation: pruned entries are never
    selected (their zero would stay zero anyway)."""

    name = "ssd"
    version = 1

    @dataclass(frozen=True)
    class Params:
        alpha: float = 10.0
        dampening: float = 1.0
        batch_size: int = 128

    label_free = False

    def forget_importance(self, model: nn.Module, task: UnlearnTask) -> Importance:
        return importances(model, task.engine, task.forget, self.params.batch_size, self.label_free)

    def full_importance(self, model: nn.Module, task: UnlearnTask) -> Importance:
        return importances(model, task.engine, _full_split(task), self.params.batch_size, self.label_free)

    def selection_weight(self, full: Importance, forget: Importance, task: UnlearnTask) -> float:
        return self.params.alpha

    def unlearn(self, model: nn.Module, task: UnlearnTask) -> nn.Module:
        forget = self.forget_importance(model, task)
        full = self.full_importance(model, task)
        alpha = self.selection_weight(full, forget, task)
        count = dampen(model, full, forget, alpha, self.params.dampening, task.mask)
        _report(task, self.name, count, sum(p.numel() for p in model.parameters()), alpha)
        return model


class LossFreeSSD(SelectiveSynapticDampening):
    """LFSSD (Foster, Schoepf & Brintrup, "Loss-Free Machine Unlearning", ICLR 2024 Tiny Paper,
    arXiv 2402.19308; the SSD repository's README): SSD with label-free importances, the mean
    over batches of |gradient| of the batch mean of the squared l2 norm of the model's output
    ||f(x)||_2^2; no labels are read. Selection and dampening as SSD; defaults alpha 10,
    lambda 1, batch 128. Deviation as SSD (pruned entries never selected)."""

    name = "lfssd"
    version = 1
    label_free = True


def adaptive_percentile(forget_size: int, total_size: int) -> float:
    """ASSD's length-based percentile: 100 - ln(1 + 100 |D_f| / |D|)."""
    return 100.0 - math.log(1.0 + 100.0 * forget_size / max(1, total_size))


class AdaptiveSSD(SelectiveSynapticDampening):
    """Adaptive SSD (Schoepf, Foster & Brintrup 2024, "Parameter-tuning-free data entry error
    unlearning with adaptive selective synaptic dampening", arXiv 2402.10098;
    ``if-loops/adaptive-selective-synaptic-dampening`` ``error_unlearning.ipynb``): alpha is the
    p-th percentile (linear interpolation) of the finite ratios I_Df / I_D over all parameter
    entries, p = 100 - ln(1 + 100 |D_f| / |D|); lambda 0.1 (the notebook's ``ssd()`` default);
    I_D is computed over the retain set, as the notebook does; then SSD's dampening. Deviations:
    eval mode (the notebook leaves the model's mode as it is); pruned entries are excluded from
    the percentile and never selected; the notebook's optional dampening floor is not applied (the
    paper does not use it)."""

    name = "assd"
    version = 1

    @dataclass(frozen=True)
    class Params:
        dampening: float = 0.1
        batch_size: int = 128

    def full_importance(self, model: nn.Module, task: UnlearnTask) -> Importance:
        return importances(model, task.engine, task.retain, self.params.batch_size)

    def selection_weight(self, full: Importance, forget: Importance, task: UnlearnTask) -> float:
        keep = {} if task.mask is None else task.mask.tensors
        ratios = []
        for n, f in forget.items():
            r = f / full[n]
            if n in keep:
                r = r[keep[n].to(r.device)]
            r = r.reshape(-1)
            ratios.append(r[torch.isfinite(r)].double().cpu().numpy())
        values = np.concatenate(ratios) if ratios else np.zeros(0)
        if values.size == 0:
            return math.inf
        p = adaptive_percentile(len(task.forget), len(task.forget) + len(task.retain))
        return float(np.percentile(values, p))
