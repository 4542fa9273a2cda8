"""The run graph: planning (torch-free, references only when needed, keys in one place), the
local and Ray executors (shared nodes computed once, same records), and the layout rules."""

from __future__ import annotations

import ast
import subprocess
import sys
import types
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import torch
from unlearnbench_unlearners.finetune import FineTune

from unlearnbench import hookimpl
from unlearnbench.config.protocol import load_protocol
from unlearnbench.registry.catalog import Registry
from unlearnbench.registry.events import EpochLogged, StageFinished
from unlearnbench.registry.host import create_host
from unlearnbench.run.pipeline import Pipeline, RunSettings
from unlearnbench.run.plan import ComponentInfo, PlanInputs, plan

ROOT = Path(__file__).resolve().parents[1]
PROTOCOL = "digits-quickstart"
TINY = [("data.limit", 120), ("train.epochs", 2), ("unlearn.params.ft.epochs", 1), ("unprune.modes", [False])]


pytestmark = pytest.mark.usefixtures("one_thread_and_plugins")


def recorder(events: list[StageFinished]) -> types.ModuleType:
    plugin = types.ModuleType("ub_graph_recorder")

    @hookimpl
    def unlearnbench_stage_finished(event: StageFinished) -> None:
        events.append(event)

    plugin.unlearnbench_stage_finished = unlearnbench_stage_finished  # type: ignore[attr-defined]
    return plugin


def pipeline(
    out: Path, overrides: Sequence[tuple[str, Any]], events: list[StageFinished], executor: str = "local"
) -> Pipeline:
    registry = Registry(create_host(autoload=True, plugins=[recorder(events)]))
    protocol = load_protocol(registry.protocol_path(PROTOCOL), [*TINY, *overrides], registry)
    return Pipeline(protocol, registry, RunSettings(out=out, device="cpu"), executor=executor)


def computed(events: list[StageFinished]) -> Counter[tuple[str, str]]:
    return Counter((e.stage, e.key) for e in events if not e.reused)


# --------------------------------------------------------------------------------------------
# Planning
# --------------------------------------------------------------------------------------------
def planned(overrides: Sequence[tuple[str, Any]], edit: Callable[[Any], Any] | None = None) -> Any:
    """The graph of the quickstart with ``overrides`` (and ``edit`` applied to the protocol),
    planned from made-up data sizes."""
    registry = Registry(create_host(autoload=True))
    protocol = load_protocol(registry.protocol_path(PROTOCOL), overrides, registry)
    protocol = protocol if edit is None else edit(protocol)
    components = [
        registry.create("dataset", "digits"),
        registry.create("model", "small-cnn", protocol.model.params),
    ]
    for kind, names in (
        ("pruner", protocol.prune.pruners),
        ("unlearner", [*protocol.unlearn.unlearners, "retrain"]),
        ("unpruner", protocol.unprune.unpruners),
        ("metric", protocol.evaluate.metrics),
    ):
        components += [registry.create(kind, n) for n in names]
    inputs = PlanInputs(
        data_id={"copy": "x", "sizes": [1000, 0, 300]},
        forget_sha256={f.name: f.name * 8 for f in protocol.forget},
        forget_size={f.name: 100 for f in protocol.forget},
        components={(c.kind, c.name): ComponentInfo.of(c) for c in components},
    )
    return plan(protocol, inputs)


def stages(graph: Any) -> Counter[str]:
    return Counter(n.stage for n in graph.nodes.values())


