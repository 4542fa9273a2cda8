"""Built-in model plugins."""

from unlearnbench import hookimpl
from unlearnbench_models.small_cnn import SmallCNN


@hookimpl
def unlearnbench_register_models() -> list[type]:
    return [SmallCNN]
