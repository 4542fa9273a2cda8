"""TensorBoard: event files under ``OUT/tensorboard/<run>/`` (``tensorboard --logdir OUT/tensorboard``).

Each computed node is a TensorBoard run ``<run>/nodes/<stage>/<component>/<key12>`` with one
scalar per logged name (``train_loss``, ``train_acc``, an unlearner's own) against the epoch.
Each result row is an hparams entry (``<run>/rows/<row>``): its identity as hyperparameters and
its metrics as ``metric/<name>``, compared in TensorBoard's HParams tab. Written with
``torch.utils.tensorboard`` (needs the ``tensorboard`` package).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from unlearnbench.registry.events import StageFinished
from unlearnbench.trackers.base import IDENTITY, Tracker, TrackerRun, node_label, numeric, row_label


class TensorBoardTracker(Tracker):
    """Logs per-epoch curves and result rows as TensorBoard event files."""

    name = "tensorboard"
    module = "tensorboard"
    extra = "tensorboard"

    def __init__(self, out: Path, run: TrackerRun) -> None:
        super().__init__(out, run)
        from torch.utils.tensorboard import SummaryWriter

        self._writer_cls = SummaryWriter
        self.folder = self.out / "tensorboard" / run.name
        self._nodes: dict[str, Any] = {}
        self._rows = SummaryWriter(str(self.folder / "rows"))

    def epoch(self, stage: str, component: str, key: str, epoch: int, name: str, value: float) -> None:
        writer = self._nodes.get(key)
        if writer is None:
            writer = self._writer_cls(str(self.folder / "nodes" / node_label(stage, component, key)))
            self._nodes[key] = writer
        writer.add_scalar(name, value, epoch)

    def node_done(self, event: StageFinished) -> None:
        writer = self._nodes.pop(event.key, None)
        if writer is not None:
            writer.close()

    def result(self, record: Mapping[str, Any]) -> None:
        if record.get("status") != "ok":
            return
        hparams: dict[str, Any] = {k: record[k] for k in IDENTITY if record.get(k) is not None}
        hparams["unprune"] = bool(record.get("unprune"))
        hparams["unpruner"] = record.get("unpruner") or "-"
        metrics = {f"metric/{k}": v for k, v in numeric(record.get("metrics") or {}).items()}
        if metrics:
            self._rows.add_hparams(hparams, metrics, run_name=row_label(record).replace("/", "_"))

    def close(self) -> None:
        for writer in self._nodes.values():
            writer.close()
        self._nodes.clear()
        self._rows.close()
