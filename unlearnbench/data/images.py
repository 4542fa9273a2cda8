"""In-memory image data: whole splits as uint8 tensors, the form every dataset plugin returns."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class ImageSplit:
    """A split held as ``images`` uint8 [N, C, H, W] and ``labels`` int64 [N]."""

    images: torch.Tensor
    labels: torch.Tensor

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise ValueError(
                f"images must be uint8 [N, C, H, W], got {self.images.dtype} {tuple(self.images.shape)}"
            )
        if self.labels.dtype != torch.int64 or self.labels.shape != (self.images.shape[0],):
            raise ValueError(
                f"labels must be int64 [N] with N={self.images.shape[0]}, "
                f"got {self.labels.dtype} {tuple(self.labels.shape)}"
            )

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def subset(self, indices: torch.Tensor) -> ImageSplit:
        """The examples at ``indices`` (int64), in that order."""
        return ImageSplit(self.images[indices], self.labels[indices])

    def head(self, n: int) -> ImageSplit:
        """The first ``n`` examples (all of them when ``n`` is larger)."""
        return ImageSplit(self.images[:n], self.labels[:n])

    def to(self, device: torch.device | str) -> ImageSplit:
        return ImageSplit(self.images.to(device), self.labels.to(device))


@dataclass(frozen=True)
class DatasetSplits:
    """What a dataset plugin loads: train and test splits plus what describes them.

    ``mean`` and ``std`` are per-channel statistics on the [0, 1] scale, used for normalisation.
    ``copy`` names the data copy that was read (e.g. ``cifar10-torchvision``, ``imagefolder``), so
    every result says which copy it came from; ``location`` says where it was read.
    ``fingerprint`` is the sha256 of the content in storage order when the plugin has it cached
    (:mod:`unlearnbench.data.fingerprint`; empty: the run computes it).
    """

    train: ImageSplit
    test: ImageSplit
    classes: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    copy: str
    location: str = ""
    fingerprint: str = ""

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def in_channels(self) -> int:
        return int(self.train.images.shape[1])

    @property
    def image_size(self) -> int:
        return int(self.train.images.shape[-1])
