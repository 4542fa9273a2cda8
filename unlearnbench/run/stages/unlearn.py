"""Stage ``unlearn``: run the row's unlearner from the pruned model, inside its mask."""

from __future__ import annotations

from collections.abc import Mapping

from unlearnbench.run.context import RunContext
from unlearnbench.run.plan import Node
from unlearnbench.run.stages.common import (
    ModelArtifact,
    Output,
    enforce,
    model_of,
    path_epochs,
    unlearn_task,
    with_epoch_log,
)


def unlearn(ctx: RunContext, node: Node, parents: Mapping[str, Output]) -> ModelArtifact:
    assert node.seed is not None and node.unlearner is not None
    start = model_of(parents, "start")
    dense = model_of(parents, "dense") if "dense" in parents else None
    unlearner = ctx.unlearners[node.unlearner]
    model = ctx.load_model(node.seed, start.state)
    epochs = path_epochs(start, dense)
    task = unlearn_task(ctx, node, start.mask, start, dense if start.mask is not None else None, epochs)
    return with_epoch_log(enforce(unlearner.unlearn(model, task), start.mask, node, unlearner.name), task)


STAGES = {"unlearn": unlearn}
