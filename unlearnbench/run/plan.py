"""The run graph: a protocol's rows as a DAG of frozen nodes, planned without torch.

A :class:`Node` is one stage output (``stage``, component ``name@version``, its ``params``, the
cache ``key`` and its ``parents``). :class:`Planner` is the only place that decides cache keys
(:meth:`Planner.node`) and the dense/sparse rule ("sparsity 0 means the dense model":
:meth:`Planner.topology`). References are planned only when a selected metric lists them in
``Metric.needs``, and the ``retrain`` reference rows are added when a selected metric is a gap
metric (``Metric.gap``), since the leaderboard's Gap column compares with them.

The ``gold`` reference of un-pruning (Xiao et al. 2025, ``unpruning.md`` §3.2) is the original's
whole procedure run on the retain set D_r: train a fresh seeded model on D_r (``retain-dense``),
then prune it on D_r with the row's pruner and its schedule (``retain-topology``: IMP replays
its rounds on D_r, a prune-at-init pruner scores the seeded initialisation, see
``Pruner.prunes_at_init``). The fine-tune under that mask with the original's recipe is the
pruner's own rewind-and-retrain step, the step the original got: ``recipe.epochs`` epochs of the
protocol's training recipe under the mask from the rewind-epoch weights (from the initialisation
for at-init pruners; none for a pruner set to ``retrain = false``, as for the original). So
``gold`` is the ``retain-topology`` node itself, and gold's mask is the pruner's mask of the
D_r-trained weights. ``gold_seed`` is the same at the fixed seed ``GOLD_BASELINE_SEED`` (the
seed baseline), shared by every row and seed: one extra gold per forget set, pruner and
sparsity, whatever the number of seeds. References named in :data:`REFERENCE_ROWS` also get a
row of their own in the tables whenever they are planned, with ``reference`` set to their name.

Adding a reference kind: CONTRIBUTING.md, "Add a reference kind". Pools are planned like
references, by :mod:`unlearnbench.run.pool_plan` (a ``"pool:<kind>"`` in ``needs``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from unlearnbench.config.typed_config import to_dict
from unlearnbench.reference_names import GAP_REFERENCE, GOLD, ORIGINAL
from unlearnbench.run.artifacts import artifact_key
from unlearnbench.run.external_plan import external_node, joins
from unlearnbench.run.graph import ComponentInfo, Graph, Node, PlanInputs, Row, RowPlan
from unlearnbench.run.plan_warnings import warn_dense_only
from unlearnbench.run.pool_plan import POOL_PREFIX, pool_needs, pool_node
from unlearnbench.seeds import eval_seeds, unlearn_seed

if TYPE_CHECKING:
    from unlearnbench.config.protocol import Protocol

GOLD_BASELINE_SEED = 10_000
"""``gold_seed`` (the seed baseline) is gold at this seed for every row: one gold's cost."""
TRAINING_STAGES = ("original", "retain-dense")
PROTOCOL_RECIPE = "protocol_recipe"
"""An unlearner parameter: true declares exact retraining on the retain set with the protocol's
recipe; its dense rows are then the ``retain-dense`` node (the same computation, done once)."""

__all__ = ["ComponentInfo", "Graph", "Node", "PlanInputs", "Planner", "Row", "RowPlan", "plan"]

log = logging.getLogger(__name__)


ReferenceBuilder = Callable[["Planner", Row], "str | None"]


def _original(planner: Planner, row: Row) -> str | None:
    return planner.topology(row.seed, row.pruner, row.sparsity)


def _retrain(planner: Planner, row: Row) -> str | None:
    reference = replace(row, unlearner=planner.reference_unlearner(GAP_REFERENCE), unprune=False)
    return planner.unlearned(reference)


def _retain_topology(planner: Planner, row: Row) -> str | None:
    if row.sparsity == 0.0:  # a dense row has no topology to compare with
        return None
    return planner.topology(row.seed, row.pruner, row.sparsity, forget=row.forget)


def _gold(planner: Planner, row: Row) -> str | None:
    return _retain_topology(planner, row)


