"""Built-in dataset plugins."""

from unlearnbench import hookimpl
from unlearnbench_datasets.digits import Digits


@hookimpl
def unlearnbench_register_datasets() -> list[type]:
    return [Digits]
