"""The content-addressed artifact store, atomic text writes and the results file."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from unlearnbench.errors import InvalidValueError
from unlearnbench.files import write_text_atomic
from unlearnbench.report.results import ResultsFile, read_records
from unlearnbench.run.artifacts import META, ArtifactStore, artifact_key

INPUTS = {"parent": "abc", "params": {"epochs": 3, "lr": 0.01}, "seeds": [0, 1]}


def entries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# --------------------------------------------------------------------------------------------
# ArtifactStore
# --------------------------------------------------------------------------------------------
def test_put_then_get_returns_the_same_meta(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    key = artifact_key("unlearn", INPUTS)

    def write(folder: Path) -> dict:
        (folder / "model.pt").write_bytes(b"weights")
        return {"runtime_s": 1.25, "component": "ft"}

    put = store.put("unlearn", key, INPUTS, write)
    got = store.get("unlearn", key)
    assert got is not None
    assert got.meta == put.meta
    assert got.meta["inputs"] == INPUTS
    assert got.meta["key"] == key and got.meta["stage"] == "unlearn"
    assert got.meta["runtime_s"] == 1.25 and got.meta["component"] == "ft"
    assert got.path == put.path == store.path("unlearn", key)
    assert got.file("model.pt").read_bytes() == b"weights"
    assert entries(tmp_path / "unlearn") == [key[:24]]
    assert entries(got.path) == sorted([META, "model.pt"])


def test_get_of_a_missing_or_incomplete_artifact_is_none(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    key = artifact_key("prune", INPUTS)
    assert store.get("prune", key) is None
    # A directory without meta.json (e.g. left by an older crash) is not an artifact ...
    store.path("prune", key).mkdir(parents=True)
    (store.path("prune", key) / "model.pt").write_bytes(b"half")
    assert store.get("prune", key) is None
    # ... and a later put replaces it.
    store.put("prune", key, INPUTS, lambda folder: (folder / "new.pt").write_bytes(b"x") and None)
    assert entries(store.path("prune", key)) == sorted([META, "new.pt"])


def test_get_refuses_a_directory_whose_meta_has_another_key(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    key = artifact_key("prune", INPUTS)
    store.put("prune", key, INPUTS, lambda folder: None)
    other = key[:24] + "0" * 40  # same directory, different full key
    assert other != key
    assert store.get("prune", other) is None
    assert store.get("prune", key) is not None


@pytest.mark.parametrize("exc_type", [RuntimeError, KeyboardInterrupt])
def test_a_crash_inside_write_leaves_nothing_behind(tmp_path: Path, exc_type: type[BaseException]) -> None:
    store = ArtifactStore(tmp_path)
    key = artifact_key("unlearn", INPUTS)

    def write(folder: Path) -> dict:
        (folder / "model.pt").write_bytes(b"partial")
        raise exc_type("crash mid-write")

    with pytest.raises(exc_type, match="crash mid-write"):
        store.put("unlearn", key, INPUTS, write)
    assert store.get("unlearn", key) is None
    assert not store.path("unlearn", key).exists()
    assert entries(tmp_path / "unlearn") == []  # no temporary directory either


def test_a_crash_leaves_an_existing_artifact_of_another_key_alone(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    good_key = artifact_key("unlearn", INPUTS)
    store.put("unlearn", good_key, INPUTS, lambda folder: {"runtime_s": 2.0})
    bad_inputs = {**INPUTS, "seeds": [2]}

    def write(folder: Path) -> dict:
        raise OSError("disk full")

    with pytest.raises(OSError):
        store.put("unlearn", artifact_key("unlearn", bad_inputs), bad_inputs, write)
    assert entries(tmp_path / "unlearn") == [good_key[:24]]
    assert store.get("unlearn", good_key).meta["runtime_s"] == 2.0  # type: ignore[union-attr]


def test_different_inputs_give_different_keys() -> None:
    base = artifact_key("unlearn", INPUTS)
    assert len(base) == 64
    assert artifact_key("unlearn", json.loads(json.dumps(INPUTS))) == base
    assert artifact_key("unlearn", dict(reversed(list(INPUTS.items())))) == base  # order-free
    variants = [
        artifact_key("prune", INPUTS),
        artifact_key("unlearn", {**INPUTS, "parent": "abd"}),
        artifact_key("unlearn", {**INPUTS, "params": {"epochs": 4, "lr": 0.01}}),
        artifact_key("unlearn", {**INPUTS, "params": {"epochs": 3, "lr": 0.02}}),
        artifact_key("unlearn", {**INPUTS, "seeds": [1, 0]}),
        artifact_key("unlearn", {**INPUTS, "extra": None}),
    ]
    assert base not in variants
    assert len(set(variants)) == len(variants)
    assert len({v[:24] for v in [base, *variants]}) == len(variants) + 1


def test_two_stages_with_equal_inputs_do_not_collide(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    a = store.put("original", artifact_key("original", INPUTS), INPUTS, lambda f: {"which": "a"})
    b = store.put("retain-dense", artifact_key("retain-dense", INPUTS), INPUTS, lambda f: {"which": "b"})
    assert a.path != b.path
    assert store.get("original", a.key).meta["which"] == "a"  # type: ignore[union-attr]
    assert store.get("retain-dense", b.key).meta["which"] == "b"  # type: ignore[union-attr]


# --------------------------------------------------------------------------------------------
# write_text_atomic
# --------------------------------------------------------------------------------------------
def test_write_text_atomic_writes_replaces_and_creates_parents(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "board.md"
    write_text_atomic(target, "first\n")
    assert target.read_text() == "first\n"
    write_text_atomic(target, "second ± 1\n")
    assert target.read_text() == "second ± 1\n"
    assert entries(target.parent) == ["board.md"]


def test_write_text_atomic_keeps_the_old_file_when_writing_fails(tmp_path: Path) -> None:
    target = tmp_path / "results.jsonl"
    write_text_atomic(target, "old\n")
    with pytest.raises(TypeError):
        write_text_atomic(target, 12345)  # type: ignore[arg-type]
    assert target.read_text() == "old\n"
    assert entries(tmp_path) == ["results.jsonl"]  # no temporary file left


def test_write_text_atomic_replaces_in_one_step(tmp_path: Path) -> None:
    target = tmp_path / "f.txt"
    write_text_atomic(target, "old")
    before = os.stat(target).st_ino
    write_text_atomic(target, "new")
    # os.replace of a new file: a reader holding the old inode still sees the old content.
    assert os.stat(target).st_ino != before
    assert target.read_text() == "new"


# --------------------------------------------------------------------------------------------
# ResultsFile
# --------------------------------------------------------------------------------------------
def record(row_id: str, value: float, status: str = "ok") -> dict:
    return {"row_id": row_id, "status": status, "metrics": {"ua": value}}


def test_results_file_keeps_other_rows_and_replaces_the_same_row(tmp_path: Path) -> None:
    path = tmp_path / "out" / "results.jsonl"
    results = ResultsFile(path)
    results.put(record("a", 1.0))
    results.put(record("b", 2.0))
    results.put(record("a", 3.0))
    assert [(r["row_id"], r["metrics"]["ua"]) for r in results.records()] == [("a", 3.0), ("b", 2.0)]
    on_disk = read_records(path, required=("row_id",))
    assert on_disk == results.records()
    assert len(path.read_text().splitlines()) == 2

    # A second writer (a re-run) starts from what is on disk.
    again = ResultsFile(path)
    assert again.records() == on_disk
    again.put(record("c", 4.0))
    again.put(record("b", 5.0, status="failed"))
    assert [
        (r["row_id"], r["metrics"]["ua"], r["status"]) for r in read_records(path, required=("row_id",))
    ] == [
        ("a", 3.0, "ok"),
        ("b", 2.0, "ok"),
        ("c", 4.0, "ok"),
    ]
    # the failed attempt is not lost: it is in the attempts log
    attempts = read_records(results.attempts, required=("row_id",))
    assert [(r["row_id"], r["status"]) for r in attempts] == [("b", "failed")]


def test_a_failed_row_is_replaced_by_a_later_success(tmp_path: Path) -> None:
    results = ResultsFile(tmp_path / "results.jsonl")
    results.put(record("a", 1.0, status="failed"))
    results.put(record("a", 2.0))
    assert [(r["metrics"]["ua"], r["status"]) for r in results.records()] == [(2.0, "ok")]


def test_a_narrower_rerun_adds_metrics_and_removes_none(tmp_path: Path) -> None:
    results = ResultsFile(tmp_path / "results.jsonl")
    full = {
        "row_id": "a",
        "status": "ok",
        "metrics": {"ua": 1.0, "ra": 99.0, "mia-efficacy": 5.0},
        "metric_names": ["ua", "ra", "mia-efficacy"],
        "metric_errors": {"ta": "ValueError: boom"},
    }
    results.put(full)
    results.put(
        {"row_id": "a", "status": "ok", "metrics": {"ua": 2.0, "ta": 90.0}, "metric_names": ["ua", "ta"]}
    )
    (row,) = results.records()
    assert row["metrics"] == {"ua": 2.0, "ra": 99.0, "mia-efficacy": 5.0, "ta": 90.0}
    assert row["metric_names"] == ["ua", "ra", "mia-efficacy", "ta"]
    assert row["metric_errors"] == {}  # ta was recomputed without error


def _write_rows(path: str, prefix: str, count: int, start: Any) -> None:
    results = ResultsFile(Path(path))
    start.wait(60)
    for i in range(count):
        results.put(
            {"row_id": f"{prefix}{i}", "status": "ok", "metrics": {"ua": float(i)}, "pad": "x" * 4000}
        )


def test_two_processes_writing_at_once_keep_the_union_of_their_rows(tmp_path: Path) -> None:
    import multiprocessing

    path = tmp_path / "results.jsonl"
    context = multiprocessing.get_context("fork")
    start = context.Event()
    workers = [context.Process(target=_write_rows, args=(str(path), p, 150, start)) for p in ("ft", "ga")]
    for worker in workers:
        worker.start()
    start.set()
    for worker in workers:
        worker.join(120)
        assert worker.exitcode == 0
    ids = {r["row_id"] for r in read_records(path, required=("row_id",))}
    assert ids == {f"{p}{i}" for p in ("ft", "ga") for i in range(150)}


def test_read_records_errors_name_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "results.jsonl"
    path.write_text(json.dumps(record("a", 1.0)) + "\n\n{not json\n")
    with pytest.raises(InvalidValueError, match=r"results\.jsonl:3: not a JSON line"):
        read_records(path, required=("row_id",))
    with pytest.raises(InvalidValueError, match="cannot read results file"):
        read_records(tmp_path / "missing.jsonl")