def test_the_planner_imports_without_torch() -> None:
    code = "import sys, unlearnbench.run.plan; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_a_matrix_shares_the_original_and_the_retrain_reference() -> None:
    graph = planned(
        [("seeds", [0, 1, 2]), ("prune.sparsities", [0.5, 0.9]), ("unlearn.unlearners", ["ft", "ga"])]
    )
    count = stages(graph)
    assert count["original"] == 3  # one per seed, shared by both sparsities and every row
    assert count["prune"] == 3 * 2
    # ua/ra/ta/mia are gap metrics: the retrain rows are added, one unlearn node per row group.
    retrain = [n for n in graph.nodes.values() if n.stage == "unlearn" and n.unlearner == "retrain"]
    assert len(retrain) == 3 * 2 * 2
    assert {(r.row.unlearner, r.row.unprune) for r in graph.rows} >= {("retrain", False), ("ft", True)}
    assert ("retrain", True) not in {(r.row.unlearner, r.row.unprune) for r in graph.rows}
    assert len(graph.order()) == len(graph.nodes)


def test_references_are_planned_only_when_a_metric_needs_them() -> None:
    plain = planned([("evaluate.metrics", ["fta", "rte"]), ("unlearn.unlearners", ["ft"])])
    assert stages(plain)["retain-dense"] == stages(plain)["retain-topology"] == 0
    assert {r.row.unlearner for r in plain.rows} == {"original", "ft"}  # no gap metric: no retrain row
    topology = planned([("evaluate.metrics", ["mask-iou"]), ("unlearn.unlearners", ["ft"])])
    assert stages(topology)["retain-topology"] == 2  # one per forget set
    dense = planned([("evaluate.metrics", ["mask-iou"]), ("prune.sparsities", [0.0])])
    assert stages(dense)["prune"] == stages(dense)["retain-dense"] == stages(dense)["unprune"] == 0


def test_unprune_skip_drops_only_the_named_unlearners_un_prune_rows() -> None:
    base = [("unlearn.unlearners", ["retrain", "ft", "ga"]), ("unprune.modes", [False, True])]
    every = {(r.row.unlearner, r.row.unprune) for r in planned(base).rows}
    assert ("retrain", True) in every and ("ft", True) in every
    skipped = planned([*base, ("unprune.skip", ["retrain"])])
    rows = {(r.row.unlearner, r.row.unprune) for r in skipped.rows}
    assert rows == every - {("retrain", True)}
    narrowed = planned([*base, ("unprune.skip", ["retrain"]), ("unlearn.unlearners", ["ft"])])
    assert {r.row.unlearner for r in narrowed.rows if r.row.unprune} == {"ft"}  # --unlearner ft still plans


def test_a_failed_node_takes_down_its_dependents_only() -> None:
    graph = planned([("unlearn.unlearners", ["ft", "ga"]), ("unprune.modes", [False])])
    ft = next(n for n in graph.nodes.values() if n.stage == "unlearn" and n.unlearner == "ft")
    down = graph.dependents(ft.key)
    assert {graph.nodes[k].stage for k in down} == {"evaluate"}
    assert len(down) == 1


# --------------------------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------------------------
def test_a_version_bump_recomputes_exactly_the_dependent_nodes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    overrides = [("unlearn.unlearners", ["retrain", "ft"]), ("evaluate.metrics", ["ua", "ra"])]
    first: list[StageFinished] = []
    runner = pipeline(tmp_path, overrides, first)
    assert all(r["status"] == "ok" for r in runner.run())
    assert computed(first) and max(computed(first).values()) == 1  # each node once per run
    monkeypatch.setattr(FineTune, "version", FineTune.version + 1)
    second: list[StageFinished] = []
    bumped = pipeline(tmp_path, overrides, second)
    records = list(bumped.run())
    assert {r["versions"]["unlearner"] for r in records if r["unlearner"] == "ft"} == {
        f"ft@{FineTune.version}"
    }
    ft_nodes = [n.key for n in bumped.graph.nodes.values() if n.unlearner == "ft" and n.stage == "unlearn"]
    expected = set(ft_nodes).union(*(bumped.graph.dependents(k) for k in ft_nodes))
    assert {key for _, key in computed(second)} == expected
    assert Counter(stage for stage, _ in computed(second)) == {"unlearn": 2, "evaluate": 2}
    assert len(second) == len(bumped.graph.nodes)  # one event per node, reused or computed


