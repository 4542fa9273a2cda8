"""Every bad input the CLI meets: exit code 2, one line naming the bad value, no traceback."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import shutil
import threading
import time
import types
from collections import Counter, namedtuple
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from torch import nn

from unlearnbench import cli as cli_module
from unlearnbench import hookimpl
from unlearnbench.cli import cli
from unlearnbench.data.images import DatasetSplits
from unlearnbench.errors import InvalidValueError
from unlearnbench.registry.catalog import Registry
from unlearnbench.registry.components import Metric, Unlearner, UnlearnTask
from unlearnbench.registry.host import DISABLE_AUTOLOAD_ENV, ONLY_PLUGINS_ENV, create_host
from unlearnbench.report.results import ResultsFile, read_records
from unlearnbench.run.evaluation import EvalContext

GOOD_RESULTS = Path(__file__).resolve().parents[1] / "leaderboards" / "digits-quickstart" / "results.jsonl"

Case = namedtuple("Case", "args expected")


def _cases(tmp: Path) -> dict[str, Case]:
    (tmp / "a-file").write_text("x")
    (tmp / "random.jsonl").write_bytes(bytes(range(128, 256)) * 3)
    (tmp / "other.jsonl").write_text('{"a": 1}\n')
    (tmp / "tuning5.toml").write_text("tuning = 5\n")
    (tmp / "empty.jsonl").write_text("")
    return {
        "out is a file": Case(["run", "--out", str(tmp / "a-file")], "is a file, not a directory"),
        "out not writable": Case(["run", "--out", "/proc/unlearnbench-out"], "is not writable"),
        "set under a value": Case(["run", "--set", "train.recipe.epochs=3"], "train.recipe takes a value"),
        "zero epochs": Case(["run", "--set", "train.epochs=0"], "train.epochs must be >= 1"),
        "negative limit": Case(["run", "--set", "data.limit=-5"], "data.limit -5 must be >= 0"),
        "negative seed": Case(["run", "--seed", "-1"], "integers >= 0, got [-1]"),
        "relabel version": Case(["run", "--set", "version=2"], "version is fixed by its file"),
        "data root ignored": Case(["run", "--data-root", str(tmp)], "reads no data root"),
        "row twice": Case(
            ["run", "--unlearner", "ft", "--unlearner", "ft"], "unlearn.unlearners selects ft more"
        ),
        "sparsity twice": Case(["run", "--sparsity", "0.5,0.5"], "prune.sparsities selects 0.5 more"),
        "zero threads": Case(["run", "--threads", "0"], "error: --threads 0 must be an integer >= 1"),
        "leaderboard random bytes": Case(["leaderboard", str(tmp / "random.jsonl")], "is not text"),
        "leaderboard wrong schema": Case(
            ["leaderboard", str(tmp / "other.jsonl")], "not an unlearnbench result"
        ),
        "leaderboard twice": Case(
            ["leaderboard", str(GOOD_RESULTS), str(GOOD_RESULTS)], "give each results file once"
        ),
        "leaderboard -o dir": Case(["leaderboard", str(GOOD_RESULTS), "-o", str(tmp)], "is a directory"),
        "leaderboard a dir": Case(["leaderboard", str(tmp)], "is a directory"),
        "leaderboard missing": Case(["leaderboard", str(tmp / "nope.jsonl")], "cannot read results file"),
        "rerun unknown stage": Case(
            ["run", "--out", str(tmp / "o"), "--rerun", "unlearnn"], "unknown --rerun stage 'unlearnn'"
        ),
        "seed not a number": Case(["run", "--seed", "0,x"], "--seed 'x' is not an integer"),
        "added metric unknown": Case(["run", "--metric", "+nosuch"], "nosuch"),
        "show no run": Case(["show", str(tmp / "none")], "not found; give the --out folder"),
        "cache no store": Case(["cache", "ls", str(tmp / "none")], "is not an artifact store folder"),
        "unprune skip unknown": Case(
            ["run", "--out", str(tmp / "o"), "--set", "unprune.skip=[scrubb]"],
            "unknown unlearner in unprune.skip 'scrubb'; valid choices: amnesiac, assd,",
        ),
        # issue 21: paths, unknown stores, override files, Ray, timeouts
        "forget set name escapes": Case(
            ["run", "--out", str(tmp / "o"), "--set", "forget.random10.name=/../../../../escaped"],
            "forget set name '/../../../../escaped' cannot be a file name",
        ),
        "forget set name dotdot": Case(
            ["run", "--out", str(tmp / "o"), "--set", "forget.random10.name=..x"], "cannot be a file name"
        ),
        "artifacts unknown protocol (run)": Case(
            ["run", "--out", str(tmp / "o"), "--artifacts", "foo://x"], "unknown fsspec protocol 'foo'"
        ),
        "artifacts unknown protocol (plan)": Case(
            ["plan", "--out", str(tmp / "o"), "--artifacts", "foo://x"], "unknown fsspec protocol 'foo'"
        ),
        "override tuning not a table": Case(
            ["run", "--out", str(tmp / "o"), "--overrides", str(tmp / "tuning5.toml")],
            "tuning must be a table of [tuning.<unlearner>] tables",
        ),
        "ray address refused": Case(
            ["run", "--out", str(tmp / "o"), "--executor", "ray", "--ray-address", "127.0.0.1:1"],
            "--ray-address 127.0.0.1:1: no Ray cluster answers there",
        ),
        "ray address not host:port": Case(
            ["run", "--out", str(tmp / "o"), "--executor", "ray", "--ray-address", "nowhere"],
            "is not HOST:PORT",
        ),
        "timeout unknown stage": Case(
            ["run", "--out", str(tmp / "o"), "--timeout", "evaluat=5"], "unknown --timeout stage 'evaluat'"
        ),
        "timeout not positive": Case(
            ["run", "--out", str(tmp / "o"), "--timeout", "evaluate=0"], "SECONDS must be a number > 0"
        ),
        "publish empty results": Case(
            ["publish", str(tmp / "empty.jsonl"), "-o", str(tmp / "pub")], "no result records"
        ),
        "plot empty results": Case(
            ["plot", str(tmp / "empty.jsonl"), "-o", str(tmp / "plots")], "no result records"
        ),
    }


NAMES = [
    "out is a file",
    "out not writable",
    "set under a value",
    "zero epochs",
    "negative limit",
    "negative seed",
    "relabel version",
    "data root ignored",
    "row twice",
    "sparsity twice",
    "zero threads",
    "leaderboard random bytes",
    "leaderboard wrong schema",
    "leaderboard twice",
    "leaderboard -o dir",
    "leaderboard a dir",
    "leaderboard missing",
    "rerun unknown stage",
    "seed not a number",
    "added metric unknown",
    "show no run",
    "cache no store",
    "unprune skip unknown",
    "forget set name escapes",
    "forget set name dotdot",
    "artifacts unknown protocol (run)",
    "artifacts unknown protocol (plan)",
    "override tuning not a table",
    "ray address refused",
    "ray address not host:port",
    "timeout unknown stage",
    "timeout not positive",
    "publish empty results",
    "plot empty results",
]


@pytest.mark.parametrize("name", NAMES)
def test_bad_input_is_one_clear_line(name: str, tmp_path: Path) -> None:
    case = _cases(tmp_path)[name]
    result = CliRunner().invoke(cli, case.args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert case.expected in " ".join(result.output.split()), result.output
    assert not (tmp_path / "o" / "results.jsonl").exists()  # refused before any work
    assert not (tmp_path.parent / "escaped").exists() and not (tmp_path / "pub" / "README.md").exists()


def test_a_full_disk_is_refused_before_any_work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real: Callable = shutil.disk_usage
    monkeypatch.setattr("unlearnbench.run.outdir.shutil.disk_usage", lambda p: real(p)._replace(free=1024))
    result = CliRunner().invoke(cli, ["run", "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert "MiB free" in result.output


# --------------------------------------------------------------------------------------------
# Issue 21: faults met during a run, on a tiny digits run (6 rows, seconds on one thread)
# --------------------------------------------------------------------------------------------
TINY = [
    "run",
    "digits-quickstart",
    "--device",
    "cpu",
    "--limit",
    "200",
    "--no-unprune",
    *("--unlearner", "ft", "--metric", "ua,ra"),
    *("--set", "train.epochs=1", "--set", "unlearn.params.ft.epochs=1"),
    *("--set", "unlearn.params.retrain.epochs=1"),
]
GATE = threading.Event()
"""Released at the end of the module: what the never-finishing test plugins wait on."""


@pytest.fixture(scope="module", autouse=True)
def _release_gate() -> Iterator[None]:
    yield
    GATE.set()


@pytest.fixture
def plugins(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """Make the CLI's registry the installed plugins plus the given test components."""
    monkeypatch.delenv(DISABLE_AUTOLOAD_ENV, raising=False)
    monkeypatch.delenv(ONLY_PLUGINS_ENV, raising=False)
    torch.set_num_threads(1)

    def install(*components: type) -> None:
        module = types.ModuleType("ub_bad_input_plugin")
        metrics = [c for c in components if issubclass(c, Metric)]
        unlearners = [c for c in components if issubclass(c, Unlearner)]
        module.unlearnbench_register_metrics = hookimpl(lambda: metrics)  # type: ignore[attr-defined]
        module.unlearnbench_register_unlearners = hookimpl(lambda: unlearners)  # type: ignore[attr-defined]
        monkeypatch.setattr(
            cli_module, "make_registry", lambda: Registry(create_host(autoload=True, plugins=[module]))
        )

    return install


