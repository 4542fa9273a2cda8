"""Plugin isolation: a nameless component, a misspelled hook, a raising event hook and a taken
name are each reported against their plugin and never sink the other plugins or the run."""

from __future__ import annotations

import inspect
import types
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from torch import nn

from unlearnbench import hookimpl
from unlearnbench.config.protocol import load_protocol
from unlearnbench.registry import hookspecs
from unlearnbench.registry.catalog import Registry
from unlearnbench.registry.components import Unlearner, UnlearnTask
from unlearnbench.registry.host import DISABLE_AUTOLOAD_ENV, ONLY_PLUGINS_ENV, PluginInfo, create_host
from unlearnbench.run.pipeline import Pipeline, RunSettings


@pytest.fixture(autouse=True)
def plugins_autoload(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv(DISABLE_AUTOLOAD_ENV, raising=False)
    monkeypatch.delenv(ONLY_PLUGINS_ENV, raising=False)
    yield


def plugin(name: str, **hooks: object) -> types.ModuleType:
    module = types.ModuleType(name)
    for hook_name, function in hooks.items():
        setattr(module, hook_name, hookimpl(function))
    return module


def errors(registry: Registry) -> dict[str, str | None]:
    return {info.name: info.error for info in registry.host.infos()}


class Nameless(Unlearner):
    """Forgot to set ``name``."""

    def unlearn(self, model: nn.Module, task: UnlearnTask) -> nn.Module:
        return model


class ThirdPartyFT(Unlearner):
    """A third-party plugin claiming the built-in ``ft``."""

    name = "ft"


def test_a_component_without_a_name_is_reported_and_the_rest_register() -> None:
    registry = Registry(
        create_host(plugins=[plugin("ub_nameless", unlearnbench_register_unlearners=lambda: [Nameless])])
    )
    assert "Nameless has no name" in (errors(registry)["ub_nameless"] or "")
    assert {"retrain", "ft", "ga"} <= set(registry.names("unlearner"))


def test_a_misspelled_hook_is_reported_against_its_plugin() -> None:
    typo = plugin("ub_typo", unlearnbench_register_unlearner=lambda: [ThirdPartyFT])
    registry = Registry(create_host(plugins=[typo]))
    assert "unknown hook 'unlearnbench_register_unlearner'" in (errors(registry)["ub_typo"] or "")
    assert errors(registry)["unlearners"] is None
    assert registry.get("unlearner", "ft") is not ThirdPartyFT


def test_a_taken_component_name_is_refused_naming_both_distributions() -> None:
    host = create_host(
        plugins=[plugin("ub_thirdparty", unlearnbench_register_unlearners=lambda: [ThirdPartyFT])]
    )
    host._infos["ub_thirdparty"] = PluginInfo("ub_thirdparty", "ub_thirdparty", "thirdparty-ft", "0.3")
    registry = Registry(host)
    error = errors(registry)["ub_thirdparty"] or ""
    assert (
        "'ft'" in error and "thirdparty-ft==0.3" in error and "unlearnbench==" in error and "refused" in error
    )
    assert registry.get("unlearner", "ft") is not ThirdPartyFT


def test_a_taken_protocol_name_is_refused(tmp_path: Path) -> None:
    copy = tmp_path / "digits-quickstart.toml"
    copy.write_text("name = 'digits-quickstart'\n")
    registry = Registry(
        create_host(plugins=[plugin("ub_protocols", unlearnbench_register_protocols=lambda: [copy])])
    )
    assert "protocol 'digits-quickstart'" in (errors(registry)["ub_protocols"] or "")
    assert registry.protocol_path("digits-quickstart") != copy


def test_an_event_hook_that_raises_is_recorded_and_the_run_goes_on(tmp_path: Path) -> None:
    seen: list[str] = []

    def raising(event: object) -> None:
        raise RuntimeError("exporter down")

    def listening(event: object) -> None:
        seen.append(type(event).__name__)

    bad = plugin("ub_raising_events", unlearnbench_stage_finished=raising, unlearnbench_result_ready=raising)
    good = plugin("ub_listening", unlearnbench_stage_finished=listening)
    registry = Registry(create_host(plugins=[bad, good]))
    overrides = [
        ("data.limit", 100),
        ("train.epochs", 1),
        ("unlearn.unlearners", []),
        ("unprune.modes", [False]),
        ("evaluate.metrics", ["fta"]),
    ]
    protocol = load_protocol(registry.protocol_path("digits-quickstart"), overrides, registry)
    torch.set_num_threads(1)
    records = list(Pipeline(protocol, registry, RunSettings(out=tmp_path)).run())
    assert [r["status"] for r in records] == ["ok", "ok"]
    assert "StageFinished" in seen
    assert "exporter down" in (errors(registry)["ub_raising_events"] or "")


def test_every_hookspec_says_when_it_runs() -> None:
    specs = [
        f for name, f in vars(hookspecs).items() if name.startswith("unlearnbench_") and inspect.isfunction(f)
    ]
    assert len(specs) >= 9
    for spec in specs:
        assert spec.__doc__ and "Called" in spec.__doc__, spec.__name__
