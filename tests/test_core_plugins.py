"""Plugin loading and the component registry: entry points, broken plugins, failing register
hooks, the autoload switch, and the errors for unknown names and bad parameters."""

from __future__ import annotations

import importlib.metadata
import types
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from unlearnbench import hookimpl
from unlearnbench.errors import InvalidValueError, UnknownChoiceError
from unlearnbench.registry import host as plugin_manager
from unlearnbench.registry.catalog import Registry
from unlearnbench.registry.components import COMPONENT_KINDS, Metric, Unlearner
from unlearnbench.registry.host import (
    DISABLE_AUTOLOAD_ENV,
    ENTRY_POINT_GROUP,
    ONLY_PLUGINS_ENV,
    create_host,
)

BUILTINS = {
    "dataset": {"digits"},
    "model": {"small-cnn"},
    "pruner": {"omp"},
    "unlearner": {"retrain", "ft", "ga", "l1-sparse"},
    "unpruner": {"reprune"},
    "metric": {"ua", "ra", "ta", "mia-efficacy", "rte", "mask-iou"},
}
BUILTIN_ENTRY_POINTS = {"datasets", "models", "pruners", "unlearners", "unpruners", "metrics", "protocols"}


@pytest.fixture(autouse=True)
def clean_plugin_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Neither plugin switch leaks in from the environment."""
    monkeypatch.delenv(DISABLE_AUTOLOAD_ENV, raising=False)
    monkeypatch.delenv(ONLY_PLUGINS_ENV, raising=False)


@pytest.fixture(scope="module")
def registry() -> Registry:
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv(ONLY_PLUGINS_ENV, raising=False)
        return Registry(create_host(autoload=True))


def real_entry_points() -> list[EntryPoint]:
    return list(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP))


def add_entry_points(monkeypatch: pytest.MonkeyPatch, extra: list[EntryPoint]) -> None:
    """Make discovery see the installed entry points plus ``extra``."""
    installed = real_entry_points()
    monkeypatch.setattr(plugin_manager, "entry_points", lambda group: [*installed, *extra])


# --------------------------------------------------------------------------------------------
# The installed entry points
# --------------------------------------------------------------------------------------------
def test_installed_entry_points_load_without_errors(registry: Registry) -> None:
    infos = {info.name: info for info in registry.host.infos()}
    assert set(infos) >= BUILTIN_ENTRY_POINTS
    for name in BUILTIN_ENTRY_POINTS:
        assert infos[name].error is None, infos[name]
        assert infos[name].distribution == "unlearnbench"
        assert infos[name].module == f"unlearnbench_{name}"


@pytest.mark.parametrize("kind", sorted(BUILTINS))
def test_registry_lists_the_builtins(registry: Registry, kind: str) -> None:
    names = registry.names(kind)
    assert BUILTINS[kind] <= set(names)
    assert names == sorted(names)
    for name in BUILTINS[kind]:
        cls = registry.get(kind, name)
        assert issubclass(cls, COMPONENT_KINDS[kind])
        assert cls.name == name
        assert registry.entries(kind)[name].plugin in BUILTIN_ENTRY_POINTS
        # The defaults of its Params build an instance.
        assert isinstance(registry.create(kind, name), cls)


def test_registry_lists_the_quickstart_protocol(registry: Registry) -> None:
    assert "digits-quickstart" in registry.protocol_names()
    path = registry.protocol_path("digits-quickstart")
    assert path.is_file() and path.suffix == ".toml"


# --------------------------------------------------------------------------------------------
# Broken plugins
# --------------------------------------------------------------------------------------------
def test_broken_entry_points_are_recorded_and_the_others_load(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    module_name = "ub_core_test_raising_plugin"
    (tmp_path / f"{module_name}.py").write_text('raise RuntimeError("boom at import time")\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    # Named to sort first: the loader must carry on after them.
    missing = EntryPoint(name="aaa-missing", value="ub_core_no_such_module_xyz", group=ENTRY_POINT_GROUP)
    raising = EntryPoint(name="aab-raising", value=module_name, group=ENTRY_POINT_GROUP)
    add_entry_points(monkeypatch, [missing, raising])

    host = create_host(autoload=True)
    infos = {info.name: info for info in host.infos()}

    assert infos["aaa-missing"].error is not None
    assert "ModuleNotFoundError" in infos["aaa-missing"].error
    assert "ub_core_no_such_module_xyz" in infos["aaa-missing"].error
    assert infos["aaa-missing"].module == "ub_core_no_such_module_xyz"
    assert infos["aab-raising"].error == "RuntimeError: boom at import time"
    assert not host.manager.has_plugin("aaa-missing")
    assert not host.manager.has_plugin("aab-raising")
    for name in BUILTIN_ENTRY_POINTS:
        assert infos[name].error is None
        assert host.manager.has_plugin(name)
    registry = Registry(host)
    for kind, names in BUILTINS.items():
        assert names <= set(registry.names(kind))
    assert "digits-quickstart" in registry.protocol_names()


class CoreTestUnlearner(Unlearner):
    """A do-nothing unlearner registered by a test plugin."""

    name = "core-test-noop"

    def unlearn(self, model, task):  # type: ignore[no-untyped-def]
        return model


class CoreTestMetric(Metric):
    """A constant metric registered by the same plugin whose unlearner hook raises."""

    name = "core-test-const"

    def compute(self, ctx):  # type: ignore[no-untyped-def]
        return 1.0


class DuplicateFineTune(Unlearner):
    """Claims the name of the built-in ``ft``."""

    name = "ft"


def test_a_raising_register_hook_is_recorded_and_the_rest_register() -> None:
    bad = types.ModuleType("ub_core_bad_register")

    @hookimpl
    def unlearnbench_register_unlearners() -> list[type]:
        raise ValueError("nope, not today")

    @hookimpl
    def unlearnbench_register_metrics() -> list[type]:
        return [CoreTestMetric]

    bad.unlearnbench_register_unlearners = unlearnbench_register_unlearners  # type: ignore[attr-defined]
    bad.unlearnbench_register_metrics = unlearnbench_register_metrics  # type: ignore[attr-defined]

    good = types.ModuleType("ub_core_good_register")

    @hookimpl
    def good_unlearners() -> list[type]:
        return [CoreTestUnlearner]

    good.unlearnbench_register_unlearners = good_unlearners  # type: ignore[attr-defined]

    host = create_host(autoload=True, plugins=[bad, good])
    registry = Registry(host)
    infos = {info.name: info for info in host.infos()}

    assert infos["ub_core_bad_register"].error is not None
    assert "unlearnbench_register_unlearners" in infos["ub_core_bad_register"].error
    assert "ValueError: nope, not today" in infos["ub_core_bad_register"].error
    assert infos["ub_core_good_register"].error is None
    # The failing plugin's other hooks, the good plugin and the built-ins all register.
    assert "core-test-const" in registry.names("metric")
    assert "core-test-noop" in registry.names("unlearner")
    assert BUILTINS["unlearner"] <= set(registry.names("unlearner"))
    assert registry.entries("unlearner")["core-test-noop"].plugin == "ub_core_good_register"


def test_non_components_and_duplicate_names_are_recorded_not_registered() -> None:
    plugin = types.ModuleType("ub_core_confused")

    class NotAComponent:
        name = "core-test-not-a-component"

    @hookimpl
    def unlearnbench_register_unlearners() -> list[type]:
        return [NotAComponent, DuplicateFineTune, CoreTestMetric]

    plugin.unlearnbench_register_unlearners = unlearnbench_register_unlearners  # type: ignore[attr-defined]
    host = create_host(autoload=True, plugins=[plugin])
    registry = Registry(host)
    error = {info.name: info for info in host.infos()}["ub_core_confused"].error

    assert error is not None
    assert "is not a Unlearner" in error
    assert "already registered by unlearnbench==" in error and "(plugin 'unlearners')" in error
    assert "core-test-not-a-component" not in registry.names("unlearner")
    assert "core-test-const" not in registry.names("unlearner")
    assert registry.get("unlearner", "ft") is not DuplicateFineTune


# --------------------------------------------------------------------------------------------
# Autoload switches
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("value", ["1", "true", "YES"])
def test_disable_autoload_env_loads_no_entry_points(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(DISABLE_AUTOLOAD_ENV, value)
    host = create_host()
    assert host.infos() == []
    registry = Registry(host)
    for kind in BUILTINS:
        assert registry.names(kind) == []
    assert registry.protocol_names() == []
    # Plugins given by hand still register.
    plugin = types.ModuleType("ub_core_by_hand")

    @hookimpl
    def unlearnbench_register_unlearners() -> list[type]:
        return [CoreTestUnlearner]

    plugin.unlearnbench_register_unlearners = unlearnbench_register_unlearners  # type: ignore[attr-defined]
    assert Registry(create_host(plugins=[plugin])).names("unlearner") == ["core-test-noop"]


def test_autoload_is_on_without_the_env_switch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(DISABLE_AUTOLOAD_ENV, "0")
    names = {info.name for info in create_host().infos()}
    assert names >= BUILTIN_ENTRY_POINTS


def test_only_plugins_env_filters_entry_points(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ONLY_PLUGINS_ENV, "metrics, unlearners")
    registry = Registry(create_host())
    assert {info.name for info in registry.host.infos()} == {"metrics", "unlearners"}
    assert registry.names("pruner") == []
    assert BUILTINS["metric"] <= set(registry.names("metric"))


# --------------------------------------------------------------------------------------------
# Unknown names and bad parameters
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", sorted(BUILTINS))
def test_get_and_create_name_the_bad_value_and_the_choices(registry: Registry, kind: str) -> None:
    for call in (registry.get, registry.create):
        with pytest.raises(UnknownChoiceError) as caught:
            call(kind, "no-such-thing")
        error = caught.value
        assert error.value == "no-such-thing"
        assert error.choices == registry.names(kind)
        message = str(error)
        assert "'no-such-thing'" in message
        for name in BUILTINS[kind]:
            assert name in message


def test_unknown_kind_and_protocol_name_the_choices(registry: Registry) -> None:
    with pytest.raises(UnknownChoiceError, match=r"'widget'.*dataset.*unlearner"):
        registry.get("widget", "x")
    with pytest.raises(UnknownChoiceError, match=r"'nope'.*digits-quickstart"):
        registry.protocol_path("nope")


def test_bad_param_name_lists_the_valid_keys(registry: Registry) -> None:
    with pytest.raises(UnknownChoiceError) as caught:
        registry.create("unlearner", "ft", {"epoch": 3})
    assert caught.value.value == "epoch"
    assert {"epochs", "lr", "batch_size", "momentum"} <= set(caught.value.choices)
    assert "valid choices: batch_size, epochs, lr" in str(caught.value)
    with pytest.raises(UnknownChoiceError, match=r"'sparsity'.*retrain, rewind"):
        registry.create("pruner", "omp", {"sparsity": 0.5})


@pytest.mark.parametrize(
    ("kind", "name", "params", "pattern"),
    [
        ("unlearner", "ft", {"epochs": "abc"}, r"ft params\.epochs: expected int, got 'abc'"),
        ("unlearner", "ft", {"epochs": True}, r"epochs: expected int, got True"),
        ("unlearner", "ft", {"epochs": 2.5}, r"epochs: expected int, got 2\.5"),
        ("unlearner", "ga", {"lr": "fast"}, r"lr: expected float, got 'fast'"),
        ("pruner", "omp", {"rewind": 1}, r"rewind: expected bool, got 1"),
        ("unlearner", "retrain", {"milestones": ["x"]}, r"milestones\[0\]: expected float, got 'x'"),
    ],
)
def test_bad_param_type_is_rejected(
    registry: Registry, kind: str, name: str, params: dict, pattern: str
) -> None:
    with pytest.raises(InvalidValueError, match=pattern):
        registry.create(kind, name, params)


def test_bad_literal_param_lists_the_valid_values(registry: Registry) -> None:
    with pytest.raises(UnknownChoiceError, match=r"'sideways'.*dense, rewind, zero"):
        registry.create("unpruner", "reprune", {"relax": "sideways"})


def test_good_params_are_applied_and_widened(registry: Registry) -> None:
    ft = registry.create("unlearner", "ft", {"epochs": 3, "lr": 1})
    assert ft.params.epochs == 3
    assert ft.params.lr == 1.0 and isinstance(ft.params.lr, float)
    retrain = registry.create("unlearner", "retrain", {"milestones": [91, 136], "optimizer": "adam"})
    assert retrain.params.milestones == (91.0, 136.0) and retrain.params.optimizer == "adam"
