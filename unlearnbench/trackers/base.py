"""What every tracker shares: the run it belongs to, the three event hooks, and replaying a
node's per-epoch values from its artifact when they were logged in another process (Ray)."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from unlearnbench.registry.events import EpochLogged, ResultReady, StageFinished
from unlearnbench.registry.hookspecs import hookimpl
from unlearnbench.report.record import method_label

log = logging.getLogger(__name__)

IDENTITY = ("protocol", "protocol_hash", "forget_set", "pruner", "sparsity_target", "unlearner", "seed")
"""The record fields a tracker names a result row by (with the un-pruner for un-prune rows)."""


@dataclass(frozen=True)
class TrackerRun:
    """One ``unlearnbench run``: its name, protocol and hash, and settings to record."""

    name: str
    protocol: str
    protocol_hash: str
    config: Mapping[str, Any] = field(default_factory=dict)


def row_label(record: Mapping[str, Any]) -> str:
    """``forget/pruner@sparsity/method/seed`` of a result record, e.g. ``class0/omp@0.9/ft/s0``."""
    method = method_label(record["unlearner"], bool(record.get("unprune")), record.get("unpruner"))
    return (
        f"{record['forget_set']}/{record['pruner']}@{record['sparsity_target']:g}/"
        f"{method.replace(' + ', '+')}/s{record['seed']}"
    )


def node_label(stage: str, component: str, key: str) -> str:
    """``stage/component/key12``: the name a node's curves are logged under."""
    return f"{stage}/{component}/{key[:12]}"


def numeric(values: Mapping[str, Any]) -> dict[str, float]:
    """The finite numbers of ``values`` as floats (None, strings and booleans left out)."""
    found = {}
    for name, value in values.items():
        if isinstance(value, int | float) and not isinstance(value, bool) and value == value:
            found[name] = float(value)
    return found


class Tracker:
    """A pluggy plugin that follows a run through the event hooks and logs it to one tracker.

    Subclasses implement :meth:`epoch`, :meth:`node_done`, :meth:`result` and :meth:`close`.
    A node's per-epoch values arrive live through ``unlearnbench_epoch_logged`` where the node
    is computed in this process (``--executor local``); for a node computed elsewhere (a Ray
    worker) they are read back from its artifact's ``meta.json`` when it finishes.
    """

    name: ClassVar[str] = ""
    module: ClassVar[str] = ""
    """The module the tracker needs (checked before the run starts)."""
    extra: ClassVar[str] = ""
    """The pip extra that installs it: ``pip install 'unlearnbench[EXTRA]'``."""

    def __init__(self, out: Path, run: TrackerRun) -> None:
        self.out = Path(out)
        self.run = run
        self._live: set[str] = set()

    @hookimpl
    def unlearnbench_epoch_logged(self, event: EpochLogged) -> None:
        self._live.add(event.key)
        self.epoch(event.stage, event.component, event.key, event.epoch, event.name, event.value)

    @hookimpl
    def unlearnbench_stage_finished(self, event: StageFinished) -> None:
        if not event.reused and event.key not in self._live:
            for entry in stored_epoch_log(event.path):
                epoch, name, value = int(entry["epoch"]), str(entry["name"]), float(entry["value"])
                self.epoch(event.stage, event.component, event.key, epoch, name, value)
        self.node_done(event)

    @hookimpl
    def unlearnbench_result_ready(self, event: ResultReady) -> None:
        self.result(event.record)

    # --- what a tracker implements -----------------------------------------------------------
    def epoch(self, stage: str, component: str, key: str, epoch: int, name: str, value: float) -> None:
        """One per-epoch value of node ``key``."""
        raise NotImplementedError

    def node_done(self, event: StageFinished) -> None:
        """Node ``event.key`` finished (its epoch values, if any, have all been logged)."""

    def result(self, record: Mapping[str, Any]) -> None:
        """A result row (``record['status']`` ok or failed) was written."""
        raise NotImplementedError

    def close(self) -> None:
        """Flush and close everything; called once after the run."""


def stored_epoch_log(path: Path) -> list[dict[str, Any]]:
    """The ``epoch_log`` entries in an artifact folder's ``meta.json`` (none when unreadable)."""
    try:
        meta = json.loads((Path(path) / "meta.json").read_text())
    except (OSError, ValueError):
        return []
    entries = meta.get("epoch_log") if isinstance(meta, dict) else None
    return [e for e in entries or [] if isinstance(e, dict) and {"epoch", "name", "value"} <= set(e)]
