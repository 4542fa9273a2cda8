"""unlearnbench: reproducible machine-unlearning benchmarks on sparse models.

The names below are loaded on first use (PEP 562), so torch-free modules such as the planner
(``unlearnbench.run.plan``) import without torch. The Python API: ``unlearnbench.run(...)`` (the
``unlearnbench.run`` package is callable), ``unlearnbench.evaluate(model, ...)``,
``unlearnbench.unlearning_task(...)``, ``Results`` and ``function_unlearner`` (see
``unlearnbench.run.python_api``).
"""

from __future__ import annotations

import importlib
from typing import Any

from unlearnbench.run.threads import passive_openmp

passive_openmp()  # before anything imports torch: waiting OpenMP threads sleep (see run/threads.py)

__version__ = "0.1.0"

_LAZY = {
    "DatasetSplits": "unlearnbench.data.images",
    "ImageSplit": "unlearnbench.data.images",
    "DatasetPlugin": "unlearnbench.registry.components",
    "Metric": "unlearnbench.registry.components",
    "ModelPlugin": "unlearnbench.registry.components",
    "NoParams": "unlearnbench.registry.components",
    "PruneOutcome": "unlearnbench.registry.components",
    "Pruner": "unlearnbench.registry.components",
    "PruneTask": "unlearnbench.registry.components",
    "Unlearner": "unlearnbench.registry.components",
    "UnlearnTask": "unlearnbench.registry.components",
    "Unpruner": "unlearnbench.registry.components",
    "UnpruneTask": "unlearnbench.registry.components",
    "hookimpl": "unlearnbench.registry.hookspecs",
    "Engine": "unlearnbench.training.engine",
    "TrainRecipe": "unlearnbench.training.engine",
    "Mask": "unlearnbench.training.masks",
    "evaluate": "unlearnbench.api_evaluate",
    "Results": "unlearnbench.api_results",
    "unlearning_task": "unlearnbench.api_task",
    "function_unlearner": "unlearnbench.run.functions",
}

__all__ = [*sorted(_LAZY), "__version__", "run"]


def __getattr__(name: str) -> Any:
    if name == "run":  # the callable package (unlearnbench.run.python_api.run)
        return importlib.import_module("unlearnbench.run")
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'unlearnbench' has no attribute {name!r}")
