"""Steps the un-pruners share: relaxing the topology, unlearning under a mask, fine-tuning on D_r."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Iterator
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from unlearnbench.api import InvalidValueError, Mask, PruneTask, UnpruneTask, unlearning_recipe

Relax = Literal["dense", "zero", "rewind"]
RELAX_CHOICES = ("dense", "zero", "rewind")


def _fill_pruned_(model: nn.Module, mask: Mask, source: dict[str, torch.Tensor]) -> None:
    """Set every masked-out entry of ``model`` to its value in the state dict ``source``."""
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, keep in mask.tensors.items():
            param = params[name]
            value = source[name].to(param.device, param.dtype)
            param.copy_(torch.where(keep.to(param.device), param, value))


def relaxed_start(task: UnpruneTask, relax: str) -> nn.Module:
    """The model un-pruning starts from, with no mask (Xiao et al. 2025 as reconstructed in
    ``unpruning.md`` §3.2 step 1).

    ``dense``: the trained dense weights. ``zero``: the sparse model, pruned weights at zero; for
    a structured mask every masked-out entry (filter, BatchNorm channel, next layer's input
    channel) restarts at its initial value instead, since a channel whose parameters are all zero
    gets no gradient and could never come back. ``rewind``: the sparse model with every pruned
    entry at its value at the original run's rewind epoch (the LTH rewind point).
    """
    if relax == "dense":
        return copy.deepcopy(task.dense_model)
    if relax not in RELAX_CHOICES:
        raise InvalidValueError(f"relax {relax!r} is not one of {', '.join(RELAX_CHOICES)}")
    model = copy.deepcopy(task.pruned_model)
    retain = task.retain_prune_task
    if relax == "rewind":
        if retain.rewind_state is None:
            raise InvalidValueError("relax='rewind' needs the rewind-epoch weights, and this run kept none")
        _fill_pruned_(model, task.mask, retain.rewind_state)
    elif task.pruner.structured:
        _fill_pruned_(model, task.mask, dict(retain.new_model().state_dict()))
    return model


def unlearn_sparse(model: nn.Module, task: UnpruneTask, mask: Mask, *, dense_weights: bool) -> nn.Module:
    """Run the row's unlearner on ``model`` inside ``mask`` (as a plain sparse row does); the
    teacher is the pruned model, and ``dense_weights`` says whether it may see the dense weights."""
    pruned = task.pruned_model
    unlearn_task = dataclasses.replace(
        task.unlearn_task,
        mask=mask,
        original=lambda: copy.deepcopy(pruned),
        dense_state=dict(task.dense_model.state_dict()) if dense_weights else None,
    )
    out = task.unlearner.unlearn(model, unlearn_task)
    mask.apply_(out)
    return out


def finetune(model: nn.Module, mask: Mask, task: UnpruneTask, epochs: int, lr: float, what: str) -> None:
    """Fine-tune ``model`` in place on the retain set under ``mask``: ``epochs`` at ``lr`` with
    the unlearning optimiser (SGD momentum 0.9, wd 5e-4, constant rate); 0 epochs only re-masks."""
    retain = task.retain_prune_task
    if epochs > 0:
        recipe = unlearning_recipe(retain.recipe, epochs, lr)
        retain.engine.fit(model, retain.data, recipe, seed=retain.seed, mask=mask, description=what)
    mask.apply_(model)


def batch_gradients(
    model: nn.Module, names: list[str], task: PruneTask, batches: int | None
) -> Iterator[tuple[list[torch.Tensor], list[torch.Tensor]]]:
    """``(gradients, weights)`` of the named parameters for the cross-entropy of each of the
    first ``batches`` shuffled batches of ``task.data`` (None: all), on a train-mode copy."""
    net = copy.deepcopy(model).train()
    params = dict(net.named_parameters())
    weights = [params[n] for n in names]
    generator = task.engine.generator(task.seed)
    with torch.enable_grad():
        for index, (x, y) in enumerate(task.engine.batches(task.data, task.recipe.batch_size, generator)):
            if batches is not None and index == batches:
                break
            yield list(torch.autograd.grad(F.cross_entropy(net(x), y), weights)), weights
