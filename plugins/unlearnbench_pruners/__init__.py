"""Built-in pruner plugins."""

from unlearnbench.api import hookimpl
from unlearnbench_pruners.imp import IterativeMagnitude
from unlearnbench_pruners.l1_filter import L1Filter
from unlearnbench_pruners.omp import OneShotMagnitude
from unlearnbench_pruners.random_prune import RandomPruner
from unlearnbench_pruners.snip import Snip
from unlearnbench_pruners.synflow import SynFlow


@hookimpl
def unlearnbench_register_pruners() -> list[type]:
    return [OneShotMagnitude, IterativeMagnitude, SynFlow, Snip, RandomPruner, L1Filter]
