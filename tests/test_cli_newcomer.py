"""The CLI a newcomer meets: run.log, one INFO line per node when redirected, a results table
within 80 columns, `show`, raw leaderboard output, list options with commas and +NAME,
`cache ls|gc`, and UNLEARNBENCH_DISABLE."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from unlearnbench.cli import cli
from unlearnbench.cli_options import load_run
from unlearnbench.registry.catalog import Registry
from unlearnbench.registry.host import DISABLE_DISTS_ENV, create_host, discovered_entry_points

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["--set", "train.epochs=2", "--limit", "200", "--device", "cpu", "--threads", "1"]
NARROW = ["--unlearner", "ft", "--no-unprune", "--metric", "ua,mia-efficacy,ra,ta,fta,rte,mask-iou"]


def cli_run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'plugins'}", "OMP_NUM_THREADS": "1"}
    env.pop("UNLEARNBENCH_DISABLE_PLUGIN_AUTOLOAD", None)
    command = [sys.executable, "-m", "unlearnbench", *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    out = tmp_path_factory.mktemp("run")
    done = cli_run("run", "--out", str(out), *SMALL, *NARROW)
    assert done.returncode == 0, done.stderr
    return out, done


def test_a_redirected_run_logs_one_line_per_node_and_writes_run_log(finished: Any) -> None:
    out, done = finished
    nodes = [line for line in done.stderr.splitlines() if " node " in line]
    total = int(nodes[0].split(" node ")[1].split()[0].split("/")[1])
    assert len(nodes) == total and all(("computed in" in n or "reused" in n) for n in nodes)
    log = (out / "run.log").read_text()
    assert log.count(" node ") == total and "unlearnbench run --out" in log


def test_the_results_table_fits_80_columns_with_labels_units_and_gap(finished: Any) -> None:
    out, done = finished
    table = done.stdout.split("rows (")[0]
    assert max(len(line.rstrip()) for line in table.splitlines()) <= 80
    assert "…" not in table and "Gap" in table and "MIA-E" in table and "min" in table
    assert "MIA-E = MIA-Efficacy" in table
    shown = CliRunner().invoke(cli, ["show", str(out)])
    assert shown.exit_code == 0 and "Gap" in shown.output and "rows (0 failed)" in shown.output


def test_leaderboard_redirected_is_byte_identical_to_dash_o(finished: Any, tmp_path: Path) -> None:
    out, _ = finished
    written = tmp_path / "t.md"
    printed = cli_run("leaderboard", str(out / "results.jsonl"))
    assert cli_run("leaderboard", str(out / "results.jsonl"), "-o", str(written)).returncode == 0
    assert printed.stdout == written.read_text() and "|:--" in printed.stdout


def test_cache_ls_and_gc_count_and_remove_temp_quarantined_and_unreferenced(finished: Any) -> None:
    out, _ = finished
    prune = next((out / "artifacts" / "prune").iterdir())
    stale = prune.parent / ".deadbeef-tmp"
    stale.mkdir()
    (stale / "model.pt").write_bytes(b"x" * 100)
    old = time.time() - 7200
    os.utime(stale, (old, old))
    (prune.parent / f"{prune.name}.corrupt-0").mkdir()
    orphan = prune.parent / ("0" * 24)
    orphan.mkdir()
    (orphan / "meta.json").write_text("{}")
    listed = CliRunner().invoke(cli, ["cache", "ls", str(out)])
    prune_line = next(line for line in listed.output.splitlines() if "│ prune" in line)
    assert [c.strip() for c in prune_line.split("│")[2:7]][:1] == ["2"]
    assert [c.strip() for c in prune_line.split("│")[4:7]] == ["1", "1", "1"]
    gc = CliRunner().invoke(cli, ["cache", "gc", str(out)])
    assert "removed 1 stale temp folder" in gc.output and "removed 1 quarantined folder" in gc.output
    assert orphan.exists() and not stale.exists()
    gc = CliRunner().invoke(cli, ["cache", "gc", str(out), "--unreferenced"])
    assert "removed 1 unreferenced folder" in gc.output and not orphan.exists() and prune.exists()
    again = cli_run("run", "--out", str(out), *SMALL, *NARROW)
    assert again.returncode == 0 and "computed in" not in again.stderr  # nothing used was removed


def options(**given: Any) -> dict[str, Any]:
    command = cli.commands["run"]
    ctx = click.Context(command)
    found = {}
    for param in command.params:
        value = param.get_default(ctx)
        unset = value is None or type(value).__name__ == "Sentinel"  # click 8.3 marks "no default"
        found[param.name] = (() if param.multiple else None) if unset else value
    return {**found, **given}


def test_list_options_take_commas_and_plus_adds_to_the_protocols(tmp_path: Path) -> None:
    registry = Registry(create_host(autoload=True))
    protocol, _ = load_run(registry, options(metrics=("+mask-iou", "+kl-gold"), out=tmp_path), writes=False)
    assert protocol.evaluate.metrics[-1] == "kl-gold"
    assert protocol.evaluate.metrics.count("mask-iou") == 1  # already the protocol's: not added twice
    protocol, _ = load_run(
        registry, options(unlearners=("ft,ga",), seeds=("0,+3",), out=tmp_path), writes=False
    )
    assert list(protocol.unlearn.unlearners) == ["ft", "ga"] and list(protocol.seeds) == [0, 3]


def test_unlearnbench_disable_skips_the_named_distributions(monkeypatch: pytest.MonkeyPatch) -> None:
    every = {ep.name for ep in discovered_entry_points()}
    monkeypatch.setenv(DISABLE_DISTS_ENV, "Unlearnbench_Example.Plugin")
    kept = {ep.name for ep in discovered_entry_points()}
    skipped = [ep for ep in entry_points(group="unlearnbench") if ep.name in every - kept]
    assert skipped and {ep.dist.metadata["Name"] for ep in skipped} == {"unlearnbench-example-plugin"}
    assert "unlearners" in kept


def test_records_hold_node_keys_and_provenance(finished: Any) -> None:
    out, _ = finished
    for line in (out / "results.jsonl").read_text().splitlines():
        record = json.loads(line)
        assert record["node_keys"] and set(record["provenance"]) >= {"original", "evaluate"}


def test_many_metrics_continue_in_further_tables_and_no_number_is_cut() -> None:
    import io

    from rich.console import Console

    from unlearnbench.cli_show import print_results

    names = [f"metric-number-{i}" for i in range(14)]
    info = {n: {"label": f"Long-Label-{i}", "unit": "%", "gap": i < 2} for i, n in enumerate(names)}
    records = [
        {
            **dict.fromkeys(("protocol", "protocol_hash", "dataset", "data_copy", "model"), "x"),
            **{"protocol_version": 1, "forget_kind": "random", "forget_size": 1, "forget_sha256": "s"},
            "row_id": f"r{u}",
            "status": "ok",
            "forget_set": "f",
            "pruner": "omp",
            "sparsity_target": 0.9,
            "unlearner": u,
            "unprune": False,
            "seed": 0,
            "metrics": {n: 100.0 * (i + 1) / 3 for i, n in enumerate(names)},
            "metric_names": names,
            "metric_info": info,
        }
        for u in ("retrain", "a-rather-long-unlearner-name")
    ]
    sink = io.StringIO()
    print_results(Console(file=sink, width=200, force_terminal=False), records)
    text = sink.getvalue()
    assert "…" not in text and "(continued)" in text
    assert max(len(line.rstrip()) for line in text.splitlines()) <= 80
    for i in range(14):
        assert f"{100.0 * (i + 1) / 3:.2f}" in text  # every value printed in full
