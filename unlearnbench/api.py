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
    MetricValue,
    ModelPlugin,
    NoParams,
    PruneOutcome,
    Pruner,
    PruneTask,
    Unlearner,
    UnlearnTask,
    Unpruner,
    UnpruneTask,
    as_metric_value,
)
from unlearnbench.registry.events import EpochLogged, ResultReady, StageFinished
from unlearnbench.registry.hookspecs import hookimpl
from unlearnbench.run.evaluation import EvalContext, Reference
from unlearnbench.run.pools import POOL_KINDS, PoolOutputs, PoolSpec, margins
from unlearnbench.training.engine import Engine, TrainRecipe
from unlearnbench.training.masks import Mask
from unlearnbench.training.pruning import check_sparsity, global_topk_mask, kept_count, topk_mask
from unlearnbench.training.pruning_structured import channel_mask, channel_plan, filter_keep_mask
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
    "POOL_KINDS",
    "Component",
    "DatasetNotFoundError",
    "DatasetPlugin",
    "DatasetSplits",
    "Engine",
    "EpochLog",
    "EpochLogged",
    "EpochValue",
    "EvalContext",
    "ImageSplit",
    "InvalidValueError",
    "Mask",
    "Metric",
    "MetricValue",
    "ModelPlugin",
    "NoParams",
    "PairLossFn",
    "PoolOutputs",
    "PoolSpec",
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
    "as_metric_value",
    "channel_mask",
    "channel_plan",
    "check_sparsity",
    "filter_keep_mask",
    "fit_pairs",
    "global_topk_mask",
    "hookimpl",
    "kept_count",
    "margins",
    "paired_batches",
    "topk_mask",
    "unlearning_recipe",
]
