"""Result records of the rows of a run graph: evaluated, or failed with the error that stopped them."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from unlearnbench.config.typed_config import to_dict
from unlearnbench.report.record import SCHEMA_VERSION, ResultRecord, row_id
from unlearnbench.report.results import environment_info, software_versions
from unlearnbench.run.artifacts import ArtifactStore
from unlearnbench.run.context import RunContext
from unlearnbench.run.plan import RowPlan
from unlearnbench.run.stages.evaluate import with_repeat


def build_record(
    ctx: RunContext,
    store: ArtifactStore,
    plan: RowPlan,
    error: str | None,
    nodes: Iterable[str] = (),
    eval_seed: int = 0,
) -> ResultRecord:
    """The record of ``plan``'s row at evaluation seed ``eval_seed``: from its evaluate artifact,
    or failed with ``error``.

    ``nodes`` are the keys of every node the row used (``node_keys``, what ``cache ls`` counts
    as referenced). Runtimes, ``provenance`` and ``device`` come from the artifacts used, not
    from this process: the device of the row's model node is the one its RTE was measured on."""
    p, row = ctx.protocol, plan.row
    forget = ctx.forget_sets[row.forget]
    unpruner = row.unpruner if row.unprune else None
    head: dict[str, Any] = {
        "protocol": p.name,
        "protocol_version": p.version,
        "protocol_hash": p.hash,
        "dataset": p.data.dataset,
        "data_copy": ctx.data.dataset.copy,
        "model": p.model.name,
        "forget_set": row.forget,
        "forget_kind": forget.spec.kind,
        "forget_size": len(forget.indices),
        "forget_sha256": forget.sha256,
        "pruner": row.pruner,
        "sparsity_target": row.sparsity,
        "unlearner": row.unlearner,
        "unprune": row.unprune,
        "unpruner": unpruner,
        "seed": row.seed,
    }
    head["seeds"] = {"train": row.seed, "unlearn": row.unlearning_seed, "eval": eval_seed}
    head["row_id"] = row_id(head)
    components = _components(ctx, plan)
    common = dict(
        **head,
        versions={
            **software_versions(),
            **{k: f"{c.name}@{c.version}" for k, c in components.items()},
            "metrics": {n: m.version for n, m in ctx.metrics.items()},
        },
        components={
            **{k: ctx.info(c).label for k, c in components.items()},
            **{f"metric:{n}": ctx.info(m).label for n, m in ctx.metrics.items()},
        },
        reference=plan.reference,
        tuning=ctx.settings.tuning.get(row.unlearner),
        external=_external(ctx, plan),
        pretrained=None if ctx.settings.original is None else ctx.settings.original.record_entry(),
        schema_version=SCHEMA_VERSION,
        node_keys=tuple(sorted(k[:24] for k in nodes)),
        **environment_info(ctx.engine.device),
    )
    params = {k: to_dict(c.params) for k, c in components.items() if k in ("pruner", "unlearner", "unpruner")}
    if error is not None:  # a failed row still says what it ran with
        return ResultRecord(**common, status="failed", error=error, params=params)
    found = store.get("evaluate", plan.evaluate)
    assert found is not None, plan.evaluate
    payload = dict(found.meta["payload"])
    if "repeats" in payload:
        payload.update(with_repeat(payload, payload["repeats"][str(eval_seed)]))
    runtimes, epoch_log, provenance, violations = {}, {}, {}, {}
    unchanged = False  # the unlearner returned its start model (the unlearn stage's mark)
    for stage, key in (*plan.runtimes, ("evaluate", plan.evaluate)):
        artifact = found if key == plan.evaluate else store.get(stage, key)
        if artifact is None:
            continue
        if stage != "evaluate":
            runtimes[stage] = float(artifact.meta["runtime_s"])
        if artifact.meta.get("epoch_log"):
            epoch_log[stage] = artifact.meta["epoch_log"]
        if artifact.meta.get("provenance"):
            provenance[stage] = dict(artifact.meta["provenance"])
        if "mask_violations" in artifact.meta:
            violations[stage] = int(artifact.meta["mask_violations"])
        unchanged = unchanged or bool(artifact.meta.get("unchanged"))
    model_stage = next((s for s, k in plan.runtimes if k == plan.model), None)
    if model_stage in provenance:
        common["device"] = provenance[model_stage]["device"]
    return ResultRecord(
        **common,
        status="ok",
        error=None,
        sparsity=payload["sparsity"],
        filter_sparsity=payload["filter_sparsity"],
        metrics=payload["metrics"],
        metric_details={
            name: {k: v for k, v in found.items() if v is None or isinstance(v, int | float | str)}
            for name, found in payload.get("metric_details", {}).items()
        },
        metric_errors=payload.get("metric_errors", {}),
        metric_names=tuple(ctx.metrics),
        metric_info={
            n: {
                "label": m.label or n,
                "unit": m.unit,
                "version": m.version,
                "higher_is_better": m.higher_is_better,
                "gap": m.gap,
            }
            for n, m in ctx.metrics.items()
        },
        runtime_s=runtimes,
        provenance=provenance,
        mask_violations=violations,
        unchanged=unchanged,
        epoch_log=epoch_log,
        params=params,
    )


def _external(ctx: RunContext, plan: RowPlan) -> dict[str, Any] | None:
    """The record's ``external`` field: the file (and architecture) an external row scored."""
    if plan.external is None:
        return None
    found = next(e for e in ctx.settings.externals if e.label == plan.row.unlearner)
    return found.record_entry()


def _components(ctx: RunContext, plan: RowPlan) -> dict[str, Any]:
    row = plan.row
    found: dict[str, Any] = {
        "dataset": ctx.dataset_plugin,
        "model": ctx.model_plugin,
        "pruner": ctx.pruners[row.pruner],
    }
    if row.unlearner in ctx.unlearners:  # not the original nor a reference row (gold)
        found["unlearner"] = ctx.unlearners[row.unlearner]
    if row.unprune and row.unpruner is not None:
        found["unpruner"] = ctx.unpruners[row.unpruner]
    return found
