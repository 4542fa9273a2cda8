"""CF-k and EU-k: fine-tune, or re-initialise and retrain, only the last k layers (Goel et al., 2022)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from unlearnbench.api import UnlearnBudget, Unlearner, UnlearnTask

_STARTS_A_LAYER = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


def weight_layers(model: nn.Module) -> list[list[str]]:
    """The model's layers in registration order, each a list of module paths: every Conv/Linear
    module starts a layer, and other modules with parameters of their own (BatchNorm, ...) join
    the layer before them (or start one when there is none)."""
    layers: list[list[str]] = []
    for name, module in model.named_modules():
        if not any(True for _ in module.parameters(recurse=False)):
            continue
        if isinstance(module, _STARTS_A_LAYER) or not layers:
            layers.append([name])
        else:
            layers[-1].append(name)
    return layers


def last_k(model: nn.Module, k: int) -> list[str]:
    """Module paths of the last ``k`` layers (all of them when ``k`` >= the number of layers)."""
    layers = weight_layers(model)
    return [path for layer in layers[max(0, len(layers) - k) :] for path in layer]


def train_last_layers(
    model: nn.Module, task: UnlearnTask, budget: UnlearnBudget, k: int, reinit: bool
) -> nn.Module:
    """Train the last ``k`` layers of ``model`` on the retain set under ``task.mask``, every other
    layer frozen (no gradient, and in eval mode so its BatchNorm statistics stay); with
    ``reinit``, the trained layers first get ``task.new_model()``'s fresh weights and buffers."""
    trained = set(last_k(model, k))
    modules = dict(model.named_modules())
    if reinit:
        fresh = dict(task.new_model().named_modules())
        with torch.no_grad():
            for path in trained:
                for key, value in fresh[path].state_dict().items():
                    modules[path].state_dict()[key].copy_(value)
        if task.mask is not None:
            task.mask.apply_(model)
    frozen = [
        m for path, m in modules.items() if path not in trained and any(True for _ in m.parameters(False))
    ]
    flags = {id(p): p.requires_grad for p in model.parameters()}
    for module in frozen:
        for p in module.parameters(recurse=False):
            p.requires_grad_(False)
    engine, recipe = task.engine, budget.recipe(task.recipe)

    def loss(m: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        for module in frozen:
            module.eval()
        return torch.nn.functional.cross_entropy(m(x), y)

    try:
        engine.fit(
            model,
            task.retain,
            recipe,
            seed=task.seed,
            mask=task.mask,
            loss_fn=loss,
            description="eu-k" if reinit else "cf-k",
        )
    finally:
        for p in model.parameters():
            p.requires_grad_(flags[id(p)])
    return model


class CatastrophicForgettingK(Unlearner):
    """CF-k (Goel, Prabhu, Sanyal, Lim, Torr & Kumaraguru, "Towards Adversarial Evaluations for
    Inexact Machine Unlearning", arXiv 2201.06640, 2022): freeze every layer but the last k and
    fine-tune those on the retain set. A layer is a Conv/Linear module with the normalisation
    layer after it (:func:`weight_layers`); frozen layers keep their BatchNorm statistics. The
    paper sweeps k and fixes no default; k = 1 (the classifier) is ours. Budget: the shared
    unlearning optimiser (10 epochs, SGD lr 0.01, momentum 0.9, wd 5e-4, batch 256), ours."""

    name = "cf-k"
    version = 1

    @dataclass(frozen=True)
    class Params(UnlearnBudget):
        k: int = 1

    def unlearn(self, model: nn.Module, task: UnlearnTask) -> nn.Module:
        return train_last_layers(model, task, self.params, self.params.k, reinit=False)


class ExactUnlearningK(Unlearner):
    """EU-k (Goel et al., 2022, as CF-k): re-initialise the last k layers (a fresh model's
    initialisation, ``task.new_model()``, weights and buffers) and retrain them on the retain set,
    every other layer frozen. Layers, k = 1 and the budget as CF-k (ours). Pruned weights of the
    re-initialised layers are set back to zero before training."""

    name = "eu-k"
    version = 1

    @dataclass(frozen=True)
    class Params(UnlearnBudget):
        k: int = 1

    def unlearn(self, model: nn.Module, task: UnlearnTask) -> nn.Module:
        return train_last_layers(model, task, self.params, self.params.k, reinit=True)
