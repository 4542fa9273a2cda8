"""UNSIR: error-maximising noise, impair and repair (Tarun et al., IEEE TNNLS 2023)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from unlearnbench.api import ImageSplit, UnlearnBudget, Unlearner, UnlearnTask


def noise_loss(model: nn.Module, noise: torch.Tensor, label: int, l2: float) -> torch.Tensor:
    """The noise's objective (minimised): -CE(model(noise), label) + l2 mean_i ||noise_i||_2^2."""
    target = torch.full((noise.shape[0],), label, dtype=torch.long, device=noise.device)
    return -F.cross_entropy(model(noise), target) + l2 * noise.pow(2).flatten(1).sum(dim=1).mean()


class Unsir(Unlearner):
    """UNSIR (Tarun, Chundawat, Mandal & Kankanhalli, "Fast Yet Effective Machine Unlearning",
    IEEE TNNLS 2023; ``vikram2000b/Fast-Machine-Unlearning`` as ported in the SSD repository,
    ``forget_full_class_strategies.py:UNSIR`` and ``unlearn.py:UNSIR_noise_train``): per forget
    class c, a noise batch (32 images in the normalised input space, N(0, 1) start) is trained
    for 25 Adam steps at lr 0.1 to maximise CE(model(noise), c) with an l2 penalty (loss
    -CE + 0.1 mean ||noise||^2, model in eval mode). Impair: one epoch, Adam lr 1e-4, batch 32,
    over 80 copies of each noise batch labelled c together with up to 500 retain images per
    remaining class. Repair: one epoch, Adam lr 1e-4, batch 128, over those retain images.
    Deviations: the noise starts from the run's seed; for random (not class-wise) forgetting,
    the classes present in the forget set are the forget classes (UNSIR is defined for classes);
    impair batches are not augmented (repair batches follow the protocol's augmentation).
    Logs ``noise_ce`` (the CE of each class's trained noise, at epoch 0)."""

    name = "unsir"
    version = 1

    @dataclass(frozen=True)
    class Params(UnlearnBudget):
        epochs: int = 1
        lr: float = 1e-4
        batch_size: int = 32
        optimizer: Literal["sgd", "adam"] = "adam"
        weight_decay: float = 0.0
        schedule: Literal["constant", "step", "cosine", "onecycle", "triangle"] = "constant"
        noise_batch_size: int = 32
        noise_steps: int = 25
        noise_lr: float = 0.1
        noise_l2: float = 0.1
        noise_copies: int = 80
        retain_per_class: int = 500
        repair_epochs: int = 1
        repair_batch_size: int = 128

    def forget_classes(self, task: UnlearnTask) -> list[int]:
        if task.forget_kind == "class" and task.forgotten_classes:
            return sorted(task.forgotten_classes)
        return sorted(int(c) for c in torch.unique(task.forget.labels.cpu()))

    def noise(
        self, model: nn.Module, task: UnlearnTask, label: int, generator: torch.Generator
    ) -> torch.Tensor:
        """The trained error-maximising noise batch of class ``label``."""
        engine, p = task.engine, self.params
        shape = next(engine.batches(task.forget.head(1), 1, None, shuffle=False))[0].shape[1:]
        start = torch.randn((p.noise_batch_size, *shape), generator=generator, device=engine.device)
        noise = nn.Parameter(start)
        optimizer = torch.optim.Adam([noise], lr=p.noise_lr)
        model.eval()
        for param in model.parameters():
            param.requires_grad_(False)
        try:
            with torch.enable_grad():
                for _ in range(p.noise_steps):
                    loss = noise_loss(model, noise, label, p.noise_l2)
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
        finally:
            for param in model.parameters():
                param.requires_grad_(True)
        return noise.detach()

    def retain_samples(self, task: UnlearnTask, forget_classes: list[int]) -> ImageSplit:
        """Up to ``retain_per_class`` retain images of every class that is not a forget class, in order."""
        labels = task.retain.labels.cpu()
        keep = []
        for c in range(task.num_classes):
            if c in forget_classes and task.forget_kind == "class":
                continue
            keep.append(torch.nonzero(labels == c).flatten()[: self.params.retain_per_class])
        return task.retain.subset(torch.cat(keep) if keep else torch.zeros(0, dtype=torch.long))

    def unlearn(self, model: nn.Module, task: UnlearnTask) -> nn.Module:
        p, engine = self.params, task.engine
        generator = engine.generator(task.seed)
        classes = self.forget_classes(task)
        xs, ys = [], []
        for c in classes:
            noise = self.noise(model, task, c, generator)
            with torch.no_grad():
                ce = F.cross_entropy(model(noise), torch.full((len(noise),), c, device=noise.device))
            task.log(0, f"noise_ce_{c}", float(ce))
            xs.append(noise.repeat(p.noise_copies, *([1] * (noise.dim() - 1))))
            ys.append(torch.full((len(noise) * p.noise_copies,), c, dtype=torch.long, device=noise.device))
        samples = self.retain_samples(task, classes)
        for x, y in engine.batches(samples, 1024, None, shuffle=False):
            xs.append(x)
            ys.append(y)
        x_all, y_all = torch.cat(xs), torch.cat(ys)

        def impair_batches(_: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
            order = torch.randperm(len(x_all), device=x_all.device, generator=generator)
            for start in range(0, len(order), p.batch_size):
                index = order[start : start + p.batch_size]
                yield x_all[index], y_all[index]

        recipe = p.recipe(task.recipe)
        engine.fit_batches(
            model,
            recipe,
            impair_batches,
            steps_per_epoch=max(1, math.ceil(len(x_all) / p.batch_size)),
            mask=task.mask,
            description="unsir impair",
        )
        if len(samples) and p.repair_epochs:
            repair = dataclasses.replace(recipe, epochs=p.repair_epochs, batch_size=p.repair_batch_size)
            engine.fit(model, samples, repair, seed=task.seed, mask=task.mask, description="unsir repair")
        return model
