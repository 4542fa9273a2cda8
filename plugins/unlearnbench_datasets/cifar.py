"""CIFAR-10 and CIFAR-100 (Krizhevsky, 2009, "Learning Multiple Layers of Features from Tiny Images").

Two on-disk layouts are read, looked for in this order under the root:

1. the python pickles of the official release (``cifar-10-batches-py/`` or ``cifar-100-python/``,
   or the root itself when it is that folder), parsed by our own reader: a restricted unpickler
   that accepts numpy arrays and nothing else;
2. an image folder, ``train/<class>/*`` and ``test/<class>/*`` with the class folders sorted by
   name in label order (true of both datasets' class names), e.g. ``cifar10-jpeg.tar.gz``.

When neither is there and ``download`` is set, torchvision's ``CIFAR10``/``CIFAR100`` classes
download and md5-verify the official archive into the root; the pickles are then read as above.
torchvision is used for downloading only: its classes reject any file whose md5 differs, so they
could not read other copies of the same format.
Pickles whose md5 sums match the ones torchvision lists are recorded as copy
``<name>-torchvision``; others as ``<name>-pickle-<8 hex>``. Image folders are recorded as
``<name>-imagefolder-<8 hex>`` (a hash of the relative paths, sizes and labels), or by name when
the hash is a known copy (``cifar10-jpeg75`` for ``cifar10-jpeg.tar.gz``). ``copy_label``
overrides any of these.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from unlearnbench.api import DatasetNotFoundError, DatasetPlugin, DatasetSplits, ImageSplit
from unlearnbench_datasets.common import (
    CACHE_DIR_NAME,
    as_text,
    corrupt,
    decode_splits,
    file_fingerprint,
    how_to_get,
    is_image_folder,
    load_pickle,
    resolve_root,
    scan_image_folder,
    str_keys,
)

logger = logging.getLogger(__name__)

_PIXELS = 3 * 32 * 32


@dataclass(frozen=True)
class _Spec:
    """What differs between CIFAR-10 and CIFAR-100."""

    name: str
    title: str
    folder: str
    train_files: tuple[str, ...]
    test_files: tuple[str, ...]
    meta_file: str
    label_key: str
    names_key: str
    num_classes: int
    torchvision_class: str
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @property
    def files(self) -> tuple[str, ...]:
        return (*self.train_files, *self.test_files, self.meta_file)


_CIFAR10 = _Spec(
    name="cifar10",
    title="CIFAR-10",
    folder="cifar-10-batches-py",
    train_files=tuple(f"data_batch_{i}" for i in range(1, 6)),
    test_files=("test_batch",),
    meta_file="batches.meta",
    label_key="labels",
    names_key="label_names",
    num_classes=10,
    torchvision_class="CIFAR10",
    mean=(0.4914, 0.4822, 0.4465),
    std=(0.2470, 0.2435, 0.2616),
)
_CIFAR100 = _Spec(
    name="cifar100",
    title="CIFAR-100",
    folder="cifar-100-python",
    train_files=("train",),
    test_files=("test",),
    meta_file="meta",
    label_key="fine_labels",
    names_key="fine_label_names",
    num_classes=100,
    torchvision_class="CIFAR100",
    mean=(0.5071, 0.4866, 0.4409),
    std=(0.2673, 0.2564, 0.2762),
)
_CIFAR10_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
# Image-folder copies known by their fingerprint (sha256 of relative paths, sizes and labels).
_KNOWN_FOLDER_COPIES = {
    # cifar10-jpeg.tar.gz (sha256 40f53d99...): all 60,000 images re-encoded as JPEG quality 75
    "4387d4ddbe117723a46cea62ea64649c9256b4a887a55046761229a0171a4f6e": "cifar10-jpeg75",
}


def _pickle_dir(root: Path, spec: _Spec) -> Path | None:
    """The folder holding every pickle of ``spec``: ``root/<folder>`` or ``root`` itself."""
    for base in (root / spec.folder, root):
        if all((base / name).is_file() for name in spec.files):
            return base
    return None


def _looked_for(root: Path, spec: _Spec) -> str:
    base = root / spec.folder
    listed = ", ".join(spec.files)
    missing = [name for name in spec.files if not (base / name).is_file()] if base.is_dir() else []
    note = f" ({base} lacks {', '.join(missing)})" if missing else ""
    return (
        f"looked for the python pickles {base}/{{{listed}}}{note} and for an image folder "
        f"{root}/train/<class>/ + {root}/test/<class>/"
    )


def _official_md5(spec: _Spec) -> dict[str, str]:
    """File name -> md5 of the official release, as torchvision lists them (empty if it does not)."""
    from torchvision import datasets

    cls = getattr(datasets, spec.torchvision_class, None)
    found: dict[str, str] = {}
    for entry in [*getattr(cls, "train_list", []), *getattr(cls, "test_list", [])]:
        found[str(entry[0])] = str(entry[1])
    meta = getattr(cls, "meta", None)
    if isinstance(meta, dict) and "filename" in meta and "md5" in meta:
        found[str(meta["filename"])] = str(meta["md5"])
    return found


def _download(spec: _Spec, root: Path) -> None:
    """Fetch and verify the official archive with torchvision; DatasetNotFoundError on failure."""
    from torchvision import datasets

    logger.info("%s: downloading the official archive into %s with torchvision", spec.name, root)
    try:
        root.mkdir(parents=True, exist_ok=True)
        getattr(datasets, spec.torchvision_class)(str(root), train=False, download=True)
    except Exception as exc:
        raise DatasetNotFoundError(
            f"{spec.title}: no copy found at {root}, and downloading it with torchvision failed "
            f"({type(exc).__name__}: {exc}); {_looked_for(root, spec)}. "
            "Retry with network access, or pass --data-root DIR pointing at an existing copy."
        ) from exc


def _refetch(path: Path) -> str:
    return f"Delete {path.parent} and load with download=True to fetch the official copy"


def _read_batch(path: Path, spec: _Spec) -> tuple[np.ndarray, np.ndarray, str]:
    """One batch file: data uint8 [N, 3072], labels int64 [N] and the file's md5."""
    try:
        raw = path.read_bytes()
        entry = str_keys(load_pickle(raw))
        data = entry["data"]
        if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2:
            raise ValueError(f"'data' must be a uint8 [N, {_PIXELS}] array")
        if data.shape[1] != _PIXELS:
            raise ValueError(f"'data' has shape {data.shape}, expected [N, {_PIXELS}]")
        labels = np.asarray(entry[spec.label_key])
        if labels.shape != (data.shape[0],) or (labels.size and labels.dtype.kind not in "iu"):
            raise ValueError(f"'{spec.label_key}' must hold {data.shape[0]} integers")
        labels = labels.astype(np.int64)
        if labels.size and (labels.min() < 0 or labels.max() >= spec.num_classes):
            raise ValueError(f"labels outside 0..{spec.num_classes - 1}")
    except Exception as exc:
        raise corrupt(
            path, f"{spec.title} batch file", f"{type(exc).__name__}: {exc}", _refetch(path)
        ) from exc
    return data, labels, hashlib.md5(raw, usedforsecurity=False).hexdigest()


