"""The no-op control unlearner."""

from __future__ import annotations

from torch import nn

from unlearnbench.api import Unlearner, UnlearnTask


class NoOp(Unlearner):
    """The control: returns the model unchanged (the floor every table needs); ``returns_input``
    exempts its rows from the unchanged-model flag."""

    name = "noop"
    version = 1
    returns_input = True

    def unlearn(self, model: nn.Module, task: UnlearnTask) -> nn.Module:
        return model
