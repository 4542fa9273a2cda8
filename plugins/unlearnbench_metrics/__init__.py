"""Built-in metric plugins."""

from unlearnbench.api import hookimpl
from unlearnbench_metrics.accuracy import (
    ForgottenClassTestAccuracy,
    RemainingAccuracy,
    TestingAccuracy,
    UnlearningAccuracy,
)
from unlearnbench_metrics.cost_topology import MaskIoURetainTopology, RunTimeEfficiency
from unlearnbench_metrics.mia import MIAEfficacy
from unlearnbench_metrics.pool_metrics import KLOM, EpsScore, ULiRA


@hookimpl
def unlearnbench_register_metrics() -> list[type]:
    return [
        UnlearningAccuracy,
        RemainingAccuracy,
        TestingAccuracy,
        ForgottenClassTestAccuracy,
        MIAEfficacy,
        RunTimeEfficiency,
        MaskIoURetainTopology,
        EpsScore,
        ULiRA,
        KLOM,
    ]
