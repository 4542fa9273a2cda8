"""Boundary unlearning (Chen et al., CVPR 2023): boundary shrink (BS) and boundary expanding (BE)."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from unlearnbench.api import Engine, Mask, UnlearnBudget, Unlearner, UnlearnTask
from unlearnbench_unlearners._common import classifier, replace_module


def boundary_labels(
    model: nn.Module, engine: Engine, x: torch.Tensor, y: torch.Tensor, eps: float
) -> torch.Tensor:
    """The nearest wrong class of each example: the argmax of ``model`` on its FGSM image
    (step ``eps`` on the [0, 1] pixel scale, clamped to [0, 1]); where that argmax is still the
    true class, the runner-up of the adversarial logits."""
    model.eval()
    std = engine.std.view(1, -1, 1, 1).to(x.dtype)
    mean = engine.mean.view(1, -1, 1, 1).to(x.dtype)
    with torch.enable_grad():
        x_req = x.detach().clone().requires_grad_(True)
        (g,) = torch.autograd.grad(F.cross_entropy(model(x_req), y), x_req)
    low, high = (0 - mean) / std, (1 - mean) / std
    x_adv = torch.maximum(torch.minimum(x + eps / std * g.sign(), high), low)
    with torch.no_grad():
        logits = model(x_adv).float()
    logits.scatter_(1, y.unsqueeze(1), float("-inf"))  # never the true class
    return logits.argmax(dim=1)


class BoundaryShrink(Unlearner):
    """BS (Chen et al., CVPR 2023, "Boundary Unlearning"; Unlearn-Saliency
    ``Classification/unlearn/boundary_ex.py:boundary_shrink``): a frozen copy of the original model
    gives each forget example the class of its FGSM image (eps 0.1, no random start), and the
    model is fine-tuned on D_f towards those labels. Defaults: 10 epochs, lr 0.01 (``unlearn_lr``),
    batch 256, SGD momentum 0.9 without weight decay, as the reference's optimiser. Deviation:
    where the adversarial argmax is still the true class, the runner-up class is used, so the
    target is always the nearest *wrong* class (the reference then trains on the true label)."""

    name = "bs"
    version = 1

    @dataclass(frozen=True)
    class Params(UnlearnBudget):
        weight_decay: float = 0.0
        eps: float = 0.1

    def unlearn(self, model: nn.Module, task: UnlearnTask) -> nn.Module:
        frozen = copy.deepcopy(model)
        engine = task.engine

        def loss(m: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            target = boundary_labels(frozen, engine, x, y, self.params.eps)
            m.train()
            return F.cross_entropy(m(x), target)

        recipe = self.params.recipe(task.recipe)
        engine.fit(model, task.forget, recipe, seed=task.seed, mask=task.mask, loss_fn=loss, description="bs")
        return model


class BoundaryExpanding(Unlearner):
    """BE (Chen et al., CVPR 2023; Unlearn-Saliency ``boundary_ex.py:boundary_expanding``): the
    classifier gets a (K+1)-th output unit (fresh default init, the K trained rows copied), and
    the widened model is fine-tuned on D_f towards label K. Defaults as BS: 10 epochs, lr 0.01,
    batch 256, SGD momentum 0.9, no weight decay. Deviation: the extra unit is removed afterwards
    (the first K rows kept), so the returned model has K outputs; the reference keeps K+1."""

    name = "be"
    version = 1

    @dataclass(frozen=True)
    class Params(UnlearnBudget):
        weight_decay: float = 0.0

    def unlearn(self, model: nn.Module, task: UnlearnTask) -> nn.Module:
        k = task.num_classes
        path, head = classifier(model, k)
        bias = head.bias is not None
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(task.seed)
            wide = nn.Linear(head.in_features, k + 1, bias=bias)
        wide = wide.to(device=head.weight.device, dtype=head.weight.dtype)
        with torch.no_grad():
            wide.weight[:k] = head.weight
            if bias:
                wide.bias[:k] = head.bias
        replace_module(model, path, wide)
        mask = self._widened(task.mask, path)

        def loss(m: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            return F.cross_entropy(m(x), torch.full_like(y, k))

        recipe = self.params.recipe(task.recipe)
        task.engine.fit(model, task.forget, recipe, seed=task.seed, mask=mask, loss_fn=loss, description="be")
        narrow = nn.Linear(head.in_features, k, bias=bias).to(
            device=head.weight.device, dtype=head.weight.dtype
        )
        with torch.no_grad():
            narrow.weight.copy_(wide.weight[:k])
            if bias:
                narrow.bias.copy_(wide.bias[:k])
        replace_module(model, path, narrow)
        return model

    @staticmethod
    def _widened(mask: Mask | None, path: str) -> Mask | None:
        """``mask`` with a kept row for the extra unit where it masks the classifier."""
        if mask is None:
            return None
        tensors = dict(mask.tensors)
        for name in (f"{path}.weight", f"{path}.bias"):
            if name in tensors:
                t = tensors[name]
                tensors[name] = torch.cat([t, torch.ones_like(t[:1])])
        return Mask(tensors, mask.scope)
