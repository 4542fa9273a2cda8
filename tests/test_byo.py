"""Bring your own model or method: ``unlearnbench evaluate`` scores a model file produced outside
the suite against the run's cached references; the Python API (``unlearnbench.run``,
``unlearnbench.evaluate``, ``unlearning_task``) and plain-function unlearners; checkpoints in
(``run --original``, a folder or an offline Hub cache) and out (``unlearnbench export``)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner, Result
from torch import nn

import unlearnbench
from unlearnbench.cli import cli
from unlearnbench.report.record import ResultRecord
from unlearnbench.report.results import read_records

pytestmark = pytest.mark.usefixtures("one_thread_and_plugins")

LIMIT = 300
SETS = {"train.epochs": 8, "unlearn.params.ft.epochs": 1}
METRICS = ["ua", "ra", "ta", "mia-efficacy", "rte", "mask-iou", "gold-iou", "kl-gold-forget"]
COMMON = [
    *("--device", "cpu", "--limit", str(LIMIT), "--metric", ",".join(METRICS)),
    *[arg for key, value in SETS.items() for arg in ("--set", f"{key}={value}")],
]
API = {"sets": SETS, "limit": LIMIT, "device": "cpu", "metrics": METRICS}
STATIC = ("ua", "ra", "ta", "mia-efficacy", "mask-iou", "gold-iou", "kl-gold-forget")
"""The metrics that do not measure time."""


def invoke(args: Sequence[str], env: dict[str, str] | None = None) -> Result:
    return CliRunner(env=env).invoke(cli, list(args))


def snapshot(out: Path) -> dict[str, int]:
    """Every artifact file's modification time (folders gain entries, files never change)."""
    files = sorted(p for p in (out / "artifacts").rglob("*") if p.is_file())
    return {str(p.relative_to(out / "artifacts")): p.stat().st_mtime_ns for p in files}


def records_by(out: Path, **match: Any) -> list[dict[str, Any]]:
    return [r for r in read_records(out / "results.jsonl") if all(r[k] == v for k, v in match.items())]


def static(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: metrics[k] for k in STATIC}


