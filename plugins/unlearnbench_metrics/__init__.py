"""Built-in metric plugins."""

from unlearnbench.api import hookimpl
from unlearnbench_metrics.accuracy import (
    ForgottenClassTestAccuracy,
    RemainingAccuracy,
    TestingAccuracy,
    UnlearningAccuracy,
)
from unlearnbench_metrics.cost_topology import MaskIoURetainTopology, RunTimeEfficiency
from unlearnbench_metrics.divergence import (
    ActivationDistance,
    JSRetrainForget,
    JSRetrainTest,
    ZeroRetrainForgetting,
)
from unlearnbench_metrics.gold import (
    GoldErrorBand,
    GoldFilterIoU,
    GoldHamming,
    GoldIoM,
    GoldIoU,
    GoldKLForget,
    GoldKLRetain,
    GoldKLTest,
    OriginalGoldIoU,
    SeedBaselineIoU,
)
from unlearnbench_metrics.mia import MIAEfficacy, MIAEfficacyReference
from unlearnbench_metrics.pool_metrics import KLOM, EpsScore, ULiRA
from unlearnbench_metrics.representation import CKAOriginal, CKARetrain, KNNForgetAccuracy
from unlearnbench_metrics.weight_distance import WeightDistanceOriginal, WeightDistanceRetrain


@hookimpl
def unlearnbench_register_metrics() -> list[type]:
    return [
        UnlearningAccuracy,
        RemainingAccuracy,
        TestingAccuracy,
        ForgottenClassTestAccuracy,
        MIAEfficacy,
        MIAEfficacyReference,
        RunTimeEfficiency,
        MaskIoURetainTopology,
        GoldIoU,
        GoldIoM,
        GoldHamming,
        GoldFilterIoU,
        GoldKLForget,
        GoldKLRetain,
        GoldKLTest,
        GoldErrorBand,
        SeedBaselineIoU,
        OriginalGoldIoU,
        EpsScore,
        ULiRA,
        KLOM,
        ZeroRetrainForgetting,
        JSRetrainForget,
        JSRetrainTest,
        ActivationDistance,
        WeightDistanceOriginal,
        WeightDistanceRetrain,
        CKAOriginal,
        CKARetrain,
        KNNForgetAccuracy,
    ]