class NaNGap(Metric):
    """Returns NaN: a gap metric whose every value is not a number."""

    name = "bad-nan"
    label = "NaN"
    gap = True

    def compute(self, ctx: EvalContext) -> float:
        return float("nan")


class StringValue(Metric):
    """Returns the string "0.5" instead of a number."""

    name = "bad-string"

    def compute(self, ctx: EvalContext) -> Any:
        return "0.5"


class NeverReturns(Metric):
    """Waits (until the module ends) instead of returning."""

    name = "bad-hang"

    def compute(self, ctx: EvalContext) -> float:
        while not GATE.is_set():
            time.sleep(0.02)
        return 0.0


class RemovesOut(Unlearner):
    """Deletes the run's --out folder (named by the environment) and then fine-tunes."""

    name = "bad-rmout"

    def unlearn(self, model: nn.Module, task: UnlearnTask) -> nn.Module:
        shutil.rmtree(os.environ["UB_TEST_OUT"], ignore_errors=True)
        return model


class CtrlC(Unlearner):
    """Raises KeyboardInterrupt, as Ctrl-C would in the middle of unlearning."""

    name = "bad-ctrlc"

    def unlearn(self, model: nn.Module, task: UnlearnTask) -> nn.Module:
        raise KeyboardInterrupt


