"""Stage outputs computed once: read from the artifact store, or computed, stored and announced.

A stage that raises is remembered as failed for the rest of the run, so every row that needs it
fails with the same message without recomputing it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pluggy
import torch

from unlearnbench.registry.events import StageFinished
from unlearnbench.run.artifacts import Artifact, ArtifactStore, artifact_key
from unlearnbench.training.masks import Mask

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelArtifact:
    """A model stage's output: weights, mask (None when dense), key and measured runtime."""

    key: str
    state: dict[str, torch.Tensor]
    mask: Mask | None
    runtime_s: float
    extra: dict[str, Any] = field(default_factory=dict)


class StageFailed(Exception):
    """A stage failed earlier in this run; rows that need it fail with its message."""


class StageCache:
    """Stage artifacts by key, with an in-run memo and ``unlearnbench_stage_finished`` events."""

    def __init__(self, store: ArtifactStore, hook: pluggy.HookRelay) -> None:
        self.store = store
        self.hook = hook
        self._memo: dict[tuple[str, str], Any] = {}

    def get(
        self,
        stage: str,
        component: str,
        inputs: dict[str, Any],
        compute: Callable[[], ModelArtifact | dict[str, Any]],
    ) -> Artifact:
        """The artifact of ``stage`` for ``inputs``: from the store, or computed and stored.

        ``compute`` returns a :class:`ModelArtifact` (saved as files) or a JSON-ready payload
        (saved in the meta).
        """
        key = artifact_key(stage, inputs)
        memo_key = ("stage", key)
        if memo_key in self._memo:
            found = self._memo[memo_key]
            if isinstance(found, StageFailed):
                raise found
            return found
        artifact = self.store.get(stage, key)
        reused = artifact is not None
        if artifact is None:
            start = time.perf_counter()
            try:
                produced = compute()
            except Exception as exc:
                failure = StageFailed(f"{stage} ({component}) failed: {type(exc).__name__}: {exc}")
                self._memo[memo_key] = failure
                log.error("%s", failure, exc_info=exc)
                raise failure from exc
            seconds = time.perf_counter() - start

            def write(folder: Path) -> dict[str, Any]:
                if isinstance(produced, ModelArtifact):
                    torch.save(produced.state, folder / "model.pt")
                    if produced.mask is not None:
                        produced.mask.save(folder / "mask.pt")
                    for name, value in produced.extra.items():
                        torch.save(value, folder / f"{name}.pt")
                    return {"runtime_s": seconds, "component": component}
                return {"runtime_s": seconds, "component": component, "payload": produced}

            artifact = self.store.put(stage, key, inputs, write)
        self._memo[memo_key] = artifact
        self.hook.unlearnbench_stage_finished(
            event=StageFinished(
                stage, component, key, artifact.path, float(artifact.meta["runtime_s"]), reused
            )
        )
        return artifact

    def model(
        self, stage: str, component: str, inputs: dict[str, Any], compute: Callable[[], ModelArtifact]
    ) -> ModelArtifact:
        """A model stage's weights and mask, read once per run."""
        memo_key = ("model", artifact_key(stage, inputs))
        if memo_key not in self._memo:
            self._memo[memo_key] = read_model(self.get(stage, component, inputs, compute))
        return self._memo[memo_key]


def read_model(artifact: Artifact) -> ModelArtifact:
    state = torch.load(artifact.file("model.pt"), map_location="cpu", weights_only=True)
    mask_file = artifact.file("mask.pt")
    mask = Mask.load(mask_file) if mask_file.exists() else None
    extra = {
        f.stem: torch.load(f, map_location="cpu", weights_only=True)
        for f in artifact.path.glob("*.pt")
        if f.name not in ("model.pt", "mask.pt")
    }
    return ModelArtifact(artifact.key, state, mask, float(artifact.meta["runtime_s"]), extra)
