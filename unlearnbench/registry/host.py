"""Discovers plugins through the ``unlearnbench`` entry-point group, one at a time.

pluggy's own loader stops at the first broken entry point; here each is loaded in its own
``try`` and a failure is recorded against that plugin, so the others still load. Setting
``UNLEARNBENCH_DISABLE_PLUGIN_AUTOLOAD=1`` skips entry points (tests register plugins by hand);
``UNLEARNBENCH_PLUGINS=a,b`` loads only the named entry points;
``UNLEARNBENCH_DISABLE=dist1,dist2`` skips the entry points of the named distributions.
An entry point whose import takes longer than ``UNLEARNBENCH_PLUGIN_TIMEOUT`` seconds (default
60) is recorded as failed with that error and the others load.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from types import ModuleType
from typing import Any

import pluggy

from unlearnbench.registry import hookspecs

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "unlearnbench"
DISABLE_AUTOLOAD_ENV = "UNLEARNBENCH_DISABLE_PLUGIN_AUTOLOAD"
ONLY_PLUGINS_ENV = "UNLEARNBENCH_PLUGINS"
DISABLE_DISTS_ENV = "UNLEARNBENCH_DISABLE"
PLUGIN_TIMEOUT_ENV = "UNLEARNBENCH_PLUGIN_TIMEOUT"
DEFAULT_PLUGIN_TIMEOUT = 60.0


@dataclass(frozen=True)
class PluginInfo:
    """One plugin as loaded (or not): ``error`` holds the load failure, if any."""

    name: str
    module: str
    distribution: str | None
    version: str | None
    error: str | None = None


def autoload_enabled() -> bool:
    return os.environ.get(DISABLE_AUTOLOAD_ENV, "").strip().lower() not in {"1", "true", "yes"}


def _dist_key(name: str) -> str:
    """A distribution name normalised as packaging does (case, ``-``, ``_`` and ``.`` alike)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def discovered_entry_points() -> list[EntryPoint]:
    """Entry points of the group, less those of distributions named in ``UNLEARNBENCH_DISABLE``,
    filtered by ``UNLEARNBENCH_PLUGINS`` when set."""
    found = sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: ep.name)
    disabled = {_dist_key(d) for d in os.environ.get(DISABLE_DISTS_ENV, "").split(",") if d.strip()}
    if disabled:
        kept = []
        for ep in found:
            dist = getattr(ep, "dist", None)
            if dist is not None and _dist_key(dist.metadata["Name"]) in disabled:
                log.info(
                    "plugin %s skipped: distribution %s is in %s",
                    ep.name,
                    dist.metadata["Name"],
                    DISABLE_DISTS_ENV,
                )
                continue
            kept.append(ep)
        found = kept
    only = os.environ.get(ONLY_PLUGINS_ENV, "").strip()
    if only:
        wanted = {name.strip() for name in only.split(",") if name.strip()}
        found = [ep for ep in found if ep.name in wanted]
    return found


def load_timeout() -> float:
    """Seconds one entry point may take to import (``UNLEARNBENCH_PLUGIN_TIMEOUT``, default 60)."""
    text = os.environ.get(PLUGIN_TIMEOUT_ENV, "").strip()
    try:
        seconds = float(text) if text else DEFAULT_PLUGIN_TIMEOUT
    except ValueError:
        log.warning(
            "%s=%r is not a number of seconds; using %g", PLUGIN_TIMEOUT_ENV, text, DEFAULT_PLUGIN_TIMEOUT
        )
        return DEFAULT_PLUGIN_TIMEOUT
    return seconds if seconds > 0 else DEFAULT_PLUGIN_TIMEOUT


