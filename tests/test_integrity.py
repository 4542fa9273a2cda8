"""Results and cache integrity: a corrupt artifact is recomputed, never turned into failed rows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from unlearnbench.cli import cli
from unlearnbench.report.results import read_records
from unlearnbench.run.artifacts import ArtifactStore

SMALL = ["--set", "train.epochs=2", "--set", "data.limit=300", "--device", "cpu"]


pytestmark = pytest.mark.usefixtures("one_thread")


def _put(store: ArtifactStore) -> Path:
    def write(folder: Path) -> dict:
        torch.save({"w": torch.arange(1000.0)}, folder / "model.pt")
        return {"runtime_s": 1.0}

    return store.put("original", "k" * 64, {"a": 1}, write).path


@pytest.mark.parametrize(
    "damage",
    [
        lambda f: f.write_bytes(f.read_bytes()[:100]),  # truncated
        lambda f: f.write_bytes(f.read_bytes()[:-8] + b"\0" * 8),  # same size, other bytes
        lambda f: f.unlink(),  # missing
    ],
    ids=["truncated", "changed", "missing"],
)
def test_a_damaged_payload_is_moved_aside_and_reported_absent(tmp_path: Path, damage) -> None:
    store = ArtifactStore(tmp_path)
    path = _put(store)
    assert store.get("original", "k" * 64) is not None
    damage(path / "model.pt")
    assert store.get("original", "k" * 64) is None
    assert not path.exists()
    assert (path.parent / f"{path.name}.corrupt-0" / "meta.json").is_file()
    _put(store)  # recomputed in place
    assert store.get("original", "k" * 64) is not None


def test_meta_records_the_sha256_of_every_payload_file(tmp_path: Path) -> None:
    path = _put(ArtifactStore(tmp_path))
    meta = json.loads((path / "meta.json").read_text())
    assert set(meta["files"]) == {"model.pt"}
    assert meta["files"]["model.pt"]["size"] == (path / "model.pt").stat().st_size


def test_a_truncated_original_model_is_recomputed_and_no_row_is_lost(tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = [
        "run",
        "--unlearner",
        "ft",
        "--no-unprune",
        "--metric",
        "ua",
        "--metric",
        "ra",
        *SMALL,
        "--out",
        str(out),
    ]
    first = CliRunner().invoke(cli, args)
    assert first.exit_code == 0, first.output
    before = {r["row_id"]: r for r in read_records(out / "results.jsonl")}
    (model,) = (out / "artifacts" / "original").glob("*/model.pt")
    model.write_bytes(model.read_bytes()[:1000])
    second = CliRunner().invoke(cli, args)
    assert second.exit_code == 0, second.output
    after = {r["row_id"]: r for r in read_records(out / "results.jsonl")}
    assert set(after) == set(before)
    assert all(r["status"] == "ok" for r in after.values())
    for row_id, record in before.items():
        assert after[row_id]["metrics"] == record["metrics"]  # deterministic recompute
    assert list((out / "artifacts" / "original").glob("*.corrupt-0"))
