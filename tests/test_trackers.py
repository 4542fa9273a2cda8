"""Trackers (``run --tracker``) and the built-in trainers' per-epoch logging.

One tiny run logs to every tracker whose package is installed; each tracker's offline files are
read back with the tracker's own reader and compared with the run's records. A tracker whose
package is missing is skipped with the extra that installs it.
"""

from __future__ import annotations

import importlib.util
import json
import math
import struct
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner
from torch import nn

from unlearnbench.cli import cli
from unlearnbench.data.images import ImageSplit
from unlearnbench.errors import InvalidValueError, UnknownChoiceError
from unlearnbench.registry.events import EpochLogged, StageFinished
from unlearnbench.trackers import TRACKERS, check_trackers, tracker_class
from unlearnbench.trackers.base import Tracker, TrackerRun
from unlearnbench.training.engine import Engine
from unlearnbench.training.recipe import TrainRecipe
from unlearnbench.training.unlearning import EpochLog

pytestmark = pytest.mark.usefixtures("one_thread_and_plugins")

INSTALLED = [n for n in TRACKERS if importlib.util.find_spec(tracker_class(n).module) is not None]
EPOCHS = {"original": 2, "ft": 2, "retrain": 3}
RUN = [
    "run",
    "--unlearner",
    "ft",
    "--no-unprune",
    "--metric",
    "ua,ta",
    "--sparsity",
    "0.5",
    "--limit",
    "150",
    "--device",
    "cpu",
    "--set",
    f"train.epochs={EPOCHS['original']}",
    "--set",
    f"unlearn.params.ft.epochs={EPOCHS['ft']}",
    "--set",
    f"unlearn.params.retrain.epochs={EPOCHS['retrain']}",
]


def need(name: str) -> None:
    if name not in INSTALLED:
        cls = tracker_class(name)
        pytest.skip(f"the {cls.module} package is not installed (pip install 'unlearnbench[{cls.extra}]')")


@pytest.fixture(scope="module")
def tracked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, list[dict[str, Any]]]]:
    """A tiny run logged to every installed tracker, from a working folder of its own."""
    home = tmp_path_factory.mktemp("tracked")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(home)
        args = [*RUN, "--out", "out"] + (["--tracker", ",".join(INSTALLED)] if INSTALLED else [])
        result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    out = home / "out"
    assert sorted(p.name for p in home.iterdir()) == ["out"]  # trackers write under --out only
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    yield out, records


def expected_series(records: list[dict[str, Any]]) -> list[tuple[str, str, str, list[tuple[int, float]]]]:
    """(stage, component, name, [(epoch, value)]) of every node the records logged, once per node
    (rows that share a node, such as the original model, repeat its values)."""
    found: list[tuple[str, str, str, list[tuple[int, float]]]] = []
    for record in records:
        for stage, entries in record["epoch_log"].items():
            component = record["model"] if stage == "original" else record["unlearner"]
            series: dict[str, list[tuple[int, float]]] = {}
            for entry in entries:
                series.setdefault(entry["name"], []).append((entry["epoch"], entry["value"]))
            for name, values in series.items():
                if (stage, component, name, values) not in found:
                    found.append((stage, component, name, values))
    return found


def assert_same_series(logged: list[tuple[str, str, str, list[tuple[int, float]]]], records: Any) -> None:
    """Each node's logged series matches one of the records' series (values as float32) and back."""
    expected = expected_series(records)
    assert len(logged) == len(expected)
    left = list(logged)
    for stage, component, name, values in expected:
        match = [
            i
            for i, (s, c, n, got) in enumerate(left)
            if (s, c, n) == (stage, component, name)
            and [e for e, _ in got] == [e for e, _ in values]
            and [v for _, v in got] == pytest.approx([v for _, v in values], rel=1e-5)
        ]
        assert match, (stage, component, name, values, logged)
        left.pop(match[0])


# --------------------------------------------------------------------------------------------
# The built-in trainers log per-epoch loss and accuracy
# --------------------------------------------------------------------------------------------
def test_builtin_trainers_log_loss_and_accuracy_per_epoch(tracked: tuple[Path, list[dict[str, Any]]]) -> None:
    _, records = tracked
    by_method = {r["unlearner"]: r for r in records if r["forget_set"] == "class0"}
    assert set(by_method) == {"original", "ft", "retrain"}
    assert "unlearn" not in by_method["original"]["epoch_log"]
    for method, record in by_method.items():
        for stage in ("original", "unlearn") if method != "original" else ("original",):
            epochs = EPOCHS["original" if stage == "original" else method]
            entries = record["epoch_log"][stage]
            for name in ("train_loss", "train_acc"):
                values = [e for e in entries if e["name"] == name]
                assert [e["epoch"] for e in values] == list(range(1, epochs + 1)), (method, stage, name)
                assert all(math.isfinite(e["value"]) for e in values)
            assert all(0.0 <= e["value"] <= 100.0 for e in entries if e["name"] == "train_acc")


