"""Stage ``evaluate``: every selected metric on the row's model, with the references they need."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from unlearnbench.registry.components import as_metric_value
from unlearnbench.run.context import RunContext
from unlearnbench.run.evaluation import EvalContext
from unlearnbench.run.plan import ORIGINAL, Node
from unlearnbench.run.pool_plan import POOL_PREFIX
from unlearnbench.run.pools import PoolOutputs
from unlearnbench.run.stages.common import Output, as_reference, model_of

log = logging.getLogger(__name__)


def evaluate(ctx: RunContext, node: Node, parents: Mapping[str, Output]) -> dict[str, Any]:
    assert node.seed is not None and node.forget is not None and node.pruner is not None
    seed, art = node.seed, model_of(parents, "model")
    structured = ctx.pruners[node.pruner].structured
    loaders = {
        name: (
            lambda role=f"ref:{name}": as_reference(
                ctx, seed, model_of(parents, role) if role in parents else None
            )
        )
        for name in node.inputs["references"]
    }
    pools = {
        kind: (lambda role=f"{POOL_PREFIX}{kind}": PoolOutputs.from_tensors(model_of(parents, role).extra))
        for kind in node.inputs.get("pools", {})
    }
    external = node.inputs.get("external")
    eval_ctx = EvalContext(
        model=ctx.load_model(seed, art.state, None if external is None else external["factory"]),
        mask=art.mask,
        splits=ctx.splits(node.forget),
        engine=ctx.engine,
        references=loaders,
        runtime_s=None if node.unlearner == ORIGINAL or external is not None else art.runtime_s,
        forget_kind=ctx.forget_sets[node.forget].spec.kind,
        structured=structured,
        pools=pools,
        # a reference's outputs on this forget set's splits depend on its node and the forget set
        reference_ids={n: f"{k}:{node.forget}" for n, k in node.inputs["references"].items() if k},
        shared_logits=ctx.reference_logits,
    )
    values: dict[str, float | None] = {}
    details: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for name, metric in ctx.metrics.items():
        try:  # each metric on its own: one that raises leaves its error, the others stand
            result = as_metric_value(metric.compute(eval_ctx))
        except Exception as exc:
            log.warning("metric %s failed on %s: %s: %s", name, node.unlearner, type(exc).__name__, exc)
            values[name], errors[name] = None, f"{type(exc).__name__}: {exc}"
            continue
        values[name] = result.value
        if result.details:
            details[name] = dict(result.details)
    mask = art.mask
    return {
        "metrics": values,
        "metric_details": details,
        "metric_errors": errors,
        "sparsity": 0.0 if mask is None else mask.sparsity(),
        "filter_sparsity": mask.filter_sparsity() if mask is not None and structured else None,
    }


STAGES = {"evaluate": evaluate}
