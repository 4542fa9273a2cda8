"""The example third-party distribution is discovered through its entry point and runs."""

from __future__ import annotations

import sys
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from unlearnbench.config.protocol import load_protocol
from unlearnbench.registry.catalog import Registry
from unlearnbench.registry.host import create_host
from unlearnbench.run.pipeline import Pipeline, RunSettings

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "unlearnbench-example-plugin"


def example_entry_points() -> list[EntryPoint]:
    """The entry points the example's pyproject.toml declares, as installed metadata would."""
    table = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())["project"]["entry-points"]["unlearnbench"]
    return [EntryPoint(name=name, value=value, group="unlearnbench") for name, value in table.items()]


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> Registry:
    monkeypatch.syspath_prepend(str(EXAMPLE))
    host = create_host(autoload=True)
    host.load_entry_points(example_entry_points())
    return Registry(host)


def test_example_plugin_is_discovered(registry: Registry) -> None:
    info = {i.name: i for i in registry.host.infos()}
    assert "example" in info and info["example"].error is None
    assert registry.entries("metric")["forget-loss"].plugin == "example"


def test_example_metric_runs_in_the_pipeline(registry: Registry, tmp_path: Path) -> None:
    overrides = [
        ("train.epochs", 3),
        ("data.limit", 300),
        ("prune.sparsities", [0.5]),
        ("unlearn.unlearners", ["ga"]),
        ("unlearn.params.ga.lr", 0.05),
        ("unprune.modes", [False]),
        ("evaluate.metrics", ["ua", "forget-loss"]),
    ]
    protocol = load_protocol(registry.protocol_path("digits-quickstart"), overrides, registry)
    records = list(Pipeline(protocol, registry, RunSettings(out=tmp_path)).run())
    assert {r["status"] for r in records} == {"ok"}
    by_row = {(r["forget_set"], r["unlearner"]): r["metrics"]["forget-loss"] for r in records}
    for forget in ("class0", "random10"):
        # gradient ascent must raise the forget loss the example metric reports
        assert by_row[(forget, "ga")] > by_row[(forget, "original")]
