"""What metrics see: the evaluated model, the splits, the references, with outputs cached."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
from torch import nn

from unlearnbench.data.images import ImageSplit
from unlearnbench.errors import UnknownChoiceError
from unlearnbench.run.pools import POOL_PREFIX, PoolOutputs
from unlearnbench.training.engine import Engine
from unlearnbench.training.masks import Mask


@dataclass(frozen=True)
class Reference:
    """A reference a metric compares with: a model (None for mask-only references) and its mask
    (None when dense)."""

    model: nn.Module | None
    mask: Mask | None


class EvalContext:
    """The evaluated ``model`` and its ``mask`` with the row's splits and references.

    ``splits``: ``forget``, ``retain``, ``test`` (without the forgotten classes for class-wise
    forgetting, as the reference) and ``forget_test`` (the test examples of forgotten classes;
    empty for random forgetting). ``references`` maps a reference name (what a metric lists in
    ``Metric.needs``: ``original``, ``retrain``, ``retain_topology``, ...) to a loader, called on
    first use. ``pools`` maps a pool kind (``retrain``, ``unlearned``, ``shadow``; a metric
    lists ``"pool:<kind>"`` in ``needs``) to a loader of its :class:`PoolOutputs`, also called on
    first use. ``runtime_s`` is the unlearning time (None for references). ``structured`` is True
    when the mask comes from a structured (channel) pruner. ``eval_seed`` is the evaluation
    repetition's seed: the one source of randomness a metric may use (``Metric.seeded``).
    ``new_model(seed)`` builds a freshly initialised model of the evaluated architecture on the
    engine's device (for metrics that compare with a random network; see :meth:`fresh_model`).
    """

    def __init__(
        self,
        *,
        model: nn.Module,
        mask: Mask | None,
        splits: dict[str, ImageSplit],
        engine: Engine,
        references: Mapping[str, Callable[[], Reference]],
        runtime_s: float | None,
        forget_kind: str,
        structured: bool = False,
        pools: Mapping[str, Callable[[], PoolOutputs]] | None = None,
        reference_ids: Mapping[str, str] | None = None,
        shared_logits: dict[tuple[str, str], torch.Tensor] | None = None,
        eval_seed: int = 0,
        new_model: Callable[[int], nn.Module] | None = None,
    ) -> None:
        self.model = model
        self.eval_seed = eval_seed
        self.mask = mask
        self.splits = splits
        self.engine = engine
        self._reference_loaders = dict(references)
        self._references: dict[str, Reference] = {}
        self.runtime_s = runtime_s
        self.forget_kind = forget_kind
        self.structured = structured
        self._logits: dict[tuple[str, str], torch.Tensor] = {}
        self._reference_ids = dict(reference_ids or {})
        self._shared = shared_logits if shared_logits is not None else {}
        self._pool_loaders = dict(pools or {})
        self._pools: dict[str, PoolOutputs] = {}
        self._new_model = new_model

    def fresh_model(self, seed: int) -> nn.Module:
        """A freshly initialised model of the evaluated architecture, built by the model plugin
        with ``seed`` (as the original's initialisation is built with the row's seed)."""
        if self._new_model is None:
            raise ValueError("this evaluation context cannot build a fresh model (no new_model given)")
        return self._new_model(seed)

    def reference(self, name: str) -> Reference:
        """Reference ``name`` (loaded once); the metric must list it in ``needs``."""
        if name not in self._references:
            if name not in self._reference_loaders:
                raise UnknownChoiceError("reference", name, self._reference_loaders)
            self._references[name] = self._reference_loaders[name]()
        return self._references[name]

    def pool(self, kind: str) -> PoolOutputs:
        """The outputs of pool ``kind`` (``"retrain"`` or ``"pool:retrain"``; loaded once); the
        metric must list ``"pool:<kind>"`` in ``needs``."""
        kind = kind.removeprefix(POOL_PREFIX)
        if kind not in self._pools:
            if kind not in self._pool_loaders:
                raise UnknownChoiceError("pool", kind, self._pool_loaders)
            self._pools[kind] = self._pool_loaders[kind]()
        return self._pools[kind]

    def logits(self, split: str, reference: str | None = None) -> torch.Tensor:
        """Float32 logits on ``split`` of the evaluated model, or of ``reference`` (computed once;
        a reference named in ``reference_ids`` keeps them in ``shared_logits`` under
        (its id, split), so evaluations sharing that dict compute them once)."""
        key = (reference or "", split)
        shared = None if reference is None else self._reference_ids.get(reference)
        if key not in self._logits and shared is not None and (shared, split) in self._shared:
            self._logits[key] = self._shared[(shared, split)]
        if key not in self._logits:
            model = self.model if reference is None else self.reference(reference).model
            if model is None:
                raise ValueError(f"reference {reference!r} has no model")
            self._logits[key] = self.engine.logits(model, self.splits[split])
            if shared is not None:
                self._shared[(shared, split)] = self._logits[key]
        return self._logits[key]

    def labels(self, split: str) -> torch.Tensor:
        return self.splits[split].labels.cpu()

    def accuracy(self, split: str) -> float | None:
        """Top-1 accuracy in percent, None for an empty split."""
        if len(self.splits[split]) == 0:
            return None
        correct = self.logits(split).argmax(dim=1) == self.labels(split)
        return 100.0 * float(correct.float().mean())