def _read_names(path: Path, spec: _Spec) -> tuple[tuple[str, ...], str]:
    try:
        raw = path.read_bytes()
        names = tuple(as_text(n) for n in str_keys(load_pickle(raw))[spec.names_key])
        if len(names) != spec.num_classes:
            raise ValueError(f"{len(names)} class names, expected {spec.num_classes}")
    except Exception as exc:
        raise corrupt(
            path, f"{spec.title} meta file", f"{type(exc).__name__}: {exc}", _refetch(path)
        ) from exc
    return names, hashlib.md5(raw, usedforsecurity=False).hexdigest()


def _split(parts: list[tuple[np.ndarray, np.ndarray, str]]) -> ImageSplit:
    data = np.concatenate([p[0] for p in parts]).reshape(-1, 3, 32, 32)
    labels = np.concatenate([p[1] for p in parts])
    return ImageSplit(torch.from_numpy(data), torch.from_numpy(labels))


def _from_pickles(spec: _Spec, base: Path, copy_label: str, cache: bool) -> DatasetSplits:
    train_parts = [_read_batch(base / name, spec) for name in spec.train_files]
    test_parts = [_read_batch(base / name, spec) for name in spec.test_files]
    classes, meta_md5 = _read_names(base / spec.meta_file, spec)
    digests = dict(zip(spec.files, [p[2] for p in (*train_parts, *test_parts)] + [meta_md5], strict=True))
    official = _official_md5(spec)
    if digests == {name: official.get(name) for name in spec.files}:
        copy = f"{spec.name}-torchvision"
    else:
        joined = "".join(f"{name}:{digest}\n" for name, digest in digests.items())
        copy = f"{spec.name}-pickle-{hashlib.sha256(joined.encode()).hexdigest()[:8]}"
        logger.warning(
            "%s: the pickles in %s differ from the official release (md5 as listed by torchvision)",
            spec.name,
            base,
        )
    copy = copy_label or copy
    logger.info("%s: read the python-pickle layout in %s (copy %s)", spec.name, base, copy)
    train, test = _split(train_parts), _split(test_parts)
    files = [base / name for name in spec.files]
    return DatasetSplits(
        train=train,
        test=test,
        fingerprint=file_fingerprint(files, base / CACHE_DIR_NAME if cache else None, train, test, classes),
        classes=classes,
        mean=spec.mean,
        std=spec.std,
        copy=copy,
        location=str(base),
    )


