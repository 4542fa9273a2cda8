"""The no-op control unlearner."""

from __future__ import annotations

from torch import nn

from unlearnbench.api import Unlearner, UnlearnTask


class NoOp(Unlearner):
    """The control: returns the model unchanged (the floor every table needs)."""

    name = "noop"
    version = 1

    def unlearn(self, model: nn.Module, task: UnlearnTask) -> nn.Module:
        return model
