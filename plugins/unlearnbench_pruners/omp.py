"""One-shot global magnitude pruning (OMP) with weight rewinding."""

from __future__ import annotations

import torch
from torch import nn

from unlearnbench.api import PruneTask
from unlearnbench_pruners._common import RewindRetrainPruner


class OneShotMagnitude(RewindRetrainPruner):
    """OMP as in Jia et al. (NeurIPS 2023), ``main_imp.py --prune_type rewind_lt``.

    Scores are |w| of the trained model's scoped weights (the reference scopes every Conv2d
    weight); the globally smallest fraction ``sparsity`` is pruned
    (``prune.global_unstructured(L1Unstructured)``). With ``rewind`` the surviving weights are
    reset to the dense run's weights at ``recipe.rewind_epoch`` (reference: epoch 8) and, with
    ``retrain``, trained again under the mask with the protocol's recipe, its LR schedule
    advanced by ``rewind_epoch`` epochs as the reference steps its scheduler (``recipe.keep_best``
    keeps the best-validation epoch of that retraining, as the reference's ``model_SA_best``).
    """

    name = "omp"
    version = 2

    def scores(self, model: nn.Module, task: PruneTask) -> dict[str, torch.Tensor]:
        params = dict(model.named_parameters())
        return {name: params[name].detach().abs() for name in task.scope}