class Explodes(Unlearner):
    """Raises; its one parameter is what the failed record must say it ran with."""

    name = "bad-explodes"

    @dataclass(frozen=True)
    class Params:
        lr: float = 0.01

    def unlearn(self, model: nn.Module, task: UnlearnTask) -> nn.Module:
        raise RuntimeError(f"diverged at lr={self.params.lr}")


def _strict(path: Path) -> list[dict[str, Any]]:
    """The lines of ``path`` parsed as strict JSON (NaN and Infinity refused)."""

    def refuse(name: str) -> None:
        raise ValueError(f"non-standard JSON constant {name}")

    return [json.loads(line, parse_constant=refuse) for line in path.read_text().splitlines() if line]


def _with_copy(monkeypatch: pytest.MonkeyPatch, copy: str, drop_test_class: int | None = None) -> None:
    """Make the digits plugin report another data copy (or lose a class from its test split)."""
    from unlearnbench_datasets.digits import Digits

    real = Digits.load

    def load(self: Digits, root: Path | None, *, download: bool) -> DatasetSplits:
        found = real(self, root, download=download)
        test = found.test
        if drop_test_class is not None:
            test = test.subset(torch.nonzero(test.labels != drop_test_class).flatten())
        return dataclasses.replace(found, copy=copy, test=test)

    monkeypatch.setattr(Digits, "load", load)


