"""``unlearnbench tune``: validation data only, the gap as the paper computes it, override files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from unlearnbench.cli import cli
from unlearnbench.config.protocol import Protocol, load_protocol
from unlearnbench.errors import InvalidValueError
from unlearnbench.registry.catalog import Registry
from unlearnbench.registry.host import create_host
from unlearnbench.run.tune import (
    PointScore,
    TuneResult,
    gap_to_retrain,
    parse_grid,
    read_override_file,
    tune,
    validation_overrides,
    write_override_file,
)

GAP = ("ua", "ra")


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def registry() -> Registry:
    return Registry(create_host())


def record(unlearner: str, seed: int, ua: float, ra: float, forget: str = "f") -> dict[str, Any]:
    return {
        "status": "ok",
        "unprune": False,
        "forget_set": forget,
        "pruner": "omp",
        "sparsity_target": 0.9,
        "unlearner": unlearner,
        "seed": seed,
        "metrics": {"ua": ua, "ra": ra},
    }


def test_grid_is_the_cartesian_product_and_names_are_checked(registry: Registry) -> None:
    grid = parse_grid(["lr=1e-3,1e-2", "epochs=1,2"], registry, "ft")
    assert grid == [
        {"lr": 1e-3, "epochs": 1},
        {"lr": 1e-3, "epochs": 2},
        {"lr": 1e-2, "epochs": 1},
        {"lr": 1e-2, "epochs": 2},
    ]
    with pytest.raises(InvalidValueError, match=r"'momentumm'.*valid choices: .*lr"):
        parse_grid(["momentumm=0.9"], registry, "ft")
    with pytest.raises(InvalidValueError, match="NAME=V1,V2"):
        parse_grid(["lr"], registry, "ft")


def test_gap_is_the_difference_of_seed_means() -> None:
    records = [
        record("retrain", 0, 10.0, 90.0),
        record("retrain", 1, 20.0, 90.0),
        record("ga", 0, 20.0, 90.0),
        record("ga", 1, 10.0, 90.0),
    ]
    # per-seed differences are 10 each, but the seed means are equal: the paper's gap is 0
    assert gap_to_retrain(records, "ga", GAP) == 0.0
    records.append(record("ga", 0, 0.0, 80.0, forget="g"))
    assert gap_to_retrain(records, "ga", GAP) is None  # no retrain for forget set g
    records.append(record("retrain", 0, 10.0, 90.0, forget="g"))
    assert gap_to_retrain(records, "ga", GAP) == pytest.approx((0.0 + 10.0) / 2)


def test_tuning_never_sees_the_test_set_or_the_reported_forget_set(
    registry: Registry, tmp_path: Path
) -> None:
    path = registry.protocol_path("digits-quickstart")
    seen: list[Protocol] = []

    def run_point(protocol: Protocol, folder: Path) -> list[dict[str, Any]]:
        seen.append(protocol)
        lr = protocol.unlearn.params["ga"]["lr"]
        return [record("retrain", 0, 50.0, 90.0), record("ga", 0, 50.0 + 1000 * lr, 90.0)]

    result = tune(registry, path, [], "ga", [{"lr": 1e-2}, {"lr": 1e-3}], 10, tmp_path, run_point, GAP)
    assert dict(result.chosen) == {"lr": 1e-3}
    assert result.chosen_gap == pytest.approx(0.5)
    reported = load_protocol(path, [], registry)
    for protocol in seen:
        assert protocol.data.eval_split == "val"
        assert protocol.data.holdout_fraction > 0
        for spec, original in zip(protocol.forget, reported.forget, strict=True):
            assert (spec.seed, spec.classes) != (original.seed, original.classes)
            assert set(spec.classes).isdisjoint(original.classes)
    assert {p.unlearn.unlearners for p in seen} == {("retrain", "ga")}


def test_validation_overrides_keep_an_existing_holdout(registry: Registry) -> None:
    protocol = load_protocol(registry.protocol_path("digits-quickstart"), [("data.holdout_fraction", 0.2)])
    keys = dict(validation_overrides(protocol, 10))
    assert "data.holdout_fraction" not in keys
    assert keys["forget.class0.classes"] == [1]
    assert keys["forget.random10.seed"] == 1000


def test_override_file_round_trip_merges_unlearners(tmp_path: Path) -> None:
    path = tmp_path / "tuned.toml"
    for name, lr in (("ga", 1e-3), ("neggrad+", 0.05), ("ga", 5e-4)):
        result = TuneResult(name, (PointScore({"lr": lr}, 1.5),), {"lr": lr}, 1.5, "abc")
        write_override_file(path, result, [f"lr={lr}"], "digits-quickstart", [("train.epochs", 3)])
    pairs, tuning = read_override_file(path)
    assert dict(pairs) == {"unlearn.params.ga.lr": 5e-4, "unlearn.params.neggrad+.lr": 0.05}
    assert set(tuning) == {"ga", "neggrad+"}
    assert tuning["ga"]["grid"] == ["lr=0.0005"]
    assert tuning["ga"]["base_overrides"] == ["train.epochs=3"]


def test_tune_then_run_with_the_overrides_labels_the_records(tmp_path: Path) -> None:
    runner = CliRunner()
    output = tmp_path / "tuned.toml"
    common = ["--set", "train.epochs=2", "--set", "data.limit=300"]
    result = runner.invoke(
        cli,
        [
            "tune",
            "--unlearner",
            "ga",
            "--grid",
            "lr=1e-4,1e-2",
            *common,
            "--out",
            str(tmp_path / "t"),
            "-o",
            str(output),
            "--device",
            "cpu",
        ],
    )
    assert result.exit_code == 0, result.output
    pairs, _ = read_override_file(output)
    chosen = dict(pairs)["unlearn.params.ga.lr"]
    assert chosen in (1e-4, 1e-2)
    out = tmp_path / "run"
    result = runner.invoke(
        cli,
        [
            "run",
            "--unlearner",
            "ga",
            "--no-unprune",
            "--metric",
            "ua",
            *common,
            "--overrides",
            str(output),
            "--out",
            str(out),
            "--device",
            "cpu",
        ],
    )
    assert result.exit_code == 0, result.output
    import json

    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    ga = [r for r in rows if r["unlearner"] == "ga"]
    assert ga and all(r["params"]["unlearner"]["lr"] == chosen for r in ga)
    assert all(r["tuning"]["grid"] == ["lr=1e-4,1e-2"] for r in ga)
    assert all(r["tuning"] is None for r in rows if r["unlearner"] != "ga")


def test_tune_refuses_an_unknown_unlearner_in_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli, ["tune", "--unlearner", "nope", "--grid", "lr=1", "--out", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert "unknown unlearner 'nope'" in result.output
