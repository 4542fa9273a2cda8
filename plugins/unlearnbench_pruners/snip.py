"""SNIP: single-shot pruning by connection sensitivity (Lee et al., ICLR 2019)."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from unlearnbench.api import InvalidValueError, PruneTask
from unlearnbench_pruners._common import AtInitPruner


class Snip(AtInitPruner):
    """SNIP (Lee, Ajanthan and Torr, "SNIP: Single-shot Network Pruning based on Connection
    Sensitivity", ICLR 2019).

    Scores are the connection sensitivities ``|g * w|`` of the scoped weights, ``g`` the gradient
    of the mean cross-entropy on ``batches`` shuffled mini-batches of ``task.data`` (seeded by
    ``task.seed``, no augmentation, ``batch_size`` None: the recipe's), summed over batches; the
    top ``1 - s`` are kept globally (the paper's normalisation by the sum does not change the
    ranking). The gradient is taken on a copy in train mode (BatchNorm uses batch statistics, as
    for a network at initialisation), so the model's running statistics are untouched.
    ``prune`` with ``at_init`` (the paper) scores a fresh ``task.new_model()`` seeded by
    ``task.seed`` and, with ``retrain``, trains it under the mask with ``task.recipe``; without
    ``at_init`` it scores the given model, then rewinds (``rewind``) and retrains like OMP.
    Deviation from the Unlearn-Sparse code (``pruner/utils.py``, not wired to its CLI): that
    ranks ``|g|`` alone on 25 examples per class; here the paper's ``|g * w|`` on mini-batches.
    """

    name = "snip"
    version = 2

    @dataclass(frozen=True)
    class Params:
        batches: int = 1
        batch_size: int | None = None
        at_init: bool = True
        retrain: bool = True
        rewind: bool = True

    def scores(self, model: nn.Module, task: PruneTask) -> dict[str, torch.Tensor]:
        if self.params.batches < 1:
            raise InvalidValueError(f"snip batches must be at least 1, got {self.params.batches}")
        names = sorted(task.scope)
        net = copy.deepcopy(model).train()
        params = dict(net.named_parameters())
        weights = [params[n] for n in names]
        totals = [torch.zeros_like(w) for w in weights]
        batch_size = self.params.batch_size or task.recipe.batch_size
        generator = task.engine.generator(task.seed)
        for index, (x, y) in enumerate(task.engine.batches(task.data, batch_size, generator)):
            if index == self.params.batches:
                break
            loss = F.cross_entropy(net(x), y)
            for total, grad in zip(totals, torch.autograd.grad(loss, weights), strict=True):
                total.add_(grad)
        return {n: (g * w).detach().abs() for n, g, w in zip(names, totals, weights, strict=True)}
