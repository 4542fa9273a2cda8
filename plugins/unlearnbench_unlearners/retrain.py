"""Exact unlearning: retrain from scratch on the retain set."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from unlearnbench.api import UnlearnBudget, Unlearner, UnlearnTask


class Retrain(Unlearner):
    """Retrain from a fresh initialisation on the retain set under the model's mask
    (Jia et al., 2023, the ``retrain`` method of Unlearn-Sparse: the sparse model gets a sparse
    retrain). Defaults are the reference README's: 160 epochs at lr 0.1, batch 256, SGD momentum
    0.9, wd 5e-4, rate x0.1 at absolute epochs 91 and 136. Augmentation follows the protocol."""

    name = "retrain"
    version = 2
    reference = "retrain"

    @dataclass(frozen=True)
    class Params(UnlearnBudget):
        epochs: int = 160
        lr: float = 0.1

    def unlearn(self, model: nn.Module, task: UnlearnTask) -> nn.Module:
        recipe = self.params.recipe(task.recipe)
        fresh = task.engine.prepare(task.new_model())
        task.engine.fit(fresh, task.retain, recipe, seed=task.seed, mask=task.mask, description="retrain")
        return fresh
