"""Results as data: the flat DataFrame of result records, its seed-level summary, and the
``export-results`` command's CSV and parquet files."""

from __future__ import annotations

import json
import math
import stat
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from click.testing import CliRunner

from unlearnbench.cli import cli
from unlearnbench.errors import InvalidValueError
from unlearnbench.report import frame as frame_module
from unlearnbench.report.frame import (
    IDENTITY_COLUMNS,
    load_frame,
    metric_columns,
    records_frame,
    summary_frame,
    write_frame,
)
from unlearnbench.report.record import ResultRecord
from unlearnbench.report.results import read_records

PUBLISHED = Path(__file__).resolve().parents[1] / "leaderboards"
T_975_DOF_2 = 4.302652729911275
"""The 97.5% quantile of Student's t with 2 degrees of freedom (a table value)."""


def record(unlearner: str, seed: int, metrics: dict[str, float | None], **extra: Any) -> dict[str, Any]:
    base = ResultRecord(
        protocol="p",
        protocol_version=1,
        protocol_hash="a" * 64,
        dataset="digits",
        data_copy="sklearn-digits",
        model="small-cnn",
        forget_set="f",
        forget_kind="random",
        forget_size=10,
        forget_sha256="b" * 64,
        pruner="omp",
        sparsity_target=0.9,
        unlearner=unlearner,
        unprune=False,
        seed=seed,
        row_id=f"{unlearner}-{seed}-{extra.get('unprune', False)}",
        metrics=metrics,
        metric_names=tuple(metrics),
    ).to_dict()
    base.update(extra)
    return base


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_one_row_per_record_one_column_per_metric_and_the_identity_columns(tmp_path: Path) -> None:
    records = [
        record("ft", 0, {"ua": 10.0, "ta": 80.0}, runtime_s={"unlearn": 1.5}),
        record("ft", 1, {"ua": 20.0, "ta": 81.0}),
        record("ft", 0, {"ua": 30.0, "ta": 70.0}, unprune=True, unpruner="reprune"),
        record("ga", 0, {"ua": None, "ta": None}, status="failed", error="boom"),
        record("u", 0, {"u-lira": 0.6}, metric_details={"u-lira": {"accuracy": 0.55, "held_out": "test"}}),
    ]
    frame = load_frame(write_jsonl(tmp_path / "results.jsonl", records))
    assert len(frame) == len(records)
    assert list(frame.columns[: len(IDENTITY_COLUMNS)]) == list(IDENTITY_COLUMNS)
    assert metric_columns(frame) == ["ua", "ta", "u-lira"]
    assert frame["method"].tolist() == ["ft", "ft", "ft + reprune", "ga", "u"]
    assert frame["ua"].tolist()[:3] == [10.0, 20.0, 30.0] and math.isnan(frame["ua"][3])
    assert frame["status"].tolist() == ["ok", "ok", "ok", "failed", "ok"]
    assert frame["error"][3] == "boom"
    assert frame["u-lira.accuracy"][4] == 0.55 and frame["u-lira.held_out"][4] == "test"
    assert frame["runtime_s.unlearn"][0] == 1.5 and math.isnan(frame["runtime_s.unlearn"][1])
    assert not any(c.startswith("seeds.") for c in frame.columns)  # no per-stage seeds recorded


def test_per_stage_seeds_are_columns_where_the_records_have_them() -> None:
    with_seeds = record("ft", 0, {"ua": 1.0}, seeds={"train": 0, "unlearn": 5, "eval": 7})
    without = record("ft", 1, {"ua": 2.0})
    frame = records_frame([with_seeds, without])
    assert [c for c in frame.columns if c.startswith("seeds.")] == [
        "seeds.train",
        "seeds.unlearn",
        "seeds.eval",
    ]
    assert frame.loc[0, ["seeds.train", "seeds.unlearn", "seeds.eval"]].tolist() == [0, 5, 7]
    assert frame[["seeds.train", "seeds.unlearn", "seeds.eval"]].iloc[1].isna().all()
    assert frame["seed"].tolist() == [0, 1]


def test_a_metric_named_like_an_identity_column_keeps_both() -> None:
    frame = records_frame([record("ft", 3, {"seed": 0.25})])
    assert frame["seed"][0] == 3 and frame["metric:seed"][0] == 0.25
    assert metric_columns(frame) == ["metric:seed"]


def test_published_results_load_value_for_value() -> None:
    path = PUBLISHED / "digits-quickstart" / "results.jsonl"
    records = read_records(path)  # as every reader sees them (legacy row ids re-keyed)
    frame = load_frame(path)
    assert len(frame) == len(records)
    assert frame["row_id"].tolist() == [r["row_id"] for r in records]
    for i, rec in enumerate(records):
        for name, value in rec["metrics"].items():
            got = frame.loc[i, name]
            assert (value is None and pd.isna(got)) or got == pytest.approx(value), (rec["row_id"], name)
        assert frame.loc[i, "protocol_hash"] == rec["protocol_hash"]


