"""SVHN, cropped digits (Netzer et al., 2011, "Reading Digits in Natural Images with Unsupervised
Feature Learning"), from the official ``.mat`` files or an image-folder copy."""

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
    corrupt,
    decode_splits,
    file_fingerprint,
    how_to_get,
    is_image_folder,
    md5_file,
    resolve_root,
    scan_image_folder,
)

logger = logging.getLogger(__name__)

_FILES = {"train": "train_32x32.mat", "test": "test_32x32.mat", "extra": "extra_32x32.mat"}
_CLASSES = tuple(str(d) for d in range(10))
_MEAN = (0.4377, 0.4438, 0.4728)
_STD = (0.1980, 0.2010, 0.1970)


def _refetch(path: Path) -> str:
    return f"Delete {path} and load with download=True to fetch it again"


def _read_mat(path: Path) -> ImageSplit:
    """``X`` uint8 [H, W, 3, N] and ``y`` [N, 1] in 1..10 as [N, 3, H, W] and labels 0..9."""
    from scipy.io import loadmat

    try:
        mat = loadmat(path, variable_names=("X", "y"))
        x, y = mat["X"], np.asarray(mat["y"])
        if not isinstance(x, np.ndarray) or x.dtype != np.uint8 or x.ndim != 4 or x.shape[2] != 3:
            raise ValueError(f"'X' must be uint8 [H, W, 3, N], got {getattr(x, 'dtype', '?')} {np.shape(x)}")
        y = y.reshape(-1)
        if y.shape[0] != x.shape[3]:
            raise ValueError(f"'y' holds {y.shape[0]} labels for {x.shape[3]} images")
        if y.size and (y.dtype.kind not in "iuf" or np.any(y != np.round(y)) or y.min() < 1 or y.max() > 10):
            raise ValueError("labels must be integers in 1..10")
    except Exception as exc:
        raise corrupt(path, "SVHN .mat file", f"{type(exc).__name__}: {exc}", _refetch(path)) from exc
    images = torch.from_numpy(np.ascontiguousarray(x.transpose(3, 2, 0, 1)))
    labels = torch.from_numpy(y.astype(np.int64) % 10)  # label 10 is the digit 0
    return ImageSplit(images, labels)


def _official_md5() -> dict[str, str]:
    """File name -> md5 of the official files, as torchvision lists them (empty if it does not)."""
    from torchvision import datasets

    split_list = getattr(getattr(datasets, "SVHN", None), "split_list", {})
    return {str(entry[1]): str(entry[2]) for entry in split_list.values()}


