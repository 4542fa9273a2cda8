"""Stage ``prune``: prune the original model with the row's pruner to the row's sparsity."""

from __future__ import annotations

from collections.abc import Mapping

from unlearnbench.run.context import RunContext
from unlearnbench.run.plan import Node
from unlearnbench.run.stages.common import ModelArtifact, Output, model_of, prune_dense


def prune(ctx: RunContext, node: Node, parents: Mapping[str, Output]) -> ModelArtifact:
    return prune_dense(ctx, node, model_of(parents, "dense"))


STAGES = {"prune": prune}
