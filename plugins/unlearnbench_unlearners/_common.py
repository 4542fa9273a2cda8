"""Helpers the unlearner plugins share: the classifier layer, random-label batches."""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
from torch import nn

from unlearnbench.api import Engine, ImageSplit, TrainRecipe


def classifier(model: nn.Module, num_classes: int) -> tuple[str, nn.Linear]:
    """The output layer: the last ``nn.Linear`` with ``num_classes`` outputs, and its module path."""
    found = [
        (n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear) and m.out_features == num_classes
    ]
    if not found:
        raise ValueError(f"the model has no nn.Linear layer with {num_classes} outputs")
    return found[-1]


def replace_module(model: nn.Module, path: str, new: nn.Module) -> None:
    """Put ``new`` at the dotted module ``path`` of ``model``."""
    parent_path, _, attr = path.rpartition(".")
    parent = model.get_submodule(parent_path) if parent_path else model
    setattr(parent, attr, new)


def random_label_batches(
    engine: Engine,
    forget: ImageSplit,
    retain: ImageSplit,
    recipe: TrainRecipe,
    num_classes: int,
    generator: torch.Generator,
    mixed: bool,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """One RL epoch (SalUn ``unlearn/RL.py``): the forget set with labels drawn uniformly from all
    ``num_classes`` (the true label is not excluded), then the retain set (``mixed=False``, the
    code's CIFAR-10/SVHN path), or both concatenated and shuffled (``mixed=True``, its
    CIFAR-100/Tiny-ImageNet path). Labels are redrawn every epoch from ``generator``."""
    forget = forget.to(engine.device)
    labels = torch.randint(num_classes, (len(forget),), device=engine.device, generator=generator)
    relabelled = ImageSplit(forget.images, labels)
    kw = {"augment": recipe.augment, "padding": recipe.crop_padding}
    if mixed:
        retain = retain.to(engine.device)
        both = ImageSplit(torch.cat([relabelled.images, retain.images]), torch.cat([labels, retain.labels]))
        yield from engine.batches(both, recipe.batch_size, generator, **kw)
        return
    yield from engine.batches(relabelled, recipe.batch_size, generator, **kw)
    yield from engine.batches(retain, recipe.batch_size, generator, **kw)


def rl_steps_per_epoch(forget: ImageSplit, retain: ImageSplit, batch_size: int, mixed: bool) -> int:
    if mixed:
        return max(1, math.ceil((len(forget) + len(retain)) / batch_size))
    return max(1, math.ceil(len(forget) / batch_size) + math.ceil(len(retain) / batch_size))
