"""Provenance follows the artifact, a component's source is part of its identity, --rerun and
--force recompute on purpose, and the weight guards name the component that broke the weights."""

from __future__ import annotations

import types
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import torch
from test_run_graph import recorder  # the stage-event recorder plugin
from torch import nn
from unlearnbench_unlearners.finetune import FineTune

from unlearnbench import hookimpl
from unlearnbench.api import Unlearner, UnlearnTask
from unlearnbench.config.protocol import load_protocol
from unlearnbench.registry.catalog import Registry
from unlearnbench.registry.events import StageFinished
from unlearnbench.registry.host import DISABLE_AUTOLOAD_ENV, ONLY_PLUGINS_ENV, create_host
from unlearnbench.report.leaderboard import render
from unlearnbench.run import graph as graph_module
from unlearnbench.run.pipeline import Pipeline, RunSettings, fresh_keys
from unlearnbench.training.engine import bf16_supported
from unlearnbench.training.masks import Mask

TINY = [("data.limit", 120), ("train.epochs", 2), ("unlearn.params.ft.epochs", 1), ("unprune.modes", [False])]
FT_ONLY = [("unlearn.unlearners", ["ft"]), ("evaluate.metrics", ["ua", "rte"])]


@pytest.fixture(autouse=True)
def one_thread_and_plugins(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    monkeypatch.delenv(DISABLE_AUTOLOAD_ENV, raising=False)
    monkeypatch.delenv(ONLY_PLUGINS_ENV, raising=False)
    yield
    torch.set_num_threads(threads)


def pipeline(
    out: Path,
    overrides: Sequence[tuple[str, Any]],
    events: list[StageFinished] | None = None,
    plugins: Sequence[Any] = (),
    **options: Any,
) -> Pipeline:
    registry = Registry(
        create_host(autoload=True, plugins=[recorder([] if events is None else events), *plugins])
    )
    protocol = load_protocol(registry.protocol_path("digits-quickstart"), [*TINY, *overrides], registry)
    return Pipeline(protocol, registry, RunSettings(out=out, device="cpu"), **options)


def computed(events: list[StageFinished]) -> Counter[str]:
    return Counter(e.stage for e in events if not e.reused)


# ---------------------------------------------------------------------------------- provenance
def test_records_report_the_threads_that_computed_the_artifacts_not_the_current_ones(tmp_path: Path) -> None:
    overrides = [("unlearn.unlearners", ["ft"]), ("evaluate.metrics", ["ua", "rte"])]
    first = list(pipeline(tmp_path, overrides).run())
    assert {r["provenance"]["unlearn"]["threads"] for r in first if r["unlearner"] == "ft"} == {1}
    again = list(pipeline(tmp_path, overrides).run())  # the same settings: every node reused
    for record in again:
        assert record["device"].endswith("1 threads)"), record["device"]
        assert {p["threads"] for p in record["provenance"].values()} == {1}
        precision = "bf16-autocast" if bf16_supported(torch.device("cpu")) else "fp32"
        assert {p["precision"] for p in record["provenance"].values()} == {precision}
    rte = {r["row_id"]: r["metrics"]["rte"] for r in first}
    assert {r["row_id"]: r["metrics"]["rte"] for r in again} == rte  # RTE of the cached node
    board = render(again)
    assert "RTE device" not in board  # one device/thread count: named once in the caption
    # The thread count is part of every key: at 2 threads nothing computed at 1 is reused.
    torch.set_num_threads(2)
    events: list[StageFinished] = []
    other = list(pipeline(tmp_path, overrides, events).run())
    assert events and not any(e.reused for e in events)
    assert {p["threads"] for r in other for p in r["provenance"].values()} == {2}
    board = render(first + other)  # records of both settings in one table: the board says which
    assert "RTE device" in board and "2 threads" in board and "1 threads" in board


# ------------------------------------------------------------------------ identity, rerun, force
def test_editing_a_component_module_recomputes_exactly_its_nodes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first: list[StageFinished] = []
    runner = pipeline(tmp_path, FT_ONLY, first)
    list(runner.run())
    same: list[StageFinished] = []
    assert pipeline(tmp_path, FT_ONLY, same).graph.nodes.keys() == runner.graph.nodes.keys()
    real = graph_module.source_sha256
    monkeypatch.setattr(graph_module, "source_sha256", lambda cls: "edited" if cls is FineTune else real(cls))
    second: list[StageFinished] = []
    edited = pipeline(tmp_path, FT_ONLY, second)
    list(edited.run())
    ft = [n.key for n in edited.graph.nodes.values() if n.unlearner == "ft" and n.stage == "unlearn"]
    expected = set(ft).union(*(edited.graph.dependents(k) for k in ft))
    assert {e.key for e in second if not e.reused} == expected
    assert computed(second) == {"unlearn": len(ft), "evaluate": len(ft)}


def test_rerun_recomputes_a_stage_and_its_dependents_and_force_everything(tmp_path: Path) -> None:
    runner = pipeline(tmp_path, FT_ONLY)
    graph = runner.graph
    assert fresh_keys(graph, (), True) == frozenset(graph.nodes)
    assert fresh_keys(graph, (), False) == frozenset()
    list(runner.run())
    events: list[StageFinished] = []
    list(pipeline(tmp_path, FT_ONLY, events, rerun=["prune"]).run())
    assert "original" not in computed(events) and computed(events)["prune"] == 1
    assert computed(events)["evaluate"] == stages_of(graph)["evaluate"]
    events.clear()
    list(pipeline(tmp_path, FT_ONLY, events, force=True).run())
    assert sum(computed(events).values()) == len(graph.nodes)


def stages_of(graph: Any) -> Counter[str]:
    return Counter(n.stage for n in graph.nodes.values())


def test_a_failed_rerun_keeps_the_stored_artifact_and_the_ok_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = pipeline(tmp_path, FT_ONLY)
    before = {r["row_id"]: r for r in runner.run()}
    node = next(n for n in runner.graph.nodes.values() if n.unlearner == "ft" and n.stage == "unlearn")
    meta = (runner.store.path("unlearn", node.key) / "meta.json").read_bytes()

    def broken(self: Any, model: nn.Module, task: UnlearnTask) -> nn.Module:
        raise RuntimeError("boom")

    monkeypatch.setattr(FineTune, "unlearn", broken)
    again = list(pipeline(tmp_path, FT_ONLY, rerun=["unlearn"]).run())
    assert any(r["status"] == "failed" and "boom" in r["error"] for r in again)
    assert (runner.store.path("unlearn", node.key) / "meta.json").read_bytes() == meta
    kept = {r["row_id"]: r for r in runner.results.records()}
    ft = [k for k, r in before.items() if r["unlearner"] == "ft"]
    assert ft and all(kept[k] == before[k] for k in ft)  # the ok rows stand; failures went to attempts


def test_an_unknown_rerun_stage_is_refused_with_the_choices(tmp_path: Path) -> None:
    from unlearnbench.errors import UnknownChoiceError

    choices = r"valid choices: evaluate, external, original, .*unlearn, unprune"
    with pytest.raises(UnknownChoiceError, match=choices):
        pipeline(tmp_path, FT_ONLY, rerun=["unlearnn"])


# ---------------------------------------------------------------------------------------- guards
class NanUnlearner(Unlearner):
    """A broken third-party unlearner (test only): leaves NaN in the first conv's weights."""

    name = "nan-plugin"
    version = 1

    def unlearn(self, model: nn.Module, task: UnlearnTask) -> nn.Module:
        with torch.no_grad():
            next(model.parameters()).fill_(float("nan"))
        return model


class MaskMover(Unlearner):
    """A broken third-party unlearner (test only): sets every pruned weight to 1."""

    name = "mask-mover"
    version = 1

    def unlearn(self, model: nn.Module, task: UnlearnTask) -> nn.Module:
        assert task.mask is not None
        params = dict(model.named_parameters())
        with torch.no_grad():
            for name, keep in task.mask.tensors.items():
                params[name].masked_fill_(~keep, 1.0)
        return model


def broken_plugin() -> types.ModuleType:
    plugin = types.ModuleType("ub_broken_unlearners")

    @hookimpl
    def unlearnbench_register_unlearners() -> list[type[Unlearner]]:
        return [NanUnlearner, MaskMover]

    plugin.unlearnbench_register_unlearners = unlearnbench_register_unlearners  # type: ignore[attr-defined]
    return plugin


def test_nan_weights_fail_the_row_naming_the_unlearner_and_moved_weights_are_counted(
    tmp_path: Path,
) -> None:
    overrides = [
        ("unlearn.unlearners", ["nan-plugin", "mask-mover"]),
        ("evaluate.metrics", ["ua", "mia-efficacy"]),
    ]
    runner = pipeline(tmp_path, overrides, plugins=[broken_plugin()])
    records = {r["unlearner"]: r for r in runner.run()}
    nan = records["nan-plugin"]
    assert nan["status"] == "failed"
    assert nan["error"].startswith(
        "StageFailed: unlearn (nan-plugin) produced non-finite weights in 1 tensor: "
    )
    assert "mia" not in nan["error"].lower() and "Traceback" not in nan["error"]
    moved = records["mask-mover"]
    mask = next(iter(runner.store.root.glob("prune/*/mask.pt")))
    loaded = Mask.from_state_dict(torch.load(mask, weights_only=True))
    pruned = sum(int((~keep).sum()) for keep in loaded.tensors.values())
    assert moved["status"] == "ok" and moved["mask_violations"] == {"prune": 0, "unlearn": pruned}
    assert records["original"]["mask_violations"] == {"prune": 0}
    board = render(runner.results.records())
    assert "| mask-mover †" in board and f"re-masked: {pruned:,} in unlearn" in board
    assert "| original †" not in board
