"""Un-pruning by relaxing the mask, unlearning in dense space and re-pruning on the retain set."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Literal

from unlearnbench.api import PruneOutcome, Unpruner, UnpruneTask, unlearning_recipe


class RelaxUnlearnReprune(Unpruner):
    """Un-pruning (Xiao et al., 2025, "The Right to be Forgotten in Pruning", arXiv 2507.18725),
    reconstructed from the paper's description (its code has no un-pruning routine):

    1. relax the topology: start from the trained dense weights (``relax="dense"``) or from the
       sparse model with its pruned weights at zero (``relax="zero"``);
    2. run the unlearner in dense space (no mask);
    3. re-score with the same pruner on the retain set and re-prune to the same sparsity;
    4. fine-tune under the new mask on the retain set (``finetune_epochs`` at ``finetune_lr``,
       SGD momentum 0.9, wd 5e-4, constant rate; 0 epochs skips it).

    For iterative pruners the re-pruning is one shot at the final sparsity (the cheaper of the two
    readings of the paper).
    """

    name = "reprune"
    version = 1

    @dataclass(frozen=True)
    class Params:
        relax: Literal["dense", "zero"] = "dense"
        finetune_epochs: int = 5
        finetune_lr: float = 0.01

    def unprune(self, task: UnpruneTask) -> PruneOutcome:
        start = task.dense_model if self.params.relax == "dense" else task.pruned_model
        model = copy.deepcopy(start)
        model = task.unlearner.unlearn(model, task.unlearn_task)
        retain_task = task.retain_prune_task
        mask = task.pruner.make_mask(model, retain_task)
        mask.apply_(model)
        if self.params.finetune_epochs > 0:
            recipe = unlearning_recipe(
                retain_task.recipe, self.params.finetune_epochs, self.params.finetune_lr
            )
            retain_task.engine.fit(
                model,
                retain_task.data,
                recipe,
                seed=retain_task.seed,
                mask=mask,
                description="un-prune fine-tune",
            )
        return PruneOutcome(model, mask)
