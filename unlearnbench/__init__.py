"""unlearnbench: reproducible machine-unlearning benchmarks on sparse models."""

from unlearnbench.data.images import DatasetSplits, ImageSplit
from unlearnbench.registry.components import (
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
from unlearnbench.registry.hookspecs import hookimpl
from unlearnbench.training.engine import Engine, TrainRecipe
from unlearnbench.training.masks import Mask

__version__ = "0.1.0"

__all__ = [
    "DatasetPlugin",
    "DatasetSplits",
    "Engine",
    "ImageSplit",
    "Mask",
    "Metric",
    "ModelPlugin",
    "NoParams",
    "PruneOutcome",
    "PruneTask",
    "Pruner",
    "TrainRecipe",
    "UnlearnTask",
    "Unlearner",
    "UnpruneTask",
    "Unpruner",
    "__version__",
    "hookimpl",
]