def test_engine_epoch_values_are_the_epochs_loss_and_accuracy() -> None:
    """With a zero learning rate the model never changes, so each epoch's logged accuracy is the
    model's accuracy on the split and its loss the mean of the batch losses."""
    torch.manual_seed(0)
    images = torch.randint(0, 256, (50, 1, 4, 4), dtype=torch.uint8)
    labels = torch.randint(0, 3, (50,))
    split = ImageSplit(images, labels)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    engine = Engine("cpu", (0.5,), (0.25,), bf16=False, channels_last=False)
    recipe = TrainRecipe(
        epochs=2, batch_size=10, lr=0.0, momentum=0.0, weight_decay=0.0, schedule="constant", augment=False
    )
    log = EpochLog()
    engine.fit(model, split, recipe, seed=0, epoch_log=log)
    ((x, y),) = engine.batches(split, 50, None, shuffle=False)
    loss = F.cross_entropy(model(x), y).item()  # batches of equal size: the mean of their means
    accuracy = engine.accuracy(model, split)
    for epoch in (1, 2):
        got = {e.name: e.value for e in log.entries if e.epoch == epoch}
        assert got["train_acc"] == pytest.approx(accuracy)
        assert got["train_loss"] == pytest.approx(loss, rel=1e-5)
    assert [e.epoch for e in log.entries] == [1, 1, 2, 2]
    # a custom loss logs the loss only (the engine cannot know the accuracy)
    other = EpochLog()
    engine.fit(
        model,
        split,
        recipe,
        seed=0,
        epoch_log=other,
        loss_fn=lambda m, x, y: F.mse_loss(m(x)[:, 0], y.float()),
    )
    assert {e.name for e in other.entries} == {"train_loss"}


