"""Training recipes: the optimiser, schedule and augmentation of a training run, and the
learning-rate multiplier of each step."""

from __future__ import annotations

import math
from dataclasses import dataclass

from unlearnbench.errors import InvalidValueError, UnknownChoiceError

SCHEDULES = ("constant", "step", "cosine", "onecycle", "triangle")
TRIANGLE = (0.2, 0.23, 0.07)
"""airbench94's ``triangle(start=0.2, peak=0.23, end=0.07)``: the multiplier at the first step, the
fraction of the run at which it reaches 1, and its value at the last step."""
OPTIMIZERS = ("sgd", "adam")
MILESTONE_UNITS = ("fraction", "epoch")
FLIPS = ("random", "alternate")


@dataclass(frozen=True)
class TrainRecipe:
    """A training recipe (SGD or Adam).

    ``milestones`` are the points at which a ``step`` schedule multiplies the rate by ``gamma``:
    fractions of ``epochs`` (``milestone_unit="fraction"``; the reference's 91 and 136 of 182
    epochs are 0.5 and 0.75) or absolute epochs (``"epoch"``: 91 and 136 whatever the run's
    length, as the reference's MultiStepLR). ``momentum`` and ``nesterov`` apply to SGD only.
    ``rewind_epoch`` is the epoch whose end-of-epoch weights the original training keeps for
    rewinding pruners. ``keep_best``: when the run is given a validation split, end with the
    weights of the epoch with the best validation accuracy (the reference's ``model_SA_best``
    checkpoint) instead of the last epoch's.

    Fast-training options (Jordan 2024's airbench, see :mod:`unlearnbench.training.fast_training`;
    SGD only): ``bias_lr_scale`` multiplies the rate of normalisation-layer biases (their weight
    decay is divided by it); ``lookahead_every`` > 0 keeps a lookahead EMA of the weights updated
    every that many steps at per-step rate ``lookahead_rate`` and ends on it; ``flip="alternate"``
    flips a fixed random half of the images in even epochs and the other half in odd ones
    (``"random"``: each image with probability 1/2 every epoch).
    """

    epochs: int = 182
    batch_size: int = 256
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    nesterov: bool = False
    schedule: str = "step"
    milestones: tuple[float, ...] = (0.5, 0.75)
    gamma: float = 0.1
    warmup_epochs: int = 0
    label_smoothing: float = 0.0
    augment: bool = True
    crop_padding: int = 4
    rewind_epoch: int = 8
    optimizer: str = "sgd"
    milestone_unit: str = "fraction"
    keep_best: bool = False
    bias_lr_scale: float = 1.0
    lookahead_every: int = 0
    lookahead_rate: float = 0.95
    flip: str = "random"

    def __post_init__(self) -> None:
        if self.schedule not in SCHEDULES:
            raise UnknownChoiceError("training schedule", self.schedule, SCHEDULES)
        if self.optimizer not in OPTIMIZERS:
            raise UnknownChoiceError("optimizer", self.optimizer, OPTIMIZERS)
        if self.milestone_unit not in MILESTONE_UNITS:
            raise UnknownChoiceError("milestone unit", self.milestone_unit, MILESTONE_UNITS)
        if self.flip not in FLIPS:
            raise UnknownChoiceError("flip mode", self.flip, FLIPS)
        for name in ("epochs", "rewind_epoch", "warmup_epochs", "crop_padding", "lookahead_every"):
            if getattr(self, name) < 0:
                raise InvalidValueError(f"recipe {name} must be >= 0, got {getattr(self, name)}")
        if self.batch_size < 1:
            raise InvalidValueError(f"recipe batch_size must be >= 1, got {self.batch_size}")
        if self.lr < 0 or self.weight_decay < 0:
            raise InvalidValueError(
                f"recipe lr and weight_decay must be >= 0, got {self.lr}, {self.weight_decay}"
            )
        if self.bias_lr_scale <= 0 or not 0 <= self.lookahead_rate <= 1:
            raise InvalidValueError(
                f"recipe bias_lr_scale must be > 0 and lookahead_rate in [0, 1], "
                f"got {self.bias_lr_scale}, {self.lookahead_rate}"
            )


def lr_factor(recipe: TrainRecipe, step: int, steps_per_epoch: int) -> float:
    """The multiplier on ``recipe.lr`` at optimizer step ``step`` (0-based; steps past the end
    of the schedule get its final value, 0 for ``cosine`` and ``onecycle``, 0.07 for ``triangle``).

    ``onecycle``: 0 -> 1 at 20% of the steps -> 0. ``triangle``: airbench94's piecewise-linear
    schedule (Jordan 2024, ``airbench94.py``'s ``triangle``): 0.2 -> 1 at 23% -> 0.07, see
    :data:`TRIANGLE`."""
    total = max(1, recipe.epochs * steps_per_epoch)
    epoch_position = step / max(1, steps_per_epoch)
    warm = recipe.warmup_epochs * steps_per_epoch
    warmup = min(1.0, (step + 1) / warm) if warm else 1.0
    if recipe.schedule == "constant":
        factor = 1.0
    elif recipe.schedule == "step":
        scale = recipe.epochs if recipe.milestone_unit == "fraction" else 1
        passed = sum(epoch_position >= round(m * scale) for m in recipe.milestones)
        factor = recipe.gamma**passed
    elif recipe.schedule == "cosine":
        factor = 0.5 * (1.0 + math.cos(math.pi * min(step, total) / total))
    elif recipe.schedule == "onecycle":
        peak = max(1, int(0.2 * total))
        factor = (step + 1) / peak if step < peak else max(0.0, (total - step) / max(1, total - peak))
    elif recipe.schedule == "triangle":
        start, top, end = TRIANGLE
        peak = top * total
        at = min(step, total)
        if at < peak:
            factor = start + (1.0 - start) * at / peak
        else:
            factor = 1.0 + (end - 1.0) * (at - peak) / max(1e-9, total - peak)
    else:
        raise ValueError(f"unknown schedule {recipe.schedule!r}; valid choices: {', '.join(SCHEDULES)}")
    return factor * warmup
