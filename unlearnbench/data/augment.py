"""Batch augmentation on the device that holds the batch: random crop with zero padding and
horizontal flip (the reference's ``RandomCrop(size, padding=4)`` + ``RandomHorizontalFlip``),
then per-channel normalisation. The same code runs on CPU tensors.
"""

from __future__ import annotations

import torch


def random_crop(images: torch.Tensor, padding: int, generator: torch.Generator) -> torch.Tensor:
    """Pad each image by ``padding`` zeros on every side and crop it back at a random offset."""
    if padding <= 0:
        return images
    batch, _, height, width = images.shape
    padded = torch.nn.functional.pad(images, (padding, padding, padding, padding))
    span = 2 * padding + 1
    dev = images.device
    top = torch.randint(0, span, (batch,), device=dev, generator=generator)
    left = torch.randint(0, span, (batch,), device=dev, generator=generator)
    rows = (top[:, None] + torch.arange(height, device=dev))[:, :, None]  # [B, H, 1]
    cols = (left[:, None] + torch.arange(width, device=dev))[:, None, :]  # [B, 1, W]
    index = torch.arange(batch, device=dev)[:, None, None]
    return padded.permute(0, 2, 3, 1)[index, rows, cols].permute(0, 3, 1, 2)


def random_flip(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Mirror each image left-right with probability 1/2."""
    flip = torch.rand(images.shape[0], device=images.device, generator=generator) < 0.5
    return torch.where(flip[:, None, None, None], images.flip(-1), images)


def normalize(
    images: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, dtype: torch.dtype
) -> torch.Tensor:
    """uint8 [0, 255] -> ``dtype`` with per-channel ``(x / 255 - mean) / std``."""
    scaled = images.to(dtype).div_(255.0)
    return scaled.sub_(mean.to(dtype)[None, :, None, None]).div_(std.to(dtype)[None, :, None, None])
