"""What metrics see: the evaluated model, the splits, the references, with outputs cached."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from unlearnbench.data.images import ImageSplit
from unlearnbench.training.engine import Engine
from unlearnbench.training.masks import Mask

SPLITS = ("forget", "retain", "test", "forget_test")


@dataclass(frozen=True)
class References:
    """Loaders for the references of a row, computed (or read from the cache) on first use.

    ``retrain_model``: retrained from scratch on the retain set under the original mask.
    ``retain_topology``: the mask that training on the retain set and pruning with the same
    pruner gives (None for dense models). ``original_model``: the model before unlearning.
    """

    original_model: Callable[[], nn.Module]
    retrain_model: Callable[[], nn.Module]
    retain_topology: Callable[[], Mask | None]


class EvalContext:
    """The evaluated ``model`` and its ``mask`` with the row's splits and references.

    ``splits``: ``forget``, ``retain``, ``test`` (without the forgotten classes for class-wise
    forgetting, as the reference) and ``forget_test`` (the test examples of forgotten classes;
    empty for random forgetting). ``runtime_s`` is the unlearning time (None for references).
    ``structured`` is True when the mask comes from a structured (channel) pruner.
    """

    def __init__(
        self,
        *,
        model: nn.Module,
        mask: Mask | None,
        splits: dict[str, ImageSplit],
        engine: Engine,
        references: References,
        runtime_s: float | None,
        forget_kind: str,
        structured: bool = False,
    ) -> None:
        self.model = model
        self.mask = mask
        self.splits = splits
        self.engine = engine
        self.references = references
        self.runtime_s = runtime_s
        self.forget_kind = forget_kind
        self.structured = structured
        self._logits: dict[str, torch.Tensor] = {}

    def logits(self, split: str) -> torch.Tensor:
        """The evaluated model's float32 logits on ``split`` (computed once)."""
        if split not in self._logits:
            self._logits[split] = self.engine.logits(self.model, self.splits[split])
        return self._logits[split]

    def labels(self, split: str) -> torch.Tensor:
        return self.splits[split].labels.cpu()

    def accuracy(self, split: str) -> float | None:
        """Top-1 accuracy in percent, None for an empty split."""
        if len(self.splits[split]) == 0:
            return None
        correct = self.logits(split).argmax(dim=1) == self.labels(split)
        return 100.0 * float(correct.float().mean())
