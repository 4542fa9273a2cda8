"""The public API for plugin authors: import from here, never from the internal modules.

Everything a pruner, unlearner, un-pruner, metric, dataset or model plugin needs: the component
base classes and the tasks handed to them, the data and mask types, the training engine and
recipes, the evaluation context, the hook marker and the user-facing errors. Names here keep
their meaning across minor versions; internal modules may move.
"""

from unlearnbench.data.images import DatasetSplits, ImageSplit
from unlearnbench.errors import DatasetNotFoundError, InvalidValueError, UnknownChoiceError, UnlearnbenchError
from unlearnbench.registry.components import (
    Component,
    DatasetPlugin,
    Metric,
    ModelPlugin,
    NoParams,
    PruneOutcome,
    Pruner,
    PruneTask,
    Unlearner,
    UnlearnTask,
    Unpruner,
    UnpruneTask,
)
from unlearnbench.registry.events import ResultReady, StageFinished
from unlearnbench.registry.hookspecs import hookimpl
from unlearnbench.run.evaluation import EvalContext, Reference
from unlearnbench.training.engine import Engine, TrainRecipe
from unlearnbench.training.masks import Mask
from unlearnbench.training.pruning import check_sparsity, global_topk_mask, topk_mask
from unlearnbench.training.unlearning import (
    EpochLog,
    EpochValue,
    PairLossFn,
    UnlearnBudget,
    fit_pairs,
    paired_batches,
    unlearning_recipe,
)

__all__ = [
    "Component",
    "DatasetNotFoundError",
    "DatasetPlugin",
    "DatasetSplits",
    "Engine",
    "EpochLog",
    "EpochValue",
    "EvalContext",
    "ImageSplit",
    "InvalidValueError",
    "Mask",
    "Metric",
    "ModelPlugin",
    "NoParams",
    "PairLossFn",
    "PruneOutcome",
    "PruneTask",
    "Pruner",
    "Reference",
    "ResultReady",
    "StageFinished",
    "TrainRecipe",
    "UnknownChoiceError",
    "UnlearnBudget",
    "UnlearnTask",
    "UnlearnbenchError",
    "Unlearner",
    "UnpruneTask",
    "Unpruner",
    "check_sparsity",
    "fit_pairs",
    "global_topk_mask",
    "hookimpl",
    "paired_batches",
    "topk_mask",
    "unlearning_recipe",
]
