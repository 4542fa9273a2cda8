"""The gold reference (the original's procedure on D_r) and its seed baseline, several un-pruners
in one run, the old ``unprune.unpruner`` key, and the MIA-stability study (verdict on hand-made
curves; a tiny sweep writes its table and plots)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
from click.testing import CliRunner

from unlearnbench.cli import cli
from unlearnbench.config.protocol import load_protocol
from unlearnbench.errors import InvalidValueError
from unlearnbench.registry.catalog import Registry
from unlearnbench.registry.host import create_host
from unlearnbench.report.record import ROW_ID_FIELDS
from unlearnbench.run.artifacts import ArtifactStore, artifact_key
from unlearnbench.run.pipeline import Pipeline, RunSettings
from unlearnbench.run.plan import GOLD_BASELINE_SEED, REFERENCE_BUILDERS, Planner
from unlearnbench.run.runner import read_output
from unlearnbench.run.stages.common import ModelArtifact, prune_task
from unlearnbench.study.mia_stability import CurveStats, StudyPoint, curve_stats, verdict

PROTOCOL = "digits-quickstart"
METRICS = ["ua", "gold-iou", "seed-baseline-iou", "original-gold-iou", "kl-gold-forget"]
TINY = [
    ("data.limit", 120),
    ("train.epochs", 3),
    ("train.rewind_epoch", 1),  # rewinding starts the schedule 1 epoch in: the fine-tune has 2 at lr > 0
    ("unlearn.unlearners", ["ft"]),
    ("unlearn.params.ft.epochs", 1),
    ("unprune.params.reprune.finetune_epochs", 1),
    ("unprune.params.control.finetune_epochs", 1),
    ("evaluate.metrics", METRICS),
]


pytestmark = pytest.mark.usefixtures("one_thread_and_plugins")


@dataclass
class Run:
    pipeline: Pipeline
    records: list[dict[str, Any]]

    def artifact(self, key: str) -> ModelArtifact:
        store = ArtifactStore(self.pipeline.settings.artifacts)
        found = store.get(self.pipeline.graph.nodes[key].stage, key)
        assert found is not None, key
        out = read_output(found)
        assert isinstance(out, ModelArtifact)
        return out


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    registry = Registry(create_host(autoload=True))
    protocol = load_protocol(registry.protocol_path(PROTOCOL), TINY, registry)
    out = tmp_path_factory.mktemp("gold")
    pipeline = Pipeline(protocol, registry, RunSettings(out=out, device="cpu"))
    return Run(pipeline, list(pipeline.run()))


def test_gold_is_the_pruners_mask_of_the_retain_trained_weights_then_fine_tuned(run: Run) -> None:
    """With OMP and a shared seed, gold's mask is exactly OMP's mask of the dense model trained
    on D_r (the retain topology), and the fine-tune under it (OMP's rewind-and-retrain) moves the
    kept weights but never the mask: pruned weights stay zero."""
    ctx, graph = run.pipeline.ctx, run.pipeline.graph
    for plan in graph.rows:
        if plan.row.unlearner != "gold":
            continue
        planner = Planner(ctx.protocol, ctx.plan_inputs())
        row = plan.row
        topology = planner.topology(row.seed, row.pruner, row.sparsity, forget=row.forget)
        assert REFERENCE_BUILDERS["gold"](planner, row) == topology == plan.model
        gold = run.artifact(plan.model)
        dense = run.artifact(planner.dense(row.seed, row.forget))
        model = ctx.load_model(row.seed, dense.state)
        task = prune_task(ctx, row.seed, row.sparsity, ctx.training_data(row.forget), None)
        expected = ctx.pruners[row.pruner].make_mask(model, task)
        assert gold.mask is not None
        for name, keep in expected.tensors.items():
            assert torch.equal(gold.mask.tensors[name].cpu(), keep.cpu()), name
            assert not gold.state[name][~keep.cpu()].any()
        moved = any(
            not torch.equal(gold.state[n], dense.state[n] * expected.tensors[n].cpu())
            for n in expected.tensors
        )
        assert moved, "the fine-tune under the mask changed no kept weight"


def test_the_seed_baseline_is_below_one_and_the_gold_row_is_its_own_reference(run: Run) -> None:
    gold_rows = [r for r in run.records if r["unlearner"] == "gold"]
    assert gold_rows and all(r["reference"] == "gold" for r in gold_rows)
    for r in run.records:
        assert r["status"] == "ok", r["error"]
        assert 0.0 < r["metrics"]["seed-baseline-iou"] < 1.0
        assert 0.0 < r["metrics"]["original-gold-iou"] <= 1.0
    for r in gold_rows:
        assert r["metrics"]["gold-iou"] == 1.0 and r["metrics"]["kl-gold-forget"] == pytest.approx(
            0.0, abs=1e-9
        )
    ctx = run.pipeline.ctx
    planner = Planner(ctx.protocol, ctx.plan_inputs())
    row = run.pipeline.graph.rows[0].row
    seeded = REFERENCE_BUILDERS["gold_seed"](planner, row)
    assert seeded is not None and run.pipeline.graph.nodes[seeded].seed == GOLD_BASELINE_SEED != row.seed


def test_each_unpruner_gets_its_own_row_and_plain_rows_keep_their_row_id(run: Run) -> None:
    unprune = [r for r in run.records if r["unprune"]]
    by_setting: dict[tuple[str, str], set[str]] = {}
    for r in unprune:
        by_setting.setdefault((r["forget_set"], r["unlearner"]), set()).add(r["unpruner"])
    assert by_setting and all(found == {"reprune", "control"} for found in by_setting.values())
    assert len({r["row_id"] for r in run.records}) == len(run.records)
    for r in run.records:
        fields = ROW_ID_FIELDS + (("unpruner",) if r["unprune"] else ())
        assert r["row_id"] == artifact_key("row", {k: r[k] for k in fields})


def test_unpruners_are_a_selection_and_the_old_key_still_reads(tmp_path: Path) -> None:
    registry = Registry(create_host(autoload=True))
    path = registry.protocol_path(PROTOCOL)
    both = load_protocol(path, [], registry)
    one = load_protocol(path, [("unprune.unpruners", ["control"])], registry)
    old = load_protocol(path, [("unprune.unpruner", "control")], registry)
    assert both.unprune.unpruners == ("reprune", "control")
    assert one.unprune.unpruners == old.unprune.unpruners == ("control",)
    assert one.hash == both.hash == old.hash
    text = path.read_text().replace('unpruners = ["reprune", "control"]', 'unpruner = "control"')
    legacy = tmp_path / "legacy.toml"
    legacy.write_text(text)
    assert load_protocol(legacy, [], registry).unprune.unpruners == ("control",)
    legacy.write_text(text.replace('unpruner = "control"', 'unpruner = "control"\nunpruners = ["reprune"]'))
    with pytest.raises(InvalidValueError, match="not both"):
        load_protocol(legacy, [], registry)


# --- the MIA-stability study -------------------------------------------------------------------
def points(curves: dict[tuple[str, str], list[list[float]]]) -> list[StudyPoint]:
    """StudyPoints from ``(method, metric) -> V[seed][size]`` (sizes 1%, 2%, ...)."""
    values: dict[tuple[str, int, int], dict[str, float]] = {}
    for (method, metric), rows in curves.items():
        for seed, row in enumerate(rows):
            for i, v in enumerate(row):
                values.setdefault((method, seed, i), {})[metric] = v
    return [StudyPoint(m, (i + 1) / 100, 10 + i, s, v) for (m, s, i), v in values.items()]


def test_the_verdict_compares_normalised_steps() -> None:
    """A jagged MIA curve beside smooth IoU and KL curves swings more; the same MIA curve beside
    equally jagged topology curves does not. Steps are normalised by each metric's range."""
    jagged_mia = [[10.0, 90.0, 20.0, 80.0], [20.0, 80.0, 10.0, 90.0]]
    smooth_iou = [[0.50, 0.51, 0.52, 0.53], [0.50, 0.51, 0.52, 0.53]]
    smooth_kl = [[0.30, 0.29, 0.28, 0.27], [0.31, 0.30, 0.29, 0.28]]
    stats = curve_stats(
        points(
            {
                ("u", "mia-efficacy"): jagged_mia,
                ("u", "gold-iou"): smooth_iou,
                ("u", "kl-gold-forget"): smooth_kl,
            }
        )
    )
    by = {(s.method, s.metric): s for s in stats}
    # MIA: range 80, largest steps 80 and 80 -> 1.0; IoU: range 0.03, largest step 0.01 -> 1/3.
    assert by[("u", "mia-efficacy")].step == pytest.approx(1.0)
    assert by[("u", "gold-iou")].step == pytest.approx(1 / 3)
    assert by[("u", "gold-iou")].seed_spread == 0.0
    assert by[("u", "mia-efficacy")].seed_spread == pytest.approx(
        torch.tensor([10.0, 20.0]).std().item() / 80
    )
    found = verdict(stats)
    assert found.swings_more == {"u": True} and "for 1 of 1 methods" in found.sentence()

    jagged_iou = [[0.1, 0.9, 0.2, 0.8], [0.2, 0.8, 0.1, 0.9]]
    stats = curve_stats(points({("u", "mia-efficacy"): jagged_mia, ("u", "gold-iou"): jagged_iou}))
    assert verdict(stats).swings_more == {"u": False}  # equal normalised steps: a tie is not "more"


def test_a_constant_metric_has_no_swing() -> None:
    flat = [[1.0, 1.0, 1.0]]
    stats = curve_stats(points({("gold", "gold-iou"): flat, ("gold", "mia-efficacy"): [[5.0, 50.0, 5.0]]}))
    assert CurveStats("gold", "gold-iou", 0.0, 0.0, 0.0) in stats
    assert verdict(stats).swings_more == {"gold": True}


def test_a_tiny_study_writes_the_table_and_both_plots(tmp_path: Path) -> None:
    out = tmp_path / "study"
    args = ["study", "mia-stability", PROTOCOL, "--fractions", "0.05,0.06", "--seed", "0", "--seed", "1"]
    args += ["--limit", "100", "--set", "train.epochs=1", "--set", "unlearn.params.retrain.epochs=1"]
    result = CliRunner().invoke(cli, [*args, "-o", str(out)])
    assert result.exit_code == 0, result.output
    table = (out / "README.md").read_text()
    assert "| 5.00 |" in table and "| 6.00 |" in table and "## Verdict" in table
    for method in ("gold", "retrain"):
        assert f"| {method} |" in table
    assert (out / "mia-stability.png").read_bytes()[:4] == b"\x89PNG"
    assert "<svg" in (out / "mia-stability.svg").read_text()
    originals = list((out / "artifacts" / "original").iterdir())
    assert len(originals) == 2  # one original per seed, shared by both forget sizes
