"""Exact unlearning: retrain from scratch on the retain set."""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import Literal

from torch import nn

from unlearnbench.api import UnlearnBudget, Unlearner, UnlearnTask

log = logging.getLogger(__name__)


class Retrain(Unlearner):
    """Retrain from a fresh initialisation on the retain set under the model's mask
    (Jia et al., 2023, the ``retrain`` method of Unlearn-Sparse: the sparse model gets a sparse
    retrain). Defaults are the reference README's: 160 epochs at lr 0.1, batch 256, SGD momentum
    0.9, wd 5e-4, rate x0.1 at absolute epochs 91 and 136. Augmentation follows the protocol.

    ``protocol_recipe``: retrain with the protocol's training recipe instead (the budget fields
    are then unused), for protocols whose training recipe a plain SGD budget cannot express
    (``cifar10-airbench``'s fast recipe); the reference's retrain budget is its training recipe
    with 160 instead of 182 epochs. The recipe's ``keep_best`` selects on the validation split.
    The option defaults to off, which leaves earlier results unchanged (so the version stays 2).

    ``budget``: ``recipe`` trains the epochs of the recipe chosen above; ``original-path`` trains
    as many epochs as the original's whole path to the model being unlearned (dense training plus
    the pruner's retraining under the mask, ``task.original_epochs``), on the same schedule
    stretched over them, so that exact unlearning of a pruned model is not starved against the
    model it replaces (a sparse retrain from scratch under the mask otherwise gets one training's
    epochs against the original's two). Not in the reference, whose retrain budget is fixed.
    Logs ``train_loss`` and ``train_acc`` per epoch (``task.log``)."""

    name = "retrain"
    version = 2
    reference = "retrain"

    @dataclass(frozen=True)
    class Params(UnlearnBudget):
        epochs: int = 160
        lr: float = 0.1
        protocol_recipe: bool = False
        budget: Literal["recipe", "original-path"] = "recipe"

    def unlearn(self, model: nn.Module, task: UnlearnTask) -> nn.Module:
        recipe = task.recipe if self.params.protocol_recipe else self.params.recipe(task.recipe)
        if self.params.budget == "original-path":
            if task.original_epochs is None:
                log.warning(
                    "retrain: the original's budget is unknown (an artifact predates it); %d epochs",
                    recipe.epochs,
                )
            else:
                recipe = dataclasses.replace(recipe, epochs=task.original_epochs)
        fresh = task.engine.prepare(task.new_model())
        val = task.val if self.params.protocol_recipe else None
        task.engine.fit(
            fresh,
            task.retain,
            recipe,
            seed=task.seed,
            mask=task.mask,
            description="retrain",
            val=val,
            epoch_log=task.log,
        )
        return fresh
