"""Built-in pruner plugins."""

from unlearnbench import hookimpl
from unlearnbench_pruners.omp import OneShotMagnitude


@hookimpl
def unlearnbench_register_pruners() -> list[type]:
    return [OneShotMagnitude]
