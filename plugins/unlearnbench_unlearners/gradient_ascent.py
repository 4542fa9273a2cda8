"""Gradient ascent on the forget set."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from unlearnbench.api import UnlearnBudget, Unlearner, UnlearnTask


class GradientAscent(Unlearner):
    """GA: minimise -CE on the forget set (Thudi et al., 2022; Unlearn-Sparse ``unlearn/GA.py``).
    README defaults: 5 epochs at lr 1e-4 (the authors suggest 5e-4..1e-3 when it fails to
    forget, SalUn issue #8); the shared unlearning optimiser otherwise (batch 256, SGD momentum
    0.9, wd 5e-4)."""

    name = "ga"
    version = 2

    @dataclass(frozen=True)
    class Params(UnlearnBudget):
        epochs: int = 5
        lr: float = 1e-4

    def unlearn(self, model: nn.Module, task: UnlearnTask) -> nn.Module:
        recipe = self.params.recipe(task.recipe)

        def ascent(m: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            return -F.cross_entropy(m(x), y)

        task.engine.fit(
            model, task.forget, recipe, seed=task.seed, mask=task.mask, loss_fn=ascent, description="ga"
        )
        return model
