"""Any image-folder copy: ``train/<class>/*`` and ``test/<class>/*`` (torchvision's ImageFolder tree)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from unlearnbench.api import DatasetNotFoundError, DatasetPlugin, DatasetSplits
from unlearnbench_datasets.common import (
    CACHE_DIR_NAME,
    channel_stats,
    decode_splits,
    how_to_get,
    is_image_folder,
    resolve_root,
    scan_image_folder,
)

logger = logging.getLogger(__name__)


class ImageFolder(DatasetPlugin):
    """A dataset stored as ``<train_dir>/<class>/*`` and ``<test_dir>/<class>/*`` image files.

    Classes are the train class folders sorted by name (torchvision ImageFolder order; for
    ``cifar10-jpeg.tar.gz`` that is the CIFAR-10 label order). Files are found recursively; JPEG,
    PNG, GIF and WebP are decoded by torchvision, BMP/PPM/PGM/TIFF by Pillow. All images must share
    one size; grey images become RGB when any image is RGB, alpha is dropped. Mean/std are computed
    from the train split. The root defaults to ``~/.cache/unlearnbench/data/imagefolder``; nothing
    is downloaded. Copy id: ``copy_label`` or ``imagefolder-<8 hex>`` (hash of the file list,
    sizes and labels). ``cache`` keeps the decoded images in ``<root>/.unlearnbench-cache/``.
    """

    name = "imagefolder"
    version = 1

    @dataclass(frozen=True)
    class Params:
        copy_label: str = ""
        train_dir: str = "train"
        test_dir: str = "test"
        cache: bool = True

    def load(self, root: Path | None, *, download: bool) -> DatasetSplits:
        p = self.params
        where = resolve_root(root, self.name)
        if not is_image_folder(where, p.train_dir, p.test_dir):
            raise DatasetNotFoundError(
                f"image folder: no copy found at {where}; looked for {where / p.train_dir}/<class>/ and "
                f"{where / p.test_dir}/<class>/. There is nothing to download. "
                + how_to_get(can_download=False)
            )
        classes, train, test = scan_image_folder(where, p.train_dir, p.test_dir)
        decoded = decode_splits(
            {"train": train, "test": test},
            cache_dir=where / CACHE_DIR_NAME if p.cache else None,
            classes=classes,
        )
        mean, std = channel_stats(decoded.splits["train"].images)
        copy = p.copy_label or f"imagefolder-{decoded.fingerprint[:8]}"
        logger.info("imagefolder: read %s (%d classes; copy %s)", where, len(classes), copy)
        return DatasetSplits(
            train=decoded.splits["train"],
            test=decoded.splits["test"],
            fingerprint=decoded.content,
            classes=classes,
            mean=mean,
            std=std,
            copy=copy,
            location=str(where),
        )