# --------------------------------------------------------------------------------------------
# Each tracker's files, read back
# --------------------------------------------------------------------------------------------
def test_tensorboard_writes_each_nodes_curves_and_each_row(
    tracked: tuple[Path, list[dict[str, Any]]],
) -> None:
    need("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out, records = tracked
    (run,) = list((out / "tensorboard").iterdir())
    logged = []
    for folder in sorted((run / "nodes").glob("*/*/*")):
        stage, component = folder.parent.parent.name, folder.parent.name
        events = EventAccumulator(str(folder))
        events.Reload()
        for tag in events.Tags()["scalars"]:
            logged.append((stage, component, tag, [(s.step, s.value) for s in events.Scalars(tag)]))
    assert_same_series(logged, records)
    rows = sorted(p for p in (run / "rows").iterdir() if p.is_dir())
    assert len(rows) == sum(r["status"] == "ok" for r in records)
    ft = next(r for r in records if r["unlearner"] == "ft" and r["forget_set"] == "random10")
    events = EventAccumulator(str(run / "rows" / "random10_omp@0.5_ft_s0"))
    events.Reload()
    assert events.Scalars("metric/ua")[0].value == pytest.approx(ft["metrics"]["ua"], rel=1e-5)


def test_mlflow_writes_a_local_store_with_node_and_row_runs(
    tracked: tuple[Path, list[dict[str, Any]]],
) -> None:
    need("mlflow")
    from mlflow.tracking import MlflowClient

    from unlearnbench.trackers.mlflow_tracker import tracking_uri

    out, records = tracked
    client = MlflowClient(tracking_uri=tracking_uri(out / "mlflow"))
    experiment = client.get_experiment_by_name(records[0]["protocol"])
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert parents[0].data.tags["protocol_hash"] == records[0]["protocol_hash"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    nodes = [r for r in children if "stage" in r.data.tags]
    logged = []
    for node in nodes:
        for name in node.data.metrics:
            history = client.get_metric_history(node.info.run_id, name)
            series = [(m.step, m.value) for m in history]
            logged.append((node.data.tags["stage"], node.data.tags["component"], name, series))
    assert_same_series(logged, records)
    rows = {r.data.tags["row_id"]: r for r in children if "row_id" in r.data.tags}
    assert set(rows) == {r["row_id"] for r in records}
    for record in records:
        row = rows[record["row_id"]]
        assert row.data.params["unlearner"] == record["unlearner"]
        assert row.data.metrics == pytest.approx(
            {k: v for k, v in record["metrics"].items() if v is not None}
        )


def read_wandb_records(path: Path) -> list[Any]:
    """The protobuf records of an offline ``.wandb`` file (a LevelDB-style log: 32 KiB blocks of
    chunks with a 7-byte header ``crc32, length, type``; type 1 full, 2 first, 3 middle, 4 last)."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    position, block, buffer, found = 7, 32768, b"", []
    while position + 7 <= len(data):
        if block - position % block < 7:
            position += block - position % block
            continue
        _, length, kind = struct.unpack("<IHB", data[position : position + 7])
        if kind == 0:
            break
        buffer += data[position + 7 : position + 7 + length]
        position += 7 + length
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(buffer)
            found.append(record)
            buffer = b""
    return found


def test_wandb_writes_an_offline_run(tracked: tuple[Path, list[dict[str, Any]]]) -> None:
    need("wandb")
    out, records = tracked
    (file,) = list((out / "wandb").glob("wandb/offline-run-*/run-*.wandb"))
    parsed = read_wandb_records(file)
    kinds = [r.WhichOneof("record_type") for r in parsed]
    assert "run" in kinds and "exit" in kinds
    series: dict[tuple[str, str, str, str], list[tuple[int, float]]] = {}
    summary: dict[str, Any] = {}
    for record in parsed:
        if record.WhichOneof("record_type") == "summary":
            for item in record.summary.update:
                summary[item.key or "/".join(item.nested_key)] = json.loads(item.value_json)
        if record.WhichOneof("record_type") != "history":
            continue
        items = {
            item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in record.history.item
        }
        for key, value in items.items():
            parts = key.split("/")
            if len(parts) == 4 and parts[3] != "epoch":
                epoch = items["/".join(parts[:3]) + "/epoch"]
                series.setdefault((parts[0], parts[1], parts[2], parts[3]), []).append((epoch, value))
    logged = [(stage, component, name, values) for (stage, component, _, name), values in series.items()]
    assert_same_series(logged, records)
    ft = next(r for r in records if r["unlearner"] == "ft" and r["forget_set"] == "class0")
    assert summary["class0/omp@0.5/ft/s0/ua"] == pytest.approx(ft["metrics"]["ua"])
    assert summary["class0/omp@0.5/ft/s0/ta"] == pytest.approx(ft["metrics"]["ta"])
    run = next(r for r in parsed if r.WhichOneof("record_type") == "run")
    assert run.run.project == records[0]["protocol"]


# --------------------------------------------------------------------------------------------
# Selection, bad input, and a node computed in another process
# --------------------------------------------------------------------------------------------
def test_unknown_repeated_or_missing_tracker_is_one_clear_line(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(
        UnknownChoiceError, match="unknown tracker 'tb'; valid choices: mlflow, tensorboard, wandb"
    ):
        check_trackers(["tb"])
    with pytest.raises(InvalidValueError, match="--tracker wandb is given more than once"):
        check_trackers(["wandb", "wandb"])
    cls = tracker_class("mlflow")
    monkeypatch.setattr(cls, "module", "unlearnbench_no_such_package")
    with pytest.raises(InvalidValueError, match=r"pip install 'unlearnbench\[mlflow\]'"):
        check_trackers(["mlflow"])
    result = CliRunner().invoke(cli, ["run", "--tracker", "mlflow", "--out", "unused"])
    assert result.exit_code == 2
    assert "pip install 'unlearnbench[mlflow]'" in result.output  # the extra is not eaten as markup
    result = CliRunner().invoke(cli, ["run", "--tracker", "tensorboard,nope", "--out", "unused"])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "error: unknown tracker 'nope'; valid choices: mlflow, tensorboard, wandb"
    ]


class Recorder(Tracker):
    name = "recorder"

    def __init__(self, out: Path, run: TrackerRun) -> None:
        super().__init__(out, run)
        self.seen: list[tuple[str, int, str, float]] = []
        self.done: list[str] = []

    def epoch(self, stage: str, component: str, key: str, epoch: int, name: str, value: float) -> None:
        self.seen.append((key, epoch, name, value))

    def node_done(self, event: StageFinished) -> None:
        self.done.append(event.key)

    def result(self, record: Mapping[str, Any]) -> None:
        pass


def test_values_logged_in_another_process_are_read_from_the_artifact(tmp_path: Path) -> None:
    meta = {
        "epoch_log": [
            {"epoch": 1, "name": "train_loss", "value": 2.5},
            {"epoch": 2, "name": "train_loss", "value": 1.5},
        ]
    }
    (tmp_path / "meta.json").write_text(json.dumps(meta))
    tracker = Recorder(tmp_path, TrackerRun("r", "p", "h"))
    remote = StageFinished("unlearn", "ft", "k1", tmp_path, 1.0, reused=False)
    tracker.unlearnbench_stage_finished(remote)
    assert tracker.seen == [("k1", 1, "train_loss", 2.5), ("k1", 2, "train_loss", 1.5)]
    # a node logged live is not logged again, and a reused node logs nothing
    tracker.seen.clear()
    tracker.unlearnbench_epoch_logged(EpochLogged("unlearn", "ft", "k2", 1, "train_loss", 9.0))
    tracker.unlearnbench_stage_finished(StageFinished("unlearn", "ft", "k2", tmp_path, 1.0, reused=False))
    tracker.unlearnbench_stage_finished(StageFinished("unlearn", "ft", "k3", tmp_path, 0.0, reused=True))
    assert tracker.seen == [("k2", 1, "train_loss", 9.0)]
    assert tracker.done == ["k1", "k2", "k3"]
