"""A content-addressed store of stage outputs, written atomically.

An artifact lives in ``ROOT/<stage>/<key[:24]>/`` with its files and ``meta.json`` (the key's
inputs, the stage's runtime, the sha256 and size of every payload file). It is written in a
temporary directory and moved into place with one ``os.replace``, so a directory that exists is
complete: an interrupted run leaves no half-written artifact, and the next run recomputes only
what is missing. A reader that finds a payload missing, truncated or changed logs it, moves the
bad copy aside (``<dir>.corrupt-<n>``) and reports the artifact as absent, so it is recomputed.

The root may also be an fsspec URL (``s3://bucket/run``, ``gs://...``, ``memory://...``) that the
nodes of a cluster share: the files are uploaded first and ``meta.json`` last, so an artifact
whose meta can be read is complete there too.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from unlearnbench.files import write_text_atomic as write_text_atomic  # moved; kept importable here
from unlearnbench.hashing import canonical_json, sha256_json
from unlearnbench.paths import inside, readable_mode

META = "meta.json"
LOCKS = "locks"
"""The folder of the store's per-node lock files (not a stage)."""

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Artifact:
    """A finished stage output; ``path`` is a local folder, or a path on ``fs`` (fsspec)."""

    stage: str
    key: str
    path: Path
    meta: Mapping[str, Any]
    fs: Any = None

    def file(self, name: str) -> Path:
        return self.path / name

    def names(self) -> list[str]:
        """The artifact's file names."""
        if self.fs is None:
            return sorted(p.name for p in self.path.iterdir())
        return sorted(str(p).rstrip("/").rsplit("/", 1)[-1] for p in self.fs.ls(str(self.path), detail=False))

    def open(self, name: str) -> io.BytesIO:
        """A file's bytes, read in one go."""
        if self.fs is None:
            return io.BytesIO((self.path / name).read_bytes())
        with self.fs.open(f"{self.path}/{name}", "rb") as handle:
            return io.BytesIO(handle.read())


def artifact_key(stage: str, inputs: Mapping[str, Any]) -> str:
    """The key of a stage output: sha256 of the canonical JSON of everything that determines it."""
    return sha256_json({"stage": stage, **inputs})


class ArtifactStore:
    """Artifacts under ``root``: a local folder, or an fsspec URL (not ``file://``)."""

    def __init__(self, root: Path | str) -> None:
        text = str(root)
        self.fs: Any = None
        if "://" in text and not text.startswith("file://"):
            import fsspec

            self.fs, text = fsspec.core.url_to_fs(text)
        self.root = Path(text.removeprefix("file://"))

    def path(self, stage: str, key: str) -> Path:
        return self.root / stage / key[:24]

    def lock(self, stage: str, key: str) -> contextlib.AbstractContextManager[None]:
        """The node's cross-process lock, ``locks/<stage>-<key[:24]>.lock`` (see run/locks.py)."""
        from unlearnbench.run.locks import local_lock, remote_lock

        path, what = self.root / LOCKS / f"{stage}-{key[:24]}.lock", f"node {stage} {key[:12]}"
        return local_lock(path, what) if self.fs is None else remote_lock(self.fs, str(path), what)

    def obtain(
        self, stage: str, key: str, compute: Callable[[], Artifact], fresh: bool = False
    ) -> tuple[Artifact, bool]:
        """The stored node and True, or ``compute()`` (which stores it) and False. The computation
        runs under the node's lock; a process that waited for another's finds the node and reuses
        it. ``fresh`` computes it again even when stored."""
        found = None if fresh else self.get(stage, key)
        if found is not None:
            return found, True
        with self.lock(stage, key):
            found = None if fresh else self.get(stage, key)
            return (found, True) if found is not None else (compute(), False)

    def get(self, stage: str, key: str) -> Artifact | None:
        """The finished artifact, or None when it was never completed."""
        path = self.path(stage, key)
        meta_path = path / META
        try:
            if self.fs is not None:
                if not self.fs.exists(str(meta_path)):
                    return None
                meta = json.loads(self.fs.cat_file(str(meta_path)))
            elif not meta_path.is_file():
                return None
            else:
                meta = json.loads(meta_path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            return self._quarantine(path, f"unreadable {META} ({exc})")
        if meta.get("key") != key:
            return None
        artifact = Artifact(stage, key, path, meta, self.fs)
        for name, expected in (meta.get("files") or {}).items():
            problem = self._file_problem(artifact, name, expected)
            if problem:
                return self._quarantine(path, f"{name} {problem}")
        return artifact

    def _file_problem(self, artifact: Artifact, name: str, expected: Mapping[str, Any]) -> str | None:
        """Why file ``name`` does not match its recorded size and sha256 (None when it does)."""
        where = f"{artifact.path}/{name}"
        exists = self.fs.exists(where) if self.fs is not None else (artifact.path / name).is_file()
        if not exists:
            return "is missing"
        size = self.fs.size(where) if self.fs is not None else (artifact.path / name).stat().st_size
        if size != expected.get("size"):
            return f"has {size} bytes, expected {expected.get('size')} (truncated?)"
        if hashlib.sha256(artifact.open(name).getbuffer()).hexdigest() != expected.get("sha256"):
            return "does not match its sha256"
        return None

    def _quarantine(self, path: Path, why: str) -> None:
        """Move a bad artifact directory aside (kept for inspection) so the node is recomputed."""
        exists = self.fs.exists if self.fs is not None else os.path.exists
        n = 0
        while exists(str(aside := path.with_name(f"{path.name}.corrupt-{n}"))):
            n += 1
        log.warning("artifact %s: %s; moved to %s and recomputing", path, why, aside.name)
        if self.fs is not None:
            self.fs.mv(str(path), str(aside), recursive=True)
        else:
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
        if self.fs is not None:
            return self._put_remote(stage, key, inputs, write)
        final = inside(self.root, Path(stage) / key[:24])  # == self.path(stage, key)
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{key[:12]}-", dir=final.parent))
        try:
            readable_mode(tmp, folder=True)  # mkdtemp makes it 0700
            extra = write(tmp) or {}
            meta = {"stage": stage, "key": key, "inputs": inputs, "files": payload_files(tmp), **extra}
            (tmp / META).write_text(canonical_json(meta))
            if final.exists():  # an earlier incomplete directory without meta, or a racing writer
                shutil.rmtree(final, ignore_errors=True)
            os.replace(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return Artifact(stage, key, final, meta)

    def _put_remote(
        self,
        stage: str,
        key: str,
        inputs: Mapping[str, Any],
        write: Callable[[Path], Mapping[str, Any] | None],
    ) -> Artifact:
        final = str(self.path(stage, key))
        with tempfile.TemporaryDirectory() as tmp:
            extra = write(Path(tmp)) or {}
            meta = {"stage": stage, "key": key, "inputs": inputs, "files": payload_files(Path(tmp)), **extra}
            self.fs.makedirs(final, exist_ok=True)
            for item in sorted(Path(tmp).iterdir()):
                self.fs.put_file(str(item), f"{final}/{item.name}")
            self.fs.pipe_file(f"{final}/{META}", canonical_json(meta).encode())  # last: marks it complete
        return Artifact(stage, key, Path(final), meta, self.fs)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def payload_files(folder: Path) -> dict[str, dict[str, Any]]:
    """The sha256 and size of every file in a freshly written artifact folder."""
    return {f.name: {"sha256": file_sha256(f), "size": f.stat().st_size} for f in sorted(folder.iterdir())}