def _gold_seed(planner: Planner, row: Row) -> str | None:
    return _retain_topology(planner, replace(row, seed=GOLD_BASELINE_SEED))


REFERENCE_BUILDERS: dict[str, ReferenceBuilder] = {
    ORIGINAL: _original,
    "retrain": _retrain,
    "retain_topology": _retain_topology,
    GOLD: _gold,
    "gold_seed": _gold_seed,
}
"""Reference name (as metrics list it in ``needs``) -> builder of the node holding it."""
REFERENCE_ROWS = (GOLD,)
"""References shown as a row of their own (label and ``reference`` = the name) when planned."""


class Planner:
    """Turns a protocol's rows into a :class:`Graph`; every key is made in :meth:`node`."""

    def __init__(self, protocol: Protocol, inputs: PlanInputs) -> None:
        self.protocol = protocol
        self.inputs = inputs
        self.nodes: dict[str, Node] = {}
        self.metrics = [inputs.component("metric", n) for n in protocol.evaluate.metrics]

    def node(self, stage: str, component: ComponentInfo, inputs: dict[str, Any], **fields: Any) -> str:
        """Add the node of ``stage`` for ``inputs`` (once) and return its key; the key also
        covers the computation settings (:attr:`PlanInputs.compute`)."""
        if self.inputs.compute:
            inputs = {**inputs, "compute": dict(self.inputs.compute)}
        key = artifact_key(stage, inputs)
        if key not in self.nodes:
            parents = tuple(fields.pop("parents", ()))
            self.nodes[key] = Node(
                stage,
                component.name,
                component.version,
                component.params,
                key,
                parents,
                inputs=inputs,
                **fields,
            )
        return key

    def reference_unlearner(self, reference: str) -> str:
        """The unlearner whose rows are reference ``reference`` (from ``Unlearner.reference``)."""
        found = [
            c.name
            for c in self.inputs.components.values()
            if c.kind == "unlearner" and c.reference == reference
        ]
        if not found:
            raise LookupError(f"no unlearner provides the {reference!r} reference")
        return sorted(found)[0]

    # --- model stages -------------------------------------------------------------------------
    def dense(self, seed: int, forget: str | None = None) -> str:
        """Dense training on the pool (``forget`` None) or on the retain set of ``forget``."""
        p, model = self.protocol, self.inputs.component("model", self.protocol.model.name)
        inputs = {
            "data": dict(self.inputs.data_id),
            "model": model.ident(),
            "recipe": to_dict(p.recipe),
            "seed": seed,
            "trained_on": "pool" if forget is None else {"retain_of": self.inputs.forget_sha256[forget]},
        }
        pool = self.inputs.data_id["sizes"][0] - (0 if forget is None else self.inputs.forget_size[forget])
        stage = TRAINING_STAGES[forget is not None]
        if forget is None and self.inputs.original is not None:  # a pretrained original, by its hash
            original = self.inputs.original
            pretrained = {"sha256": original["sha256"], "rewind_sha256": original.get("rewind_sha256")}
            inputs = {"model": model.ident(), "pretrained": pretrained, "seed": seed}
            return self.node(stage, model, inputs, seed=seed)
        return self.node(stage, model, inputs, cost=p.recipe.epochs * pool, seed=seed, forget=forget)

    def topology(self, seed: int, pruner: str, sparsity: float, forget: str | None = None) -> str:
        """The pruned model (the retain-set topology when ``forget`` is set); sparsity 0 is dense."""
        dense = self.dense(seed, forget)
        if sparsity == 0.0:
            return dense
        inputs = {
            "parent": dense,
            "pruner": self.inputs.component("pruner", pruner).ident(),
            "sparsity": sparsity,
            "scope": self.protocol.prune.scope,
        }
        stage = "prune" if forget is None else "retain-topology"
        info = self.inputs.component("pruner", pruner)
        return self.node(
            stage,
            info,
            inputs,
            parents=[("dense", dense)],
            seed=seed,
            pruner=pruner,
            sparsity=sparsity,
            forget=forget,
        )

    def _unlearn_inputs(self, row: Row) -> dict[str, Any]:
        return {
            "parent": self.topology(row.seed, row.pruner, row.sparsity),
            "forget": self.inputs.forget_sha256[row.forget],
            "unlearner": self.inputs.component("unlearner", row.unlearner).ident(),
            "seed": row.unlearning_seed,
        }

    def unlearned(self, row: Row) -> str:
        """The row's unlearned model: inside the mask, or through un-pruning (a dense row of an
        unlearner that sets :data:`PROTOCOL_RECIPE`: the ``retain-dense`` node)."""
        unlearner = self.inputs.component("unlearner", row.unlearner)
        if row.sparsity == 0.0 and not row.unprune and unlearner.params.get(PROTOCOL_RECIPE):
            return self.dense(row.seed, row.forget)
        inputs = self._unlearn_inputs(row)
        start, dense = inputs["parent"], self.dense(row.seed)
        parents = [("start", start)] + ([("dense", dense)] if start != dense else [])
        fields = dict(
            seed=row.seed,
            pruner=row.pruner,
            sparsity=row.sparsity,
            forget=row.forget,
            unlearn_seed=row.unlearning_seed,
        )
        own = None if unlearner.params.get(PROTOCOL_RECIPE) else unlearner.params.get("epochs")
        cost = int(own or self.protocol.recipe.epochs) * self._retain_size(row.forget)
        if not row.unprune:
            return self.node(
                "unlearn", unlearner, inputs, parents=parents, unlearner=row.unlearner, cost=cost, **fields
            )
        assert row.unpruner is not None, row
        unpruner = self.inputs.component("unpruner", row.unpruner)
        inputs = {**inputs, "dense": dense, "unpruner": unpruner.ident()}
        return self.node(
            "unprune", unpruner, inputs, parents=parents, unlearner=row.unlearner, unpruner=unpruner.name,
            cost=cost, **fields,
        )  # fmt: skip

    def _retain_size(self, forget: str) -> int:
        return self.inputs.data_id["sizes"][0] - self.inputs.forget_size[forget]

    # --- rows ---------------------------------------------------------------------------------
    def rows(self) -> list[Row]:
        """Every row: the original, the gap reference when a gap metric is selected, the planned
        references of :data:`REFERENCE_ROWS` (sparse rows only), the unlearners, and each
        un-pruner's un-prune rows."""
        p = self.protocol
        added = []
        if any(m.gap for m in self.metrics):
            reference = self.reference_unlearner(GAP_REFERENCE)
            added = [] if reference in p.unlearn.unlearners else [reference]
        needs = {name for m in self.metrics for name in m.needs}
        reference_rows = [name for name in REFERENCE_ROWS if name in needs]
        if p.prune.sparsities and all(s == 0.0 for s in p.prune.sparsities):
            warn_dense_only(p, reference_rows)
        out = []
        for seed in p.seeds:
            for pruner in p.prune.pruners:
                for sparsity in p.prune.sparsities:
                    for spec in p.forget:
                        if self.inputs.forget_selection and spec.name not in self.inputs.forget_selection:
                            continue
                        out.append(Row(seed, pruner, sparsity, spec.name, ORIGINAL, False))
                        out += [Row(seed, pruner, sparsity, spec.name, u, False) for u in added]
                        if sparsity > 0.0:
                            out += [Row(seed, pruner, sparsity, spec.name, r, False) for r in reference_rows]
                        for unlearner in p.unlearn.unlearners:
                            out += self._method_rows(Row(seed, pruner, sparsity, spec.name, unlearner, False))
                        for label, ext in self.inputs.externals.items():
                            if joins(ext, seed, pruner, sparsity, spec.name):
                                out.append(Row(seed, pruner, sparsity, spec.name, label, False))
        return out

    def _method_rows(self, row: Row) -> list[Row]:
        """``row``'s plain row and one un-prune row per un-pruner, as the modes select (a dense
        model has nothing to un-prune; unlearners in ``unprune.skip`` get none), each repeated
        ``unlearn.repeats`` times with its own unlearning seed (a reference unlearner once)."""
        unprune = self.protocol.unprune
        out = [row] if False in unprune.modes else []
        if True in unprune.modes and row.sparsity > 0.0 and row.unlearner not in unprune.skip:
            out += [replace(row, unprune=True, unpruner=u) for u in self.protocol.unprune.unpruners]
        reference = self.inputs.component("unlearner", row.unlearner).reference
        seeds = [None] + [unlearn_seed(row.seed, j) for j in range(1, self.protocol.unlearn.repeats)]
        return [replace(r, unlearn_seed=s) for r in out for s in (seeds[:1] if reference else seeds)]

    def model(self, row: Row) -> str:
        """The key of the model ``row`` evaluates: the pruned original for the ``original`` row,
        the reference's node for a :data:`REFERENCE_ROWS` row, else the unlearned model."""
        if row.unlearner == ORIGINAL:
            return self.topology(row.seed, row.pruner, row.sparsity)
        if row.unlearner in REFERENCE_ROWS:
            found = REFERENCE_BUILDERS[row.unlearner](self, row)
            assert found is not None, row
            return found
        if row.unlearner in self.inputs.externals:
            return external_node(self, row)
        return self.unlearned(row)

    def evaluate(self, row: Row) -> RowPlan:
        model = self.model(row)
        needs = sorted({name for m in self.metrics for name in m.needs})
        references = {n: REFERENCE_BUILDERS[n](self, row) for n in needs if not n.startswith(POOL_PREFIX)}
        pools = {kind: pool_node(self, row, kind) for kind in pool_needs(needs)}
        inputs = {
            "model": model,
            "forget": self.inputs.forget_sha256[row.forget],
            "data": dict(self.inputs.data_id),
            "metrics": [m.ident() for m in self.metrics],
            "references": references,
            **({"pools": pools} if pools else {}),
        }
        external = self.inputs.externals.get(row.unlearner)
        if external is not None:  # built with the user's factory; no unlearning time to report
            inputs["external"] = {"factory": external.get("factory")}
        parents = [("model", model)] + [(f"ref:{n}", k) for n, k in references.items() if k is not None]
        parents += [(f"{POOL_PREFIX}{kind}", key) for kind, key in pools.items()]
        seeds = eval_seeds(self.protocol.evaluate.repeats)
        if seeds != (0,):  # one evaluation at seed 0 keeps the key it always had
            inputs["eval_seeds"] = list(seeds)
        metrics = ComponentInfo("metric", "metrics", 1, {})
        fields = dict(
            seed=row.seed, pruner=row.pruner, sparsity=row.sparsity, forget=row.forget, unpruner=row.unpruner
        )
        key = self.node(
            "evaluate", metrics, inputs, parents=parents, unlearner=row.unlearner, eval_seeds=seeds, **fields
        )
        runtimes = [("original", self.dense(row.seed))]
        if row.sparsity > 0:
            runtimes.append(("prune", self.topology(row.seed, row.pruner, row.sparsity)))
        reference = ORIGINAL if row.unlearner == ORIGINAL else None
        if row.unlearner in REFERENCE_ROWS:
            runtimes.append((self.nodes[model].stage, model))
            reference = row.unlearner
        elif external is not None:
            runtimes.append(("external", model))
        elif row.unlearner != ORIGINAL:
            runtimes.append(("unprune" if row.unprune else "unlearn", model))
            if not row.unprune:
                reference = self.inputs.component("unlearner", row.unlearner).reference
        return RowPlan(row, key, model, tuple(runtimes), reference, seeds, external)

    def graph(self) -> Graph:
        rows = tuple(self.evaluate(row) for row in self.rows())
        return Graph(dict(self.nodes), rows)


def plan(protocol: Protocol, inputs: PlanInputs) -> Graph:
    """The graph of every row of ``protocol``."""
    return Planner(protocol, inputs).graph()
