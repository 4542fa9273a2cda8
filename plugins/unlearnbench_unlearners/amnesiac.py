"""Amnesiac unlearning, its relabelling variant (Graves, Nagisetty & Ganesh, AAAI 2021)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from unlearnbench.api import ImageSplit, UnlearnBudget, Unlearner, UnlearnTask


def wrong_labels(labels: torch.Tensor, num_classes: int, generator: torch.Generator) -> torch.Tensor:
    """A label drawn uniformly from the ``num_classes - 1`` classes other than each true label."""
    shift = torch.randint(1, num_classes, labels.shape, device=labels.device, generator=generator)
    return (labels + shift) % num_classes


class Amnesiac(Unlearner):
    """Amnesiac unlearning (Graves, Nagisetty & Ganesh, "Amnesiac Machine Learning", AAAI 2021),
    the relabelling variant as the SSD repository runs it (``forget_random_strategies.py:amnesiac``
    with ``unlearn.py:fit_one_unlearning_cycle``): every forget example gets a random wrong label
    (uniform over the other classes, drawn once), and the model is trained on those examples mixed
    and shuffled with the whole retain set with CE. Defaults: 3 epochs, Adam lr 1e-4 without
    weight decay, batch 128. Deviation: the paper's amnesiac variant, which undoes the stored
    parameter updates of the batches that held forget examples, is not implemented (the pipeline
    keeps no per-batch update history); the labels come from the run's seed."""

    name = "amnesiac"
    version = 1

    @dataclass(frozen=True)
    class Params(UnlearnBudget):
        epochs: int = 3
        lr: float = 1e-4
        batch_size: int = 128
        optimizer: Literal["sgd", "adam"] = "adam"
        weight_decay: float = 0.0
        schedule: Literal["constant", "step", "cosine", "onecycle", "triangle"] = "constant"

    def unlearn(self, model: nn.Module, task: UnlearnTask) -> nn.Module:
        engine = task.engine
        generator = engine.generator(task.seed)
        forget, retain = task.forget.to(engine.device), task.retain.to(engine.device)
        labels = wrong_labels(forget.labels, task.num_classes, generator)
        data = ImageSplit(torch.cat([forget.images, retain.images]), torch.cat([labels, retain.labels]))
        recipe = self.params.recipe(task.recipe)
        engine.fit(model, data, recipe, seed=task.seed, mask=task.mask, description="amnesiac")
        return model
