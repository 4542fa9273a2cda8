"""Built-in un-pruner plugins."""

from unlearnbench.api import hookimpl
from unlearnbench_unpruners.reprune import RelaxUnlearnReprune


@hookimpl
def unlearnbench_register_unpruners() -> list[type]:
    return [RelaxUnlearnReprune]