@dataclass
class Base:
    out: Path
    export: Path


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Base:
    """A run of ft beside the references (both forget sets), then its models exported."""
    out = tmp_path_factory.mktemp("byo")
    result = invoke(
        ["run", "digits-quickstart", *COMMON, "--unlearner", "ft", "--no-unprune", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    export = out.parent / f"{out.name}-export"
    result = invoke(["export", str(out), "--to", str(export)])
    assert result.exit_code == 0, result.output
    return Base(out, export)


def pruned_original(base: Base) -> Path:
    return base.export / "digits-quickstart-original-omp-0.9-seed0" / "model.pt"


# --------------------------------------------------------------------------------------------
# unlearnbench evaluate
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def evaluated(base: Base) -> dict[str, Any]:
    """``evaluate`` of the pruned original's own weights as an external file, into the run's OUT."""
    before = snapshot(base.out)
    args = ["evaluate", str(pruned_original(base)), *COMMON, "--forget", "class0", "--name", "orig"]
    result = invoke([*args, "--out", str(base.out)])
    assert result.exit_code == 0, result.output
    return {"before": before, "after": snapshot(base.out), "args": args}


def test_evaluating_the_originals_weights_reproduces_the_original_row(base: Base, evaluated: Any) -> None:
    (original,) = records_by(base.out, unlearner="original", forget_set="class0")
    (external,) = records_by(base.out, unlearner="external:orig")
    assert external["status"] == "ok" and external["forget_set"] == "class0"
    assert static(external["metrics"]) == static(original["metrics"])
    assert external["sparsity"] == original["sparsity"]
    assert external["metrics"]["rte"] is None  # no unlearning time to report
    assert external["reference"] is None and original.get("external") is None


def test_the_record_names_the_file_and_its_sha256(base: Base, evaluated: Any) -> None:
    (external,) = records_by(base.out, unlearner="external:orig")
    file = pruned_original(base)
    assert external["external"]["file"] == str(file.resolve())
    assert external["external"]["sha256"] == hashlib.sha256(file.read_bytes()).hexdigest()
    assert external["external"]["factory"] is None
    typed = ResultRecord.from_dict(external)  # and a record without the field still loads
    assert typed.external is not None and typed.method == "external:orig"
    assert ResultRecord.from_dict({k: v for k, v in external.items() if k != "external"}).external is None


def test_evaluate_reuses_the_references_and_computes_only_its_model(base: Base, evaluated: Any) -> None:
    before, after = evaluated["before"], evaluated["after"]
    assert all(after.get(path) == mtime for path, mtime in before.items())  # nothing rewritten
    new_stages = {Path(p).parts[0] for p in set(after) - set(before)} - {"locks"}  # node locks
    assert new_stages == {"external", "evaluate"}


def test_a_second_evaluate_recomputes_nothing(base: Base, evaluated: Any) -> None:
    result = invoke([*evaluated["args"], "--out", str(base.out)])
    assert result.exit_code == 0, result.output
    assert snapshot(base.out) == evaluated["after"]


def test_the_leaderboard_shows_the_external_row_beside_the_builtins(base: Base, evaluated: Any) -> None:
    board = (base.out / "leaderboard.md").read_text()
    class0 = board.split("### ")[1]
    assert "forget `class0`" in class0
    rows = [line.split("|")[1].strip() for line in class0.splitlines() if line.startswith("| ")]
    assert {"original", "retrain", "gold", "ft", "external:orig"} <= set(rows)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["nosuch.pt", "--forget", "class0"], ["nosuch.pt", "does not exist"]),
        (["{export}", "--forget", "class0"], ["is not a file"]),
        (["{text}", "--forget", "class0"], ["weights_only=True"]),
        (["{alien}", "--forget", "class0"], ["does not fit", "--model-factory"]),
        (["{model}"], ["one forget set", "class0", "random10", "--forget"]),
        (["{model}", "--forget", "nosuch"], ["'nosuch'", "class0", "random10"]),
        (["{model}", "--forget", "class0", "--model-factory", "nosuchmod:f"], ["'nosuchmod'"]),
        (["{model}", "--forget", "class0", "--name", "bad name"], ["'bad name'"]),
    ],
)
def test_evaluate_refuses_bad_input_in_one_line(
    base: Base, tmp_path: Path, args: list[str], expected: list[str]
) -> None:
    (tmp_path / "notes.pt").write_text("not a tensor file")
    torch.save({"weight": torch.zeros(3)}, tmp_path / "alien.pt")
    paths = {
        "{export}": str(base.export),
        "{text}": str(tmp_path / "notes.pt"),
        "{alien}": str(tmp_path / "alien.pt"),
        "{model}": str(pruned_original(base)),
    }
    out = tmp_path / "out"
    result = invoke(["evaluate", *[paths.get(a, a) for a in args], *COMMON, "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    error = result.stderr.strip()
    assert error.startswith("error:") and len(error.splitlines()) == 1, error
    for part in expected:
        assert part in error, (part, error)
    assert not (out / "results.jsonl").exists()


# --------------------------------------------------------------------------------------------
# The Python API and plain-function unlearners
# --------------------------------------------------------------------------------------------
def retain_finetune(model: nn.Module, retain: Any, forget: Any, validation: Any) -> nn.Module:
    """One epoch of SGD on the retain set (lr 0.01)."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    model.train()
    for x, y in retain:
        optimizer.zero_grad()
        F.cross_entropy(model(x), y).backward()
        optimizer.step()
    return model


def forget_ascent(model: nn.Module, retain: Any, forget: Any, validation: Any) -> nn.Module:
    """One epoch of gradient ascent on the forget set (lr 0.05)."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    model.train()
    for x, y in forget:
        optimizer.zero_grad()
        (-F.cross_entropy(model(x), y)).backward()
        optimizer.step()
    return model


@pytest.fixture(scope="module")
def mine_a(base: Base) -> unlearnbench.Results:
    return unlearnbench.run(
        out=base.out, unlearners={"mine": retain_finetune}, unprune=False, forget="class0", **API
    )


def test_a_function_unlearner_is_a_row_with_its_source_hash(base: Base, mine_a: unlearnbench.Results) -> None:
    assert {r.method for r in mine_a} == {"original", "retrain", "gold", "mine"}
    mine = mine_a.row("mine")
    assert mine.ok and mine.metrics["rte"] is not None and mine.metrics["rte"] > 0
    assert mine.params["unlearner"]["batch_size"] == 128  # the challenge starting kit's loaders
    assert len(mine.params["unlearner"]["source_sha256"]) == 64
    frame = mine_a.to_frame()
    assert list(frame.loc[frame.method == "mine", "ra"]) == [mine.metrics["ra"]]
    assert "| mine " in (base.out / "leaderboard.md").read_text()


def test_a_function_unlearner_changes_when_the_function_changes(
    base: Base, mine_a: unlearnbench.Results
) -> None:
    again = unlearnbench.run(
        out=base.out, unlearners={"mine": retain_finetune}, unprune=False, forget="class0", **API
    )
    assert static(again.row("mine").metrics) == static(
        mine_a.row("mine").metrics
    )  # the same function: reused
    changed = unlearnbench.run(
        out=base.out, unlearners={"mine": forget_ascent}, unprune=False, forget="class0", **API
    )
    a, b = mine_a.row("mine"), changed.row("mine")
    assert a.row_id == b.row_id
    assert a.params["unlearner"]["source_sha256"] != b.params["unlearner"]["source_sha256"]
    assert b.metrics["ua"] > a.metrics["ua"]  # gradient ascent on the forget set forgets more
    (stored,) = records_by(base.out, unlearner="mine")
    assert stored["metrics"]["ua"] == b.metrics["ua"]  # the board shows the current function


def test_a_model_unlearned_outside_is_scored_like_the_function_row(
    base: Base, mine_a: unlearnbench.Results
) -> None:
    """The same function run outside the suite (on ``unlearning_task``'s model and loaders) and
    scored with ``unlearnbench.evaluate`` gives the function row's numbers."""
    task = unlearnbench.unlearning_task(out=base.out, forget="class0", sets=SETS, limit=LIMIT, device="cpu")
    assert task.mask is not None and task.sparsity == 0.9
    model = retain_finetune(task.model, task.retain, task.forget, task.validation)
    task.mask.apply_(model)  # what the harness does after any unlearner
    results = unlearnbench.evaluate(model, name="outside", out=base.out, forget="class0", **API)
    outside = results.row("external:outside")
    assert outside.external is not None and outside.external["factory"] is None  # the protocol's model
    assert static(outside.metrics) == static(mine_a.row("mine").metrics)
    assert Path(outside.external["file"]).parent == base.out / "external"
    assert "| external:outside " in results.leaderboard


class Probe(nn.Module):
    """A user architecture unlike the protocol's: a linear probe on the flattened image."""

    def __init__(self) -> None:
        super().__init__()
        self.flat = nn.Flatten()
        self.linear = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.flat(x))


def test_a_user_architecture_is_scored_through_its_own_factory(base: Base) -> None:
    torch.manual_seed(0)
    probe = Probe()
    results = unlearnbench.evaluate(probe, name="probe", out=base.out, forget="class0", **API)
    row = results.row("external:probe")
    assert row.ok and row.external is not None and row.external["factory"].startswith("python:")
    task = unlearnbench.unlearning_task(out=base.out, forget="class0", sets=SETS, limit=LIMIT, device="cpu")
    probe.eval()
    with torch.no_grad():
        hits = [(probe(x).argmax(1) == y).float() for x, y in task.retain]
    assert row.metrics["ra"] == pytest.approx(100.0 * float(torch.cat(hits).mean()), abs=1e-4)


# --------------------------------------------------------------------------------------------
# Checkpoints in and out
# --------------------------------------------------------------------------------------------
def test_export_writes_weights_and_model_cards(base: Base) -> None:
    folders = sorted(p.name for p in base.export.iterdir() if p.is_dir())
    assert "digits-quickstart-original-dense-seed0" in folders
    for role in ("retrain", "gold"):
        for forget in ("class0", "random10"):
            assert f"digits-quickstart-{role}-{forget}-omp-0.9-seed0" in folders
    folder = base.export / "digits-quickstart-original-omp-0.9-seed0"
    (original,) = records_by(base.out, unlearner="original", forget_set="class0")
    info = json.loads((folder / "unlearnbench.json").read_text())
    assert info["protocol_hash"] == original["protocol_hash"] and info["data_copy"] == "sklearn-digits"
    assert info["files"]["model.pt"] == hashlib.sha256((folder / "model.pt").read_bytes()).hexdigest()
    card = (folder / "README.md").read_text()
    for part in (
        original["protocol_hash"],
        "sklearn-digits",
        "| seed | 0 |",
        str(original["git"]),
        "IoU-gold",
    ):
        assert part in card, part
    assert f"{original['metrics']['ra']:.2f}" in card
    assert oct((folder / "README.md").stat().st_mode & 0o777) == "0o644"
    assert (base.export / "digits-quickstart-original-dense-seed0" / "rewind.pt").is_file()
    result = invoke(
        ["export", str(base.out), "--to", str(base.export), "--push-to", "me/digits", "--dry-run"]
    )
    assert result.exit_code == 0 and "would upload" in result.stdout


def test_a_pretrained_original_is_keyed_by_its_hash_and_reproduces_the_run(
    base: Base, tmp_path: Path
) -> None:
    dense = base.export / "digits-quickstart-original-dense-seed0"
    out = tmp_path / "pretrained"
    args = ["run", *COMMON, "--set", "unlearn.unlearners=[]", "--no-unprune", "--original", str(dense)]
    args += ["--artifacts", str(base.out / "artifacts"), "--out", str(out)]
    result = invoke(args, env={"HF_HUB_OFFLINE": "1"})
    assert result.exit_code == 0, result.output
    for record in records_by(out, unlearner="original"):
        (trained,) = records_by(base.out, unlearner="original", forget_set=record["forget_set"])
        assert record["pretrained"]["sha256"] == hashlib.sha256((dense / "model.pt").read_bytes()).hexdigest()
        assert record["pretrained"]["rewind"] is True
        assert static(record["metrics"]) == static(
            trained["metrics"]
        )  # same weights, same rewind: same model
        assert record["node_keys"] != trained["node_keys"]  # its own nodes, keyed by the file's hash


def test_a_pretrained_original_from_an_offline_hub_cache(base: Base, tmp_path: Path) -> None:
    pytest.importorskip("huggingface_hub")
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--me--digits"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    snapshot_dir = repo / "snapshots" / commit / "dense"
    snapshot_dir.mkdir(parents=True)
    for name in ("model.pt", "rewind.pt"):
        (snapshot_dir / name).write_bytes(
            (base.export / "digits-quickstart-original-dense-seed0" / name).read_bytes()
        )
    code = (
        "from unlearnbench.run.checkpoints import resolve_original as r; o = r('hf:me/digits/dense'); "
        "print(o.sha256, o.rewind_sha256 is not None)"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "hub")}
    found = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    expected = hashlib.sha256((snapshot_dir / "model.pt").read_bytes()).hexdigest()
    assert found.stdout.split() == [expected, "True"]
    env["HF_HUB_CACHE"] = str(tmp_path / "empty")
    missing = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert missing.returncode != 0 and "hf:me/digits/dense" in missing.stderr
