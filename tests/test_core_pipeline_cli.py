"""The command line and the pipeline end to end: listings, one-line errors for bad input, a small
digits run (results schema, leaderboard), cached re-runs, interrupted runs, failing components."""

from __future__ import annotations

import json
import types
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
from click.testing import CliRunner, Result
from torch import nn
from unlearnbench_models.small_cnn import SmallCNN
from unlearnbench_unlearners.finetune import FineTune

from unlearnbench import cli as cli_module
from unlearnbench import hookimpl
from unlearnbench.cli import cli
from unlearnbench.config.protocol import load_protocol
from unlearnbench.registry import host as plugin_manager
from unlearnbench.registry.catalog import Registry
from unlearnbench.registry.components import Metric, Unlearner, UnlearnTask
from unlearnbench.registry.events import StageFinished
from unlearnbench.registry.host import create_host
from unlearnbench.report.record import ResultRecord
from unlearnbench.report.results import read_records
from unlearnbench.run.evaluation import EvalContext
from unlearnbench.run.pipeline import Pipeline, RunSettings
from unlearnbench.training.pruning import kept_count, scope_parameter_names

PROTOCOL = "digits-quickstart"
# A tiny but complete quickstart: every stage runs, on 300 examples per split, in seconds.
SETS = {
    "train.epochs": 3,
    "unlearn.params.ft.epochs": 1,
    "unlearn.params.ga.epochs": 1,
    "unprune.params.reprune.finetune_epochs": 1,
    "unprune.params.control.finetune_epochs": 1,
}
LIMIT = 300
RUN_ARGS = [
    "run",
    PROTOCOL,
    "--device",
    "cpu",
    "--limit",
    str(LIMIT),
    *[arg for key, value in SETS.items() for arg in ("--set", f"{key}={value}")],
]
OVERRIDES = [*SETS.items(), ("data.limit", LIMIT)]  # what the CLI turns RUN_ARGS into
SCHEMA_FIELDS = (
    "protocol",
    "protocol_version",
    "protocol_hash",
    "dataset",
    "model",
    "pruner",
    "sparsity",
    "unlearner",
    "unprune",
    "seed",
    "metrics",
    "runtime_s",
    "versions",
    "device",
    "git",
)


pytestmark = pytest.mark.usefixtures("one_thread_and_plugins")


@pytest.fixture(scope="module")
def registry() -> Registry:
    return Registry(create_host(autoload=True))


def invoke(args: Sequence[str]) -> Result:
    return CliRunner().invoke(cli, list(args))


def flat(text: str) -> str:
    """``text`` without any whitespace (rich wraps long lines wherever it likes)."""
    return "".join(text.split())


# --------------------------------------------------------------------------------------------
# Test plugins: an unlearner that raises, one interrupted on its first call, a stage recorder
# --------------------------------------------------------------------------------------------
class Boom(Unlearner):
    """Always raises."""

    name = "core-boom"

    def unlearn(self, model: nn.Module, task: UnlearnTask) -> nn.Module:
        raise RuntimeError("boom: deliberate failure")


ARMED = {"interrupt": False}


class InterruptOnce(Unlearner):
    """One epoch of FT; raises KeyboardInterrupt on its first call while ARMED."""

    name = "core-interrupt"

    def unlearn(self, model: nn.Module, task: UnlearnTask) -> nn.Module:
        if ARMED["interrupt"]:
            ARMED["interrupt"] = False
            raise KeyboardInterrupt
        return FineTune(FineTune.Params(epochs=1, lr=0.01)).unlearn(model, task)


def unlearner_plugin() -> types.ModuleType:
    plugin = types.ModuleType("ub_core_cli_unlearners")

    @hookimpl
    def unlearnbench_register_unlearners() -> list[type]:
        return [Boom, InterruptOnce]

    plugin.unlearnbench_register_unlearners = unlearnbench_register_unlearners  # type: ignore[attr-defined]
    return plugin


