"""Stage ``unprune``: the un-pruner re-derives the topology on the retain set, around the row's
unlearner running in dense space."""

from __future__ import annotations

from collections.abc import Mapping

from unlearnbench.registry.components import UnpruneTask
from unlearnbench.run.context import RunContext
from unlearnbench.run.plan import Node
from unlearnbench.run.stages.common import (
    ModelArtifact,
    Output,
    enforce,
    model_of,
    prune_task,
    unlearn_task,
    unlearning_seed,
    with_epoch_log,
)


def unprune(ctx: RunContext, node: Node, parents: Mapping[str, Output]) -> ModelArtifact:
    assert node.seed is not None and node.unlearner is not None and node.pruner is not None
    assert node.sparsity is not None and node.forget is not None and node.unpruner is not None
    unpruner = ctx.unpruners[node.unpruner]
    start, dense = model_of(parents, "start"), model_of(parents, "dense")
    assert start.mask is not None
    task = UnpruneTask(
        dense_model=ctx.load_model(node.seed, dense.state),
        pruned_model=ctx.load_model(node.seed, start.state),
        mask=start.mask,
        pruner=ctx.pruners[node.pruner],
        retain_prune_task=prune_task(
            ctx,
            unlearning_seed(node),
            node.sparsity,
            ctx.splits(node.forget)["retain"],
            dense.extra.get("rewind"),
        ),
        unlearner=ctx.unlearners[node.unlearner],
        unlearn_task=unlearn_task(ctx, node, None, dense, None),
    )
    outcome = unpruner.unprune(task)
    who = f"{unpruner.name} with {node.unlearner}"
    return with_epoch_log(enforce(outcome.model, outcome.mask, node, who), task.unlearn_task)


STAGES = {"unprune": unprune}
