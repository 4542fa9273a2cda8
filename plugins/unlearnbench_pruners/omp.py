"""One-shot global magnitude pruning (OMP) with weight rewinding."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from unlearnbench.components import PruneOutcome, Pruner, PruneTask


class OneShotMagnitude(Pruner):
    """OMP as in Jia et al. (NeurIPS 2023), ``main_imp.py --prune_type rewind_lt``.

    Scores are |w| of the trained model's scoped weights (the reference scopes every Conv2d
    weight); the globally smallest fraction ``sparsity`` is pruned
    (``prune.global_unstructured(L1Unstructured)``). With ``rewind`` the surviving weights are
    reset to the dense run's weights at ``recipe.rewind_epoch`` (reference: epoch 8) and, with
    ``retrain``, trained again under the mask with the protocol's recipe.
    Deviation: the reference also advances the LR schedule by ``rewind_epoch`` steps before
    retraining; here the retraining runs the full recipe from its start.
    """

    name = "omp"
    version = 1

    @dataclass(frozen=True)
    class Params:
        rewind: bool = True
        retrain: bool = True

    def scores(self, model: nn.Module, task: PruneTask) -> dict[str, torch.Tensor]:
        params = dict(model.named_parameters())
        return {name: params[name].detach().abs() for name in task.scope}

    def prune(self, model: nn.Module, task: PruneTask) -> PruneOutcome:
        mask = self.make_mask(model, task)
        if self.params.rewind and task.rewind_state is not None:
            model.load_state_dict(task.rewind_state)
        if self.params.retrain:
            task.engine.fit(
                model, task.data, task.recipe, seed=task.seed, mask=mask, description="omp retrain"
            )
        mask.apply_(model)
        return PruneOutcome(model, mask)
