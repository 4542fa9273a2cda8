"""Stages that only references need: ``retain-dense`` (train on the retain set D_r) and
``retain-topology`` (prune that model with the row's pruner on D_r).

The ``original`` reference is the pruned original and ``retrain`` is the reference unlearner's
``unlearn`` node, so they need no stage of their own. A new reference kind adds its builder to
``unlearnbench.run.plan.REFERENCE_BUILDERS`` and, when it computes something new (``gold``'s
fine-tune under the retain topology, a pool), its stage function to :data:`STAGES` here.
"""

from __future__ import annotations

from collections.abc import Mapping

from unlearnbench.run.context import RunContext
from unlearnbench.run.plan import Node
from unlearnbench.run.stages.common import ModelArtifact, Output, model_of, prune_dense, train_dense


def retain_dense(ctx: RunContext, node: Node, parents: Mapping[str, Output]) -> ModelArtifact:
    return train_dense(ctx, node)


def retain_topology(ctx: RunContext, node: Node, parents: Mapping[str, Output]) -> ModelArtifact:
    return prune_dense(ctx, node, model_of(parents, "dense"))


STAGES = {"retain-dense": retain_dense, "retain-topology": retain_topology}
