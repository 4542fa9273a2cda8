"""What unlearners share on top of the engine: their own optimisation budget (never the protocol's
training recipe), batches drawn in forget/retain pairs, and the per-epoch values they log.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import nn

from unlearnbench.data.images import ImageSplit
from unlearnbench.errors import InvalidValueError
from unlearnbench.training.engine import Engine, TrainRecipe
from unlearnbench.training.masks import Mask


@dataclass(frozen=True)
class UnlearnBudget:
    """An unlearner's optimisation budget; unlearners' ``Params`` extend it with their defaults.

    The defaults are Unlearn-Sparse's ``@iterative_unlearn`` optimiser (``unlearn/impl.py``,
    ``arg_parser.py``): SGD at ``unlearn_lr`` 0.01, momentum 0.9, weight decay 5e-4, batch 256,
    10 epochs, MultiStepLR x0.1 at absolute epochs 91 and 136 (never reached in a 10-epoch run).
    Only augmentation comes from the protocol's recipe: it is a property of the data (the
    reference's forget and retain loaders use the training transforms).
    """

    epochs: int = 10
    lr: float = 0.01
    batch_size: int = 256
    optimizer: Literal["sgd", "adam"] = "sgd"
    momentum: float = 0.9
    weight_decay: float = 5e-4
    nesterov: bool = False
    schedule: Literal["constant", "step", "cosine", "onecycle", "triangle"] = "step"
    milestones: tuple[float, ...] = (91, 136)
    milestone_unit: Literal["fraction", "epoch"] = "epoch"
    lr_decay: float = 0.1

    def __post_init__(self) -> None:
        if self.epochs < 0 or self.batch_size < 1:
            raise InvalidValueError(
                f"unlearning epochs must be >= 0 and batch_size >= 1, got {self.epochs}, {self.batch_size}"
            )

    def recipe(self, data_recipe: TrainRecipe) -> TrainRecipe:
        """This budget as a :class:`TrainRecipe`, with ``data_recipe``'s augmentation only."""
        return TrainRecipe(
            epochs=self.epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            momentum=self.momentum,
            weight_decay=self.weight_decay,
            nesterov=self.nesterov,
            schedule=self.schedule,
            milestones=self.milestones,
            gamma=self.lr_decay,
            warmup_epochs=0,
            augment=data_recipe.augment,
            crop_padding=data_recipe.crop_padding,
            rewind_epoch=0,
            optimizer=self.optimizer,
            milestone_unit=self.milestone_unit,
        )


def unlearning_recipe(base: TrainRecipe, epochs: int, lr: float) -> TrainRecipe:
    """The reference's unlearning optimiser (SGD momentum 0.9, wd 5e-4, constant rate) keeping
    ``base``'s batch size and augmentation; for fine-tuning stages that are not unlearners
    (un-pruning's fine-tune; without ``base``'s bias rate scale and lookahead). Unlearners use
    their own :class:`UnlearnBudget`."""
    return dataclasses.replace(
        base,
        epochs=epochs,
        lr=lr,
        momentum=0.9,
        weight_decay=5e-4,
        schedule="constant",
        warmup_epochs=0,
        bias_lr_scale=1.0,
        lookahead_every=0,
    )


# --------------------------------------------------------------------------------------------
# Paired forget/retain batches
# --------------------------------------------------------------------------------------------
PairLossFn = Callable[
    [nn.Module, tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]], torch.Tensor
]
"""``loss(model, (x_forget, y_forget), (x_retain, y_retain))``: the loss of one paired step."""


def paired_batches(
    engine: Engine,
    forget: ImageSplit,
    retain: ImageSplit,
    forget_batch_size: int,
    retain_batch_size: int,
    generator: torch.Generator,
    recipe: TrainRecipe,
) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]]:
    """One pass over ``retain``, each batch paired with the next ``forget`` batch; the forget set
    is cycled (reshuffled on every pass), as ``zip(retain_loader, cycle(forget_loader))``."""

    def forget_stream() -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        while True:
            yield from engine.batches(
                forget, forget_batch_size, generator, augment=recipe.augment, padding=recipe.crop_padding
            )

    stream = forget_stream()
    for xr, yr in engine.batches(
        retain, retain_batch_size, generator, augment=recipe.augment, padding=recipe.crop_padding
    ):
        xf, yf = next(stream)
        yield xf, yf, xr, yr


def fit_pairs(
    engine: Engine,
    model: nn.Module,
    forget: ImageSplit,
    retain: ImageSplit,
    recipe: TrainRecipe,
    loss_fn: PairLossFn,
    *,
    forget_batch_size: int,
    seed: int,
    mask: Mask | None,
    description: str,
    on_epoch_end: Callable[[int, nn.Module], None] | None = None,
) -> None:
    """Train ``model`` in place for ``recipe.epochs`` passes over ``retain`` (batch
    ``recipe.batch_size``), each step on a retain batch and a forget batch with a loss of both."""
    if len(forget) == 0 or len(retain) == 0:
        raise ValueError(f"{description} needs a non-empty forget and retain set")
    generator = engine.generator(seed)

    def pair_loss(m: nn.Module, xf: torch.Tensor, yf: torch.Tensor, xr: torch.Tensor, yr: torch.Tensor):
        return loss_fn(m, (xf, yf), (xr, yr))

    engine.fit_batches(
        model,
        recipe,
        lambda _: paired_batches(
            engine, forget, retain, forget_batch_size, recipe.batch_size, generator, recipe
        ),
        steps_per_epoch=max(1, math.ceil(len(retain) / recipe.batch_size)),
        mask=mask,
        loss_fn=pair_loss,
        description=description,
        on_epoch_end=on_epoch_end,
    )


# --------------------------------------------------------------------------------------------
# Per-epoch values an unlearner logs
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class EpochValue:
    """One value an unlearner logged at the end of ``epoch`` (1-based; 0 = before training)."""

    epoch: int
    name: str
    value: float


@dataclass
class EpochLog:
    """Collects the values a method logs with ``task.log(epoch, name, value)``.

    ``entries`` is what the harness stores in the record; ``listener`` (optional) receives each
    value as it is logged, for the event hooks.
    """

    entries: list[EpochValue] = field(default_factory=list)
    listener: Callable[[EpochValue], None] | None = None

    def __call__(self, epoch: int, name: str, value: float) -> None:
        entry = EpochValue(int(epoch), str(name), float(value))
        self.entries.append(entry)
        if self.listener is not None:
            self.listener(entry)

    def as_records(self) -> list[dict[str, float | int | str]]:
        """The entries as JSON-ready dicts."""
        return [dataclasses.asdict(e) for e in self.entries]
