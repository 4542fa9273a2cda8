"""Weights & Biases in offline mode: one W&B run per ``unlearnbench run`` under ``OUT/wandb/``
(upload later with ``wandb sync OUT/wandb/wandb/offline-run-*``).

Nothing leaves the machine: the run is started with ``mode="offline"`` (what
``WANDB_MODE=offline`` selects) and no API key is needed. Each computed node's per-epoch values
are logged as ``<stage>/<component>/<key12>/<name>`` against its own step metric
``<stage>/<component>/<key12>/epoch``; each ok result row's metrics go to the run summary as
``<row>/<metric>`` (no W&B Table: a table is staged as an artifact in W&B's data folder outside
``OUT``). W&B's own service still writes its debug log under its cache folder
(``WANDB_CACHE_DIR``, by default ``~/.cache/wandb``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from unlearnbench.trackers.base import Tracker, TrackerRun, node_label, numeric, row_label


class WandbTracker(Tracker):
    """Logs per-epoch curves and result rows to an offline W&B run."""

    name = "wandb"
    module = "wandb"
    extra = "wandb"

    def __init__(self, out: Path, run: TrackerRun) -> None:
        super().__init__(out, run)
        import wandb

        self.folder = self.out / "wandb"
        self.folder.mkdir(parents=True, exist_ok=True)
        self.run_handle = wandb.init(
            mode="offline",
            dir=str(self.folder),
            project=run.protocol,
            name=run.name,
            config={"protocol_hash": run.protocol_hash, **dict(run.config)},
            settings=wandb.Settings(console="off", silent=True, x_disable_stats=True),
        )
        self._defined: set[str] = set()

    def epoch(self, stage: str, component: str, key: str, epoch: int, name: str, value: float) -> None:
        prefix = node_label(stage, component, key)
        if prefix not in self._defined:
            self.run_handle.define_metric(f"{prefix}/epoch", hidden=True)
            self.run_handle.define_metric(f"{prefix}/*", step_metric=f"{prefix}/epoch")
            self._defined.add(prefix)
        self.run_handle.log({f"{prefix}/epoch": epoch, f"{prefix}/{name}": value})

    def result(self, record: Mapping[str, Any]) -> None:
        if record.get("status") != "ok":
            return
        label = row_label(record)
        for name, value in numeric(record.get("metrics") or {}).items():
            self.run_handle.summary[f"{label}/{name}"] = value

    def close(self) -> None:
        self.run_handle.finish()
