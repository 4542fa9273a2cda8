"""Stage ``unlearn``: run the row's unlearner from the pruned model, inside its mask; an artifact
equal to the start model (unless the unlearner ``returns_input``) is marked ``unchanged``."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import replace

from unlearnbench.run.context import RunContext
from unlearnbench.run.plan import Node
from unlearnbench.run.stages.common import (
    ModelArtifact,
    Output,
    enforce,
    model_of,
    path_epochs,
    same_state,
    unlearn_task,
    with_epoch_log,
)

log = logging.getLogger(__name__)


def unlearn(ctx: RunContext, node: Node, parents: Mapping[str, Output]) -> ModelArtifact:
    assert node.seed is not None and node.unlearner is not None
    start = model_of(parents, "start")
    dense = model_of(parents, "dense") if "dense" in parents else None
    unlearner = ctx.unlearners[node.unlearner]
    model = ctx.load_model(node.seed, start.state)
    epochs = path_epochs(start, dense)
    task = unlearn_task(ctx, node, start.mask, start, dense if start.mask is not None else None, epochs)
    artifact = enforce(unlearner.unlearn(model, task), start.mask, node, unlearner.name)
    if not unlearner.returns_input and same_state(artifact.state, start.state):
        log.warning("%s returned its start model unchanged; the row is flagged", unlearner.name)
        artifact = replace(artifact, meta={**artifact.meta, "unchanged": True})
    return with_epoch_log(artifact, task)


STAGES = {"unlearn": unlearn}
