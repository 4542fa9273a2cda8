"""Where and how a run computes: :class:`RunSettings`, and the per-process computation settings
(threads, deterministic mode) every process that computes nodes applies."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from unlearnbench.errors import UnknownChoiceError
from unlearnbench.run.external import ExternalModel, PretrainedOriginal


@dataclass(frozen=True)
class RunSettings:
    """Where and how to run: output folder, device, data root, whether to download, and the
    artifact store (a folder or an fsspec URL that every node of a cluster can reach; default
    ``OUT/artifacts``)."""

    out: Path
    device: str = "cpu"
    data_root: Path | None = None
    download: bool = True
    artifact_root: str | None = None
    tuning: Mapping[str, Any] = field(default_factory=dict)
    """How unlearners' parameters were tuned (``unlearnbench tune``), copied into their records."""
    timeouts: Mapping[str, float] = field(default_factory=dict)
    """Seconds a node of a stage may run before it fails naming the component it was in (``--timeout``)."""
    precision: str = "auto"
    """Training precision: ``bf16`` (autocast), ``fp32``, or ``auto`` (bf16 where the device
    runs it natively: CUDA, CPUs with AVX512-BF16/AMX)."""
    threads: int | None = None
    """torch's CPU threads in every process that computes a node (None: torch's default)."""
    deterministic: bool = False
    """torch's deterministic algorithms (and no cuDNN autotuning) in every process."""
    externals: tuple[ExternalModel, ...] = ()
    """Externally produced models, each scored as a row ``external:<name>`` (``evaluate``)."""
    original: PretrainedOriginal | None = None
    """A pretrained original used in place of training one (``run --original``)."""
    forget: tuple[str, ...] = ()
    """The forget sets whose rows run (empty: all); the protocol and its hash are unchanged."""

    @property
    def artifacts(self) -> str:
        """The artifact store root."""
        return self.artifact_root or str(Path(self.out) / "artifacts")


PRECISIONS = ("auto", "bf16", "fp32")


def apply_compute(settings: RunSettings) -> None:
    """Set this process's torch threads and deterministic mode from ``settings`` (each process
    that computes nodes, the driver and every Ray worker, calls it)."""
    if settings.precision not in PRECISIONS:
        raise UnknownChoiceError("precision", settings.precision, PRECISIONS)
    if settings.threads is not None:
        torch.set_num_threads(settings.threads)
    if settings.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
