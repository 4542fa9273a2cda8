"""Un-pruning from the sparse model alone: RigL-style drop-and-grow rounds on the retain set."""

from __future__ import annotations

import copy
import logging
import math
from dataclasses import dataclass

import torch
from torch import nn

from unlearnbench.api import InvalidValueError, Mask, PruneOutcome, PruneTask, Unpruner, UnpruneTask
from unlearnbench_unpruners._common import batch_gradients, finetune, unlearn_sparse

log = logging.getLogger(__name__)


def retain_gradient(
    model: nn.Module, names: list[str], task: PruneTask, batches: int | None
) -> dict[str, torch.Tensor]:
    """Mean gradient of the cross-entropy over the first ``batches`` shuffled batches of
    ``task.data`` (None: all), for the named parameters; taken on a train-mode copy."""
    totals: list[torch.Tensor] = []
    count = 0
    for grads, _ in batch_gradients(model, names, task, batches):
        totals = grads if not totals else [t + g for t, g in zip(totals, grads, strict=True)]
        count += 1
    return {n: t / max(1, count) for n, t in zip(names, totals, strict=True)}


def drop_and_grow(
    mask: Mask, drop_scores: dict[str, torch.Tensor], grow_scores: dict[str, torch.Tensor], count: int
) -> Mask:
    """``mask`` with its ``count`` lowest-``drop_scores`` kept entries pruned and the ``count``
    highest-``grow_scores`` pruned entries kept, over the whole scope (ties to the earlier
    position); the number kept is unchanged. Entries it drops are not grown back in the same step."""
    names = sorted(mask.scope)
    kept = torch.cat([mask.tensors[n].flatten().cpu() for n in names])
    drop = torch.cat([drop_scores[n].detach().flatten().cpu().double() for n in names])
    grow = torch.cat([grow_scores[n].detach().flatten().cpu().double() for n in names])
    count = min(count, int(kept.sum()), int((~kept).sum()))
    new = kept.clone()
    if count > 0:
        lowest = torch.sort(drop.masked_fill(~kept, math.inf), stable=True).indices[:count]
        highest = torch.sort(grow.masked_fill(kept, -math.inf), descending=True, stable=True).indices[:count]
        new[lowest] = False
        new[highest] = True
    tensors, offset = dict(mask.tensors), 0
    for n in names:
        size = mask.tensors[n].numel()
        tensors[n] = new[offset : offset + size].view(mask.tensors[n].shape)
        offset += size
    return Mask(tensors=tensors, scope=mask.scope)


class Regrow(Unpruner):
    """Un-pruning for deployments that kept only the sparse model (no dense weights): the row's
    unlearner runs inside the original mask, then ``rounds`` drop-and-grow updates in the manner
    of RigL (Evci et al., "Rigging the Lottery", ICML 2020, Algorithm 1): update ``t`` (from 0)
    prunes the ``n_t = round(drop_fraction / 2 * (1 + cos(pi t / rounds)) * k)`` kept weights of
    least magnitude and keeps the ``n_t`` pruned weights with the largest |mean gradient of the
    cross-entropy on D_r| (over ``grad_batches`` batches, None: all of D_r), grown at zero, then
    fine-tunes ``round_epochs`` at ``lr`` on D_r under the new mask (SGD momentum 0.9, wd 5e-4,
    constant rate). ``k`` (the kept count), hence the sparsity, is exactly the original's.

    Deviations from RigL: drop and grow rank over the whole scope at once (RigL ranks per layer,
    keeping each layer's density; the global pruners here set per-layer densities globally), the
    gradient is the mean over D_r batches rather than one batch, an entry dropped in an update
    is not regrown in it, and the rounds run after unlearning rather than throughout training.
    The drop score is |w| whatever the pruner (the score of OMP and IMP). Unstructured masks only.
    Defaults: 3 rounds of 2 epochs, drop fraction 0.1 (RigL: 0.3 through training); every update
    swaps ``n_t`` weights even when the mask is already right, so more rounds or a larger
    fraction churn the mask away from the gold (measured on digits).
    """

    name = "regrow"
    version = 1

    @dataclass(frozen=True)
    class Params:
        rounds: int = 3
        drop_fraction: float = 0.1
        round_epochs: int = 2
        lr: float = 0.01
        grad_batches: int | None = None

    def unprune(self, task: UnpruneTask) -> PruneOutcome:
        p = self.params
        if task.pruner.structured:
            raise InvalidValueError(
                f"regrow needs an unstructured mask; pruner {task.pruner.name!r} is structured "
                "(use reprune or reprune-filter)"
            )
        if p.rounds < 0 or not 0.0 <= p.drop_fraction <= 1.0:
            raise InvalidValueError(
                f"regrow needs rounds >= 0 and drop_fraction in [0, 1], got {p.rounds}, {p.drop_fraction}"
            )
        mask = task.mask
        model = unlearn_sparse(copy.deepcopy(task.pruned_model), task, mask, dense_weights=False)
        names, kept = sorted(mask.scope), mask.kept()
        for t in range(p.rounds):
            count = round(p.drop_fraction / 2 * (1 + math.cos(math.pi * t / p.rounds)) * kept)
            params = dict(model.named_parameters())
            magnitude = {n: params[n].detach().abs() for n in names}
            gradient = {
                n: g.abs()
                for n, g in retain_gradient(model, names, task.retain_prune_task, p.grad_batches).items()
            }
            new = drop_and_grow(mask, magnitude, gradient, count)
            log.info(
                "regrow round %d/%d: %d swapped, IoU with the previous mask %.4f",
                t + 1,
                p.rounds,
                count,
                new.iou(mask),
            )
            mask = new
            finetune(model, mask, task, p.round_epochs, p.lr, f"regrow round {t + 1}/{p.rounds}")
        mask.apply_(model)
        return PruneOutcome(model, mask)
