"""Planning external models (``evaluate``): one leaf node per model file, keyed by its sha256.

An external model (:attr:`unlearnbench.run.graph.PlanInputs.externals`) joins the rows of the
forget sets, pruners, sparsities and seeds it names (:func:`joins`); its row's model is the
node :func:`external_node` plans, which the ``external`` stage fills from the file.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from unlearnbench.run.graph import Row

if TYPE_CHECKING:
    from unlearnbench.run.plan import Planner


def external_node(planner: Planner, row: Row) -> str:
    """The node of the external model of ``row`` (a leaf keyed by the file's sha256): its
    weights, and its mask inferred from its zeros over the names the row's pruned original
    masks (over the prune scope for a user architecture; no mask on a dense row)."""
    spec = planner.inputs.externals[row.unlearner]
    model = planner.inputs.component("model", planner.protocol.model.name)
    factory = spec.get("factory")
    architecture = (
        model.ident() if factory is None else {"factory": factory, "source": spec["factory_source"]}
    )
    inputs: dict[str, Any] = {
        "sha256": spec["sha256"],
        "architecture": architecture,
        "scope": planner.protocol.prune.scope,
        "masked": row.sparsity > 0.0,
    }
    parents = []
    if row.sparsity > 0.0 and factory is None:
        topology = planner.topology(row.seed, row.pruner, row.sparsity)
        inputs["mask_of"] = topology
        parents.append(("topology", topology))
    fields = dict(seed=row.seed, pruner=row.pruner, sparsity=row.sparsity, forget=row.forget)
    return planner.node("external", model, inputs, parents=parents, unlearner=row.unlearner, **fields)


def joins(external: Mapping[str, Any], seed: int, pruner: str, sparsity: float, forget: str) -> bool:
    """Whether an external model's rows include this (seed, pruner, sparsity, forget set); an
    empty selection takes every value."""
    chosen = {"seeds": seed, "pruners": pruner, "sparsities": sparsity, "forget": forget}
    return all(not external.get(k) or v in external[k] for k, v in chosen.items())