def recorder_plugin(events: list[StageFinished]) -> types.ModuleType:
    plugin = types.ModuleType("ub_core_cli_recorder")

    @hookimpl
    def unlearnbench_stage_finished(event: StageFinished) -> None:
        events.append(event)

    plugin.unlearnbench_stage_finished = unlearnbench_stage_finished  # type: ignore[attr-defined]
    return plugin


def make_pipeline(out: Path, overrides: Sequence[tuple[str, Any]], events: list[StageFinished]) -> Pipeline:
    registry = Registry(create_host(autoload=True, plugins=[unlearner_plugin(), recorder_plugin(events)]))
    protocol = load_protocol(registry.protocol_path(PROTOCOL), overrides, registry)
    return Pipeline(protocol, registry, RunSettings(out=out, device="cpu"))


def by_row(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["row_id"]: r for r in records}


def artifact_snapshot(out: Path) -> dict[str, int]:
    return {str(p.relative_to(out)): p.stat().st_mtime_ns for p in sorted((out / "artifacts").rglob("*"))}


# --------------------------------------------------------------------------------------------
# Listings
# --------------------------------------------------------------------------------------------
def test_plugins_command_lists_the_builtins() -> None:
    result = invoke(["plugins"])
    assert result.exit_code == 0, result.output
    text = flat(result.stdout)
    for plugin in ("datasets", "models", "pruners", "unlearners", "unpruners", "metrics", "protocols"):
        assert plugin in text
    for component in (
        "dataset:digits@",
        "model:small-cnn@",
        "pruner:omp@",
        "unlearner:retrain@",
        "unlearner:ft@",
        "unlearner:ga@",
        "unlearner:l1-sparse@",
        "unpruner:reprune@",
        "metric:ua@",
        "metric:ra@",
        "metric:ta@",
        "metric:mia-efficacy@",
        "metric:rte@",
        "metric:mask-iou@",
        "protocol:digits-quickstart",
    ):
        assert component in text, component


def test_plugins_command_shows_a_broken_plugin_next_to_the_others(monkeypatch: pytest.MonkeyPatch) -> None:
    from importlib.metadata import EntryPoint, entry_points

    installed = list(entry_points(group=plugin_manager.ENTRY_POINT_GROUP))
    broken = EntryPoint(
        name="core-broken", value="ub_core_cli_no_such_module", group=plugin_manager.ENTRY_POINT_GROUP
    )
    monkeypatch.setattr(plugin_manager, "entry_points", lambda group: [*installed, broken])
    result = invoke(["plugins"])
    assert result.exit_code == 0, result.output
    text = flat(result.stdout)
    assert "core-broken" in text
    assert "ModuleNotFoundError" in text
    assert "unlearner:retrain@" in text


def test_protocols_command_lists_the_quickstart(registry: Registry) -> None:
    result = invoke(["protocols"])
    assert result.exit_code == 0, result.output
    loaded = load_protocol(registry.protocol_path(PROTOCOL), (), registry)
    text = flat(result.stdout)
    assert PROTOCOL in text
    assert loaded.short_hash in text
    assert "small-cnn" in text and "digits" in text


