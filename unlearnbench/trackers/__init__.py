"""Experiment trackers a run can log to (``unlearnbench run --tracker NAME``): TensorBoard,
MLflow (a local store) and Weights & Biases (offline), each an optional extra
(``pip install 'unlearnbench[tensorboard]'``, ``[mlflow]``, ``[wandb]``).

A tracker is a pluggy plugin on the event hooks (``unlearnbench_epoch_logged``,
``unlearnbench_stage_finished``, ``unlearnbench_result_ready``) that the CLI registers on the
run's plugin host; it writes under the run's ``--out`` folder only.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Sequence
from pathlib import Path

from unlearnbench.errors import InvalidValueError, UnknownChoiceError
from unlearnbench.trackers.base import Tracker, TrackerRun

TRACKERS: dict[str, str] = {
    "tensorboard": "unlearnbench.trackers.tensorboard_tracker:TensorBoardTracker",
    "mlflow": "unlearnbench.trackers.mlflow_tracker:MlflowTracker",
    "wandb": "unlearnbench.trackers.wandb_tracker:WandbTracker",
}
"""Tracker name -> ``module:class``; the module is imported only when the tracker is chosen."""


def tracker_class(name: str) -> type[Tracker]:
    """The class of tracker ``name``, or one error naming the valid trackers."""
    if name not in TRACKERS:
        raise UnknownChoiceError("tracker", name, TRACKERS)
    module, _, attribute = TRACKERS[name].partition(":")
    return getattr(importlib.import_module(module), attribute)


def check_trackers(names: Sequence[str]) -> list[type[Tracker]]:
    """The classes of ``names``: each known, chosen once and with its package installed."""
    twice = sorted({n for n in names if list(names).count(n) > 1})
    if twice:
        raise InvalidValueError(f"--tracker {', '.join(twice)} is given more than once")
    classes = [tracker_class(n) for n in names]
    for cls in classes:
        if importlib.util.find_spec(cls.module) is None:
            raise InvalidValueError(
                f"--tracker {cls.name} needs the {cls.module} package: "
                f"pip install 'unlearnbench[{cls.extra}]'"
            )
    return classes


def open_trackers(names: Sequence[str], out: Path, run: TrackerRun) -> list[Tracker]:
    """Started trackers for ``names`` writing under ``out`` (close each with ``close()``)."""
    started: list[Tracker] = []
    for cls in check_trackers(names):
        try:
            started.append(cls(out, run))
        except Exception as exc:
            close_trackers(started)
            why = f"{type(exc).__name__}: {exc}"
            raise InvalidValueError(f"--tracker {cls.name} could not start: {why}") from exc
    return started


def close_trackers(trackers: Sequence[Tracker]) -> list[str]:
    """Close each tracker; returns one line per tracker whose close failed (the others still close)."""
    failed = []
    for tracker in trackers:
        try:
            tracker.close()
        except Exception as exc:
            failed.append(f"tracker {tracker.name} failed to close: {type(exc).__name__}: {exc}")
    return failed


__all__ = [
    "TRACKERS",
    "Tracker",
    "TrackerRun",
    "check_trackers",
    "close_trackers",
    "open_trackers",
    "tracker_class",
]
