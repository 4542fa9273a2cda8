"""Base classes of the components that plugins register, and the tasks the pipeline hands them.

Every component class carries ``name`` (its registry key), ``version`` (an integer bumped whenever
its results may change; it enters every cache key) and ``Params`` (a frozen dataclass whose field
defaults are the component's defaults). A protocol or ``--set`` overrides fields by name.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn

from unlearnbench.data.images import DatasetSplits, ImageSplit
from unlearnbench.training.masks import Mask
from unlearnbench.training.unlearning import EpochLog

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
    """Loads a dataset's train and test splits into memory.

    ``reads_root`` is False for datasets that ship with a package and read no ``--data-root``.
    """

    kind = "dataset"
    reads_root: ClassVar[bool] = True

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

    def prunes_at_init(self) -> bool:
        """True when ``prune`` scores a fresh initialisation (``task.new_model()``), not the
        trained weights it is given (SynFlow and SNIP with ``at_init``)."""
        return False

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
    dense weights from before pruning (None when the model was never pruned). A method logs
    per-epoch values with ``task.log(epoch, name, value)``; the harness reads ``task.log.entries``.
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
    log: EpochLog = field(default_factory=EpochLog)
    original_epochs: int | None = None
    """Epochs the original's whole path to the start model trained (dense training, plus the
    pruner's retraining for a pruned model); None where unknown."""


class Unlearner(Component):
    """Turns a trained model into one that has forgotten ``task.forget``.

    It may change ``model`` in place or return a new module; the harness then re-applies the
    mask and checks that every pruned weight is exactly zero. ``reference`` names the reference
    its rows provide (``"retrain"`` for exact retraining): metrics that list that name in
    ``needs``, and the leaderboard's Gap column, compare with its rows. A row whose unlearner
    returned weights equal to its start model is flagged ``unchanged`` unless ``returns_input``
    (a control that returns its input on purpose, as ``noop``).
    """

    kind = "unlearner"
    reference: ClassVar[str | None] = None
    returns_input: ClassVar[bool] = False

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
    unlearner can run in dense space; ``retain_prune_task`` scores on the retain set, its
    ``new_model()`` builds the seeded initialisation the original was trained from and its
    ``rewind_state`` holds the original dense run's weights at the rewind epoch (None when not
    kept).
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
@dataclass(frozen=True)
class MetricValue:
    """A metric's number plus per-example or summary ``details`` stored with the evaluation.

    ``details`` maps names to JSON-ready values (floats, lists of floats, nested dicts), e.g.
    ``{"epsilon": [...], "F": 0.8}``; a plot reads the per-example lists from the artifact.
    """

    value: float | None
    details: Mapping[str, Any] = field(default_factory=dict)


def as_metric_value(result: float | MetricValue | None) -> MetricValue:
    """What ``Metric.compute`` returned, as a :class:`MetricValue` (a bare float has no details).

    A value that is not a real number (a string such as ``"0.5"``, a bool) or is NaN or infinite
    raises ``ValueError``; the evaluate stage records it as that metric's error."""
    found = result if isinstance(result, MetricValue) else MetricValue(result)  # type: ignore[arg-type]
    value = found.value
    if value is None:
        return found
    if isinstance(value, str | bytes | bool) or not hasattr(value, "__float__"):
        raise ValueError(f"returned {value!r} ({type(value).__name__}), not a number")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"returned {number}, not a finite number")
    return MetricValue(number, found.details)


class Metric(Component):
    """One number computed from an evaluated model and its references.

    ``label`` heads the leaderboard column, ``unit`` follows it, and ``higher_is_better`` is None
    for two-sided metrics (closer to the retrain reference is better). ``needs`` names the
    references it reads (``"pool:<kind>"`` for a model pool, read with ``EvalContext.pool``);
    the run builds only the references some selected metric needs. ``gap`` marks the metrics
    averaged into the leaderboard's Gap column (mean |metric - retrain's|, "Disparity Ave." of
    Jia et al., 2023); selecting one adds the retrain rows. ``seeded`` marks a metric whose
    randomness comes from ``ctx.eval_seed`` (the evaluation seed). ``compute`` returns a float, None, or
    a :class:`MetricValue` carrying details besides the number: the scalar ones (e.g. one value
    per layer) go into the record's ``metric_details``, all of them (e.g. per-example lists) into
    the evaluate artifact, where plots read them.
    """

    kind = "metric"
    label: ClassVar[str] = ""
    unit: ClassVar[str] = ""
    higher_is_better: ClassVar[bool | None] = None
    needs: ClassVar[tuple[str, ...]] = ()
    """The references this metric reads through ``EvalContext.reference`` (e.g. ``"retrain"``)."""
    gap: ClassVar[bool] = False
    seeded: ClassVar[bool] = False
    """True when the value depends on ``EvalContext.eval_seed`` (e.g. a shadow draw): the metric
    then runs once per evaluation repetition, the others once per model."""

    def compute(self, ctx: EvalContext) -> float | MetricValue | None:
        raise NotImplementedError


COMPONENT_KINDS: dict[str, type[Component]] = {
    "dataset": DatasetPlugin,
    "model": ModelPlugin,
    "pruner": Pruner,
    "unlearner": Unlearner,
    "unpruner": Unpruner,
    "metric": Metric,
}