def _from_image_folder(spec: _Spec, root: Path, copy_label: str, cache: bool) -> DatasetSplits:
    classes, train, test = scan_image_folder(root)
    if len(classes) != spec.num_classes:
        shown = ", ".join(classes[:12]) + (", ..." if len(classes) > 12 else "")
        raise DatasetNotFoundError(
            f"{spec.title}: the image folder {root} has {len(classes)} class folders in train/ "
            f"({shown}), but {spec.title} has {spec.num_classes} classes"
        )
    if spec is _CIFAR10 and classes != _CIFAR10_NAMES:
        logger.warning(
            "%s: class folders in %s are not the CIFAR-10 names; their sorted order is taken as the "
            "label order",
            spec.name,
            root,
        )
    decoded = decode_splits(
        {"train": train, "test": test}, cache_dir=root / CACHE_DIR_NAME if cache else None, classes=classes
    )
    images = decoded.splits["train"].images
    if tuple(images.shape[1:]) != (3, 32, 32):
        logger.warning("%s: images in %s are %s, not 3x32x32", spec.name, root, tuple(images.shape[1:]))
    known = _KNOWN_FOLDER_COPIES.get(decoded.fingerprint)
    copy = copy_label or known or f"{spec.name}-imagefolder-{decoded.fingerprint[:8]}"
    logger.info(
        "%s: read the image-folder layout in %s (train/<class>/, test/<class>/; copy %s)",
        spec.name,
        root,
        copy,
    )
    return DatasetSplits(
        train=decoded.splits["train"],
        test=decoded.splits["test"],
        fingerprint=decoded.content,
        classes=classes,
        mean=spec.mean,
        std=spec.std,
        copy=copy,
        location=str(root),
    )


def _load(spec: _Spec, root: Path | None, download: bool, copy_label: str, cache: bool) -> DatasetSplits:
    where = resolve_root(root, spec.name)
    base = _pickle_dir(where, spec)
    if base is None and is_image_folder(where):
        return _from_image_folder(spec, where, copy_label, cache)
    if base is None:
        if not download:
            raise DatasetNotFoundError(
                f"{spec.title}: no copy found at {where}; {_looked_for(where, spec)}. "
                + how_to_get(can_download=True)
            )
        _download(spec, where)
        base = _pickle_dir(where, spec)
        if base is None:
            raise DatasetNotFoundError(
                f"{spec.title}: the download into {where} left no readable copy; {_looked_for(where, spec)}"
            )
    return _from_pickles(spec, base, copy_label, cache)


class CIFAR10(DatasetPlugin):
    """CIFAR-10 (Krizhevsky, 2009): 50,000 train and 10,000 test 32x32 RGB images of 10 classes.

    Reads the official python pickles or an image-folder copy (see the module docstring); with
    ``download`` torchvision fetches the pickles when neither is found. The root defaults to
    ``~/.cache/unlearnbench/data/cifar10``. Mean/std: per-pixel statistics of the train set,
    (0.4914, 0.4822, 0.4465) / (0.2470, 0.2435, 0.2616), as in Unlearn-Sparse (``utils.py``).
    ``copy_label`` overrides the recorded copy id (e.g. ``cifar10-jpeg75`` for a JPEG copy);
    ``cache`` keeps decoded image-folder copies and content fingerprints in
    ``<root>/.unlearnbench-cache/``.
    """

    name = "cifar10"
    version = 1

    @dataclass(frozen=True)
    class Params:
        copy_label: str = ""
        cache: bool = True

    def load(self, root: Path | None, *, download: bool) -> DatasetSplits:
        return _load(_CIFAR10, root, download, self.params.copy_label, self.params.cache)


class CIFAR100(DatasetPlugin):
    """CIFAR-100 (Krizhevsky, 2009): 50,000 train and 10,000 test 32x32 RGB images, 100 fine labels.

    Reads the official python pickles (fine labels; the 20 coarse labels are not used) or an
    image-folder copy with 100 class folders (see the module docstring); with ``download``
    torchvision fetches the pickles when neither is found. The root defaults to
    ``~/.cache/unlearnbench/data/cifar100``. Mean/std: per-pixel statistics of the train set,
    (0.5071, 0.4866, 0.4409) / (0.2673, 0.2564, 0.2762), as in Unlearn-Sparse (``utils.py``).
    ``copy_label`` and ``cache`` as for ``cifar10``.
    """

    name = "cifar100"
    version = 1

    @dataclass(frozen=True)
    class Params:
        copy_label: str = ""
        cache: bool = True

    def load(self, root: Path | None, *, download: bool) -> DatasetSplits:
        return _load(_CIFAR100, root, download, self.params.copy_label, self.params.cache)
