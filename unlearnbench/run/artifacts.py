"""A content-addressed store of stage outputs, written atomically.

An artifact lives in ``ROOT/<stage>/<key[:24]>/`` with its files and ``meta.json`` (the key's
inputs, the stage's runtime, the output's own hash). It is written in a temporary directory and
moved into place with one ``os.replace``, so a directory that exists is complete: an interrupted
run leaves no half-written artifact, and the next run recomputes only what is missing.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from unlearnbench.hashing import canonical_json, sha256_json

META = "meta.json"


@dataclass(frozen=True)
class Artifact:
    stage: str
    key: str
    path: Path
    meta: Mapping[str, Any]

    def file(self, name: str) -> Path:
        return self.path / name


def artifact_key(stage: str, inputs: Mapping[str, Any]) -> str:
    """The key of a stage output: sha256 of the canonical JSON of everything that determines it."""
    return sha256_json({"stage": stage, **inputs})


class ArtifactStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, stage: str, key: str) -> Path:
        return self.root / stage / key[:24]

    def get(self, stage: str, key: str) -> Artifact | None:
        """The finished artifact, or None when it was never completed."""
        path = self.path(stage, key)
        meta_path = path / META
        if not meta_path.is_file():
            return None
        meta = json.loads(meta_path.read_text())
        if meta.get("key") != key:
            return None
        return Artifact(stage, key, path, meta)

    def put(
        self,
        stage: str,
        key: str,
        inputs: Mapping[str, Any],
        write: Callable[[Path], Mapping[str, Any] | None],
    ) -> Artifact:
        """Run ``write(tmpdir)`` (returning extra meta) and publish the directory atomically."""
        final = self.path(stage, key)
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{key[:12]}-", dir=final.parent))
        try:
            extra = write(tmp) or {}
            meta = {"stage": stage, "key": key, "inputs": inputs, **extra}
            (tmp / META).write_text(canonical_json(meta))
            if final.exists():  # an earlier incomplete directory without meta, or a racing writer
                shutil.rmtree(final, ignore_errors=True)
            os.replace(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return Artifact(stage, key, final, meta)


def write_text_atomic(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` in one step (a reader sees the old or the new file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