def test_summary_has_mean_std_seed_count_and_a_t_interval() -> None:
    records = [record("ft", s, {"ua": ua, "ta": 90.0}) for s, ua in enumerate((10.0, 20.0, 30.0))]
    records += [record("ga", 0, {"ua": 50.0, "ta": 60.0}), record("ga", 1, {"ua": None, "ta": 70.0})]
    records += [record("ga", 2, {"ua": 99.0, "ta": 99.0}, status="failed", error="x")]
    summary = summary_frame(records_frame(records)).set_index("method")
    ft = summary.loc["ft"]
    assert ft["seeds"] == "0,1,2" and ft["n(ua)"] == 3
    assert ft["mean(ua)"] == pytest.approx(20.0) and ft["std(ua)"] == pytest.approx(10.0)
    half = T_975_DOF_2 * 10.0 / math.sqrt(3)
    assert ft["low(ua)"] == pytest.approx(20.0 - half) and ft["high(ua)"] == pytest.approx(20.0 + half)
    assert ft["std(ta)"] == 0.0 and ft["low(ta)"] == ft["high(ta)"] == 90.0
    ga = summary.loc["ga"]  # the failed seed is left out; a missing value is not a zero
    assert ga["seeds"] == "0,1" and ga["n(ua)"] == 1 and ga["mean(ua)"] == 50.0
    assert math.isnan(ga["std(ua)"]) and math.isnan(ga["low(ua)"])
    assert ga["n(ta)"] == 2 and ga["mean(ta)"] == 65.0
    with pytest.raises(InvalidValueError, match="level"):
        summary_frame(records_frame(records), level=1.5)


def test_csv_and_parquet_round_trip_with_mode_0644(tmp_path: Path) -> None:
    records = [
        record("ft", 0, {"ua": 10.0}, metric_details={"ua": {"note": "x"}}),
        record("ft", 1, {"ua": 20.0}, metric_details={"ua": {"note": 3}}),  # a mixed-type column
    ]
    frame = records_frame(records)
    csv = write_frame(frame, tmp_path / "r.csv")
    back = pd.read_csv(csv)
    assert list(back.columns) == list(frame.columns)
    assert back["ua"].tolist() == [10.0, 20.0] and back["row_id"].tolist() == frame["row_id"].tolist()
    assert stat.S_IMODE(csv.stat().st_mode) == 0o644
    pytest.importorskip("pyarrow", reason="parquet needs pyarrow (pip install 'unlearnbench[parquet]')")
    parquet = write_frame(frame, tmp_path / "r.parquet")
    back = pd.read_parquet(parquet)
    assert list(back.columns) == list(frame.columns)
    assert back["ua"].tolist() == [10.0, 20.0] and back["ua.note"].tolist() == ["x", "3"]
    assert stat.S_IMODE(parquet.stat().st_mode) == 0o644


def test_export_results_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = write_jsonl(tmp_path / "results.jsonl", [record("ft", s, {"ua": float(s)}) for s in range(3)])
    runner = CliRunner()
    done = runner.invoke(cli, ["export-results", str(source), "-o", str(tmp_path / "x.csv")])
    assert done.exit_code == 0, done.output
    assert len(pd.read_csv(tmp_path / "x.csv")) == 3
    done = runner.invoke(cli, ["export-results", str(source), "--summary", "-o", str(tmp_path / "s.csv")])
    assert done.exit_code == 0, done.output
    assert pd.read_csv(tmp_path / "s.csv")["mean(ua)"].tolist() == [1.0]
    for args, message in (
        (["-o", str(tmp_path / "x.txt")], "unknown file type '.txt'; valid choices: .csv, .parquet"),
        (["-o", str(tmp_path)], "is a directory"),
    ):
        bad = runner.invoke(cli, ["export-results", str(source), *args])
        assert bad.exit_code == 2 and message in bad.output and len(bad.output.strip().splitlines()) == 1
    bad = runner.invoke(cli, ["export-results", str(tmp_path / "nope.jsonl"), "-o", str(tmp_path / "y.csv")])
    assert bad.exit_code == 2 and "nope.jsonl" in bad.output and "Traceback" not in bad.output
    assert not (tmp_path / "y.csv").exists()
    monkeypatch.setattr(frame_module, "parquet_available", lambda: False)
    bad = runner.invoke(cli, ["export-results", str(source), "-o", str(tmp_path / "x.parquet")])
    assert bad.exit_code == 2
    assert "writing parquet needs the pyarrow package: pip install 'unlearnbench[parquet]'" in bad.output
    assert not (tmp_path / "x.parquet").exists()
