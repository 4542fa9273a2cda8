"""Built-in unlearner plugins."""

from unlearnbench.api import hookimpl
from unlearnbench_unlearners.finetune import FineTune, L1Sparse
from unlearnbench_unlearners.gradient_ascent import GradientAscent
from unlearnbench_unlearners.retrain import Retrain


@hookimpl
def unlearnbench_register_unlearners() -> list[type]:
    return [Retrain, FineTune, GradientAscent, L1Sparse]
