"""The hooks a plugin may implement (pluggy project name ``unlearnbench``).

Register hooks return lists of component classes (or protocol files); an implementation may take
a subset of a hook's arguments, so hooks can gain arguments later without breaking plugins.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from pathlib import Path

    from unlearnbench.registry.components import (
        DatasetPlugin,
        Metric,
        ModelPlugin,
        Pruner,
        Unlearner,
        Unpruner,
    )
    from unlearnbench.registry.events import EpochLogged, ResultReady, StageFinished

PROJECT = "unlearnbench"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def unlearnbench_register_datasets() -> list[type[DatasetPlugin]]:
    """Dataset classes this plugin provides. Called once when the registry is built, before any run."""


@hookspec
def unlearnbench_register_models() -> list[type[ModelPlugin]]:
    """Model classes this plugin provides. Called once when the registry is built, before any run."""


@hookspec
def unlearnbench_register_pruners() -> list[type[Pruner]]:
    """Pruner classes this plugin provides. Called once when the registry is built, before any run."""


@hookspec
def unlearnbench_register_unlearners() -> list[type[Unlearner]]:
    """Unlearner classes this plugin provides. Called once when the registry is built, before any run."""


@hookspec
def unlearnbench_register_unpruners() -> list[type[Unpruner]]:
    """Un-pruner classes this plugin provides. Called once when the registry is built, before any run."""


@hookspec
def unlearnbench_register_metrics() -> list[type[Metric]]:
    """Metric classes this plugin provides. Called once when the registry is built, before any run."""


@hookspec
def unlearnbench_register_protocols() -> list[Path]:
    """Protocol files (TOML) this plugin provides. Called once when the registry is built."""


@hookspec
def unlearnbench_stage_finished(event: StageFinished) -> None:
    """Called once per node of the run graph, when its artifact is ready (computed or reused),
    in the driver process. An implementation that raises is recorded, not fatal."""


@hookspec
def unlearnbench_epoch_logged(event: EpochLogged) -> None:
    """Called each time an unlearner logs a per-epoch value (``task.log``) while its node is
    computed, in the process that computes it (the driver for ``--executor local``, a Ray worker
    under ``--executor ray``). The values also reach the record's ``epoch_log``. An
    implementation that raises is recorded, not fatal."""


@hookspec
def unlearnbench_result_ready(event: ResultReady) -> None:
    """Called after a result row was written to ``results.jsonl`` (ok or failed) - for exporters
    and loggers. An implementation that raises is recorded, not fatal."""