# --------------------------------------------------------------------------------------------
# Bad input: a non-zero exit, one error naming the value and the choices, no traceback
# --------------------------------------------------------------------------------------------
BAD_INPUT = [
    (["nosuch-protocol"], ["'nosuch-protocol'", "digits-quickstart"]),
    (["--pruner", "nosuch"], ["unknown pruner 'nosuch'", "omp"]),
    (["--unlearner", "nosuch"], ["unknown unlearner 'nosuch'", "retrain", "ft", "ga", "l1-sparse"]),
    (["--metric", "nosuch"], ["unknown metric 'nosuch'", "ua", "mia-efficacy", "mask-iou"]),
    (["--sparsity", "1.0"], ["1.0", "[0, 1)"]),
    (["--sparsity=-0.1"], ["-0.1", "[0, 1)"]),
    (["--sparsity", "abc"], ["'abc'", "[0, 1)"]),
    (["--sparsity", "0.5,2"], ["2.0", "[0, 1)"]),
    (["--set", "nosuch.key=1"], ["'nosuch'", "train", "unlearn", "data"]),
    (["--set", "train.epochs=abc"], ["epochs", "expected int", "'abc'"]),
    (["--set", "unlearn.params.ft.nosuch=1"], ["'nosuch'", "epochs", "lr"]),
    (["--set", "unlearn.params.nosuch.lr=1"], ["'nosuch'", "retrain", "ga"]),
    (["--set", "train.epochs"], ["'train.epochs'", "KEY=VALUE"]),
    (["--device", "tpu"], ["'tpu'", "auto", "cpu", "cuda"]),
]


