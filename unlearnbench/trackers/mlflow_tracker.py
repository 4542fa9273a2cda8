"""MLflow with a local store under ``OUT/mlflow/`` (``mlflow ui --backend-store-uri
sqlite:///OUT/mlflow/mlflow.db``).

The store is MLflow's local SQLite backend (``OUT/mlflow/mlflow.db``, artifacts in
``OUT/mlflow/artifacts``): MLflow 3 refuses its plain-folder file store (``./mlruns``) unless
``MLFLOW_ALLOW_FILE_STORE=true`` is set, and recommends SQLite for local use. One experiment per
protocol; each ``unlearnbench run`` is a parent run with a nested run per computed node (its
per-epoch values as metric histories, step = epoch) and one per result row (identity as
params, metrics as metrics, ``status`` as a tag). Uses :class:`mlflow.tracking.MlflowClient`
only (no global active run).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from unlearnbench.registry.events import StageFinished
from unlearnbench.trackers.base import IDENTITY, Tracker, TrackerRun, node_label, numeric, row_label

PARENT_TAG = "mlflow.parentRunId"


def tracking_uri(folder: Path) -> str:
    """The SQLite tracking URI of the store in ``folder``."""
    return f"sqlite:///{(Path(folder) / 'mlflow.db').resolve()}"


class MlflowTracker(Tracker):
    """Logs per-epoch curves and result rows to a local MLflow store."""

    name = "mlflow"
    module = "mlflow"
    extra = "mlflow"

    def __init__(self, out: Path, run: TrackerRun) -> None:
        super().__init__(out, run)
        from mlflow.entities import Metric, Param
        from mlflow.tracking import MlflowClient

        self._metric = Metric

        self.folder = self.out / "mlflow"
        self.folder.mkdir(parents=True, exist_ok=True)
        self.client = MlflowClient(tracking_uri=tracking_uri(self.folder))
        experiment = self.client.get_experiment_by_name(run.protocol)
        if experiment is None:
            artifacts = (self.folder / "artifacts").resolve().as_uri()
            experiment_id = self.client.create_experiment(run.protocol, artifact_location=artifacts)
        else:
            experiment_id = experiment.experiment_id
        self.experiment_id = experiment_id
        tags = {"protocol_hash": run.protocol_hash}
        self.parent = self.client.create_run(experiment_id, run_name=run.name, tags=tags).info.run_id
        self._params = Param
        self.client.log_batch(self.parent, params=[Param(k, str(v)) for k, v in run.config.items()])
        self._nodes: dict[str, str] = {}

    def _child(self, name: str, tags: Mapping[str, str]) -> str:
        tags = {PARENT_TAG: self.parent, **tags}
        return self.client.create_run(self.experiment_id, run_name=name, tags=tags).info.run_id

    def epoch(self, stage: str, component: str, key: str, epoch: int, name: str, value: float) -> None:
        run_id = self._nodes.get(key)
        if run_id is None:
            tags = {"stage": stage, "component": component, "node_key": key}
            run_id = self._nodes[key] = self._child(node_label(stage, component, key), tags)
        self.client.log_metric(run_id, name, value, step=epoch)

    def node_done(self, event: StageFinished) -> None:
        run_id = self._nodes.pop(event.key, None)
        if run_id is not None:
            self.client.set_terminated(run_id)

    def result(self, record: Mapping[str, Any]) -> None:
        status = str(record.get("status"))
        run_id = self._child(row_label(record), {"status": status, "row_id": str(record.get("row_id"))})
        params = [self._params(k, str(record.get(k))) for k in (*IDENTITY, "unprune", "unpruner")]
        now = int(time.time() * 1000)
        metrics = [self._metric(k, v, now, 0) for k, v in numeric(record.get("metrics") or {}).items()]
        self.client.log_batch(run_id, metrics=metrics, params=params)  # one transaction
        self.client.set_terminated(run_id, status="FINISHED" if status == "ok" else "FAILED")

    def close(self) -> None:
        for run_id in self._nodes.values():
            self.client.set_terminated(run_id)
        self._nodes.clear()
        self.client.set_terminated(self.parent)
