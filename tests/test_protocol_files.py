"""Protocol files outside plugins and ``extends``: deep merge, hash over the resolved content,
bad input in one line, and the CLI commands that take a protocol."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from unlearnbench.cli import cli
from unlearnbench.config.protocol import load_protocol, read_protocol_file
from unlearnbench.config.protocol_files import deep_merge, locate_protocol
from unlearnbench.errors import InvalidValueError
from unlearnbench.registry.catalog import Registry
from unlearnbench.registry.host import create_host

QUICKSTART = "digits-quickstart"
pytestmark = pytest.mark.usefixtures("one_thread_and_plugins")


@pytest.fixture(scope="module")
def registry() -> Registry:
    return Registry(create_host(autoload=True))


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_deep_merge_merges_tables_and_replaces_scalars_and_arrays() -> None:
    base = {"a": {"b": 1, "c": {"d": 2, "e": 3}}, "xs": [1, 2, 3], "s": "old", "t": [{"n": 1}, {"n": 2}]}
    child = {"a": {"c": {"d": 20}}, "xs": [9], "s": "new", "t": [{"n": 3}]}
    merged = deep_merge(base, child)
    assert merged == {"a": {"b": 1, "c": {"d": 20, "e": 3}}, "xs": [9], "s": "new", "t": [{"n": 3}]}
    assert base["a"]["c"]["d"] == 2  # the inputs are not changed


def test_an_unchanged_child_has_the_parents_hash_whatever_its_formatting(
    tmp_path: Path, registry: Registry
) -> None:
    parent = load_protocol(registry.protocol_path(QUICKSTART), (), registry)
    plain = write(tmp_path / "plain.toml", f'extends = "{QUICKSTART}"\n')
    noisy = write(tmp_path / "noisy.toml", f'# my copy\n\n  extends   =   "{QUICKSTART}"   # unchanged\n\n')
    for file in (plain, noisy):
        child = load_protocol(file, (), registry)
        assert child.hash == parent.hash
        assert child.raw == parent.raw
        assert "extends" not in child.raw
    # a copy of the parent's own text (no extends) also hashes the same: the hash is content
    copy = write(tmp_path / "copy.toml", registry.protocol_path(QUICKSTART).read_text() + "\n# note\n")
    assert load_protocol(copy, (), registry).hash == parent.hash


def test_a_change_of_content_changes_the_hash_and_merges_deeply(tmp_path: Path, registry: Registry) -> None:
    parent = load_protocol(registry.protocol_path(QUICKSTART), (), registry)
    file = write(
        tmp_path / "child.toml",
        f'extends = "{QUICKSTART}"\n'
        "[recipes.default]\nepochs = 7\n"
        "[prune]\nsparsities = [0.5]\n"
        '[[forget]]\nname = "only"\nkind = "class"\nclasses = [3]\n'
        "[unlearn.params.ft]\nlr = 0.02\n",
    )
    child = load_protocol(file, (), registry)
    assert child.hash != parent.hash
    assert child.recipe.epochs == 7
    assert child.recipe.batch_size == parent.recipe.batch_size  # the rest of the table is inherited
    assert child.recipe.schedule == parent.recipe.schedule
    assert child.prune.sparsities == (0.5,)  # arrays replace
    assert child.prune.pruners == parent.prune.pruners
    assert [f.name for f in child.forget] == ["only"]  # an array of tables replaces too
    assert child.unlearn.params["ft"] == {**parent.unlearn.params["ft"], "lr": 0.02}
    assert child.unlearn.params["ga"] == parent.unlearn.params["ga"]
    # the resolved content is exactly the parent's with those four values changed
    raw = read_protocol_file(registry.protocol_path(QUICKSTART))
    raw["recipes"]["default"]["epochs"] = 7
    raw["prune"]["sparsities"] = [0.5]
    raw["forget"] = [{"name": "only", "kind": "class", "classes": [3]}]
    raw["unlearn"]["params"]["ft"]["lr"] = 0.02
    assert raw == child.raw


def test_extends_a_path_relative_to_the_file_and_chains(
    tmp_path: Path, registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path / "base" / "mine.toml", f'extends = "{QUICKSTART}"\n[recipes.default]\nepochs = 4\n')
    leaf = write(tmp_path / "runs" / "leaf.toml", 'extends = "../base/mine.toml"\nseeds = [2]\n')
    monkeypatch.chdir(tmp_path / "base")  # the path is relative to leaf.toml, not the working folder
    loaded = load_protocol(leaf, (), registry)
    assert loaded.recipe.epochs == 4 and loaded.recipe.lr == 0.05
    assert loaded.seeds == (2,)
    # seeds are a selection field: the leaf has its parent's hash
    assert loaded.hash == load_protocol(tmp_path / "base" / "mine.toml", (), registry).hash


@pytest.mark.parametrize(
    ("files", "start", "message"),
    [
        ({"a.toml": 'extends = "b.toml"\n', "b.toml": 'extends = "a.toml"\n'}, "a.toml", "extends cycle"),
        ({"self.toml": 'extends = "self.toml"\n'}, "self.toml", "extends cycle"),
        ({"u.toml": 'extends = "no-such"\n'}, "u.toml", "extends unknown protocol 'no-such'"),
        ({"m.toml": 'extends = "gone/parent.toml"\n'}, "m.toml", "does not exist"),
        ({"n.toml": "extends = 3\n"}, "n.toml", "extends must be a protocol name"),
        ({"t.toml": "extends = \n"}, "t.toml", "cannot read protocol file"),
    ],
)
def test_bad_extends_is_one_clear_error(
    tmp_path: Path, registry: Registry, files: dict[str, str], start: str, message: str
) -> None:
    for name, text in files.items():
        write(tmp_path / name, text)
    with pytest.raises(InvalidValueError, match=message) as caught:
        load_protocol(tmp_path / start, (), registry)
    assert "\n" not in str(caught.value)
    if "unknown protocol" in message:
        assert QUICKSTART in str(caught.value)  # the valid names are listed


def test_locate_protocol_takes_names_and_paths(tmp_path: Path, registry: Registry) -> None:
    assert locate_protocol(registry, QUICKSTART) == registry.protocol_path(QUICKSTART)
    file = write(tmp_path / "x.toml", f'extends = "{QUICKSTART}"\n')
    assert locate_protocol(registry, str(file)) == file
    with pytest.raises(InvalidValueError, match=r"protocol file .*missing\.toml does not exist"):
        locate_protocol(registry, str(tmp_path / "missing.toml"))
    with pytest.raises(InvalidValueError, match=f"unknown protocol 'nope'.*{QUICKSTART}"):
        locate_protocol(registry, "nope")


def test_cli_run_and_plan_take_a_protocol_file(tmp_path: Path, registry: Registry) -> None:
    file = write(tmp_path / "my.toml", f'extends = "{QUICKSTART}"\n[recipes.default]\nepochs = 2\n')
    args = ["--unlearner", "ft", "--no-unprune", "--metric", "ua,ta", "--limit", "120", "--device", "cpu"]
    args += ["--set", "unlearn.params.ft.epochs=1", "--pruner", "omp", "--sparsity", "0.5"]
    runner = CliRunner()
    planned = runner.invoke(cli, ["plan", str(file), *args, "--out", str(tmp_path / "o")])
    assert planned.exit_code == 0, planned.output
    assert "nodes" in planned.output
    done = runner.invoke(cli, ["run", str(file), *args, "--out", str(tmp_path / "o")])
    assert done.exit_code == 0, done.output
    rows = [json.loads(line) for line in (tmp_path / "o" / "results.jsonl").read_text().splitlines()]
    expected = load_protocol(
        registry.protocol_path(QUICKSTART),
        [("recipes.default.epochs", 2), ("unlearn.params.ft.epochs", 1), ("data.limit", 120)],
        registry,
    )
    assert rows and {r["protocol_hash"] for r in rows} == {expected.hash}
    assert {r["protocol"] for r in rows} == {QUICKSTART}


@pytest.mark.parametrize("command", ["run", "plan", "tune"])
def test_cli_bad_protocol_file_is_one_line(tmp_path: Path, command: str) -> None:
    extra = ["--unlearner", "ft", "--grid", "lr=0.1"] if command == "tune" else []
    write(tmp_path / "cyc.toml", 'extends = "cyc.toml"\n')
    for target, message in ((tmp_path / "missing.toml", "does not exist"), (tmp_path / "cyc.toml", "cycle")):
        result = CliRunner().invoke(cli, [command, str(target), *extra, "--out", str(tmp_path / "o")])
        assert result.exit_code == 2, result.output
        assert message in result.output and "Traceback" not in result.output
        assert len(result.output.strip().splitlines()) == 1
