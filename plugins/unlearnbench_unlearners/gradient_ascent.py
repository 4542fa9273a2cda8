"""Gradient ascent on the forget set."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from unlearnbench.api import Unlearner, UnlearnTask, unlearning_recipe


class GradientAscent(Unlearner):
    """GA: minimise -CE on the forget set (Thudi et al., 2022; Unlearn-Sparse ``unlearn/GA.py``).
    README defaults: 5 epochs at lr 1e-4 (the authors suggest 5e-4..1e-3 when it fails to
    forget, SalUn issue #8)."""

    name = "ga"
    version = 1

    @dataclass(frozen=True)
    class Params:
        epochs: int = 5
        lr: float = 1e-4

    def unlearn(self, model: nn.Module, task: UnlearnTask) -> nn.Module:
        recipe = unlearning_recipe(task.recipe, self.params.epochs, self.params.lr)

        def ascent(m: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            return -F.cross_entropy(m(x), y)

        task.engine.fit(
            model, task.forget, recipe, seed=task.seed, mask=task.mask, loss_fn=ascent, description="ga"
        )
        return model