def test_rows_of_two_data_copies_are_two_rows(
    tmp_path: Path, plugins: Callable[..., None], monkeypatch: pytest.MonkeyPatch
) -> None:
    plugins()
    a, b, both = tmp_path / "a", tmp_path / "b", tmp_path / "both"
    assert CliRunner().invoke(cli, [*TINY, "--out", str(a)]).exit_code == 0
    _with_copy(monkeypatch, "digits-copy-b")
    assert CliRunner().invoke(cli, [*TINY, "--out", str(b)]).exit_code == 0
    # the leaderboard of the two folders shows both copies, one table per copy
    board = CliRunner().invoke(cli, ["leaderboard", str(a / "results.jsonl"), str(b / "results.jsonl")])
    assert board.exit_code == 0, board.output
    assert board.output.count("### digits-quickstart") == 4  # 2 forget sets x 2 copies
    assert (
        board.output.count("(copy `sklearn-digits`)") == 2
        and board.output.count("(copy `digits-copy-b`)") == 2
    )
    # copy B run into copy A's folder keeps A's rows beside its own
    both.mkdir()
    shutil.copy(a / "results.jsonl", both / "results.jsonl")
    again = CliRunner().invoke(cli, [*TINY, "--out", str(both), "--artifacts", str(b / "artifacts")])
    assert again.exit_code == 0, again.output
    records = read_records(both / "results.jsonl")
    assert sorted(Counter(r["data_copy"] for r in records).items()) == [
        ("digits-copy-b", 6),
        ("sklearn-digits", 6),
    ]
    assert len({r["row_id"] for r in records}) == 12
    assert [r for r in records if r["data_copy"] == "sklearn-digits"] == read_records(a / "results.jsonl")
    shown = CliRunner().invoke(cli, ["show", str(both)])
    assert shown.exit_code == 0, shown.output
    flat = "".join(shown.output.split())  # rich wraps titles
    assert flat.count("copysklearn-digits") == 2 and flat.count("copydigits-copy-b") == 2


def test_legacy_row_ids_are_rekeyed_with_their_data_copy(tmp_path: Path) -> None:
    from unlearnbench.report.record import LEGACY_ROW_ID_FIELDS, row_id
    from unlearnbench.report.results import current_row_id
    from unlearnbench.run.artifacts import artifact_key

    fields = lambda r: LEGACY_ROW_ID_FIELDS + (("unpruner",) if r["unprune"] else ())  # noqa: E731
    current = [json.loads(line) for line in GOOD_RESULTS.read_text().splitlines()]
    # a file as written before the data copy joined the id: the first 20 rows carry the old id
    # (of repetition 0 rows only: later repetitions' ids never had the legacy form)
    first = [r for r in current if row_id({**r, "seeds": {}}) == row_id(r)][:20]
    legacy = [
        {**r, "row_id": artifact_key("row", {k: r[k] for k in fields(r)})} if r in first else r
        for r in current
    ]
    legacy_file = tmp_path / "legacy.jsonl"
    legacy_file.write_text("".join(json.dumps(r) + "\n" for r in legacy))
    matches = [r["row_id"] == artifact_key("row", {k: r[k] for k in fields(r)}) for r in legacy]
    assert sum(matches) == 20
    read = read_records(legacy_file)
    for record, old, is_legacy in zip(read, legacy, matches, strict=True):
        assert record["row_id"] == (row_id(old) if is_legacy else old["row_id"])
        assert {k: v for k, v in record.items() if k != "row_id"} == {
            k: v for k, v in old.items() if k != "row_id"
        }
    assert all(current_row_id(r) == r for r in read)  # today's ids stay as they are
    assert len({r["row_id"] for r in read}) == len(legacy)
    # a folder of legacy records merges a rerun's rows into them instead of doubling them
    results = ResultsFile(tmp_path / "results.jsonl")
    (tmp_path / "results.jsonl").write_text(legacy_file.read_text())
    rerun = dict(read[matches.index(True)])
    results.put(rerun)
    assert len(results.records()) == len(legacy)


