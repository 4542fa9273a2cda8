"""Pool stages: ``pool-shadow`` (one shadow model) and ``pool`` (a pool's outputs).

A ``pool-shadow`` node trains shadow model ``member`` on the candidates (training pool, then the
evaluation test split) its row of the membership matrix marks
(:func:`unlearnbench.run.pools.shadow_membership`). A ``pool`` node loads its ``member:<i>``
parents and stores their margins and top-1 correctness on the splits of its forget set that its
kind names (``pool_plan.POOL_SPLITS``: forget, retain, test and the forgotten classes' test
examples ``forget_test``, empty for random forgetting; no retain set for shadow pools), plus the
shadow membership of those examples, as tensors (no weights); the evaluate stage hands them to
metrics as :class:`~unlearnbench.run.pools.PoolOutputs`.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

from unlearnbench.data.images import ImageSplit
from unlearnbench.run.context import RunContext
from unlearnbench.run.plan import Node
from unlearnbench.run.pools import pool_outputs, shadow_membership, train_shadow_member
from unlearnbench.run.stages.common import ModelArtifact, Output, checked, model_of, state_of


def _membership(node: Node) -> np.ndarray:
    m, sizes = node.inputs["membership"], node.inputs["data"]["sizes"]
    test = sizes[1] if node.inputs["eval_split"] == "val" else sizes[2]
    return shadow_membership(sizes[0] + test, m["size"], m["seed"], m["fraction"])


def shadow_member(ctx: RunContext, node: Node, parents: Mapping[str, Output]) -> ModelArtifact:
    assert node.seed is not None
    test = ctx.eval_test()
    candidates = ImageSplit(
        torch.cat([ctx.data.pool.images, test.images]), torch.cat([ctx.data.pool.labels, test.labels])
    )
    model = train_shadow_member(
        node.inputs["member"],
        _membership(node),
        candidates,
        seed=node.seed,
        engine=ctx.engine,
        recipe=ctx.protocol.pool_recipe or ctx.protocol.recipe,
        new_model=lambda seed: ctx.new_model_factory(seed)(),
    )
    return ModelArtifact("", checked(state_of(model), node, node.component), None, 0.0)


def pool(ctx: RunContext, node: Node, parents: Mapping[str, Output]) -> ModelArtifact:
    assert node.forget is not None
    splits = {s: ctx.splits(node.forget)[s] for s in node.inputs["splits"]}
    models = []
    for i in range(len(node.parents)):
        member = model_of(parents, f"member:{i}")
        models.append(ctx.load_model(0, member.state))
    membership = None
    if node.inputs["kind"] == "shadow":
        table, n_pool, forget = _membership(node), len(ctx.data.pool), ctx.forget_sets[node.forget]
        membership = {"forget": table[:, forget.indices.cpu().numpy()]}
        for split, index in ctx.test_indices(forget).items():
            membership[split] = table[:, n_pool + index.cpu().numpy()]
    outputs = pool_outputs(models, splits, ctx.engine, membership)
    return ModelArtifact("", {}, None, 0.0, outputs.tensors())


STAGES = {"pool-shadow": shadow_member, "pool": pool}
