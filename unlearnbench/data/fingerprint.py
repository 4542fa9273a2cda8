"""The content fingerprint of a data copy: sha256 of its examples in storage order.

Two copies with the same examples in another order are other copies (a seeded shuffle, a
hold-out or a forget set drawn by index picks other examples from them), so the fingerprint
covers the order; it enters every cache key through the run's data identity. Dataset plugins
that read files may cache it next to their decoded data (keyed by the files' sizes and mtimes,
:func:`cached_fingerprint`); otherwise the run computes it once per process.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from unlearnbench.data.images import DatasetSplits, ImageSplit

log = logging.getLogger(__name__)

FINGERPRINT_FORMAT = 1


def _update(digest: Any, name: str, split: ImageSplit) -> None:
    import torch

    images = split.images.detach().to("cpu").contiguous()
    labels = split.labels.detach().to("cpu", torch.int64).contiguous()
    digest.update(f"[{name}] {tuple(images.shape)} {images.dtype}\n".encode())
    digest.update(images.numpy())
    digest.update(labels.numpy().astype("<i8").tobytes())


def content_sha256(train: ImageSplit, test: ImageSplit, classes: tuple[str, ...]) -> str:
    """sha256 of the class names and of every train and test image and label, in storage order."""
    digest = hashlib.sha256(f"unlearnbench-data-{FINGERPRINT_FORMAT}\n".encode())
    digest.update(json.dumps(list(classes)).encode())
    _update(digest, "train", train)
    _update(digest, "test", test)
    return digest.hexdigest()


def splits_sha256(splits: DatasetSplits) -> str:
    """The fingerprint a plugin set on ``splits``, or :func:`content_sha256` of them."""
    return splits.fingerprint or content_sha256(splits.train, splits.test, splits.classes)


def file_stat_key(paths: list[Path]) -> str:
    """sha256 of the names, sizes and mtimes of ``paths`` (what a cached fingerprint is keyed by)."""
    lines = []
    for path in paths:
        st = os.stat(path)
        lines.append(f"{path.name}\t{st.st_size}\t{st.st_mtime_ns}\n")
    return hashlib.sha256(f"fingerprint-{FINGERPRINT_FORMAT}\n{''.join(lines)}".encode()).hexdigest()


def cached_fingerprint(cache_dir: Path | None, key: str, compute: Callable[[], str]) -> str:
    """``compute()``, read from / written to ``cache_dir/content-<key>.json`` (atomically; an
    unreadable or unwritable cache is logged and skipped)."""
    path = cache_dir / f"content-{key[:24]}.json" if cache_dir is not None else None
    if path is not None and path.is_file():
        try:
            stored = json.loads(path.read_text())
            if stored.get("key") == key and isinstance(stored.get("sha256"), str):
                return str(stored["sha256"])
        except (OSError, ValueError) as exc:
            log.warning("ignoring the unreadable fingerprint cache %s (%s)", path, exc)
    found = compute()
    if path is not None:
        tmp = ""
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".content-", suffix=".tmp")
            with os.fdopen(fd, "w") as handle:
                handle.write(json.dumps({"key": key, "sha256": found}))
            os.replace(tmp, path)
        except OSError as exc:
            log.warning("could not write the fingerprint cache %s (%s)", path, exc)
            if tmp:
                Path(tmp).unlink(missing_ok=True)
    return found
