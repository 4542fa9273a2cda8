"""Events the pipeline emits through the ``unlearnbench_stage_finished``,
``unlearnbench_epoch_logged`` and ``unlearnbench_result_ready`` hooks."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class StageFinished:
    """A stage's artifact is ready; ``reused`` when it came from the cache."""

    stage: str
    component: str
    key: str
    path: Path
    seconds: float
    reused: bool


@dataclass(frozen=True)
class EpochLogged:
    """A method logged a per-epoch value (``task.log(epoch, name, value)``) while computing the
    node ``key`` of ``stage`` with ``component``."""

    stage: str
    component: str
    key: str
    epoch: int
    name: str
    value: float


@dataclass(frozen=True)
class ResultReady:
    """A result row was recorded (``record['status']`` is ``ok`` or ``failed``)."""

    record: dict[str, Any]
    results_path: Path