class SVHN(DatasetPlugin):
    """SVHN cropped digits (Netzer et al., 2011): 73,257 train and 26,032 test 32x32 RGB images.

    Reads ``train_32x32.mat`` and ``test_32x32.mat`` in the root (plus ``extra_32x32.mat``,
    531,131 more train images, when ``extra`` is set) with scipy; label 10 means the digit 0, so
    classes are ``"0".."9"``. Without the files, an image folder ``train/<digit>/``,
    ``test/<digit>/`` is read instead; with ``download`` torchvision's ``SVHN`` class downloads and
    md5-verifies the missing files (it is not used to read them, since it rejects any other copy of
    the format). The root defaults to ``~/.cache/unlearnbench/data/svhn``.
    Copy id: ``svhn-torchvision`` when the md5 sums match torchvision's list, else
    ``svhn-mat-<8 hex>`` / ``svhn-imagefolder-<8 hex>``, or ``copy_label``. Mean/std: per-pixel
    train-set statistics (0.4377, 0.4438, 0.4728) / (0.1980, 0.2010, 0.1970). Deviation: SalUn and
    Unlearn-Sparse's ``utils.py`` use the same mean but std (0.1201, 0.1231, 0.1052).
    """

    name = "svhn"
    version = 1

    @dataclass(frozen=True)
    class Params:
        extra: bool = False
        copy_label: str = ""
        cache: bool = True

    def _wanted(self) -> list[str]:
        return ["train", "test", "extra"] if self.params.extra else ["train", "test"]

    def load(self, root: Path | None, *, download: bool) -> DatasetSplits:
        where = resolve_root(root, self.name)
        wanted = self._wanted()
        missing = [split for split in wanted if not (where / _FILES[split]).is_file()]
        if missing and not self.params.extra and is_image_folder(where):
            return self._from_image_folder(where)
        if missing:
            looked = ", ".join(str(where / _FILES[s]) for s in wanted)
            folder = "" if self.params.extra else f" and an image folder {where}/train/<digit>/"
            if not download:
                raise DatasetNotFoundError(
                    f"SVHN: no copy found at {where}; looked for {looked}{folder}. "
                    + how_to_get(can_download=True)
                )
            self._download(where, missing, looked)
        return self._from_mat(where)

    def _download(self, where: Path, missing: list[str], looked: str) -> None:
        from torchvision import datasets

        for split in missing:
            logger.info("svhn: downloading %s into %s with torchvision", _FILES[split], where)
            try:
                where.mkdir(parents=True, exist_ok=True)
                datasets.SVHN(str(where), split=split, download=True)
            except Exception as exc:
                raise DatasetNotFoundError(
                    f"SVHN: no copy found at {where}, and downloading {_FILES[split]} with torchvision "
                    f"failed ({type(exc).__name__}: {exc}); looked for {looked}. Retry with network "
                    "access, or pass --data-root DIR pointing at an existing copy."
                ) from exc

    def _from_mat(self, where: Path) -> DatasetSplits:
        wanted = self._wanted()
        parts = {split: _read_mat(where / _FILES[split]) for split in wanted}
        digests = {_FILES[s]: md5_file(where / _FILES[s]) for s in wanted}
        official = _official_md5()
        if all(official.get(name) == digest for name, digest in digests.items()):
            copy = "svhn-torchvision"
        else:
            joined = "".join(f"{name}:{digest}\n" for name, digest in digests.items())
            copy = f"svhn-mat-{hashlib.sha256(joined.encode()).hexdigest()[:8]}"
            logger.warning("svhn: the .mat files in %s differ from the official release", where)
        train = parts["train"]
        if "extra" in parts:
            extra = parts["extra"]
            if extra.images.shape[1:] != train.images.shape[1:]:
                raise corrupt(
                    where / _FILES["extra"],
                    "SVHN .mat file",
                    "image size differs from train",
                    _refetch(where / _FILES["extra"]),
                )
            train = ImageSplit(
                torch.cat([train.images, extra.images]), torch.cat([train.labels, extra.labels])
            )
        if parts["test"].images.shape[1:] != train.images.shape[1:]:
            raise corrupt(
                where / _FILES["test"],
                "SVHN .mat file",
                "image size differs from train",
                _refetch(where / _FILES["test"]),
            )
        copy = self.params.copy_label or copy
        logger.info("svhn: read the .mat layout in %s (copy %s)", where, copy)
        cache_dir = where / CACHE_DIR_NAME if self.params.cache else None
        files = [where / _FILES[s] for s in wanted]
        return DatasetSplits(
            train=train,
            test=parts["test"],
            fingerprint=file_fingerprint(files, cache_dir, train, parts["test"], _CLASSES),
            classes=_CLASSES,
            mean=_MEAN,
            std=_STD,
            copy=copy,
            location=str(where),
        )

    def _from_image_folder(self, where: Path) -> DatasetSplits:
        classes, train, test = scan_image_folder(where)
        if len(classes) != len(_CLASSES):
            raise DatasetNotFoundError(
                f"SVHN: the image folder {where} has {len(classes)} class folders in train/, SVHN has 10"
            )
        cache_dir = where / CACHE_DIR_NAME if self.params.cache else None
        decoded = decode_splits({"train": train, "test": test}, cache_dir=cache_dir, classes=classes)
        copy = self.params.copy_label or f"svhn-imagefolder-{decoded.fingerprint[:8]}"
        logger.info("svhn: read the image-folder layout in %s (copy %s)", where, copy)
        return DatasetSplits(
            train=decoded.splits["train"],
            test=decoded.splits["test"],
            fingerprint=decoded.content,
            classes=classes,
            mean=_MEAN,
            std=_STD,
            copy=copy,
            location=str(where),
        )
