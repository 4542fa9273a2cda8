"""NegGrad+ (Kurmanji et al., NeurIPS 2023): descent on the retain set, ascent on the forget set."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from unlearnbench.api import UnlearnBudget, Unlearner, UnlearnTask, fit_pairs


class NegGradPlus(Unlearner):
    """NegGrad+ (Kurmanji et al., NeurIPS 2023; ``meghdadk/SCRUB`` ``train_negrad`` and
    ``negative_grad`` in ``large_scale_ictest.ipynb``): each step on a retain batch paired with
    the next forget batch (forget cycled) minimises alpha CE(D_r) - (1 - alpha) CE(D_f).
    Reference defaults: alpha 0.9999, 10 epochs, SGD lr 0.01 without momentum or weight decay,
    retain batch 128, forget batch 32. Logs ``forget_loss`` (mean CE on the forget batches)."""

    name = "neggrad+"
    version = 1

    @dataclass(frozen=True)
    class Params(UnlearnBudget):
        batch_size: int = 128
        momentum: float = 0.0
        weight_decay: float = 0.0
        forget_batch_size: int = 32
        alpha: float = 0.9999

    def unlearn(self, model: nn.Module, task: UnlearnTask) -> nn.Module:
        p = self.params
        seen = [0.0, 0]

        def loss(
            m: nn.Module, forget: tuple[torch.Tensor, torch.Tensor], retain: tuple[torch.Tensor, torch.Tensor]
        ):
            forget_ce = F.cross_entropy(m(forget[0]), forget[1])
            seen[0] += float(forget_ce.detach())
            seen[1] += 1
            return p.alpha * F.cross_entropy(m(retain[0]), retain[1]) - (1 - p.alpha) * forget_ce

        def log_epoch(epoch: int, _: nn.Module) -> None:
            task.log(epoch, "forget_loss", seen[0] / max(1, seen[1]))
            seen[:] = [0.0, 0]

        fit_pairs(
            task.engine,
            model,
            task.forget,
            task.retain,
            p.recipe(task.recipe),
            loss,
            forget_batch_size=p.forget_batch_size,
            seed=task.seed,
            mask=task.mask,
            description="neggrad+",
            on_epoch_end=log_epoch,
        )
        return model
