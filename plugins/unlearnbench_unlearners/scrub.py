"""SCRUB (Kurmanji et al., NeurIPS 2023, "Towards Unbounded Machine Unlearning")."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from unlearnbench.api import UnlearnBudget, Unlearner, UnlearnTask


def distill_kl(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """KL(teacher || student) at ``temperature``, x T^2, summed over classes, mean over the batch
    (SCRUB's ``DistillKL``)."""
    log_p = F.log_softmax(student.float() / temperature, dim=1)
    q = F.softmax(teacher.float() / temperature, dim=1)
    return F.kl_div(log_p, q, reduction="sum") * temperature**2 / student.shape[0]


class Scrub(Unlearner):
    """SCRUB (Kurmanji et al., NeurIPS 2023; ``meghdadk/SCRUB`` ``large_scale_unlearning.ipynb``
    with ``thirdparty/repdistiller/helper/loops.py:train_distill``): the student starts from the
    model, the teacher is the original (``task.original()``). Each epoch e = 1..E: if e <= msteps a
    max pass over D_f (loss -KL(teacher || student)), then a min pass over D_r (loss gamma CE +
    alpha KL), one optimiser throughout. Reference defaults: 3 epochs, msteps 2, T 4, gamma 0.99,
    alpha 0.001, SGD lr 5e-4, momentum 0.9, wd 5e-4, rate x0.1 after epochs 3, 5, 9, forget batch
    512, retain batch 256. Logs ``kl_forget``/``kl_retain`` (mean per pass) every epoch."""

    name = "scrub"
    version = 1

    @dataclass(frozen=True)
    class Params(UnlearnBudget):
        epochs: int = 3
        lr: float = 5e-4
        milestones: tuple[float, ...] = (3, 5, 9)
        forget_batch_size: int = 512
        msteps: int = 2
        temperature: float = 4.0
        gamma: float = 0.99
        alpha: float = 0.001

    def unlearn(self, model: nn.Module, task: UnlearnTask) -> nn.Module:
        p, engine = self.params, task.engine
        teacher = task.original() if task.original is not None else copy.deepcopy(model)
        teacher = engine.prepare(teacher).eval()
        recipe = p.recipe(task.recipe)
        generator = engine.generator(task.seed)
        kl_sums: dict[str, list[float]] = {"max": [0.0, 0], "min": [0.0, 0]}

        def passes(epoch: int):
            kw = {"augment": recipe.augment, "padding": recipe.crop_padding}
            if epoch + 1 <= p.msteps:
                for x, y in engine.batches(task.forget, p.forget_batch_size, generator, **kw):
                    yield x, y, "max"
            for x, y in engine.batches(task.retain, recipe.batch_size, generator, **kw):
                yield x, y, "min"

        def loss(m: nn.Module, x: torch.Tensor, y: torch.Tensor, phase: str) -> torch.Tensor:
            m.train()
            logits = m(x)
            with torch.no_grad():
                target = teacher(x)
            kl = distill_kl(logits, target, p.temperature)
            kl_sums[phase][0] += float(kl.detach()) * x.shape[0]
            kl_sums[phase][1] += x.shape[0]
            if phase == "max":
                return -kl
            return p.gamma * F.cross_entropy(logits, y) + p.alpha * kl

        def log_epoch(epoch: int, _: nn.Module) -> None:
            for phase, name in (("max", "kl_forget"), ("min", "kl_retain")):
                total, count = kl_sums[phase]
                if count:
                    task.log(epoch, name, total / count)
                kl_sums[phase] = [0.0, 0]

        steps = -(-len(task.retain) // recipe.batch_size)
        engine.fit_batches(
            model,
            recipe,
            passes,
            steps_per_epoch=steps,
            mask=task.mask,
            loss_fn=loss,
            description="scrub",
            on_epoch_end=log_epoch,
        )
        return model
