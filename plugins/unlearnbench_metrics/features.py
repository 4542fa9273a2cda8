"""Penultimate features of any model: the input of its classifier, found generically.

The classifier is the last ``nn.Linear`` a forward pass calls (``fc`` of the ResNets, VGG and
airbench, the last layer of the small CNN); its input is the representation the representation
metrics compare (the flattened global-pool output, the layer UUEF hooks: ``avgpool``). Features
are captured with forward hooks while :meth:`Engine.logits` runs, so they go through exactly the
evaluation path of the logits (fp32, the engine's batches and normalisation), and no model
plugin needs a method of its own.
"""

from __future__ import annotations

import torch
from torch import nn

from unlearnbench.api import Engine, ImageSplit


class NoClassifierError(ValueError):
    """A model whose forward pass calls no ``nn.Linear``."""


def penultimate_features(model: nn.Module, engine: Engine, split: ImageSplit) -> torch.Tensor:
    """Float32 features [N, D] on the CPU in the split's order: per forward pass, the flattened
    input of the last ``nn.Linear`` it called. Raises :class:`NoClassifierError` when a pass
    calls none."""
    batches: list[torch.Tensor] = []
    last: list[torch.Tensor] = []

    def on_linear(_module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        last[:] = [inputs[0]]

    def on_model_start(_module: nn.Module, _inputs: tuple[torch.Tensor, ...]) -> None:
        last.clear()

    def on_model_end(_module: nn.Module, _inputs: tuple[torch.Tensor, ...], _output: torch.Tensor) -> None:
        if not last:
            raise NoClassifierError(f"{type(model).__name__} calls no nn.Linear: no penultimate layer")
        batches.append(last[0].detach().flatten(1).float().cpu())

    handles = [model.register_forward_pre_hook(on_model_start)]
    handles += [m.register_forward_pre_hook(on_linear) for m in model.modules() if isinstance(m, nn.Linear)]
    handles.append(model.register_forward_hook(on_model_end))
    try:
        with torch.no_grad():
            engine.logits(model, split)
    finally:
        for handle in handles:
            handle.remove()
    if not batches:
        return torch.empty(0, 0)
    return torch.cat(batches)
