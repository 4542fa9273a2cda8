"""Stage ``original``: train the original model on the training pool from the row's seed."""

from __future__ import annotations

from collections.abc import Mapping

from unlearnbench.run.context import RunContext
from unlearnbench.run.plan import Node
from unlearnbench.run.stages.common import ModelArtifact, Output, train_dense


def original(ctx: RunContext, node: Node, parents: Mapping[str, Output]) -> ModelArtifact:
    return train_dense(ctx, node)


STAGES = {"original": original}
