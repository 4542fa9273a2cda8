"""Stage ``evaluate``: every selected metric on the row's model, with the references they need."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from unlearnbench.registry.components import Metric, as_metric_value
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
        new_model=lambda model_seed: ctx.new_model_factory(model_seed)(),
    )
    seeds = node.eval_seeds or (0,)
    deterministic = {n: m for n, m in ctx.metrics.items() if not m.seeded}
    seeded = {n: m for n, m in ctx.metrics.items() if m.seeded}
    once = _compute(deterministic, eval_ctx, node)
    repeats = {}  # evaluation seed -> the seeded metrics' values, details and errors
    for eval_seed in seeds:
        eval_ctx.eval_seed = eval_seed
        repeats[str(eval_seed)] = _compute(seeded, eval_ctx, node)
    return {
        **with_repeat(once, repeats[str(seeds[0])]),
        **({"repeats": repeats} if len(seeds) > 1 else {}),
        "sparsity": 0.0 if art.mask is None else art.mask.sparsity(),
        "filter_sparsity": art.mask.filter_sparsity() if art.mask is not None and structured else None,
    }


def with_repeat(once: Mapping[str, Any], repeat: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The metrics, details and errors of one evaluation repetition: the once-per-model ones
    with that repetition's seeded ones."""
    return {
        k: {**once.get(k, {}), **repeat.get(k, {})} for k in ("metrics", "metric_details", "metric_errors")
    }


def _compute(metrics: Mapping[str, Metric], eval_ctx: EvalContext, node: Node) -> dict[str, dict[str, Any]]:
    """``metrics`` on ``eval_ctx``: values, details and errors (each metric on its own: one that
    raises leaves its error, the others stand)."""
    values: dict[str, float | None] = {}
    details: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for name, metric in metrics.items():
        try:
            result = as_metric_value(metric.compute(eval_ctx))
        except Exception as exc:
            log.warning("metric %s failed on %s: %s: %s", name, node.unlearner, type(exc).__name__, exc)
            values[name], errors[name] = None, f"{type(exc).__name__}: {exc}"
            continue
        values[name] = result.value
        if result.details:
            details[name] = dict(result.details)
    return {"metrics": values, "metric_details": details, "metric_errors": errors}


STAGES = {"evaluate": evaluate}