@pytest.mark.parametrize(("args", "expected"), BAD_INPUT, ids=[" ".join(a) for a, _ in BAD_INPUT])
def test_run_rejects_bad_input_with_a_clear_error(
    tmp_path: Path, args: list[str], expected: list[str]
) -> None:
    out = tmp_path / "out"
    protocol = [] if args[0] == "nosuch-protocol" else [PROTOCOL]
    result = invoke(["run", *protocol, *args, "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    assert result.stdout == ""
    error = result.stderr.strip()
    assert error.startswith("error:")
    for part in expected:
        assert flat(part) in flat(error), (part, error)
    assert not (out / "results.jsonl").exists()


def test_a_long_error_stays_on_one_line(tmp_path: Path) -> None:
    result = invoke(["run", PROTOCOL, "--set", "nosuch.key=1", "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_missing_cifar10_copy_is_a_clear_error(tmp_path: Path) -> None:
    empty = tmp_path / "no-cifar-here"
    empty.mkdir()
    result = invoke(
        [
            "run",
            "cifar10-resnet18",
            "--data-root",
            str(empty),
            "--no-download",
            "--device",
            "cpu",
            "--out",
            str(tmp_path / "o"),
        ]
    )
    assert result.exit_code != 0
    assert isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    assert result.stderr.strip().startswith("error:")
    assert flat(str(empty)) in flat(result.stderr)


def test_missing_image_folder_is_a_clear_error(tmp_path: Path) -> None:
    empty = tmp_path / "no-images-here"
    empty.mkdir()
    result = invoke(
        [
            "run",
            PROTOCOL,
            "--set",
            "data.dataset=imagefolder",
            "--data-root",
            str(empty),
            "--no-download",
            "--device",
            "cpu",
            "--out",
            str(tmp_path / "o"),
        ]
    )
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    assert result.stderr.strip().startswith("error:")
    assert flat(str(empty)) in flat(result.stderr)


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        ("prune.scope=nosuch", ["'nosuch'", "conv", "conv+linear"]),
        ("train.schedule=nosuch", ["'nosuch'", "constant", "cosine"]),
        ("forget.random10.classes=[12]", ["class 12", "0..9"]),
    ],
)
def test_bad_set_values_are_refused_before_any_work(
    tmp_path: Path, setting: str, expected: list[str]
) -> None:
    out = tmp_path / "out"
    result = invoke(
        [
            *("run", PROTOCOL, "--device", "cpu", "--limit", "200", "--set", "train.epochs=1"),
            *("--unlearner", "ft", "--no-unprune", "--metric", "ua", "--set", setting, "--out", str(out)),
        ]
    )
    assert result.exit_code == 2, result.output
    for part in expected:
        assert flat(part) in flat(result.stderr)
    assert not (out / "artifacts").exists()


# --------------------------------------------------------------------------------------------
# A small end-to-end run
# --------------------------------------------------------------------------------------------
@dataclass
class E2E:
    out: Path
    result: Result
    records: list[dict[str, Any]]


@pytest.fixture(scope="module")
def e2e(tmp_path_factory: pytest.TempPathFactory) -> E2E:
    out = tmp_path_factory.mktemp("e2e")
    result = invoke([*RUN_ARGS, "--out", str(out)])
    assert result.exit_code == 0, result.output
    return E2E(out, result, read_records(out / "results.jsonl"))


def test_end_to_end_run_writes_every_row_with_the_schema(e2e: E2E, registry: Registry) -> None:
    protocol = load_protocol(registry.protocol_path(PROTOCOL), OVERRIDES, registry)
    unpruners = protocol.unprune.unpruners
    assert set(unpruners) == {"reprune", "control"}
    expected_rows = {
        (forget.name, unlearner, unprune, unpruner)
        for forget in protocol.forget
        for unlearner, unprune, unpruner in [("original", False, None), ("gold", False, None)]
        + [(u, False, None) for u in protocol.unlearn.unlearners]
        + [(u, True, n) for u in protocol.unlearn.unlearners for n in unpruners]
    }
    assert len(e2e.records) == len(expected_rows)
    assert {
        (r["forget_set"], r["unlearner"], r["unprune"], r["unpruner"]) for r in e2e.records
    } == expected_rows
    assert len({r["row_id"] for r in e2e.records}) == len(e2e.records)

    model = SmallCNN(SmallCNN.Params(**protocol.model.params)).build(
        num_classes=10, in_channels=1, image_size=8
    )
    params = dict(model.named_parameters())
    total = sum(params[n].numel() for n in scope_parameter_names(model, protocol.prune.scope))
    (target,) = protocol.prune.sparsities
    measured = 1.0 - kept_count(total, target) / total

    for r in e2e.records:
        missing = [f for f in SCHEMA_FIELDS if f not in r]
        assert not missing, missing
        assert r["status"] == "ok" and r["error"] is None
        assert r["protocol"] == PROTOCOL
        assert r["protocol_version"] == protocol.version
        assert r["protocol_hash"] == protocol.hash
        assert r["dataset"] == "digits" and r["data_copy"] == "sklearn-digits"
        assert r["model"] == "small-cnn"
        assert r["pruner"] == "omp" and r["sparsity_target"] == target
        assert r["sparsity"] == measured
        assert r["seed"] == 0
        assert (r["unpruner"] in unpruners) if r["unprune"] else r["unpruner"] is None
        assert set(r["metrics"]) == set(protocol.evaluate.metrics)
        for name in ("ua", "ra", "ta", "mia-efficacy"):
            assert 0.0 <= r["metrics"][name] <= 100.0
        assert 0.0 < r["metrics"]["mask-iou"] <= 1.0
        stage = "unprune" if r["unprune"] else "unlearn"
        if r["unlearner"] == "original":
            assert r["metrics"]["rte"] is None
            assert set(r["runtime_s"]) == {"original", "prune"}
        elif r["unlearner"] == "gold":  # the gold row: the retain-set topology node
            assert r["reference"] == "gold" and r["metrics"]["gold-iou"] == 1.0
            assert set(r["runtime_s"]) == {"original", "prune", "retain-topology"}
        else:
            assert r["metrics"]["rte"] == pytest.approx(r["runtime_s"][stage] / 60.0)
            assert set(r["runtime_s"]) == {"original", "prune", stage}
            version = registry_version(r["unlearner"])
            assert r["versions"]["unlearner"] == f"{r['unlearner']}@{version}"
        assert {"unlearnbench", "torch", "python", "dataset", "model", "pruner"} <= set(r["versions"])
        assert r["versions"]["torch"] == torch.__version__
        assert r["device"].startswith("cpu")
        assert r["git"] is None or isinstance(r["git"], str)
        assert len(r["forget_sha256"]) == 64


def test_end_to_end_unlearning_inside_the_mask_keeps_the_mask(e2e: E2E) -> None:
    """Rows without un-pruning share the original mask, so their Mask-IoU is the original's."""
    for forget in {r["forget_set"] for r in e2e.records}:
        rows = [
            r
            for r in e2e.records
            if r["forget_set"] == forget and not r["unprune"] and r["unlearner"] != "gold"
        ]
        assert len({r["metrics"]["mask-iou"] for r in rows}) == 1


def test_end_to_end_control_rows_keep_the_original_mask(e2e: E2E, registry: Registry) -> None:
    """Every ``control`` un-prune row's mask is the original's, weight for weight; ``reprune``
    rows of unlearners other than retrain move it."""
    from unlearnbench.run.artifacts import ArtifactStore
    from unlearnbench.run.runner import read_output

    protocol = load_protocol(registry.protocol_path(PROTOCOL), OVERRIDES, registry)
    settings = RunSettings(out=e2e.out, device="cpu")
    graph = Pipeline(protocol, registry, settings).graph
    store = ArtifactStore(settings.artifacts)

    def mask(key: str) -> Any:
        found = store.get(graph.nodes[key].stage, key)
        assert found is not None, key
        return read_output(found).mask  # type: ignore[union-attr]

    controls = [plan for plan in graph.rows if plan.row.unpruner == "control"]
    assert controls
    for plan in controls:
        original = next(
            p for p in graph.rows if p.row.unlearner == "original" and p.row.forget == plan.row.forget
        )
        theirs, mine = mask(original.model), mask(plan.model)
        assert all(torch.equal(mine.tensors[n], theirs.tensors[n]) for n in theirs.tensors)


def test_end_to_end_writes_the_leaderboard(e2e: E2E) -> None:
    board = (e2e.out / "leaderboard.md").read_text()
    forget_sets = {r["forget_set"] for r in e2e.records}
    assert board.count(f"### {PROTOCOL} v{e2e.records[0]['protocol_version']}") == len(forget_sets) == 2
    for name in forget_sets:
        assert f"`{name}`" in board
    assert e2e.records[0]["protocol_hash"][:12] in board
    assert "retrain + reprune" in board and "retrain + control" in board and "| gold " in board
    assert str(e2e.out / "results.jsonl") in flat(e2e.result.stdout)


def test_a_second_identical_run_recomputes_nothing(e2e: E2E) -> None:
    before = artifact_snapshot(e2e.out)
    assert any(key.endswith("model.pt") for key in before)
    result = invoke([*RUN_ARGS, "--out", str(e2e.out)])
    assert result.exit_code == 0, result.output
    assert artifact_snapshot(e2e.out) == before  # no new, removed or rewritten artifact file
    assert read_records(e2e.out / "results.jsonl") == e2e.records


def test_a_second_run_reuses_every_stage(e2e: E2E) -> None:
    events: list[StageFinished] = []
    pipeline = make_pipeline(e2e.out, OVERRIDES, events)
    records = list(pipeline.run())
    assert by_row(records) == by_row(e2e.records)
    assert events
    assert {"original", "prune", "unlearn", "unprune", "evaluate"} <= {e.stage for e in events}
    assert [e for e in events if not e.reused] == []


# --------------------------------------------------------------------------------------------
# Interrupted and failing runs
# --------------------------------------------------------------------------------------------
SMALL = [
    ("data.limit", LIMIT),
    ("train.epochs", 2),
    ("unprune.modes", [False]),
    ("evaluate.metrics", ["ua", "ra", "ta", "mia-efficacy", "mask-iou"]),
]


def test_an_interrupted_run_resumes_to_the_uninterrupted_results(tmp_path: Path) -> None:
    overrides = [*SMALL, ("unlearn.unlearners", ["retrain", "core-interrupt"])]
    reference = list(make_pipeline(tmp_path / "reference", overrides, []).run())
    assert len(reference) == 6 and all(r["status"] == "ok" for r in reference)

    out = tmp_path / "interrupted"
    ARMED["interrupt"] = True
    try:
        with pytest.raises(KeyboardInterrupt):
            for _ in make_pipeline(out, overrides, []).run():
                pass
    finally:
        ARMED["interrupt"] = False
    written = read_records(out / "results.jsonl")
    assert [(r["forget_set"], r["unlearner"]) for r in written] == [
        ("class0", "original"),
        ("class0", "retrain"),
    ]
    leftovers = [p for p in (out / "artifacts").rglob("*") if p.name.startswith(".")]
    assert leftovers == []
    assert not any(
        json.loads(m.read_text())["component"] == "core-interrupt"
        for m in (out / "artifacts").glob("unlearn/*/meta.json")
    )

    events: list[StageFinished] = []
    resumed = list(make_pipeline(out, overrides, events).run())
    final = read_records(out / "results.jsonl")
    assert len(final) == 6 and all(r["status"] == "ok" for r in final)
    assert by_row(final) == by_row(resumed)
    for row_id, record in by_row(written).items():
        assert by_row(final)[row_id] == record  # rows written before the interrupt are kept as they were
    # What finished before the interrupt is reused; the interrupted stage is computed now.
    reused = {(e.stage, e.component): e.reused for e in events}
    assert reused[("original", "small-cnn")] is True
    assert reused[("prune", "omp")] is True
    assert reused[("unlearn", "core-interrupt")] is False
    # And the numbers are those of the run that was never interrupted.
    expected = by_row(reference)
    assert set(by_row(final)) == set(expected)
    for row_id, record in by_row(final).items():
        assert record["metrics"] == expected[row_id]["metrics"], record["unlearner"]
        assert record["forget_sha256"] == expected[row_id]["forget_sha256"]


def test_a_failing_component_fails_its_rows_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plugin = unlearner_plugin()
    monkeypatch.setattr(
        cli_module, "make_registry", lambda: Registry(create_host(autoload=True, plugins=[plugin]))
    )
    out = tmp_path / "out"
    result = invoke(
        [
            "run",
            PROTOCOL,
            "--device",
            "cpu",
            "--limit",
            str(LIMIT),
            "--set",
            "train.epochs=2",
            "--unlearner",
            "retrain",
            "--unlearner",
            "core-boom",
            "--no-unprune",
            "--metric",
            "ua",
            "--metric",
            "ra",
            "--out",
            str(out),
        ]
    )
    assert result.exit_code == 1, result.output
    assert "(2 failed)" in result.stdout
    records = read_records(out / "results.jsonl")
    assert len(records) == 6
    failed = [r for r in records if r["status"] == "failed"]
    ok = [r for r in records if r["status"] == "ok"]
    assert {r["unlearner"] for r in failed} == {"core-boom"} and len(failed) == 2
    for r in failed:
        assert "RuntimeError: boom: deliberate failure" in r["error"]
        assert r["metrics"] == {}
    assert sorted(r["unlearner"] for r in ok) == ["original", "original", "retrain", "retrain"]
    for r in ok:
        assert r["error"] is None and set(r["metrics"]) == {"ua", "ra"}
    board = (out / "leaderboard.md").read_text()
    assert "Failed rows" in board and "boom: deliberate failure" in board


class RetrainReferenceL1(Metric):
    """L1 norm of the row's retrain reference: a metric that reads the ``retrain`` reference."""

    name = "core-retrain-l1"
    needs = ("retrain",)

    def compute(self, ctx: EvalContext) -> float | None:
        return float(sum(p.detach().abs().sum() for p in ctx.reference("retrain").model.parameters()))


class NoGradRetrainReferenceL1(RetrainReferenceL1):
    """The same, computed under ``torch.no_grad()`` as metrics usually are."""

    name = "core-retrain-l1-nograd"

    @torch.no_grad()
    def compute(self, ctx: EvalContext) -> float | None:
        return super().compute(ctx)


def reference_metric_registry() -> Registry:
    plugin = types.ModuleType("ub_core_cli_reference_metric")

    @hookimpl
    def unlearnbench_register_metrics() -> list[type]:
        return [RetrainReferenceL1, NoGradRetrainReferenceL1]

    plugin.unlearnbench_register_metrics = unlearnbench_register_metrics  # type: ignore[attr-defined]
    return Registry(create_host(autoload=True, plugins=[plugin]))


def test_metrics_that_read_the_retrain_reference_follow_it(tmp_path: Path) -> None:
    registry = reference_metric_registry()
    base = [*SMALL[:3], ("unlearn.unlearners", ["retrain", "ft"]), ("evaluate.metrics", ["core-retrain-l1"])]
    path = registry.protocol_path(PROTOCOL)
    first = list(Pipeline(load_protocol(path, base, registry), registry, RunSettings(out=tmp_path)).run())
    changed = load_protocol(path, [*base, ("unlearn.params.retrain.epochs", 1)], registry)
    second = list(Pipeline(changed, registry, RunSettings(out=tmp_path)).run())
    for records in (first, second):
        assert all(r["status"] == "ok" for r in records)
        for forget in ("class0", "random10"):
            rows = [r for r in records if r["forget_set"] == forget]
            values = {r["unlearner"]: r["metrics"]["core-retrain-l1"] for r in rows}
            assert set(values) == {"original", "retrain", "ft"}
            # Every row of one setting compares against the same retrain reference.
            assert values["original"] == values["retrain"] == values["ft"], (forget, values)


def test_a_reference_is_trained_even_when_a_metric_runs_under_no_grad(tmp_path: Path) -> None:
    registry = reference_metric_registry()
    overrides = [*SMALL[:3], ("unlearn.unlearners", ["ft"]), ("evaluate.metrics", ["core-retrain-l1-nograd"])]
    protocol = load_protocol(registry.protocol_path(PROTOCOL), overrides, registry)
    records = list(Pipeline(protocol, registry, RunSettings(out=tmp_path)).run())
    assert [r["error"] for r in records if r["status"] != "ok"] == []


# --------------------------------------------------------------------------------------------
# The leaderboard command
# --------------------------------------------------------------------------------------------
def table_methods(markdown: str) -> list[list[str]]:
    """The Method column of every table, in order."""
    tables: list[list[str]] = []
    current: list[str] | None = None
    for line in markdown.splitlines():
        if not line.startswith("|"):
            current = None
            continue
        cells = [c.strip() for c in line.strip("|").split("|")]
        if current is None:
            assert cells[0] == "Method"
            current = []
            tables.append(current)
        elif not set(cells[0]) <= {":", "-"}:
            current.append(cells[0])
    return tables


def test_leaderboard_command_puts_the_reference_rows_first(e2e: E2E, tmp_path: Path) -> None:
    shuffled = tmp_path / "reversed.jsonl"
    shuffled.write_text("".join(json.dumps(r) + "\n" for r in reversed(e2e.records)))
    assert e2e.records[0]["unlearner"] != e2e.records[-1]["unlearner"]
    target = tmp_path / "board" / "table.md"
    result = invoke(["leaderboard", str(shuffled), "-o", str(target)])
    assert result.exit_code == 0, result.output
    tables = table_methods(target.read_text())
    forget_sets = {r["forget_set"] for r in e2e.records}
    assert len(tables) == len(forget_sets)
    expected = {ResultRecord.from_dict(r).method for r in e2e.records}
    for methods in tables:
        assert methods[:3] == ["original", "gold", "retrain"]
        assert sorted(methods) == sorted(expected)


def test_leaderboard_command_reports_a_missing_file(tmp_path: Path) -> None:
    result = invoke(["leaderboard", str(tmp_path / "nope.jsonl")])
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert "nope.jsonl" in flat(result.stderr)


def registry_version(unlearner: str) -> int:
    """The registered version of a built-in unlearner."""
    from unlearnbench_unlearners import unlearnbench_register_unlearners

    return next(c.version for c in unlearnbench_register_unlearners() if c.name == unlearner)