def test_a_name_that_is_a_path_never_writes_outside_out(tmp_path: Path, plugins: Callable[..., None]) -> None:
    from unlearnbench.paths import inside

    with pytest.raises(InvalidValueError, match="outside the folder"):
        inside(tmp_path / "o", "../../escaped.json")
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "link").symlink_to(tmp_path)
    with pytest.raises(InvalidValueError, match="outside the folder"):
        inside(tmp_path / "o", "link/x.json")
    assert inside(tmp_path / "o", "forget_sets/a.json") == tmp_path / "o" / "forget_sets" / "a.json"
    # a plugin protocol whose name is a path is refused in one line
    source = (Path(__file__).parents[1] / "plugins/unlearnbench_protocols/digits-quickstart.toml").read_text()
    bad = tmp_path / "evil.toml"
    bad.write_text(source.replace('name = "digits-quickstart"', 'name = "../../../../x"'))
    module = types.ModuleType("ub_evil_protocol")
    module.unlearnbench_register_protocols = hookimpl(lambda: [bad])  # type: ignore[attr-defined]
    from unlearnbench import cli as cli_module_

    real = cli_module_.make_registry
    cli_module_.make_registry = lambda: Registry(create_host(autoload=True, plugins=[module]))
    try:
        result = CliRunner().invoke(cli, ["run", "evil", "--out", str(tmp_path / "run")])
    finally:
        cli_module_.make_registry = real
    assert result.exit_code == 2, result.output
    assert "protocol name '../../../../x' cannot be a file name" in " ".join(result.output.split())
    assert not (tmp_path / "run" / "results.jsonl").exists()


