"""Bad Teacher: distillation from a competent and an incompetent teacher (Chundawat et al., AAAI 2023)."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from unlearnbench.api import ImageSplit, UnlearnBudget, Unlearner, UnlearnTask


def bad_teacher_loss(
    student: torch.Tensor,
    is_forget: torch.Tensor,
    competent: torch.Tensor,
    incompetent: torch.Tensor,
    temperature: float,
) -> torch.Tensor:
    """The reference's ``UnlearnerLoss``: KL(teacher || student) at ``temperature`` where the
    teacher is the incompetent one on forget examples (``is_forget`` 1) and the competent one
    on retain examples (0); ``F.kl_div``'s default reduction, the mean over all batch x class
    entries."""
    flag = is_forget.float().unsqueeze(1)
    target = flag * F.softmax(incompetent.float() / temperature, dim=1) + (1 - flag) * F.softmax(
        competent.float() / temperature, dim=1
    )
    log_p = F.log_softmax(student.float() / temperature, dim=1)
    return F.kl_div(log_p, target, reduction="sum") / student.numel()


class BadTeacher(Unlearner):
    """Bad Teacher / incompetent teacher (Chundawat, Tarun, Mandal & Kankanhalli, AAAI 2023;
    ``vikram2000b/bad-teaching-unlearning`` ``unlearn.py:blindspot_unlearner``, with the
    defaults of the SSD repository's ``forget_random_strategies.py:blindspot``): the student
    starts from the model; the competent teacher is the original (``task.original()``), the
    incompetent one a freshly initialised model (``task.new_model()``), both frozen in eval mode.
    The student is distilled on the forget set plus a random 30% of the retain set, shuffled
    together, towards the incompetent teacher's softmax on forget examples and the competent
    one's on retain examples (KL at temperature 1, the reference's mean reduction). Defaults:
    1 epoch, Adam lr 1e-4 without weight decay, batch 256. Deviation: the retain subset and the
    incompetent teacher's initialisation come from the run's seed (the reference draws them
    unseeded)."""

    name = "bad-teacher"
    version = 1

    @dataclass(frozen=True)
    class Params(UnlearnBudget):
        epochs: int = 1
        lr: float = 1e-4
        optimizer: Literal["sgd", "adam"] = "adam"
        weight_decay: float = 0.0
        schedule: Literal["constant", "step", "cosine", "onecycle", "triangle"] = "constant"
        retain_fraction: float = 0.3
        temperature: float = 1.0

    def unlearn(self, model: nn.Module, task: UnlearnTask) -> nn.Module:
        p, engine = self.params, task.engine
        competent = task.original() if task.original is not None else copy.deepcopy(model)
        competent = engine.prepare(competent).eval()
        incompetent = engine.prepare(task.new_model()).eval()
        generator = engine.generator(task.seed)
        retain = task.retain.to(engine.device)
        n = int(p.retain_fraction * len(retain))
        chosen = torch.randperm(len(retain), device=engine.device, generator=generator)[:n]
        forget = task.forget.to(engine.device)
        # The label of each example is its teacher: 1 incompetent (forget), 0 competent (retain).
        data = ImageSplit(
            torch.cat([forget.images, retain.images[chosen]]),
            torch.cat(
                [
                    torch.ones(len(forget), dtype=torch.long, device=engine.device),
                    torch.zeros(n, dtype=torch.long, device=engine.device),
                ]
            ),
        )
        recipe = p.recipe(task.recipe)

        def loss(m: nn.Module, x: torch.Tensor, flag: torch.Tensor) -> torch.Tensor:
            with torch.no_grad():
                good, bad = competent(x), incompetent(x)
            return bad_teacher_loss(m(x), flag, good, bad, p.temperature)

        engine.fit_batches(
            model,
            recipe,
            lambda _: engine.batches(
                data, recipe.batch_size, generator, augment=recipe.augment, padding=recipe.crop_padding
            ),
            steps_per_epoch=max(1, math.ceil(len(data) / recipe.batch_size)),
            mask=task.mask,
            loss_fn=loss,
            description="bad-teacher",
        )
        return model
