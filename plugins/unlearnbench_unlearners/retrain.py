"""Exact unlearning: retrain from scratch on the retain set."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from torch import nn

from unlearnbench.api import Unlearner, UnlearnTask


class Retrain(Unlearner):
    """Retrain from a fresh initialisation on the retain set under the model's mask
    (Jia et al., 2023, the ``retrain`` method of Unlearn-Sparse: the sparse model gets a sparse
    retrain). Runs the protocol's training recipe; ``epochs`` overrides its length (the
    reference's README retrains 160 epochs at lr 0.1 where the original trained 182)."""

    name = "retrain"
    version = 1
    reference = "retrain"

    @dataclass(frozen=True)
    class Params:
        epochs: int | None = None

    def unlearn(self, model: nn.Module, task: UnlearnTask) -> nn.Module:
        recipe = task.recipe
        if self.params.epochs is not None:
            recipe = dataclasses.replace(recipe, epochs=self.params.epochs)
        fresh = task.engine.prepare(task.new_model())
        task.engine.fit(fresh, task.retain, recipe, seed=task.seed, mask=task.mask, description="retrain")
        return fresh
