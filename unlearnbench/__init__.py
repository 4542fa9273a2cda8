"""unlearnbench: reproducible machine-unlearning benchmarks on sparse models."""

from unlearnbench.components import (
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
from unlearnbench.data import DatasetSplits, ImageSplit
from unlearnbench.engine import Engine, TrainRecipe
from unlearnbench.hookspecs import hookimpl
from unlearnbench.masks import Mask

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
