"""Every bad input the CLI meets: exit code 2, one line naming the bad value, no traceback."""

from __future__ import annotations

import shutil
from collections import namedtuple
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from unlearnbench.cli import cli

GOOD_RESULTS = Path(__file__).resolve().parents[1] / "leaderboards" / "digits-quickstart" / "results.jsonl"

Case = namedtuple("Case", "args expected")


def _cases(tmp: Path) -> dict[str, Case]:
    (tmp / "a-file").write_text("x")
    (tmp / "random.jsonl").write_bytes(bytes(range(128, 256)) * 3)
    (tmp / "other.jsonl").write_text('{"a": 1}\n')
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
]


@pytest.mark.parametrize("name", NAMES)
def test_bad_input_is_one_clear_line(name: str, tmp_path: Path) -> None:
    case = _cases(tmp_path)[name]
    result = CliRunner().invoke(cli, case.args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert case.expected in " ".join(result.output.split()), result.output


def test_a_full_disk_is_refused_before_any_work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real: Callable = shutil.disk_usage
    monkeypatch.setattr("unlearnbench.run.outdir.shutil.disk_usage", lambda p: real(p)._replace(free=1024))
    result = CliRunner().invoke(cli, ["run", "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert "MiB free" in result.output
