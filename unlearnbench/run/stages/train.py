"""Stage ``original``: train the original model on the training pool from the row's seed, or load
the pretrained original the run was given (``run --original``)."""

from __future__ import annotations

from collections.abc import Mapping

from unlearnbench.errors import InvalidValueError
from unlearnbench.run.context import RunContext
from unlearnbench.run.external import load_into, read_checked
from unlearnbench.run.plan import Node
from unlearnbench.run.stages.common import ModelArtifact, Output, checked, state_of, train_dense


def original(ctx: RunContext, node: Node, parents: Mapping[str, Output]) -> ModelArtifact:
    if "pretrained" in node.inputs:
        return pretrained(ctx, node)
    return train_dense(ctx, node)


def pretrained(ctx: RunContext, node: Node) -> ModelArtifact:
    """The pretrained original (``run --original``), refused if its file changed since planning;
    its rewind state (for rewinding pruners) when the checkpoint carries one."""
    assert node.seed is not None
    given = ctx.settings.original
    if given is None or given.sha256 != node.inputs["pretrained"]["sha256"]:
        raise InvalidValueError("this run was not given the pretrained original its graph names")
    where = f"original {given.source}"
    model = ctx.model_skeleton(node.seed, None)
    load_into(model, read_checked(given.file, given.sha256, where), where, f"model {ctx.protocol.model.name}")
    extra = {}
    if given.rewind_file is not None:
        assert given.rewind_sha256 is not None
        extra["rewind"] = read_checked(given.rewind_file, given.rewind_sha256, f"rewind state of {where}")
    return ModelArtifact("", checked(state_of(model), node, node.component), None, 0.0, extra)


STAGES = {"original": original}
