"""Forget sets are saved with the run: their pool indices, and a sha256 that matches them."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from click.testing import CliRunner

from unlearnbench.cli import cli
from unlearnbench.hashing import sha256_indices


def test_forget_sets_are_saved_with_matching_sha256(tmp_path: Path) -> None:
    args = ["run", "--limit", "300", "--set", "train.epochs=1", "--unlearner", "ft", "--no-unprune"]
    args += ["--set", "unlearn.params.ft.epochs=1", "--metric", "ua", "--out", str(tmp_path)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    files = sorted((tmp_path / "forget_sets").glob("*.json"))
    assert len(files) == 2
    for path in files:
        saved = json.loads(path.read_text())
        assert sha256_indices(torch.tensor(saved["indices"])) == saved["sha256"]
        assert len(set(saved["indices"])) == len(saved["indices"])
        rows = [r for r in records if r["forget_set"] == saved["spec"]["name"]]
        assert rows and {r["forget_sha256"] for r in rows} == {saved["sha256"]}
        assert {r["forget_size"] for r in rows} == {len(saved["indices"])}
