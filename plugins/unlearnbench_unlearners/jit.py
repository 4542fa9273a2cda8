"""JiT: zero-shot unlearning by Lipschitz regularisation on the forget set (Foster et al., 2024)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from unlearnbench.api import UnlearnBudget, Unlearner, UnlearnTask


def perturb(x: torch.Tensor, sigma: float, generator: torch.Generator | None) -> torch.Tensor:
    """``x`` plus N(0, sigma^2) noise, clamped to the batch's [min, max] (the reference's
    ``AddGaussianNoise``)."""
    noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return torch.clamp(x + sigma * noise, min=x.min(), max=x.max())


def lipschitz_ratio(out: torch.Tensor, out2: torch.Tensor, x: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
    """Per example ||f(x) - f(x')||_2 / ||x - x'||_2."""
    return (out - out2).flatten(1).norm(dim=1) / (x - x2).flatten(1).norm(dim=1)


class JiT(Unlearner):
    """JiT, "just in time" zero-shot unlearning (Foster, Fogarty, Schoepf, Öztireli & Brintrup,
    "Zero-shot machine unlearning at scale via Lipschitz regularization", arXiv 2402.01401;
    ``jwf40/Zeroshot-Unlearning-At-Scale`` ``lipschitz.py`` and
    ``forget_*_strategies.py:lipschitz_forgetting``): one pass over the forget set in order
    (batch 128); for each batch, ``samples`` perturbed copies x' = clamp(x + sigma N(0, 1)) and
    the loss mean over copies of sum over the batch of ||f(x) - f(x')|| / ||x - x'|| (f(x')
    without gradient), one SGD step (no momentum, no weight decay) per batch. Only the forget
    set is used. Defaults: the strategy function's, sigma 0.1, lr 0.01, 25 samples (the
    reference's main scripts override them per model, e.g. sigma 0.01, lr 3e-4 for VGG16); on
    digits-quickstart they collapse the model (retain accuracy about 10%): tune them.
    Deviations: gradients are zeroed before each step (the reference never zeroes them, so they
    accumulate over batches); the model runs in eval mode (BatchNorm statistics fixed); the
    noise comes from the run's seed; noise is added in the normalised input space, as the
    reference does after its transforms. Logs ``lipschitz`` (mean ratio per epoch)."""

    name = "jit"
    version = 1

    @dataclass(frozen=True)
    class Params(UnlearnBudget):
        epochs: int = 1
        lr: float = 0.01
        batch_size: int = 128
        momentum: float = 0.0
        weight_decay: float = 0.0
        schedule: Literal["constant", "step", "cosine", "onecycle", "triangle"] = "constant"
        sigma: float = 0.1
        samples: int = 25

    def unlearn(self, model: nn.Module, task: UnlearnTask) -> nn.Module:
        p, engine = self.params, task.engine
        generator = engine.generator(task.seed)
        seen = [0.0, 0]

        def loss(m: nn.Module, x: torch.Tensor, _: torch.Tensor) -> torch.Tensor:
            m.eval()
            out = m(x).float()
            total = out.new_zeros(())
            for _ in range(p.samples):
                x2 = perturb(x, p.sigma, generator)
                with torch.no_grad():
                    out2 = m(x2).float()
                ratio = lipschitz_ratio(out, out2, x, x2)
                total = total + ratio.sum().abs()
                seen[0] += float(ratio.detach().sum())
                seen[1] += len(ratio)
            return total / p.samples

        def log_epoch(epoch: int, _: nn.Module) -> None:
            task.log(epoch, "lipschitz", seen[0] / max(1, seen[1]))
            seen[:] = [0.0, 0]

        recipe = p.recipe(task.recipe)
        engine.fit_batches(
            model,
            recipe,
            lambda _: engine.batches(task.forget, recipe.batch_size, None, shuffle=False),
            steps_per_epoch=engine.steps_per_epoch(task.forget, recipe.batch_size),
            mask=task.mask,
            loss_fn=loss,
            description="jit",
            on_epoch_end=log_epoch,
        )
        return model