def test_show_prints_markup_in_names_as_text(tmp_path: Path) -> None:
    records = [json.loads(line) for line in GOOD_RESULTS.read_text().splitlines()]
    for r in records:
        if r["unlearner"] == "ft":
            r["unlearner"] = "ft[/][red]x"
    records[0] = dict(records[0], status="failed", error="[bold]boom[/] [/]", row_id="f" * 64)
    (tmp_path / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    result = CliRunner().invoke(cli, ["show", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "ft[/][red]x" in result.output and "[bold]boom[/] [/]" in result.output


def _hostile(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``records`` with markup in a method name, a metric label, a device and a failed row's error."""
    out = []
    for r in records:
        r = json.loads(json.dumps(r))
        if r["unlearner"] == "ft":
            r["unlearner"] = "ft|x<script>alert(1)</script>"
        for info in (r.get("metric_info") or {}).values():
            info["label"] = info["label"] + '<img src=x onerror="alert(2)">|'
        r["device"] = r["device"] + "\n### injected"
        out.append(r)
    failed = dict(out[0], status="failed", error="boom\n| a | b |\n<script>x</script>", row_id="f" * 64)
    return [*out, failed]


def test_board_cells_are_escaped_for_markdown_and_html(tmp_path: Path) -> None:
    from unlearnbench.report.leaderboard import render
    from unlearnbench.report.publish import publish

    records = _hostile(read_records(GOOD_RESULTS))
    texts = {"leaderboard": render(records)}
    written = publish(tmp_path / "pub", records, {})
    texts["README"] = (tmp_path / "pub" / "README.md").read_text()
    assert tmp_path / "pub" / "README.md" in written
    for where, text in texts.items():
        for raw in ("<script", "<img", "\n### injected", "\n| a | b |"):
            assert raw not in text, (where, raw)
        assert "ft&#124;x&lt;script&gt;" in text, where
        lines = text.splitlines()
        for i, line in enumerate(lines):  # every row of a table has its header's number of cells
            if line.startswith("| ") and i + 1 < len(lines) and lines[i + 1].startswith("|--"):
                width = line.count("|")
                body = [x for x in lines[i + 2 :] if x.startswith("|")]
                j = i + 2
                while j < len(lines) and lines[j].startswith("|"):
                    assert lines[j].count("|") == width, (where, lines[j])
                    j += 1
                assert body


class _Loaded(list):  # type: ignore[type-arg]
    """Entry points whose ``load`` was called."""


def _entry_point(name: str, loaded: list[str], block: bool) -> Any:
    class FakeEntryPoint:
        value = f"ub_fake_{name}:plugin"
        dist = None

        def load(self) -> Any:
            loaded.append(name)
            while block and not GATE.is_set():
                time.sleep(0.02)
            return types.ModuleType(f"ub_fake_{name}")

    ep = FakeEntryPoint()
    ep.name = name  # type: ignore[attr-defined]
    return ep


def test_a_plugin_that_blocks_at_import_is_given_up_on(monkeypatch: pytest.MonkeyPatch) -> None:
    from unlearnbench.registry import host as host_module

    loaded: list[str] = []
    installed = list(host_module.entry_points(group=host_module.ENTRY_POINT_GROUP))
    stuck = _entry_point("stuck", loaded, block=True)
    monkeypatch.setattr(host_module, "entry_points", lambda group: [*installed, stuck])
    monkeypatch.delenv(DISABLE_AUTOLOAD_ENV, raising=False)
    monkeypatch.delenv(ONLY_PLUGINS_ENV, raising=False)
    monkeypatch.setenv("UNLEARNBENCH_PLUGIN_TIMEOUT", "0.3")
    result = CliRunner().invoke(cli, ["plugins"])
    assert result.exit_code == 0, result.output
    assert "unlearner:ft@" in "".join(result.output.split())  # the others loaded
    errors = {info.name: info.error for info in create_host().infos()}
    assert errors["stuck"] == (
        "TimeoutError: importing ub_fake_stuck:plugin did not finish within 0.3 s "
        "(UNLEARNBENCH_PLUGIN_TIMEOUT sets the limit; UNLEARNBENCH_DISABLE or UNLEARNBENCH_PLUGINS skip it)"
    )
    assert errors["unlearners"] is None
    # commands that only read records import no plugin at all
    loaded.clear()
    monkeypatch.setenv("UNLEARNBENCH_PLUGIN_TIMEOUT", "600")
    stuck_never = _entry_point("never", loaded, block=True)
    monkeypatch.setattr(host_module, "entry_points", lambda group: [*installed, stuck_never])
    for args in (["leaderboard", str(GOOD_RESULTS)], ["show", str(GOOD_RESULTS)]):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 0, (args, result.output)
    assert loaded == []


def test_publish_imports_only_the_distributions_of_its_records(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from unlearnbench.registry import host as host_module

    loaded: list[str] = []
    installed = list(host_module.entry_points(group=host_module.ENTRY_POINT_GROUP))
    other = _entry_point("other", loaded, block=False)
    monkeypatch.setattr(host_module, "entry_points", lambda group: [*installed, other])
    monkeypatch.delenv(DISABLE_AUTOLOAD_ENV, raising=False)
    monkeypatch.delenv(ONLY_PLUGINS_ENV, raising=False)
    result = CliRunner().invoke(cli, ["publish", str(GOOD_RESULTS), "-o", str(tmp_path / "pub")])
    assert result.exit_code == 0, result.output
    assert loaded == []
    components = json.loads((tmp_path / "pub" / "components.json").read_text())
    assert any(k.startswith("unlearner:ft@") for k in components)  # the builtins were read


def test_a_metric_that_never_returns_fails_its_node_naming_it(
    tmp_path: Path, plugins: Callable[..., None]
) -> None:
    plugins(NeverReturns)
    out = tmp_path / "o"
    result = CliRunner().invoke(
        cli,
        [
            *TINY,
            "--metric",
            "+bad-hang",
            "--unlearner",
            "retrain",
            "--timeout",
            "evaluate=0.3",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 1, result.output
    records = read_records(out / "results.jsonl")
    assert records and all(r["status"] == "failed" for r in records)
    assert all(
        "evaluate (metrics) did not finish within 0.3 s (stopped in metric 'bad-hang', compute)" in r["error"]
        for r in records
    ), records[0]["error"]
    assert "Traceback" not in result.output


def test_non_finite_and_string_metric_values_are_metric_errors(
    tmp_path: Path, plugins: Callable[..., None]
) -> None:
    from unlearnbench.registry.components import MetricValue, as_metric_value

    for bad in ("0.5", b"0.5", True, float("nan"), float("inf"), MetricValue(float("-inf")), [0.5]):
        with pytest.raises(ValueError, match="not a"):
            as_metric_value(bad)  # type: ignore[arg-type]
    assert as_metric_value(torch.tensor(0.5)).value == 0.5 and as_metric_value(np.float32(2.0)).value == 2.0
    plugins(NaNGap, StringValue)
    out = tmp_path / "o"
    result = CliRunner().invoke(cli, [*TINY, "--metric", "+bad-nan,+bad-string", "--out", str(out)])
    assert result.exit_code == 0, result.output
    records = _strict(out / "results.jsonl")  # strict JSON: no bare NaN
    assert len(records) == 6
    for r in records:
        assert r["metrics"]["bad-nan"] is None and r["metrics"]["bad-string"] is None
        assert "bad-nan" in r["metric_errors"] and "not a finite number" in r["metric_errors"]["bad-nan"]
        assert "'0.5' (str), not a number" in r["metric_errors"]["bad-string"]
    board = (out / "leaderboard.md").read_text()
    gaps = [line.split("|")[-3].strip() for line in board.splitlines() if line.startswith("| ft ")]
    assert len(gaps) == 2 and all(g != "-" for g in gaps), board  # the NaN metric blanks no Gap
    assert "(NaN: no value on retrain)" in board
    from unlearnbench.report.results import dumps_record

    assert dumps_record({"a": float("nan"), "b": [float("inf")]}) == '{"a": null, "b": [null]}'


def test_the_out_folder_removed_mid_run_is_one_message(
    tmp_path: Path, plugins: Callable[..., None], monkeypatch: pytest.MonkeyPatch
) -> None:
    plugins(RemovesOut)
    out = tmp_path / "o"
    monkeypatch.setenv("UB_TEST_OUT", str(out))
    result = CliRunner().invoke(cli, [*TINY, "--unlearner", "bad-rmout", "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert "was removed during the run" in " ".join(result.output.split())
    assert "Traceback" not in result.output and "FAILED" not in result.output


def test_ctrl_c_exits_130_and_run_log_says_so(tmp_path: Path, plugins: Callable[..., None]) -> None:
    plugins(CtrlC)
    out = tmp_path / "o"
    result = CliRunner().invoke(cli, [*TINY, "--unlearner", "bad-ctrlc", "--out", str(out)])
    assert result.exit_code == 130, result.output
    assert "interrupted (Ctrl-C)" in " ".join(result.output.split())
    assert "interrupted (Ctrl-C)" in (out / "run.log").read_text()


def test_a_failed_row_stores_the_params_it_ran_with(tmp_path: Path, plugins: Callable[..., None]) -> None:
    plugins(Explodes)
    out = tmp_path / "o"
    args = [
        *TINY,
        "--unlearner",
        "bad-explodes",
        "--set",
        "unlearn.params.bad-explodes.lr=1e9",
        "--out",
        str(out),
    ]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1, result.output
    failed = [r for r in read_records(out / "results.jsonl") if r["status"] == "failed"]
    assert len(failed) == 2
    assert all(r["params"]["unlearner"] == {"lr": 1e9} for r in failed)
    assert all(r["params"]["pruner"] for r in failed)


def test_a_test_split_missing_a_training_class_is_said(
    tmp_path: Path,
    plugins: Callable[..., None],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    plugins()
    _with_copy(monkeypatch, "digits-no-test-9", drop_test_class=9)
    with caplog.at_level(logging.WARNING):
        result = CliRunner().invoke(cli, ["plan", *TINY[1:], "--out", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    said = [r.getMessage() for r in caplog.records if "no example of" in r.getMessage()]
    assert said == [
        "the test split of data copy digits-no-test-9 has no example of 1 training class(es): 9 (9); "
        "test metrics (TA) average over the 9 classes it has"
    ]


def test_sparsity_zero_alone_says_which_rows_it_drops(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        result = CliRunner().invoke(cli, ["plan", "--sparsity", "0", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    said = [r.getMessage() for r in caplog.records if "every sparsity is 0" in r.getMessage()]
    assert len(said) == 1
    assert "un-prune (reprune, control) and reference gold rows" in said[0]
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        CliRunner().invoke(cli, ["plan", "--sparsity", "0,0.5", "--device", "cpu"])
    assert not [r for r in caplog.records if "every sparsity is 0" in r.getMessage()]


def test_an_artifact_that_matches_its_checksum_but_does_not_load_is_recomputed(
    tmp_path: Path, plugins: Callable[..., None]
) -> None:
    plugins()
    out = tmp_path / "o"
    assert CliRunner().invoke(cli, [*TINY, "--out", str(out)]).exit_code == 0
    before = {r["row_id"]: r["metrics"] for r in read_records(out / "results.jsonl")}
    for meta_path in (out / "artifacts" / "prune").glob("*/meta.json"):  # not a torch file, checksums fixed
        model = meta_path.parent / "model.pt"
        model.write_bytes(b"not a torch file")
        meta = json.loads(meta_path.read_text())
        meta["files"]["model.pt"] = {"sha256": hashlib.sha256(model.read_bytes()).hexdigest(), "size": 16}
        meta_path.write_text(json.dumps(meta))
    again = CliRunner().invoke(cli, [*TINY, "--rerun", "evaluate", "--out", str(out)])
    assert again.exit_code == 0, again.output
    after = read_records(out / "results.jsonl")
    assert all(r["status"] == "ok" for r in after)
    assert {r["row_id"]: r["metrics"] for r in after} == before
    assert list((out / "artifacts" / "prune").glob("*.corrupt-0"))


def test_written_files_are_readable_by_others_under_umask_022(
    tmp_path: Path, plugins: Callable[..., None]
) -> None:
    plugins()
    previous = os.umask(0o022)
    try:
        out = tmp_path / "o"
        assert CliRunner().invoke(cli, [*TINY, "--out", str(out)]).exit_code == 0
        pub = CliRunner().invoke(cli, ["publish", str(out / "results.jsonl"), "-o", str(tmp_path / "pub")])
        assert pub.exit_code == 0, pub.output
        board = CliRunner().invoke(
            cli, ["leaderboard", str(out / "results.jsonl"), "-o", str(tmp_path / "lb.md")]
        )
        assert board.exit_code == 0
    finally:
        os.umask(previous)
    files = [out / "results.jsonl", out / "leaderboard.md", tmp_path / "lb.md", *(tmp_path / "pub").iterdir()]
    files += list((out / "forget_sets").iterdir()) + list((out / "artifacts").rglob("*.pt"))
    assert {p.name: oct(p.stat().st_mode & 0o777) for p in files} == {p.name: "0o644" for p in files}
    folders = [p for p in (out / "artifacts").rglob("*") if p.is_dir()]
    assert folders and {oct(p.stat().st_mode & 0o777) for p in folders} == {"0o755"}


def _read_only_folder() -> Path:
    """A folder that even root cannot write (sysfs), or skip."""
    folder = Path("/sys/kernel")
    try:
        (folder / "ub-probe").write_bytes(b"x")
    except OSError:
        return folder
    (folder / "ub-probe").unlink()
    pytest.skip("no read-only folder on this machine")


@pytest.mark.parametrize("command", ["publish", "plot", "leaderboard", "store"])
def test_a_read_only_folder_is_refused_in_one_line(command: str, tmp_path: Path) -> None:
    folder = _read_only_folder()
    args = {
        "publish": ["publish", str(GOOD_RESULTS), "-o", str(folder / "pub")],
        "plot": ["plot", str(GOOD_RESULTS), "-o", str(folder / "plots")],
        "leaderboard": ["leaderboard", str(GOOD_RESULTS), "-o", str(folder / "lb.md")],
        "store": ["run", "--out", str(tmp_path / "o"), "--artifacts", str(folder)],
    }[command]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, result.output
    assert "is not writable" in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "o" / "results.jsonl").exists()
