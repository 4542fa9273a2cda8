"""Result records of the rows of a run graph: evaluated, or failed with the error that stopped them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from unlearnbench.config.typed_config import to_dict
from unlearnbench.report.record import SCHEMA_VERSION, ResultRecord
from unlearnbench.report.results import environment_info, software_versions
from unlearnbench.run.artifacts import ArtifactStore, artifact_key
from unlearnbench.run.context import RunContext
from unlearnbench.run.plan import RowPlan

ROW_ID_FIELDS = (
    "protocol",
    "protocol_version",
    "protocol_hash",
    "forget_set",
    "pruner",
    "sparsity_target",
    "unlearner",
    "unprune",
    "seed",
    "data_copy",
)
"""The fields whose hash is a row's ``row_id``; an un-prune row adds ``unpruner``, so plain rows
keep the ids they had before several un-pruners could share a run. ``data_copy`` joined the id
later (rows of two copies of a dataset are two rows); records written before keep their stored
id in the file and are re-keyed on reading (:func:`unlearnbench.report.results.current_row_id`)."""


def row_id(head: Mapping[str, Any]) -> str:
    """The ``row_id`` of a record's (or record head's) fields."""
    id_fields = ROW_ID_FIELDS + (("unpruner",) if head.get("unprune") else ())
    return artifact_key("row", {k: head[k] for k in id_fields})


def build_record(
    ctx: RunContext, store: ArtifactStore, plan: RowPlan, error: str | None, nodes: Iterable[str] = ()
) -> ResultRecord:
    """The record of ``plan``'s row: from its evaluate artifact, or failed with ``error``.

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
        schema_version=SCHEMA_VERSION,
        node_keys=tuple(sorted(k[:24] for k in nodes)),
        **environment_info(ctx.engine.device),
    )
    params = {k: to_dict(c.params) for k, c in components.items() if k in ("pruner", "unlearner", "unpruner")}
    if error is not None:  # a failed row still says what it ran with
        return ResultRecord(**common, status="failed", error=error, params=params)
    found = store.get("evaluate", plan.evaluate)
    assert found is not None, plan.evaluate
    payload = found.meta["payload"]
    runtimes, epoch_log, provenance, violations = {}, {}, {}, {}
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
        epoch_log=epoch_log,
        params=params,
    )


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
