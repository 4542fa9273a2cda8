"""Pools in the run graph: planned only for pool metrics, members shared by every row and metric,
built once per protocol (counted by stage events), per-example details in the evaluate artifact,
and the same records under the Ray executor."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from test_run_graph import PROTOCOL, planned, ray_session, recorder  # noqa: F401

from unlearnbench.config.protocol import load_protocol
from unlearnbench.errors import InvalidValueError
from unlearnbench.registry.catalog import Registry
from unlearnbench.registry.events import StageFinished
from unlearnbench.registry.host import create_host
from unlearnbench.run.artifacts import ArtifactStore
from unlearnbench.run.pipeline import Pipeline, RunSettings
from unlearnbench.run.pool_plan import pool_only

POOL_METRICS = ["eps-score", "klom", "u-lira"]

pytestmark = pytest.mark.usefixtures("one_thread_and_plugins")


def pool_recipe(epochs: int) -> Callable[[Any], Any]:
    """A protocol edit: pools train with a recipe ``fast`` of ``epochs`` epochs."""

    def edit(protocol: Any) -> Any:
        recipe = replace(protocol.recipe, epochs=epochs)
        return replace(protocol, pools=replace(protocol.pools, recipe="fast"), pool_recipe=recipe)

    return edit


def pool_parent(graph: Any, unlearner: str, kind: str, unprune: bool = False) -> Any:
    row = next(r for r in graph.rows if r.row.unlearner == unlearner and r.row.unprune == unprune)
    return graph.nodes[graph.nodes[row.evaluate].parent(f"pool:{kind}")]


def member_nodes(graph: Any, pool: Any) -> list[Any]:
    return [graph.nodes[key] for _, key in pool.parents]


def test_pools_are_planned_only_for_pool_metrics_and_shared() -> None:
    common = [("unlearn.unlearners", ["ft", "ga"]), ("unprune.unpruners", ["reprune"])]
    common += [("pools.size", 3), ("pools.shadow_size", 2)]
    plain = planned([*common, ("evaluate.metrics", ["ua"])])
    assert not [n for n in plain.nodes.values() if n.stage.startswith("pool")] and not pool_only(plain)
    graph = planned([*common, ("evaluate.metrics", POOL_METRICS)])
    count = Counter(n.stage for n in graph.nodes.values())
    assert count["original"] == 1 + 3  # the row seed and the pool seeds, shared by every pool
    assert count["pool-shadow"] == 2  # once per protocol, whatever the rows
    # per forget set (2): a retrain pool with and one without un-pruning, an unlearned pool per row
    # (original, ft, ga, ft + un-prune, ga + un-prune) and one shadow pool
    assert len(graph.rows) == 2 * 5 and count["pool"] == 2 * (2 + 5 + 1)
    ft = member_nodes(graph, pool_parent(graph, "ft", "unlearned"))
    retrain = member_nodes(graph, pool_parent(graph, "ft", "retrain"))
    assert [n.unlearner for n in ft] == ["ft"] * 3 and [n.unlearner for n in retrain] == ["retrain"] * 3
    assert [n.seed for n in ft] == [n.seed for n in retrain] == [1000, 1001, 1002]
    # retrained member i lives under the topology of pruned original i, as unlearned member i
    assert [n.parent("start") for n in ft] == [n.parent("start") for n in retrain]
    assert all(graph.nodes[n.parent("start")].stage == "prune" for n in ft)
    assert pool_parent(graph, "ga", "retrain").key == pool_parent(graph, "ft", "retrain").key
    assert pool_parent(graph, "ga", "shadow").key == pool_parent(graph, "ft", "shadow").key
    # the shadow pool serves the attacks on forget and held-out examples: no retain set
    assert pool_parent(graph, "ft", "shadow").inputs["splits"] == ["forget", "test", "forget_test"]
    assert "retain" in pool_parent(graph, "ft", "retrain").inputs["splits"]
    original = member_nodes(graph, pool_parent(graph, "original", "unlearned"))
    assert {n.stage for n in original} == {"prune"}  # the original row's pool: pruned originals
    # un-prune rows: the un-prune pipeline at each pool seed (the gold, re-pruned pools)
    unpruned = member_nodes(graph, pool_parent(graph, "ft", "retrain", unprune=True))
    assert {(n.stage, n.unlearner) for n in unpruned} == {("unprune", "retrain")}
    assert {graph.nodes[k].stage for k in pool_only(graph)} >= {"original", "prune", "unlearn", "pool"}


def test_a_reference_row_has_pools_of_its_own_reference() -> None:
    """With a gold metric beside the pool metrics, the ``gold`` row's unlearned pool is gold at each
    pool seed (the retain-set topology), and its retrain pool is the masked retrain pool every
    plain row of its setting shares."""
    metrics = ("evaluate.metrics", ["gold-iou", *POOL_METRICS])
    graph = planned([("unlearn.unlearners", ["ft"]), ("unprune.modes", [False]), ("pools.size", 2), metrics])
    gold = member_nodes(graph, pool_parent(graph, "gold", "unlearned"))
    assert [(n.stage, n.seed) for n in gold] == [("retain-topology", 1000), ("retain-topology", 1001)]
    assert pool_parent(graph, "gold", "retrain").key == pool_parent(graph, "ft", "retrain").key
    assert pool_parent(graph, "gold", "shadow").key == pool_parent(graph, "ft", "shadow").key


def test_a_pool_recipe_other_than_the_training_recipe_is_refused_for_row_pools() -> None:
    with pytest.raises(InvalidValueError, match=r"pools.recipe = 'fast' applies to shadow pools only"):
        planned([("evaluate.metrics", ["klom"])], pool_recipe(1))
    shadow = planned([("evaluate.metrics", ["u-lira"])], pool_recipe(1)).nodes.values()
    assert {n.inputs["recipe"]["epochs"] for n in shadow if n.stage == "pool-shadow"} == {1}


TINY = [
    ("data.limit", 150),
    ("train.epochs", 1),
    ("unlearn.params.retrain.epochs", 1),
    ("unlearn.params.ft.epochs", 1),
    ("unlearn.params.ga.epochs", 1),
    ("unprune.modes", [False]),
    ("unlearn.unlearners", ["ft", "ga"]),
    ("pools.size", 2),
]


def pipeline(out: Path, metrics: list[str], events: list[StageFinished], executor: str = "local") -> Pipeline:
    registry = Registry(create_host(autoload=True, plugins=[recorder(events)]))
    overrides = [*TINY, ("evaluate.metrics", metrics)]
    protocol = load_protocol(registry.protocol_path(PROTOCOL), overrides, registry)
    return Pipeline(protocol, registry, RunSettings(out=out, device="cpu"), executor=executor)


@pytest.fixture(scope="module")
def pooled_run(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, Pipeline, list[dict[str, Any]], list[Any]]:
    out = tmp_path_factory.mktemp("pools")
    events: list[StageFinished] = []
    runner = pipeline(out, POOL_METRICS, events)
    return out, runner, list(runner.run()), events


def test_pools_are_built_once_per_protocol_and_details_are_stored(
    pooled_run: tuple[Path, Pipeline, list[dict[str, Any]], list[Any]],
) -> None:
    out, runner, records, events = pooled_run
    assert [r["status"] for r in records] == ["ok"] * 2 * 3  # two forget sets x original, ft, ga
    computed = Counter((e.stage, e.key) for e in events if not e.reused)
    assert max(computed.values()) == 1 and len(events) == len(runner.graph.nodes)
    stages = Counter(stage for stage, _ in computed)
    assert stages["original"] == 1 + 2 and stages["pool-shadow"] == 2
    # per forget set: the two rows, each unlearner at the 2 pool seeds, 2 retrained members
    assert stages["unlearn"] == 2 * (2 + 2 * 2 + 2)
    assert stages["pool"] == 2 * (1 + 3 + 1)  # retrain, unlearned per row, shadow
    by_row = {(r["forget_set"], r["unlearner"]): r for r in records}
    store = ArtifactStore(out / "artifacts")
    for row in runner.graph.rows:
        payload = store.get("evaluate", row.evaluate).meta["payload"]  # type: ignore[union-attr]
        details = payload["metric_details"]
        assert set(details) == set(POOL_METRICS)
        kl, eps = details["klom"]["kl"], details["eps-score"]["epsilon"]
        assert len(kl) == len(eps) == len(details["u-lira"]["scores_forget"]) > 0
        if row.row.forget == "random10":
            assert len(kl) == round(0.1 * 150)  # one value per forget example
        record = by_row[(row.row.forget, row.row.unlearner)]
        assert all(not isinstance(v, list) for v in json.loads(json.dumps(record["metric_details"])).values())
    # a run with one pool metric reads every pool node from the store and computes only evaluation
    again: list[StageFinished] = []
    list(pipeline(out, ["klom"], again).run())
    assert {e.stage for e in again if not e.reused} == {"evaluate"}
    assert Counter(e.stage for e in again)["pool"] == 2 * (1 + 3)


@pytest.mark.usefixtures("ray_session")
def test_the_ray_executor_runs_pool_members_as_tasks_once(
    pooled_run: tuple[Path, Pipeline, list[dict[str, Any]], list[Any]],
    tmp_path: Path,
) -> None:
    events: list[StageFinished] = []
    runner = pipeline(tmp_path, POOL_METRICS, events, executor="ray")
    records = {r["row_id"]: r["metrics"] for r in runner.run()}
    computed = Counter((e.stage, e.key) for e in events if not e.reused)
    assert max(computed.values()) == 1 and len(computed) == len(runner.graph.nodes)
    assert records == {r["row_id"]: r["metrics"] for r in pooled_run[2]}
