"""VGG-16 with BatchNorm (Simonyan & Zisserman 2015) in the form the Unlearn-Sparse reference
trains on 32x32 images.

The 13 convolutions are plain attributes ``conv1``-``conv13``, each followed by ``bn1``-``bn13``
and a ReLU; the classifier is ``fc1``, ``fc2`` and the final ``fc``. Inputs arrive already
normalised, so there is no normalisation layer.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from unlearnbench.api import InvalidValueError, ModelPlugin

VGG16_WIDTHS: tuple[int, ...] = (64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512)
"""Output channels of configuration D's 13 convolutions."""

VGG16_POOL_AFTER: frozenset[int] = frozenset({2, 4, 7, 10})
"""1-based convolutions followed by a 2x2 max-pool (configuration D without its fifth pool)."""

MIN_IMAGE_SIZE = 16
"""The smallest input side the four 2x2 max-pools take."""


class VGG(nn.Module):
    """3x3 conv-BN-ReLU layers with 2x2 max-pools, a 2x2 adaptive average pool and three
    linear layers (``fc1``, ``fc2``, ``fc``) with ReLUs between them and no dropout.

    Convolutions are bias-free with Kaiming normal fan-out init; BatchNorm starts at weight 1,
    bias 0; linear layers start at N(0, 0.01) weights and zero bias.
    """

    def __init__(
        self,
        widths: tuple[int, ...],
        pool_after: frozenset[int],
        *,
        num_classes: int,
        in_channels: int = 3,
        hidden: int = 256,
    ) -> None:
        super().__init__()
        self.depth = len(widths)
        self.pool_after = pool_after
        cin = in_channels
        for index, width in enumerate(widths, start=1):
            setattr(self, f"conv{index}", nn.Conv2d(cin, width, 3, padding=1, bias=False))
            setattr(self, f"bn{index}", nn.BatchNorm2d(width))
            cin = width
        self.avgpool = nn.AdaptiveAvgPool2d(2)
        self.fc1 = nn.Linear(cin * 2 * 2, hidden)
        self.fc2 = nn.Linear(hidden, hidden)
        self.fc = nn.Linear(hidden, num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, 0.0, 0.01)
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for index in range(1, self.depth + 1):
            conv: nn.Conv2d = getattr(self, f"conv{index}")
            bn: nn.BatchNorm2d = getattr(self, f"bn{index}")
            x = F.relu(bn(conv(x)))
            if index in self.pool_after:
                x = F.max_pool2d(x, 2)
        x = torch.flatten(self.avgpool(x), 1)
        return self.fc(F.relu(self.fc2(F.relu(self.fc1(x)))))


class VGG16BN(ModelPlugin):
    """VGG-16 with BatchNorm for 32x32 images: 13 bias-free 3x3 conv-BN-ReLU layers, a 256-256-K head.

    Simonyan & Zisserman, "Very Deep Convolutional Networks for Large-Scale Image Recognition"
    (ICLR 2015), configuration D, as built by the Unlearn-Sparse reference (``models/VGG.py``,
    ``vgg16_bn``): four max-pools (32 -> 2; the paper's fifth is dropped), a 2x2 adaptive average
    pool, linear layers 2048-256-256-K with ReLUs and no dropout, Kaiming fan-out conv init and
    N(0, 0.01) linear init (15,311,818 parameters with 10 classes). Deviations: no normalisation
    module inside (the engine normalises); layers are named ``conv1``-``conv13``/``bn1``-``bn13``
    and ``fc1``/``fc2``/``fc`` instead of ``features.i``/``classifier.i``. Inputs need a side of
    at least 16.
    """

    name = "vgg16-bn"
    version = 1

    def build(self, *, num_classes: int, in_channels: int, image_size: int) -> nn.Module:
        if image_size < MIN_IMAGE_SIZE:
            raise InvalidValueError(
                f"model {self.name!r} needs images of at least {MIN_IMAGE_SIZE}x{MIN_IMAGE_SIZE}, "
                f"got {image_size}x{image_size}"
            )
        return VGG(VGG16_WIDTHS, VGG16_POOL_AFTER, num_classes=num_classes, in_channels=in_channels)
