"""Structured un-pruning: re-select whole filters from filter-level scores on the retain set."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from unlearnbench.api import (
    InvalidValueError,
    Mask,
    PruneOutcome,
    PruneTask,
    Unpruner,
    UnpruneTask,
    channel_mask,
    channel_plan,
    filter_keep_mask,
)
from unlearnbench_unpruners._common import Relax, batch_gradients, finetune, relaxed_start


def taylor_filter_scores(
    model: nn.Module, names: list[str], task: PruneTask, batches: int | None
) -> dict[str, torch.Tensor]:
    """First-order Taylor importance of every output filter (Molchanov et al., "Importance
    Estimation for Neural Network Pruning", CVPR 2019, eq. 8 on the filter's weights):
    ``(sum over the filter of g * w)**2`` per batch of ``task.data``, averaged over the first
    ``batches`` batches (None: all); float64 [out] by conv weight name, on a train-mode copy."""
    totals: list[torch.Tensor] = []
    count = 0
    for grads, weights in batch_gradients(model, names, task, batches):
        found = [
            (g * w).detach().double().flatten(1).sum(dim=1).square()
            for g, w in zip(grads, weights, strict=True)
        ]
        totals = found if not totals else [t + f for t, f in zip(totals, found, strict=True)]
        count += 1
    return {n: (t / max(1, count)).cpu() for n, t in zip(names, totals, strict=True)}


class FilterReprune(Unpruner):
    """Structured un-pruning (Xiao et al., 2025, arXiv 2507.18725, which reports structured
    topologies as easier to approximate; reconstructed in ``unpruning.md`` §3.2 step 3 and §7):
    relax (as ``reprune``: ``dense``, ``zero`` with pruned channels restarted at their initial
    values, or ``rewind``), run the unlearner in dense space, score every output filter of the
    mask's convolutions on the retain set and keep, in each layer, as many filters as the original
    mask keeps there (so the filter structure and per-layer filter sparsity are the original's),
    removing the dropped filters' BatchNorm channels and next-layer input channels with them;
    then fine-tune ``finetune_epochs`` at ``finetune_lr`` on D_r under the new mask.

    ``score``: ``pruner`` uses the pruner's own filter scores on the unlearned weights
    (``l1-filter``: the L1 norm, the gold's criterion); ``taylor`` the first-order Taylor
    importance on D_r (Molchanov et al., CVPR 2019) over ``taylor_batches`` batches (None: all).
    Structured pruners only; compare its rows with the filter-level IoU.
    """

    name = "reprune-filter"
    version = 1

    @dataclass(frozen=True)
    class Params:
        relax: Relax = "dense"
        score: Literal["pruner", "taylor"] = "pruner"
        taylor_batches: int | None = None
        finetune_epochs: int = 5
        finetune_lr: float = 0.01

    def unprune(self, task: UnpruneTask) -> PruneOutcome:
        if not task.pruner.structured:
            raise InvalidValueError(
                f"reprune-filter needs a structured pruner; {task.pruner.name!r} is unstructured "
                "(use reprune)"
            )
        model = relaxed_start(task, self.params.relax)
        model = task.unlearner.unlearn(model, task.unlearn_task)
        mask = self.topology(model, task)
        finetune(
            model, mask, task, self.params.finetune_epochs, self.params.finetune_lr, "un-prune fine-tune"
        )
        return PruneOutcome(model, mask)

    def topology(self, model: nn.Module, task: UnpruneTask) -> Mask:
        """Per layer, the original's number of filters with the highest scores on the retain set."""
        retain = task.retain_prune_task
        plan = channel_plan(model, task.mask.scope)
        names = sorted(g.conv_weight for g in plan.groups)
        if self.params.score == "taylor":
            scores = taylor_filter_scores(model, names, retain, self.params.taylor_batches)
        else:
            scores = task.pruner.scores(model, retain)
        kept = {n: filter_keep_mask(scores[n], int(task.mask.filter_kept(n).sum())) for n in names}
        return channel_mask(model, plan.groups, kept)