def _load_within(ep: EntryPoint, seconds: float) -> Any:
    """``ep.load()``, in a daemon thread so that an import that never finishes is given up on
    after ``seconds`` (the thread is left behind; the plugin is not registered)."""
    found: dict[str, Any] = {}

    def load() -> None:
        try:
            found["plugin"] = ep.load()
        except BaseException as exc:  # handed to the caller's thread
            found["error"] = exc

    thread = threading.Thread(target=load, name=f"load-plugin-{ep.name}", daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        raise TimeoutError(
            f"importing {ep.value} did not finish within {seconds:g} s ({PLUGIN_TIMEOUT_ENV} sets the limit; "
            f"{DISABLE_DISTS_ENV} or {ONLY_PLUGINS_ENV} skip it)"
        )
    if "error" in found:
        raise found["error"]
    return found["plugin"]


class PluginHost:
    """A pluggy manager plus a record of every plugin it tried to load."""

    def __init__(self) -> None:
        self.manager = pluggy.PluginManager(hookspecs.PROJECT)
        self.manager.add_hookspecs(hookspecs)
        self._infos: dict[str, PluginInfo] = {}

    @property
    def hook(self) -> pluggy.HookRelay:
        return self.manager.hook

    def infos(self) -> list[PluginInfo]:
        return list(self._infos.values())

    def record_error(self, name: str, error: str) -> None:
        """Mark plugin ``name`` as failed (e.g. its register hook raised)."""
        info = self._infos.get(name)
        if info is not None:
            merged = error if info.error is None else f"{info.error}; {error}"
            self._infos[name] = PluginInfo(info.name, info.module, info.distribution, info.version, merged)
        log.warning("plugin %s: %s", name, error)

    def distribution(self, name: str) -> str:
        """``dist==version`` of plugin ``name`` (the plugin's own name when it has none)."""
        info = self._infos.get(name)
        if info is None or info.distribution is None:
            return f"plugin {name!r}"
        return f"{info.distribution}=={info.version}"

    def check_pending(self) -> None:
        """Record every hook implementation that matches no hook spec (a misspelled hook name),
        against its plugin, instead of letting pluggy's ``check_pending`` raise for all."""
        for name, caller in vars(self.manager.hook).items():
            if not name.startswith(hookspecs.PROJECT) or getattr(caller, "spec", True) is not None:
                continue
            for impl in caller.get_hookimpls():
                if not impl.hookwrapper and not impl.optionalhook:
                    self.record_error(impl.plugin_name, f"implements unknown hook {name!r} (misspelled?)")

    def emit(self, hook_name: str, **kwargs: Any) -> None:
        """Call every implementation of an event hook on its own; one that raises is recorded
        against its plugin and the others (and the run) go on."""
        for impl in getattr(self.manager.hook, hook_name).get_hookimpls():
            try:
                impl.function(**{k: v for k, v in kwargs.items() if k in impl.argnames})
            except Exception as exc:
                self.record_error(impl.plugin_name, f"{hook_name} raised {type(exc).__name__}: {exc}")

    def register(self, module: ModuleType | object, name: str | None = None) -> None:
        """Register an already imported plugin object (a module of hook implementations)."""
        plugin_name = name or getattr(module, "__name__", repr(module))
        self.manager.register(module, name=plugin_name)
        self._infos[plugin_name] = PluginInfo(plugin_name, getattr(module, "__name__", "?"), None, None)

    def load_entry_points(self, eps: Iterable[EntryPoint]) -> None:
        """Import and register each entry point on its own; failures are recorded, not raised."""
        for ep in eps:
            dist = getattr(ep, "dist", None)
            dist_name = dist.metadata["Name"] if dist is not None else None
            dist_version = dist.version if dist is not None else None
            if self.manager.has_plugin(ep.name):
                continue
            try:
                plugin = _load_within(ep, load_timeout())
                self.manager.register(plugin, name=ep.name)
            except Exception as exc:  # a broken plugin must not take the others down
                error = f"{type(exc).__name__}: {exc}"
                self._infos[ep.name] = PluginInfo(ep.name, ep.value, dist_name, dist_version, error)
                log.warning("plugin %s (%s) failed to load: %s", ep.name, ep.value, error)
                continue
            self._infos[ep.name] = PluginInfo(ep.name, ep.value, dist_name, dist_version)


def create_host(
    *,
    autoload: bool | None = None,
    plugins: Sequence[ModuleType | object] = (),
    distributions: Iterable[str] | None = None,
) -> PluginHost:
    """A host with the installed entry points (unless autoload is off) and ``plugins`` registered;
    ``distributions`` loads only the entry points of those distributions (what a command that
    reads records needs, so an unrelated plugin is never imported)."""
    host = PluginHost()
    if autoload if autoload is not None else autoload_enabled():
        found = discovered_entry_points()
        if distributions is not None:
            wanted = {_dist_key(d) for d in distributions}
            found = [
                ep
                for ep in found
                if (d := getattr(ep, "dist", None)) and _dist_key(d.metadata["Name"]) in wanted
            ]
        host.load_entry_points(found)
    for plugin in plugins:
        host.register(plugin)
    host.check_pending()
    return host
