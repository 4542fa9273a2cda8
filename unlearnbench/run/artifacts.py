"""A content-addressed store of stage outputs, written atomically.

An artifact lives in ``ROOT/<stage>/<key[:24]>/`` with its files and ``meta.json`` (the key's
inputs, the stage's runtime, the sha256 and size of every payload file). It is written in a
temporary directory and moved into place with one ``os.replace``, so a directory that exists is
complete: an interrupted run leaves no half-written artifact, and the next run recomputes only
what is missing. A reader that finds a payload missing, truncated or changed logs it, moves the
bad copy aside (``<dir>.corrupt-<n>``) and reports the artifact as absent, so it is recomputed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from unlearnbench.hashing import canonical_json, sha256_json

META = "meta.json"

log = logging.getLogger(__name__)


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
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            return self._quarantine(path, f"unreadable {META} ({exc})")
        if meta.get("key") != key:
            return None
        for name, expected in (meta.get("files") or {}).items():
            problem = _file_problem(path / name, expected)
            if problem:
                return self._quarantine(path, f"{name} {problem}")
        return Artifact(stage, key, path, meta)

    def _quarantine(self, path: Path, why: str) -> None:
        """Move a bad artifact directory aside (kept for inspection) so the node is recomputed."""
        n = 0
        while (aside := path.with_name(f"{path.name}.corrupt-{n}")).exists():
            n += 1
        log.warning("artifact %s: %s; moved to %s and recomputing", path, why, aside.name)
        os.replace(path, aside)
        return None

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
            files = {
                f.name: {"sha256": file_sha256(f), "size": f.stat().st_size} for f in sorted(tmp.iterdir())
            }
            meta = {"stage": stage, "key": key, "inputs": inputs, "files": files, **extra}
            (tmp / META).write_text(canonical_json(meta))
            if final.exists():  # an earlier incomplete directory without meta, or a racing writer
                shutil.rmtree(final, ignore_errors=True)
            os.replace(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return Artifact(stage, key, final, meta)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _file_problem(path: Path, expected: Mapping[str, Any]) -> str | None:
    """Why ``path`` does not match its recorded size and sha256 (None when it does)."""
    if not path.is_file():
        return "is missing"
    if path.stat().st_size != expected.get("size"):
        return f"has {path.stat().st_size} bytes, expected {expected.get('size')} (truncated?)"
    if file_sha256(path) != expected.get("sha256"):
        return "does not match its sha256"
    return None


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
