"""Fast-training options of a recipe, after Jordan 2024 ("94% on CIFAR-10 in 3.29 seconds on a
single GPU", arXiv:2404.00498; github.com/KellerJordan/cifar10-airbench), our own code:
optimizer parameter groups with a larger learning rate on normalisation-layer biases, a
lookahead (EMA) of the weights, and alternating horizontal flips.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from unlearnbench.training.recipe import TrainRecipe


def param_groups(model: nn.Module, recipe: TrainRecipe) -> list[dict[str, Any]]:
    """SGD parameter groups: the biases of normalisation layers (BatchNorm, GroupNorm,
    LayerNorm, ...) at ``recipe.lr * recipe.bias_lr_scale`` with weight decay divided by the same
    scale (so the per-step decay ``lr * wd`` is the other parameters'), then every other trainable
    parameter at ``recipe.lr``. Each group's ``base_lr`` is the rate the schedule multiplies.
    """
    norm_types = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)
    biases = {
        id(module.bias)
        for module in model.modules()
        if isinstance(module, norm_types) and isinstance(getattr(module, "bias", None), nn.Parameter)
    }
    trainable = [p for p in model.parameters() if p.requires_grad]
    scaled = [p for p in trainable if id(p) in biases]
    others = [p for p in trainable if id(p) not in biases]
    groups: list[dict[str, Any]] = []
    if scaled and recipe.bias_lr_scale != 1.0:
        lr = recipe.lr * recipe.bias_lr_scale
        groups.append(
            {
                "params": scaled,
                "lr": lr,
                "base_lr": lr,
                "weight_decay": recipe.weight_decay / recipe.bias_lr_scale,
            }
        )
    else:
        others = trainable
    groups.append(
        {"params": others, "lr": recipe.lr, "base_lr": recipe.lr, "weight_decay": recipe.weight_decay}
    )
    return [g for g in groups if g["params"]]


class Lookahead:
    """airbench's lookahead: every ``every`` steps the floating-point state (weights and
    BatchNorm statistics) moves to an EMA ``ema = decay * ema + (1 - decay) * current`` and the
    model is reset to it; ``decay = rate ** every * (step / total) ** 3`` grows from 0 to
    ``rate ** every``, and :meth:`finish` ends on the EMA (airbench: every 5, rate 0.95).
    Pruned (zero) entries stay zero: the EMA of zeros is zero.
    """

    @classmethod
    def for_recipe(cls, model: nn.Module, recipe: TrainRecipe, total_steps: int) -> Lookahead | None:
        """The recipe's lookahead over ``total_steps`` steps (None when ``lookahead_every`` is 0)."""
        if recipe.lookahead_every <= 0:
            return None
        return cls(model, recipe.lookahead_every, total_steps, recipe.lookahead_rate)

    def __init__(self, model: nn.Module, every: int, total_steps: int, rate: float) -> None:
        self.every = every
        self.total = max(1, total_steps)
        self.rate = rate
        self.ema = {k: v.detach().clone() for k, v in model.state_dict().items() if v.is_floating_point()}

    @torch.no_grad()
    def _update(self, model: nn.Module, decay: float) -> None:
        state = model.state_dict()
        for name, ema in self.ema.items():
            ema.lerp_(state[name], 1.0 - decay)
            state[name].copy_(ema)

    def after_step(self, model: nn.Module, step: int) -> None:
        """Call after optimizer step ``step`` (1-based)."""
        if step % self.every == 0:
            self._update(model, self.rate**self.every * (min(step, self.total) / self.total) ** 3)

    def finish(self, model: nn.Module) -> None:
        """Set the model to the EMA."""
        self._update(model, 1.0)


def epoch_flips(
    recipe: TrainRecipe, n: int, generator: torch.Generator | None, device: torch.device
) -> Callable[[int], torch.Tensor | None]:
    """``flips(epoch)``: which of the ``n`` images to mirror in ``epoch``, or None for random
    flips. With ``recipe.flip == "alternate"`` a random half (drawn once from ``generator``) in
    even epochs and the other half in odd ones: every image is seen in both orientations every
    two epochs (airbench's alternating flip)."""
    if recipe.flip != "alternate":
        return lambda _: None
    half = torch.rand(n, device=device, generator=generator) < 0.5
    return lambda epoch: half ^ bool(epoch % 2)
