"""The 8x8 handwritten digits that ship inside scikit-learn (offline quickstart data)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from unlearnbench.api import DatasetPlugin, DatasetSplits, ImageSplit
from unlearnbench_datasets.common import channel_stats


class Digits(DatasetPlugin):
    """UCI optical handwritten digits (Alpaydin & Kaynak, 1998) as shipped by scikit-learn.

    1,797 grey 8x8 images of 10 classes. The 0..16 pixel values are rescaled to uint8 0..255.
    There is no official test split: a stratified ``test_fraction`` is held out with ``split_seed``.
    ``root`` and ``download`` are ignored (the data ships with scikit-learn).
    """

    name = "digits"
    version = 1
    reads_root = False

    @dataclass(frozen=True)
    class Params:
        test_fraction: float = 0.2
        split_seed: int = 0

    def load(self, root: Path | None, *, download: bool) -> DatasetSplits:
        from sklearn.datasets import load_digits

        bunch = load_digits()
        pixels = torch.from_numpy(bunch.images).float()
        images = (pixels * (255.0 / 16.0)).round().clamp(0, 255).to(torch.uint8)[:, None]
        labels = torch.from_numpy(bunch.target).long()
        generator = torch.Generator().manual_seed(self.params.split_seed)
        test_parts, train_parts = [], []
        for cls in range(10):
            members = torch.nonzero(labels == cls).flatten()
            members = members[torch.randperm(len(members), generator=generator)]
            n_test = round(len(members) * self.params.test_fraction)
            test_parts.append(members[:n_test])
            train_parts.append(members[n_test:])
        train_idx = torch.cat(train_parts).sort().values
        test_idx = torch.cat(test_parts).sort().values
        train = ImageSplit(images[train_idx], labels[train_idx])
        test = ImageSplit(images[test_idx], labels[test_idx])
        mean, std = channel_stats(train.images)
        return DatasetSplits(
            train=train,
            test=test,
            classes=tuple(str(d) for d in range(10)),
            mean=mean,
            std=std,
            copy="sklearn-digits",
            location="sklearn.datasets.load_digits",
        )
