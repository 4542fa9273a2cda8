"""Leaderboard rendering from result records."""

from __future__ import annotations

import math
import statistics
from typing import Any

from scipy.stats import t

from unlearnbench.report.leaderboard import Roles, render

INFO = {
    "ua": {"label": "UA", "unit": "%", "version": 1, "higher_is_better": None},
    "ta": {"label": "TA", "unit": "%", "version": 1, "higher_is_better": True},
    "rte": {"label": "RTE", "unit": "min", "version": 1, "higher_is_better": False},
}


def record(unlearner: str, seed: int, ua: float, *, protocol_hash: str = "a" * 64, **extra: Any) -> dict:
    base = {
        "protocol": "p",
        "protocol_version": 1,
        "protocol_hash": protocol_hash,
        "dataset": "digits",
        "data_copy": "sklearn-digits",
        "model": "small-cnn",
        "forget_set": "f",
        "forget_kind": "random",
        "forget_size": 10,
        "forget_sha256": "b" * 64,
        "pruner": "omp",
        "sparsity_target": 0.9,
        "sparsity": 0.9,
        "unlearner": unlearner,
        "unprune": False,
        "seed": seed,
        "status": "ok",
        "error": None,
        "metrics": {"ua": ua, "ta": 90.0 + seed, "rte": 0.5},
        "metric_info": INFO,
        "metric_names": ["ua", "ta", "rte"],
        "device": "cpu",
        "git": "c" * 40,
        "schema_version": 2,
        "reference": {"original": "original", "retrain": "retrain"}.get(unlearner),
    }
    base.update(extra)
    return base


def table_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("|")]


def test_reference_rows_come_first_and_columns_follow_the_protocol_order() -> None:
    records = [
        record(u, 0, ua) for u, ua in (("ga", 80.0), ("retrain", 10.0), ("ft", 5.0), ("original", 0.0))
    ]
    lines = table_lines(render(records))
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    assert header[2:5] == ["UA", "TA", "RTE (min)"]
    methods = [line.split("|")[1].strip() for line in lines[2:]]
    assert methods[:2] == ["original", "retrain"]
    assert set(methods[2:]) == {"ft", "ga"}


def test_schema_1_records_take_their_roles_from_the_registry_metadata() -> None:
    """Records written before ``reference`` and the gap flags existed: roles come from ``Roles``."""
    info = {n: {**i, "gap": False} for n, i in INFO.items()}
    old = []
    for u, ua in (("ga", 80.0), ("retrain", 10.0), ("original", 0.0)):
        r = record(u, 0, ua, metric_info=info)
        del r["schema_version"], r["reference"]
        old.append(r)
    bare = table_lines(render(old))
    assert [line.split("|")[1].strip() for line in bare[2:]][:2] == ["original", "ga"]
    lines = table_lines(render(old, Roles({"retrain": "retrain"}, ("ua", "ta"))))
    methods = [line.split("|")[1].strip() for line in lines[2:]]
    assert methods[:2] == ["original", "retrain"]
    ga = next(line for line in lines if line.startswith("| ga"))
    assert float(ga.split("|")[-3]) == 35.0  # Gap: mean(|80 - 10|, |90 - 90|)


def test_seeds_are_averaged_with_their_spread() -> None:
    records = [record("retrain", s, 10.0) for s in (0, 1)] + [record("ft", 0, 20.0), record("ft", 1, 30.0)]
    text = render(records)
    ft_line = next(line for line in table_lines(text) if line.startswith("| ft"))
    half_width = t.ppf(0.975, 1) * statistics.stdev([20.0, 30.0]) / math.sqrt(2)  # 95% t-interval
    assert f"25.00 ± {half_width:.2f}" in ft_line
    assert ft_line.rstrip(" |").endswith("2x1x1")  # two train seeds, one repetition each


def test_different_protocol_hashes_are_never_mixed() -> None:
    records = [record("retrain", 0, 10.0), record("retrain", 0, 50.0, protocol_hash="d" * 64)]
    text = render(records)
    assert text.count("### p v1") == 2
    assert "`aaaaaaaaaaaa`" in text and "`dddddddddddd`" in text


def test_failed_rows_are_listed_with_their_error() -> None:
    failed = record("ga", 0, 0.0, status="failed", error="RuntimeError: boom", metrics={})
    text = render([record("retrain", 0, 10.0), failed])
    assert "### Failed rows" in text and "RuntimeError: boom" in text
