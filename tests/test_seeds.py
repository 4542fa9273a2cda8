"""Seeds per stage on the digits quickstart: J unlearning repetitions share their original, K
evaluation repetitions share their model, MIA is drawn per evaluation seed, the reference's
member selection is a variant of its own, and the computation settings are part of every key."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import torch
from click.testing import CliRunner
from test_run_graph import planned, ray_session, without_timings  # noqa: F401
from unlearnbench_metrics.mia import svc_attack_nonmember_rate, true_label_confidence

from unlearnbench.cli import cli
from unlearnbench.config.protocol import load_protocol
from unlearnbench.registry.catalog import Registry
from unlearnbench.registry.host import create_host
from unlearnbench.run.evaluation import EvalContext
from unlearnbench.run.pipeline import Pipeline, RunSettings
from unlearnbench.run.plan import PlanInputs, plan
from unlearnbench.seeds import unlearn_seed

pytestmark = pytest.mark.usefixtures("one_thread_and_plugins")

TINY = [
    ("data.limit", 200),
    ("train.epochs", 3),
    ("unlearn.params.ft.epochs", 1),
    ("unlearn.params.ga.epochs", 1),
    ("unprune.modes", [False]),
    ("prune.sparsities", [0.9]),
    ("unlearn.unlearners", ["ft", "ga"]),
    ("evaluate.metrics", ["ua", "ra", "ta", "mia-efficacy", "mia-efficacy-ref"]),
]


def run(out: Path, extra: list[tuple[str, Any]], **settings: Any) -> tuple[Pipeline, list[dict[str, Any]]]:
    registry = Registry(create_host(autoload=True))
    protocol = load_protocol(registry.protocol_path("digits-quickstart"), [*TINY, *extra], registry)
    executor = settings.pop("executor", "local")
    pipeline = Pipeline(protocol, registry, RunSettings(out=out, device="cpu", **settings), executor=executor)
    return pipeline, list(pipeline.run())


@pytest.fixture(scope="module")
def repeated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Pipeline, list[dict[str, Any]]]:
    out = tmp_path_factory.mktemp("repeated")
    return run(out, [("unlearn.repeats", 2), ("evaluate.repeats", 3)])


def test_records_carry_three_seeds_and_repetitions_share_their_original_and_model(
    repeated: tuple[Pipeline, list[dict[str, Any]]],
) -> None:
    pipeline, records = repeated
    graph = pipeline.graph
    count = Counter(n.stage for n in graph.nodes.values())
    assert count["original"] == 1 and count["prune"] == 1  # J repetitions share one original
    # 2 forget sets x (retrain once + ft, ga twice each): one unlearn node per repetition
    assert count["unlearn"] == 2 * (1 + 2 * 2)
    assert count["evaluate"] == 2 * (1 + 1 + 2 * 2)  # one per model: original, retrain, 2 x (ft, ga)
    assert len(records) == 3 * count["evaluate"] and all(r["status"] == "ok" for r in records)
    assert len({r["row_id"] for r in records}) == len(records)
    ft = [r for r in records if r["unlearner"] == "ft" and r["forget_set"] == "random10"]
    assert {(r["seeds"]["unlearn"], r["seeds"]["eval"]) for r in ft} == {
        (s, e) for s in (0, unlearn_seed(0, 1)) for e in (0, 1, 2)
    }
    assert {r["seeds"]["train"] for r in records} == {0}
    retrain = [r for r in records if r["unlearner"] == "retrain"]
    assert {r["seeds"]["unlearn"] for r in retrain} == {0}  # a reference is not repeated


def test_evaluation_seeds_redraw_mia_and_leave_the_deterministic_metrics(
    repeated: tuple[Pipeline, list[dict[str, Any]]], tmp_path: Path
) -> None:
    _, records = repeated
    ga = [
        r
        for r in records
        if r["unlearner"] == "ga" and r["forget_set"] == "class0" and r["seeds"]["unlearn"] == 0
    ]
    by_eval = {r["seeds"]["eval"]: r["metrics"] for r in ga}
    assert (
        len({m["ua"] for m in by_eval.values()}) == 1
        and len({m["mia-efficacy-ref"] for m in by_eval.values()}) == 1
    )
    # evaluation seed k is the shadow draw of shadow_seed k: the same value a K = 1 run gives there
    _, single = run(
        tmp_path, [("evaluate.params.mia-efficacy.shadow_seed", 2), ("unlearn.unlearners", ["ga"])]
    )
    same = next(r for r in single if r["unlearner"] == "ga" and r["forget_set"] == "class0")
    assert same["metrics"]["mia-efficacy"] == by_eval[2]["mia-efficacy"]
    assert same["metrics"]["ua"] == by_eval[0]["ua"]


def test_one_repetition_of_each_keeps_the_keys_and_row_ids_a_plain_run_had(
    repeated: tuple[Pipeline, list[dict[str, Any]]], tmp_path: Path
) -> None:
    pipeline, records = repeated
    plain, plain_records = run(tmp_path, [])
    first = {k for k, n in pipeline.graph.nodes.items() if n.stage != "evaluate"}
    assert {k for k, n in plain.graph.nodes.items() if n.stage != "evaluate"} <= first
    ids = {r["row_id"] for r in records if r["seeds"]["eval"] == 0 and r["seeds"]["unlearn"] == r["seed"]}
    assert {r["row_id"] for r in plain_records} == ids


def test_the_reference_selection_variant_is_the_reference_codes_first_members_in_stored_order() -> None:
    """``mia-efficacy-ref`` on a model equals the reference's ``SVC_MIA`` recipe written out here:
    the first |test| retain examples as members, the whole test set as non-members, stored order."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
    images = {
        s: torch.randint(0, 255, (n, 1, 2, 2), dtype=torch.uint8)
        for s, n in (("retain", 60), ("test", 20), ("forget", 15))
    }
    labels = {s: torch.randint(0, 3, (len(x),)) for s, x in images.items()}

    from unlearnbench_metrics.mia import MIAEfficacyReference

    from unlearnbench.data.images import ImageSplit
    from unlearnbench.training.engine import Engine

    splits = {s: ImageSplit(images[s], labels[s]) for s in images}
    engine = Engine("cpu", (0.5,), (0.25,), bf16=False)
    ctx = EvalContext(
        model=model,
        mask=None,
        splits=splits,
        engine=engine,
        references={},
        runtime_s=None,
        forget_kind="random",
    )
    value = MIAEfficacyReference().compute(ctx)
    conf = {s: true_label_confidence(engine.logits(model, splits[s]), labels[s]) for s in splits}
    expected = 100 * svc_attack_nonmember_rate(
        conf["retain"][:20], conf["test"], conf["forget"], c=3.0, gamma="auto"
    )
    assert value == expected


