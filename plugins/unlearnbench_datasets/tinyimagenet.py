"""Tiny-ImageNet-200 (Le & Yang, 2015, "Tiny ImageNet Visual Recognition Challenge") read in
place from the standard ``tiny-imagenet-200`` folder."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from unlearnbench.api import DatasetNotFoundError, DatasetPlugin, DatasetSplits
from unlearnbench_datasets.common import (
    CACHE_DIR_NAME,
    LabelledFiles,
    decode_splits,
    list_images,
    resolve_root,
)

logger = logging.getLogger(__name__)

_FOLDER = "tiny-imagenet-200"
_URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


def _find(root: Path) -> Path | None:
    for base in (root / _FOLDER, root):
        if (base / "wnids.txt").is_file():
            return base
    return None


def _read_wnids(path: Path) -> tuple[str, ...]:
    try:
        wnids = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetNotFoundError(f"cannot read {path}: {exc}") from exc
    if not wnids or len(set(wnids)) != len(wnids) or any(len(w.split()) != 1 for w in wnids):
        raise DatasetNotFoundError(f"{path} is not a Tiny-ImageNet class list (one unique wnid a line)")
    return tuple(sorted(wnids))


def _train_files(base: Path, classes: tuple[str, ...]) -> LabelledFiles:
    names: list[str] = []
    labels: list[int] = []
    for label, wnid in enumerate(classes):
        folder = f"train/{wnid}/images"
        found = list_images(base, folder) if (base / folder).is_dir() else []
        if not found:
            raise DatasetNotFoundError(f"Tiny-ImageNet: {base / folder} is missing or holds no images")
        names.extend(found)
        labels.extend([label] * len(found))
    return LabelledFiles(base, tuple(names), tuple(labels))


def _val_files(base: Path, classes: tuple[str, ...]) -> LabelledFiles:
    annotations = base / "val" / "val_annotations.txt"
    index = {wnid: i for i, wnid in enumerate(classes)}
    try:
        lines = annotations.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetNotFoundError(f"Tiny-ImageNet: cannot read {annotations}: {exc}") from exc
    names: list[str] = []
    labels: list[int] = []
    missing: list[Path] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        fields = [f.strip() for f in (line.split("\t") if "\t" in line else line.split())]
        if len(fields) < 2 or fields[1] not in index or not fields[0] or "/" in fields[0]:
            raise DatasetNotFoundError(
                f"Tiny-ImageNet: line {number} of {annotations} is not '<file>\\t<wnid>...' with a wnid "
                f"from wnids.txt: {line[:80]!r}"
            )
        name = f"val/images/{fields[0]}"
        if not (base / name).is_file():
            missing.append(base / name)
        names.append(name)
        labels.append(index[fields[1]])
    if missing:
        raise DatasetNotFoundError(
            f"Tiny-ImageNet: {len(missing)} images listed in {annotations} are missing, e.g. {missing[0]}"
        )
    if not names:
        raise DatasetNotFoundError(f"Tiny-ImageNet: {annotations} lists no images")
    return LabelledFiles(base, tuple(names), tuple(labels))


class TinyImageNet(DatasetPlugin):
    """Tiny-ImageNet-200 (Le & Yang, 2015): 100,000 train and 10,000 val 64x64 images, 200 classes.

    Reads ``tiny-imagenet-200/`` (the root, or a folder inside it): ``wnids.txt``,
    ``train/<wnid>/images/*.JPEG`` and ``val/images/*.JPEG`` labelled by
    ``val/val_annotations.txt``; the unlabelled ``test/`` is unused. Classes are the wnids sorted by
    name (ImageFolder order, as in Unlearn-Sparse); grey JPEGs become RGB. Deviation from
    Unlearn-Sparse: the whole val split (50 a class) is the test split and no file is moved (it
    moves 25 a class into a new ``test/``). Mean/std: the ImageNet statistics
    (0.485, 0.456, 0.406) / (0.229, 0.224, 0.225) that Unlearn-Sparse uses for Tiny-ImageNet.
    torchvision has no downloader for it, so ``download`` cannot fetch it. The root defaults to
    ``~/.cache/unlearnbench/data/tinyimagenet``. Copy id: ``tinyimagenet-<8 hex>`` (hash of the
    file list, sizes and labels) or ``copy_label``; ``cache`` keeps the decoded images in
    ``<root>/.unlearnbench-cache/``.
    """

    name = "tinyimagenet"
    version = 1

    @dataclass(frozen=True)
    class Params:
        copy_label: str = ""
        cache: bool = True

    def load(self, root: Path | None, *, download: bool) -> DatasetSplits:
        where = resolve_root(root, self.name)
        base = _find(where)
        if base is None:
            lead = (
                "download=True cannot fetch it (torchvision has no Tiny-ImageNet downloader). "
                if download
                else ""
            )
            raise DatasetNotFoundError(
                f"Tiny-ImageNet: no copy found at {where}; looked for {where / _FOLDER / 'wnids.txt'} and "
                f"{where / 'wnids.txt'}. {lead}Download {_URL} and unzip it into {where}, or pass "
                "--data-root DIR pointing at an existing copy."
            )
        classes = _read_wnids(base / "wnids.txt")
        train, test = _train_files(base, classes), _val_files(base, classes)
        cache_dir = where / CACHE_DIR_NAME if self.params.cache else None
        decoded = decode_splits({"train": train, "test": test}, cache_dir=cache_dir, classes=classes)
        shape = tuple(decoded.splits["train"].images.shape[1:])
        if shape != (3, 64, 64):
            logger.warning("tinyimagenet: images in %s are %s, not 3x64x64", base, shape)
        copy = self.params.copy_label or f"tinyimagenet-{decoded.fingerprint[:8]}"
        logger.info("tinyimagenet: read %s (val split as the test split; copy %s)", base, copy)
        return DatasetSplits(
            train=decoded.splits["train"],
            test=decoded.splits["test"],
            fingerprint=decoded.content,
            classes=classes,
            mean=_IMAGENET_MEAN,
            std=_IMAGENET_STD,
            copy=copy,
            location=str(base),
        )
