"""Pools in the run graph (torch-free): which nodes make a row's pools, and what they cost.

A metric that lists ``"pool:<kind>"`` in ``Metric.needs`` gets, on each row's evaluate node, a
parent ``pool:<kind>``: a ``pool`` node (the members' margins and correctness on the row's
forget, retain and test splits) whose parents ``member:<i>`` are N model nodes:

- ``retrain``: the retrain reference row (``Unlearner.reference == "retrain"``) at each pool
  seed ``pools.seed_base + i``: trained from that seed on D_r, under the mask of that seed's
  pruned original for sparse rows (each retrained member shares its topology with unlearned
  member i), or through the un-pruning pipeline for un-prune rows (the gold, re-pruned pool);
- ``unlearned``: the row itself at each pool seed: an original trained on the pool from that
  seed, pruned with the row's pruner, then the row's unlearner (or the un-prune pipeline); for
  the ``original`` row, the pruned originals; for a reference row (``gold``), that reference
  at each pool seed;
- ``shadow``: ``pools.shadow_size`` (0: ``pools.size``) ``pool-shadow`` nodes, seeds after the
  retrain/unlearned ones, each trained on a balanced random ``pools.shadow_fraction`` of the
  training pool plus the evaluation test split; dense, once per protocol whatever the row.

Member nodes are ordinary graph nodes keyed by what they compute, so every row, unlearner and
metric that needs one shares it, and a pool seed that is also a protocol seed reuses its row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Protocol

from unlearnbench.config.typed_config import to_dict
from unlearnbench.errors import InvalidValueError, UnknownChoiceError
from unlearnbench.run.graph import ComponentInfo, Graph, PlanInputs, Row

if TYPE_CHECKING:
    from unlearnbench.config.protocol import Protocol as RunProtocol


class PoolPlanner(Protocol):
    """What pool planning uses of :class:`unlearnbench.run.plan.Planner` (declared here, so that
    ``plan.py`` imports this module and not the other way round)."""

    protocol: RunProtocol
    inputs: PlanInputs

    def node(self, stage: str, component: ComponentInfo, inputs: dict[str, Any], **fields: Any) -> str: ...

    def reference_unlearner(self, reference: str) -> str: ...

    def model(self, row: Row) -> str: ...


POOL_KINDS: tuple[str, ...] = ("retrain", "unlearned", "shadow")
POOL_PREFIX = "pool:"
POOL_SPLITS: dict[str, tuple[str, ...]] = {
    "retrain": ("forget", "retain", "test", "forget_test"),
    "unlearned": ("forget", "retain", "test", "forget_test"),
    "shadow": ("forget", "test", "forget_test"),
}
"""The splits a ``pool`` node of each kind stores its members' outputs on (part of its key): a
shadow pool serves attacks on forget and held-out test examples, so it skips the retain set (the
largest split, most of a pool node's evaluation time)."""


def pool_needs(needs: Sequence[str]) -> tuple[str, ...]:
    """The pool kinds among a metric's ``needs`` (``"pool:retrain"`` -> ``"retrain"``)."""
    kinds = tuple(n[len(POOL_PREFIX) :] for n in needs if n.startswith(POOL_PREFIX))
    for kind in kinds:
        if kind not in POOL_KINDS:
            raise UnknownChoiceError("pool kind", kind, POOL_KINDS)
    return kinds


def pool_seeds(protocol: RunProtocol, kind: str) -> tuple[int, ...]:
    """The member seeds of pool ``kind``: ``seed_base + i``; shadow seeds follow the others."""
    p = protocol.pools
    if kind == "shadow":
        return tuple(p.seed_base + p.size + i for i in range(p.shadow_size or p.size))
    return tuple(p.seed_base + i for i in range(p.size))


def _shadow_member(planner: PoolPlanner, index: int, seed: int) -> str:
    p, model = planner.protocol, planner.inputs.component("model", planner.protocol.model.name)
    recipe = p.pool_recipe or p.recipe
    sizes = planner.inputs.data_id["sizes"]
    test = sizes[1] if p.data.eval_split == "val" else sizes[2]
    inputs = {
        "data": dict(planner.inputs.data_id),
        "model": model.ident(),
        "recipe": to_dict(recipe),
        "eval_split": p.data.eval_split,
        "membership": _membership(p),
        "member": index,
        "seed": seed,
    }
    cost = int(recipe.epochs * p.pools.shadow_fraction * (sizes[0] + test))
    return planner.node("pool-shadow", model, inputs, cost=cost, seed=seed)


def _membership(protocol: RunProtocol) -> dict[str, Any]:
    """What fixes the shadow pool's membership matrix (``run.pools.shadow_membership``)."""
    p = protocol.pools
    return {"size": p.shadow_size or p.size, "seed": p.seed_base, "fraction": p.shadow_fraction}


def members(planner: PoolPlanner, row: Row, kind: str) -> list[str]:
    """The keys of the member nodes of ``row``'s pool ``kind``: the unlearned pool is the row's
    own model at each pool seed (:meth:`Planner.model`: the pruned originals for the ``original``
    row, the reference at each seed for a reference row such as ``gold``)."""
    seeds = pool_seeds(planner.protocol, kind)
    if kind == "shadow":
        return [_shadow_member(planner, i, s) for i, s in enumerate(seeds)]
    p = planner.protocol
    if p.pool_recipe is not None and p.pool_recipe != p.recipe:
        raise InvalidValueError(
            f"pools.recipe = {p.pools.recipe!r} applies to shadow pools only; retrain and unlearned "
            "pools follow the protocol's training recipe and the unlearners' budgets "
            f"(set pools.recipe = '' or {p.recipe_name!r})"
        )
    if kind == "retrain":
        row = replace(row, unlearner=planner.reference_unlearner("retrain"))
    return [planner.model(replace(row, seed=s, unlearn_seed=None)) for s in seeds]


def pool_node(planner: PoolPlanner, row: Row, kind: str) -> str:
    """The ``pool`` node of ``row``'s pool ``kind``: its members' outputs on the row's splits."""
    keys = members(planner, row, kind)
    inputs: dict[str, Any] = {
        "kind": kind,
        "members": keys,
        "forget": planner.inputs.forget_sha256[row.forget],
        "data": dict(planner.inputs.data_id),
        "eval_split": planner.protocol.data.eval_split,
        "splits": list(POOL_SPLITS[kind]),
    }
    fields: dict[str, Any] = {"forget": row.forget}
    if kind == "shadow":
        inputs["membership"] = _membership(planner.protocol)
    else:
        fields.update(pruner=row.pruner, sparsity=row.sparsity)
        fields["unlearner"] = planner.reference_unlearner("retrain") if kind == "retrain" else row.unlearner
    info = ComponentInfo("pool", kind, 1, {})
    parents = [(f"member:{i}", key) for i, key in enumerate(keys)]
    return planner.node("pool", info, inputs, parents=parents, **fields)


def ancestors(graph: Graph, keys: Sequence[str]) -> set[str]:
    """``keys`` and every node upstream of them."""
    found: set[str] = set()
    todo = list(keys)
    while todo:
        key = todo.pop()
        if key not in found:
            found.add(key)
            todo.extend(parent for _, parent in graph.nodes[key].parents)
    return found


def pool_only(graph: Graph) -> set[str]:
    """The nodes that exist only for pools: upstream of a ``pool`` node and of no row's model
    or non-pool reference."""
    pools = [k for k, n in graph.nodes.items() if n.stage == "pool"]
    rows = [plan.model for plan in graph.rows] + [
        key
        for plan in graph.rows
        for role, key in graph.nodes[plan.evaluate].parents
        if not role.startswith(POOL_PREFIX)
    ]
    return ancestors(graph, pools) - ancestors(graph, rows)