def test_a_protocol_recipe_retrain_shares_the_retain_set_training_of_its_dense_rows(tmp_path: Path) -> None:
    overrides = [
        ("unlearn.unlearners", ["retrain"]),
        ("unlearn.params.retrain.protocol_recipe", True),
        ("prune.sparsities", [0.0, 0.9]),
        ("evaluate.metrics", ["ua", "ra", "rte", "mask-iou"]),
        ("unprune.modes", [False]),
    ]
    events: list[StageFinished] = []
    runner = pipeline(tmp_path, overrides, events)
    records = list(runner.run())
    retrain = [r for r in records if r["unlearner"] == "retrain"]
    assert len(retrain) == 4 and all(r["status"] == "ok" and r["metrics"]["rte"] > 0 for r in retrain)
    nodes = runner.graph.nodes
    dense = [p.model for p in runner.graph.rows if p.row.unlearner == "retrain" and p.row.sparsity == 0.0]
    assert {nodes[k].stage for k in dense} == {"retain-dense"}
    # the sparse retrain rows still retrain under the original mask; retain-dense nodes (one per
    # forget set, shared with the retain topology) are each computed once
    assert Counter(stage for stage, _ in computed(events))["retain-dense"] == 2
    assert Counter(stage for stage, _ in computed(events))["unlearn"] == 2


MATRIX = [
    ("seeds", [0, 1]),
    ("prune.sparsities", [0.5, 0.9]),
    ("unlearn.unlearners", ["retrain", "ft"]),
    ("evaluate.metrics", ["ua", "ra"]),
]


