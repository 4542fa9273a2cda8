"""Structured L1-norm filter pruning (Li et al., ICLR 2017)."""

from __future__ import annotations

import logging
from typing import ClassVar

import torch
from torch import nn

from unlearnbench.api import InvalidValueError, Mask, PruneTask, check_sparsity
from unlearnbench.training.pruning_structured import (
    ChannelPlan,
    channel_mask,
    channel_plan,
    filter_keep_count,
    filter_keep_mask,
    filter_l1_norms,
)
from unlearnbench_pruners._common import RewindRetrainPruner

log = logging.getLogger(__name__)


class L1Filter(RewindRetrainPruner):
    """L1-norm filter pruning (Li, Kadav, Durdanovic, Samet and Graf, "Pruning Filters for
    Efficient ConvNets", ICLR 2017).

    Every prunable conv in scope (see :mod:`unlearnbench.training.pruning_structured`: its output feeds
    exactly one affine BatchNorm and, through channel-wise ops, exactly one conv) ranks its output
    filters by the sum of absolute kernel weights of the given model and keeps the top
    ``filter_keep_count(out, s) = max(1, floor(out * (1 - s) + 0.5))`` (ties to the lower index),
    so every prunable layer loses the same fraction up to that rounding. A pruned filter also
    zeroes its conv bias, the BatchNorm's weight and bias and the next conv's input channel, so
    the channel carries nothing. Convs feeding a residual addition are never pruned, as Li et al.
    do for ResNets (only the first conv of each residual block), nor convs feeding a
    flatten/linear head. ``Mask.scope`` is the ranked conv weights (``Mask.sparsity`` is their
    weight sparsity, which counts pruned input channels too; ``Mask.channel_sparsity`` is the
    per-layer filter sparsity). Deviations: one fraction for all layers instead of Li et al.'s
    per-layer sensitivity analysis; filters are ranked independently per layer (their
    "independent" strategy); after pruning, as OMP, the weights are rewound to
    ``task.rewind_state`` (``rewind``; Li et al. fine-tune the pruned weights: ``rewind=False``)
    and retrained under the mask with ``task.recipe`` (``retrain``). ``scores`` gives one L1 norm
    per filter (float64 [out]); ``select`` traces ``task.new_model()`` for the dependencies.
    """

    name = "l1-filter"
    version = 2
    structured: ClassVar[bool] = True

    def plan(self, model: nn.Module, task: PruneTask) -> ChannelPlan:
        """The prunable channel groups of ``model`` among ``task.scope``."""
        plan = channel_plan(model, task.scope)
        if not plan.groups:
            raise InvalidValueError(
                "l1-filter found no prunable convolution in scope; "
                + "; ".join(f"{n}: {why}" for n, why in sorted(plan.skipped.items()))
            )
        return plan

    def scores(self, model: nn.Module, task: PruneTask) -> dict[str, torch.Tensor]:
        return filter_l1_norms(model, self.plan(model, task).groups)

    def select(self, scores: dict[str, torch.Tensor], task: PruneTask) -> Mask:
        model = task.new_model()
        return self._select(scores, model, self.plan(model, task), task)

    def make_mask(self, model: nn.Module, task: PruneTask) -> Mask:
        plan = self.plan(model, task)
        return self._select(filter_l1_norms(model, plan.groups), model, plan, task)

    def _select(
        self, scores: dict[str, torch.Tensor], model: nn.Module, plan: ChannelPlan, task: PruneTask
    ) -> Mask:
        sparsity = check_sparsity(task.sparsity)
        kept = {
            g.conv_weight: filter_keep_mask(scores[g.conv_weight], filter_keep_count(g.channels, sparsity))
            for g in plan.groups
        }
        for weight, why in sorted(plan.skipped.items()):
            log.debug("l1-filter keeps %s dense: %s", weight, why)
        return channel_mask(model, plan.groups, kept)
