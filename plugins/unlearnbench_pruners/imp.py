"""Iterative magnitude pruning (IMP) with weight rewinding."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import torch
from torch import nn

from unlearnbench.api import (
    InvalidValueError,
    Mask,
    PruneOutcome,
    Pruner,
    PruneTask,
    check_sparsity,
    topk_mask,
)
from unlearnbench_pruners._common import rewind_and_retrain

log = logging.getLogger(__name__)


def imp_schedule(target: float, rate: float = 0.2) -> list[float]:
    """Cumulative sparsity after each IMP round.

    Each round prunes ``rate`` of the remaining weights, so round ``k`` reaches
    ``1 - (1 - rate)**k``; there are ``n = ceil(log(1 - target) / log(1 - rate))`` rounds and the
    last one prunes exactly to ``target`` (a smaller step when ``target`` is not on the grid).
    An empty list for ``target == 0``.
    """
    target = check_sparsity(target)
    if not 0.0 < rate < 1.0:
        raise InvalidValueError(f"IMP rate {rate!r} is outside (0, 1)")
    if target == 0.0:
        return []
    exact = math.log1p(-target) / math.log1p(-rate)
    rounds = max(1, math.ceil(exact - 1e-9))
    return [1.0 - (1.0 - rate) ** k for k in range(1, rounds)] + [target]


class IterativeMagnitude(Pruner):
    """IMP as in Jia et al. (NeurIPS 2023), ``main_imp.py --prune_type rewind_lt --rate 0.2``
    (the lottery-ticket procedure with rewinding of Frankle et al., 2019/2020).

    Starting from the trained dense model, each round globally prunes the ``rate`` (reference:
    0.2) smallest-|w| fraction of the still-kept scoped weights, rewinds the survivors to
    ``task.rewind_state`` (reference: epoch 8 of the dense run) and retrains under the mask with
    ``task.recipe`` on ``task.data``. The rounds follow :func:`imp_schedule`, so the target fixes
    their number. Deviations: the reference picks the round count by hand (``--pruning_times``)
    and rounds every step to 20% of the remainder, here the last round lands exactly on the
    target. After rewinding, each round's LR schedule starts ``rewind_epoch`` epochs in, as the
    reference steps its scheduler; rounds train ``round_epochs`` epochs (None: the recipe's);
    round ``k`` (from 0) trains with seed ``task.seed + k``. Without a
    rewind state the rounds fine-tune the current weights. ``make_mask`` (used by un-pruning) is
    one-shot magnitude pruning at the final sparsity.
    """

    name = "imp"
    version = 2

    @dataclass(frozen=True)
    class Params:
        rate: float = 0.2
        rewind: bool = True
        round_epochs: int | None = None

    def scores(self, model: nn.Module, task: PruneTask) -> dict[str, torch.Tensor]:
        params = dict(model.named_parameters())
        return {name: params[name].detach().abs() for name in task.scope}

    def prune(self, model: nn.Module, task: PruneTask) -> PruneOutcome:
        schedule = imp_schedule(task.sparsity, self.params.rate)
        mask = Mask.dense(model, sorted(task.scope))
        for k, sparsity in enumerate(schedule):
            mask = topk_mask(self.scores(model, task), sparsity, task.scope, within=mask)
            log.info("imp round %d/%d: sparsity %.4f", k + 1, len(schedule), mask.sparsity())
            rewind_and_retrain(
                model,
                mask,
                task,
                rewind=self.params.rewind,
                retrain=True,
                epochs=self.params.round_epochs,
                seed=task.seed + k,
                description=f"imp round {k + 1}/{len(schedule)}",
            )
        return PruneOutcome(model, mask)
