"""The small CNN of the offline quickstart."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from unlearnbench.api import ModelPlugin


class SmallCNN(ModelPlugin):
    """Three 3x3 conv-BN-ReLU blocks (widths w, 2w, 4w; 2x2 max-pool after the second),
    global average pooling and a linear classifier. An unlearnbench design for small images,
    sized to train in seconds on a CPU; convolutions are bias-free as in the reference ResNets."""

    name = "small-cnn"
    version = 1

    @dataclass(frozen=True)
    class Params:
        width: int = 16

    def build(self, *, num_classes: int, in_channels: int, image_size: int) -> nn.Module:
        w = self.params.width

        def block(cin: int, cout: int) -> list[nn.Module]:
            return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]

        return nn.Sequential(
            *block(in_channels, w),
            *block(w, 2 * w),
            nn.MaxPool2d(2),
            *block(2 * w, 4 * w),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(4 * w, num_classes),
        )
