"""Events the pipeline emits through the ``unlearnbench_stage_finished`` and
``unlearnbench_result_ready`` hooks."""

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
class ResultReady:
    """A result row was recorded (``record['status']`` is ``ok`` or ``failed``)."""

    record: dict[str, Any]
    results_path: Path
