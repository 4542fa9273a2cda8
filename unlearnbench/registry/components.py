"""Base classes of the components that plugins register, and the tasks the pipeline hands them.

Every component class carries ``name`` (its registry key), ``version`` (an integer bumped whenever
its results may change; it enters every cache key) and ``Params`` (a frozen dataclass whose field
defaults are the component's defaults). A protocol or ``--set`` overrides fields by name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import torch
from torch import nn

from unlearnbench.data.images import DatasetSplits, ImageSplit
from unlearnbench.training.masks import Mask

if TYPE_CHECKING:
    from pathlib import Path

    from unlearnbench.run.evaluation import EvalContext
    from unlearnbench.training.engine import Engine, TrainRecipe


@dataclass(frozen=True)
class NoParams:
    """The parameters of a component that has none."""


class Component:
    """What every registered component shares."""

    kind: ClassVar[str] = "component"
    name: ClassVar[str]
    version: ClassVar[int] = 1
    Params: ClassVar[type] = NoParams

    def __init__(self, params: object | None = None) -> None:
        self.params = self.Params() if params is None else params

    @classmethod
    def summary(cls) -> str:
        """The first line of the class docstring."""
        return (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""


# --------------------------------------------------------------------------------------------
# Datasets and models
# --------------------------------------------------------------------------------------------
class DatasetPlugin(Component):
    """Loads a dataset's train and test splits into memory."""

    kind = "dataset"

    def load(self, root: Path | None, *, download: bool) -> DatasetSplits:
        raise NotImplementedError


class ModelPlugin(Component):
    """Builds a freshly initialised network (state dicts are what the harness saves)."""

    kind = "model"

    def build(self, *, num_classes: int, in_channels: int, image_size: int) -> nn.Module:
        raise NotImplementedError


# --------------------------------------------------------------------------------------------
# Pruners
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PruneTask:
    """What a pruner may use.

    ``data`` is the data its scores and any retraining see: the training set for the original
    topology, the retain set for the retain-set topology and for un-pruning. ``rewind_state``
    holds the weights of the dense run at the protocol's rewind epoch (None when not kept).
    ``val`` is the validation split a ``keep_best`` recipe selects on (None: none held out).
    """

    sparsity: float
    scope: frozenset[str]
    data: ImageSplit
    engine: Engine
    recipe: TrainRecipe
    new_model: Callable[[], nn.Module]
    rewind_state: dict[str, torch.Tensor] | None
    seed: int
    val: ImageSplit | None = None


@dataclass(frozen=True)
class PruneOutcome:
    model: nn.Module
    mask: Mask


class Pruner(Component):
    """Ranks the scoped weights and keeps the top (1 - sparsity) of them.

    ``make_mask`` is the one-shot score-and-select step (the un-pruning stage re-runs it on the
    retain set); ``prune`` is the whole procedure, including any rewinding and retraining.
    """

    kind = "pruner"
    structured: ClassVar[bool] = False

    def scores(self, model: nn.Module, task: PruneTask) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def select(self, scores: dict[str, torch.Tensor], task: PruneTask) -> Mask:
        from unlearnbench.training.pruning import global_topk_mask

        return global_topk_mask(scores, task.sparsity, task.scope)

    def make_mask(self, model: nn.Module, task: PruneTask) -> Mask:
        return self.select(self.scores(model, task), task)

    def prune(self, model: nn.Module, task: PruneTask) -> PruneOutcome:
        mask = self.make_mask(model, task)
        mask.apply_(model)
        return PruneOutcome(model, mask)


# --------------------------------------------------------------------------------------------
# Unlearners
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class UnlearnTask:
    """What an unlearner may use. ``mask`` is None when it runs in dense space (un-pruning).

    ``forget_kind`` is the forget set's kind (``random``, ``class``, ``per-class``) and
    ``forgotten_classes`` the classes removed by class-wise forgetting (empty otherwise). ``val``
    is the validation hold-out (None when the protocol holds none out). ``original`` builds a
    fresh copy of the model before unlearning (a teacher); ``dense_state`` holds the trained
    dense weights from before pruning (None when the model was never pruned).
    """

    forget: ImageSplit
    retain: ImageSplit
    mask: Mask | None
    engine: Engine
    recipe: TrainRecipe
    new_model: Callable[[], nn.Module]
    num_classes: int
    seed: int
    forget_kind: str = "random"
    forgotten_classes: tuple[int, ...] = ()
    val: ImageSplit | None = None
    original: Callable[[], nn.Module] | None = None
    dense_state: dict[str, torch.Tensor] | None = None


class Unlearner(Component):
    """Turns a trained model into one that has forgotten ``task.forget``.

    It may change ``model`` in place or return a new module; the harness then re-applies the
    mask and checks that every pruned weight is exactly zero.
    """

    kind = "unlearner"

    def unlearn(self, model: nn.Module, task: UnlearnTask) -> nn.Module:
        raise NotImplementedError


# --------------------------------------------------------------------------------------------
# Un-pruners
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class UnpruneTask:
    """What an un-pruner may use.

    ``dense_model`` holds the trained dense weights from before pruning; ``pruned_model`` and
    ``mask`` are the sparse model the unlearning starts from. ``unlearn_task`` has no mask, so the
    unlearner can run in dense space; ``retain_prune_task`` scores on the retain set.
    """

    dense_model: nn.Module
    pruned_model: nn.Module
    mask: Mask
    pruner: Pruner
    retain_prune_task: PruneTask
    unlearner: Unlearner
    unlearn_task: UnlearnTask


class Unpruner(Component):
    """Removes the forget set's influence on the topology as well as on the weights."""

    kind = "unpruner"

    def unprune(self, task: UnpruneTask) -> PruneOutcome:
        raise NotImplementedError


# --------------------------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------------------------
class Metric(Component):
    """One number computed from an evaluated model and its references.

    ``label`` heads the leaderboard column, ``unit`` follows it, and ``higher_is_better`` is None
    for two-sided metrics (closer to the retrain reference is better). ``needs`` names the
    references it reads; the run builds only the references some selected metric needs.
    """

    kind = "metric"
    label: ClassVar[str] = ""
    unit: ClassVar[str] = ""
    higher_is_better: ClassVar[bool | None] = None
    needs: ClassVar[tuple[str, ...]] = ()
    """The references this metric reads through ``EvalContext.reference`` (e.g. ``"retrain"``)."""

    def compute(self, ctx: EvalContext) -> float | None:
        raise NotImplementedError


COMPONENT_KINDS: dict[str, type[Component]] = {
    "dataset": DatasetPlugin,
    "model": ModelPlugin,
    "pruner": Pruner,
    "unlearner": Unlearner,
    "unpruner": Unpruner,
    "metric": Metric,
}
