"""The component registry: every dataset, model, pruner, unlearner, un-pruner, metric and
protocol that the loaded plugins register, by kind and name."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from unlearnbench.config.typed_config import build, field_names
from unlearnbench.errors import UnknownChoiceError
from unlearnbench.registry.components import COMPONENT_KINDS, Component
from unlearnbench.registry.host import PluginHost

HOOK_BY_KIND = {
    "dataset": "unlearnbench_register_datasets",
    "model": "unlearnbench_register_models",
    "pruner": "unlearnbench_register_pruners",
    "unlearner": "unlearnbench_register_unlearners",
    "unpruner": "unlearnbench_register_unpruners",
    "metric": "unlearnbench_register_metrics",
}


@dataclass(frozen=True)
class Entry:
    """A registered component class and the plugin that registered it."""

    cls: type[Component]
    plugin: str


class Registry:
    """Components by kind and name, collected from a :class:`PluginHost`."""

    def __init__(self, host: PluginHost) -> None:
        self.host = host
        self._entries: dict[str, dict[str, Entry]] = {kind: {} for kind in HOOK_BY_KIND}
        self._protocols: dict[str, tuple[Path, str]] = {}
        for kind, hook_name in HOOK_BY_KIND.items():
            for plugin, items in self._call_each(hook_name):
                for cls in items:
                    self._add(kind, cls, plugin)
        for plugin, paths in self._call_each("unlearnbench_register_protocols"):
            for path in paths:
                name = Path(path).stem
                taken = self._protocols.get(name)
                if taken is not None and taken[0] != Path(path):
                    self.host.record_error(plugin, self._clash("protocol", name, plugin, taken[1]))
                    continue
                self._protocols[name] = (Path(path), plugin)

    def _call_each(self, hook_name: str) -> list[tuple[str, list[Any]]]:
        """Call every implementation of a register hook on its own, recording failures."""
        results = []
        for impl in getattr(self.host.hook, hook_name).get_hookimpls():
            try:
                items = list(impl.function() or [])
            except Exception as exc:
                self.host.record_error(impl.plugin_name, f"{hook_name} raised {type(exc).__name__}: {exc}")
                continue
            results.append((impl.plugin_name, items))
        return results

    def _add(self, kind: str, cls: type[Component], plugin: str) -> None:
        base = COMPONENT_KINDS[kind]
        if not (isinstance(cls, type) and issubclass(cls, base)):
            self.host.record_error(plugin, f"registered {cls!r} as a {kind}, but it is not a {base.__name__}")
            return
        name = getattr(cls, "name", None)
        if not isinstance(name, str) or not name:
            self.host.record_error(plugin, f"{kind} class {cls.__name__} has no name; not registered")
            return
        existing = self._entries[kind].get(name)
        if existing is not None and existing.cls is not cls:
            self.host.record_error(plugin, self._clash(kind, name, plugin, existing.plugin))
            return
        self._entries[kind][name] = Entry(cls, plugin)

    def _clash(self, kind: str, name: str, plugin: str, owner: str) -> str:
        return (
            f"{kind} {name!r} from {self.host.distribution(plugin)} is already registered by "
            f"{self.host.distribution(owner)} (plugin {owner!r}); refused"
        )

    # --- lookup ------------------------------------------------------------------------------
    def names(self, kind: str) -> list[str]:
        return sorted(self._entries[kind])

    def entries(self, kind: str) -> dict[str, Entry]:
        return dict(sorted(self._entries[kind].items()))

    def get(self, kind: str, name: str) -> type[Component]:
        """The class registered as ``name``, or an error listing the valid names."""
        if kind not in self._entries:
            raise UnknownChoiceError("component kind", kind, self._entries)
        entry = self._entries[kind].get(name)
        if entry is None:
            raise UnknownChoiceError(kind, name, self._entries[kind])
        return entry.cls

    def create(self, kind: str, name: str, params: Mapping[str, Any] | None = None) -> Component:
        """An instance of ``name`` with ``params`` checked against its ``Params`` dataclass."""
        cls = self.get(kind, name)
        built = build(cls.Params, params or {}, f"{kind} {name} params")
        return cls(built)

    def param_names(self, kind: str, name: str) -> list[str]:
        """The ``Params`` fields of component ``name`` (empty when it is not registered)."""
        entry = self._entries.get(kind, {}).get(name)
        return [] if entry is None else field_names(entry.cls.Params)

    def protocol_names(self) -> list[str]:
        return sorted(self._protocols)

    def protocol_path(self, name: str) -> Path:
        if name not in self._protocols:
            raise UnknownChoiceError("protocol", name, self._protocols)
        return self._protocols[name][0]