@pytest.fixture(scope="module")
def ray_session() -> Iterator[Any]:
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def local_matrix(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[list[dict[str, Any]], list[StageFinished]]:
    events: list[StageFinished] = []
    records = list(pipeline(tmp_path_factory.mktemp("local"), MATRIX, events).run())
    return records, events


def check_shared_nodes(runner: Pipeline, events: list[StageFinished]) -> None:
    count = computed(events)
    assert max(count.values()) == 1
    assert len(events) == len(runner.graph.nodes)
    originals = [k for s, k in count if s == "original"]
    assert len(originals) == 2  # one per seed
    retrain = {
        n.key for n in runner.graph.nodes.values() if n.stage == "unlearn" and n.unlearner == "retrain"
    }
    assert len(retrain) == 2 * 2 * 2 and retrain <= {k for _, k in count}


def test_the_local_executor_computes_each_shared_node_once(
    local_matrix: tuple[list[dict[str, Any]], list[StageFinished]], tmp_path: Path
) -> None:
    records, events = local_matrix
    assert len(records) == 2 * 2 * 2 * 3 and all(r["status"] == "ok" for r in records)
    check_shared_nodes(pipeline(tmp_path, MATRIX, []), events)


def without_timings(record: dict[str, Any]) -> dict[str, Any]:
    metrics = {k: v for k, v in record["metrics"].items() if k != "rte"}
    timed = ("runtime_s", "provenance")  # wall times and when each node was computed
    return {**{k: v for k, v in record.items() if k not in timed}, "metrics": metrics}


def test_the_ray_executor_gives_the_local_records_computing_shared_nodes_once(
    ray_session: Any, local_matrix: tuple[list[dict[str, Any]], list[StageFinished]], tmp_path: Path
) -> None:
    events: list[StageFinished] = []
    runner = pipeline(tmp_path / "ray", MATRIX, events, executor="ray")
    records = list(runner.run())
    check_shared_nodes(runner, events)
    local = {r["row_id"]: without_timings(r) for r in local_matrix[0]}
    assert {r["row_id"]: without_timings(r) for r in records} == local
    again: list[StageFinished] = []
    list(pipeline(tmp_path / "ray", MATRIX, again, executor="ray").run())
    assert again and all(e.reused for e in again)


# --------------------------------------------------------------------------------------------
# Layout
# --------------------------------------------------------------------------------------------
def test_no_stage_module_imports_another() -> None:
    folder = ROOT / "unlearnbench" / "run" / "stages"
    modules = {p.stem for p in folder.glob("*.py")} - {"__init__", "common"}
    for path in folder.glob("*.py"):
        if path.stem == "__init__":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            names += [a.name for a in node.names] if isinstance(node, ast.Import) else []
            for name in names:
                assert name.rsplit(".", 1)[-1] not in modules, (path.name, name)


def test_core_modules_stay_short() -> None:
    long = {
        str(p.relative_to(ROOT)): n
        for p in (ROOT / "unlearnbench").rglob("*.py")
        if (n := len(p.read_text().splitlines())) > 330
    }
    assert long == {}


def test_the_plan_command_shows_nodes_cached_and_the_cost_left(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from unlearnbench.cli import cli

    args = ["plan", PROTOCOL, "--limit", "120", "--set", "train.epochs=2", "--unlearner", "ft"]
    args += ["--no-unprune"]
    args += ["--metric", "ua", "--device", "cpu", "--out", str(tmp_path)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    text = " ".join(result.stdout.split())
    assert "0/12 nodes cached" in text  # 1 original + 1 prune + 2x(retrain, ft) unlearn + 6 evaluate
    assert "training example-passes" in text
    assert not (tmp_path / "artifacts").exists()


def test_an_fsspec_store_round_trips_an_artifact() -> None:
    pytest.importorskip("fsspec")
    from unlearnbench.run.artifacts import ArtifactStore, artifact_key
    from unlearnbench.run.runner import read_output

    store = ArtifactStore("memory://ub-graph-test/artifacts")
    key = artifact_key("original", {"seed": 0})
    assert store.get("original", key) is None
    state = {"w": torch.arange(6.0).reshape(2, 3)}

    def write(folder: Path) -> dict[str, Any]:
        torch.save(state, folder / "model.pt")
        return {"runtime_s": 1.5}

    store.put("original", key, {"seed": 0}, write)
    found = store.get("original", key)
    assert found is not None and found.names() == ["meta.json", "model.pt"]
    output = read_output(found)
    assert torch.equal(output.state["w"], state["w"]) and output.runtime_s == 1.5  # type: ignore[union-attr]


def test_per_epoch_values_reach_the_record_and_the_event_hook(tmp_path: Path) -> None:
    logged: list[EpochLogged] = []
    plugin = types.ModuleType("ub_graph_epoch_recorder")

    @hookimpl
    def unlearnbench_epoch_logged(event: EpochLogged) -> None:
        logged.append(event)

    plugin.unlearnbench_epoch_logged = unlearnbench_epoch_logged  # type: ignore[attr-defined]
    registry = Registry(create_host(autoload=True, plugins=[plugin]))
    overrides = [
        *TINY,
        ("unlearn.unlearners", ["neggrad+"]),
        ("unprune.modes", [False]),
        ("evaluate.metrics", ["ua"]),
        ("unlearn.params.neggrad+.epochs", 2),
    ]
    protocol = load_protocol(registry.protocol_path(PROTOCOL), overrides, registry)
    records = list(Pipeline(protocol, registry, RunSettings(out=tmp_path, device="cpu")).run())
    rows = [r for r in records if r["unlearner"] == "neggrad+"]
    assert rows and all(r["status"] == "ok" for r in rows)
    for row in rows:
        log = row["epoch_log"]["unlearn"]
        assert [e["epoch"] for e in log if e["name"] == "forget_loss"] == [1, 2]
    unlearned = [e for e in logged if e.component == "neggrad+"]
    assert {e.name for e in unlearned} == {"forget_loss"}
    assert len(unlearned) == 2 * len(rows)
    # the original's training logs its loss and accuracy per epoch too (once: one original node)
    trained = [(e.epoch, e.name) for e in logged if e.stage == "original"]
    names = ("train_loss", "train_acc")
    assert sorted(trained) == sorted((i, n) for i in range(1, protocol.recipe.epochs + 1) for n in names)