def keys_at(compute: dict[str, Any]) -> set[str]:
    graph = planned([("unprune.modes", [False])])
    assert graph.nodes
    registry = Registry(create_host(autoload=True))
    protocol = load_protocol(
        registry.protocol_path("digits-quickstart"), [("unprune.modes", [False])], registry
    )
    base = next(iter(graph.nodes.values()))
    del base
    inputs = PlanInputs(
        data_id={"copy": "x", "sizes": [1000, 0, 300]},
        forget_sha256={f.name: f.name * 8 for f in protocol.forget},
        forget_size={f.name: 100 for f in protocol.forget},
        components=_components(registry, protocol),
        compute=compute,
    )
    return {k for k, n in plan(protocol, inputs).nodes.items() if n.stage == "original"}


def _components(registry: Registry, protocol: Any) -> dict[tuple[str, str], Any]:
    from unlearnbench.run.plan import ComponentInfo

    made = [
        registry.create("dataset", "digits"),
        registry.create("model", "small-cnn", protocol.model.params),
    ]
    for kind, names in (
        ("pruner", protocol.prune.pruners),
        ("unlearner", [*protocol.unlearn.unlearners, "retrain"]),
        ("unpruner", protocol.unprune.unpruners),
        ("metric", protocol.evaluate.metrics),
    ):
        made += [registry.create(kind, n) for n in names]
    return {(c.kind, c.name): ComponentInfo.of(c) for c in made}


def test_thread_count_and_precision_are_part_of_every_key() -> None:
    one = keys_at({"precision": "fp32", "threads": 1})
    assert one != keys_at({"precision": "fp32", "threads": 2})
    assert one != keys_at({"precision": "bf16-autocast", "threads": 1})
    assert one == keys_at({"precision": "fp32", "threads": 1})


def test_ray_tasks_run_at_the_runs_thread_count_and_give_the_local_records(
    ray_session: Any,  # noqa: F811
    tmp_path: Path,
) -> None:
    """At two threads (what the CLI resolves on a two-core machine by default) the Ray workers
    compute with two threads too, so their records are the local executor's."""
    extra = [("unlearn.unlearners", ["ga"]), ("evaluate.metrics", ["mia-efficacy-ref"]), ("data.limit", 100)]
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        _, local = run(tmp_path / "local", extra, threads=2)
        _, remote = run(tmp_path / "ray", extra, threads=2, executor="ray")
    finally:
        torch.set_num_threads(threads)
    assert {r["row_id"]: without_timings(r) for r in remote} == {
        r["row_id"]: without_timings(r) for r in local
    }
    assert {p["threads"] for r in remote for p in r["provenance"].values()} == {2}


def test_repetition_options_are_checked_in_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["run", "--unlearn-repeats", "0", "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "--unlearn-repeats 0 must be an integer >= 1" in result.output
    result = CliRunner().invoke(cli, ["plan", "--set", "evaluate.repeats=0", "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "evaluate.repeats must be an integer >= 1" in result.output


def test_an_original_path_retrain_trains_the_originals_whole_budget_and_the_board_shows_its_curve(
    tmp_path: Path,
) -> None:
    from unlearnbench.report.curves import plateau_gain, render_references

    extra = [
        ("data.holdout_fraction", 0.2),
        ("unlearn.unlearners", ["ga"]),
        ("unlearn.params.retrain.protocol_recipe", True),
        ("unlearn.params.retrain.budget", "original-path"),
    ]
    _, records = run(tmp_path, extra)
    retrain = next(r for r in records if r["unlearner"] == "retrain" and r["forget_set"] == "class0")
    original = next(r for r in records if r["unlearner"] == "original" and r["forget_set"] == "class0")
    path = original["provenance"]["original"]["epochs"] + original["provenance"]["prune"]["epochs"]
    assert path == 2 * 3  # dense training, then OMP's retraining under the mask
    assert retrain["provenance"]["unlearn"]["epochs"] == path
    assert len(retrain["provenance"]["unlearn"]["val_curve"]) == path
    text = render_references(records)
    assert "| `class0` | omp @ 0.9 | retrain | 6 (6) |" in text
    assert plateau_gain([50.0, 60.0, 70.0, 80.0]) == 10.0 and plateau_gain([1.0, 2.0]) is None
    rising = {
        **retrain,
        "provenance": {"unlearn": {"epochs": 4, "val_curve": [["r", i, 10.0 * i] for i in range(4)]}},
    }
    assert "| **no** |" in render_references([rising])
