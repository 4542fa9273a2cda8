"""Built-in un-pruner plugins."""

from unlearnbench.api import hookimpl
from unlearnbench_unpruners.control import KeepMaskControl
from unlearnbench_unpruners.regrow import Regrow
from unlearnbench_unpruners.reprune import RelaxUnlearnReprune
from unlearnbench_unpruners.reprune_filter import FilterReprune


@hookimpl
def unlearnbench_register_unpruners() -> list[type]:
    return [RelaxUnlearnReprune, FilterReprune, Regrow, KeepMaskControl]
