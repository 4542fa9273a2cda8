"""One module per stage; each computes one node of the run graph from its parents' outputs.

``STAGES`` maps a node's stage name to its compute function (``(ctx, node, parents) -> output``).
"""

from __future__ import annotations

from unlearnbench.run.stages import (
    evaluate,
    external_model,
    pooling,
    prune,
    references,
    train,
    unlearn,
    unprune,
)
from unlearnbench.run.stages.common import GuardError, ModelArtifact, Output, StageFn

STAGES: dict[str, StageFn] = {
    **train.STAGES,
    **prune.STAGES,
    **references.STAGES,
    **pooling.STAGES,
    **unlearn.STAGES,
    **unprune.STAGES,
    **evaluate.STAGES,
    **external_model.STAGES,
}

__all__ = ["STAGES", "GuardError", "ModelArtifact", "Output", "StageFn"]
