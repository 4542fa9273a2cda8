"""ResNets of He et al. (2016) in the forms the Unlearn-Sparse reference trains.

Every block exposes plain ``conv1``/``bn1``/``conv2``/``bn2`` (and ``conv3``/``bn3`` in a
bottleneck) attributes in forward order and a ``shortcut`` Sequential, which is empty for an
identity shortcut and ``(1x1 conv, BatchNorm)`` for a projection; the network's stem is
``conv1``/``bn1``, its stages ``layer1``-``layer4`` and its classifier ``fc``. Convolutions are
bias-free. Inputs arrive already normalised, so there is no normalisation layer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn

from unlearnbench.api import ModelPlugin, UnknownChoiceError

Stem = Literal["cifar", "imagenet"]
STEMS: tuple[str, ...] = ("cifar", "imagenet")


def _shortcut(in_planes: int, out_planes: int, stride: int) -> nn.Sequential:
    """Identity (empty) when shapes match, else a strided 1x1 projection and BatchNorm."""
    if stride == 1 and in_planes == out_planes:
        return nn.Sequential()
    return nn.Sequential(
        nn.Conv2d(in_planes, out_planes, 1, stride=stride, bias=False), nn.BatchNorm2d(out_planes)
    )


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers (the first strided) plus a shortcut; ReLU after the sum."""

    expansion: ClassVar[int] = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = _shortcut(in_planes, planes, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (strided, as in torchvision's "ResNet v1.5"), 1x1 expand by 4, shortcut."""

    expansion: ClassVar[int] = 4

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        out_planes = planes * self.expansion
        self.conv1 = nn.Conv2d(in_planes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out_planes, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_planes)
        self.shortcut = _shortcut(in_planes, out_planes, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return F.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    """A four-stage ResNet (widths 64, 128, 256, 512 times the block's expansion).

    ``stem="cifar"``: 3x3 stride-1 conv and no max-pool (``maxpool`` is an Identity);
    ``stem="imagenet"``: 7x7 stride-2 conv and a 3x3 stride-2 max-pool. Convolutions get Kaiming
    normal fan-out init, BatchNorm weight 1 and bias 0, and ``fc`` keeps PyTorch's default init.
    """

    def __init__(
        self,
        block: type[BasicBlock | Bottleneck],
        layers: tuple[int, int, int, int],
        *,
        num_classes: int,
        in_channels: int = 3,
        stem: str = "cifar",
    ) -> None:
        super().__init__()
        if stem not in STEMS:
            raise UnknownChoiceError("ResNet stem", stem, STEMS)
        if stem == "cifar":
            self.conv1 = nn.Conv2d(in_channels, 64, 3, stride=1, padding=1, bias=False)
            self.maxpool: nn.Module = nn.Identity()
        else:
            self.conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
            self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.bn1 = nn.BatchNorm2d(64)
        planes_in = 64
        stages = []
        for index, (planes, count) in enumerate(zip((64, 128, 256, 512), layers, strict=True)):
            blocks = []
            for position in range(count):
                stride = 2 if index > 0 and position == 0 else 1
                blocks.append(block(planes_in, planes, stride))
                planes_in = planes * block.expansion
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(planes_in, num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(F.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


class ResNet18(ModelPlugin):
    """ResNet-18 for 32x32 images: 3x3 stride-1 stem, no max-pool, BasicBlock stages [2, 2, 2, 2].

    He et al., "Deep Residual Learning for Image Recognition" (CVPR 2016), as built by the
    Unlearn-Sparse reference (``models/ResNet.py``, ``resnet18`` with ``imagenet=False``): widths
    64-512, bias-free convolutions, Kaiming fan-out init, global average pooling and ``fc``
    (11,173,962 parameters with 10 classes). Deviations: no normalisation module inside (the
    engine normalises); projection shortcuts are named ``shortcut`` rather than ``downsample``.
    ``stem="imagenet"`` gives the 7x7 stride-2 stem and max-pool (the reference's
    ``--imagenet_arch``).
    """

    name = "resnet18"
    version = 1

    @dataclass(frozen=True)
    class Params:
        stem: Stem = "cifar"

    def build(self, *, num_classes: int, in_channels: int, image_size: int) -> nn.Module:
        return ResNet(
            BasicBlock, (2, 2, 2, 2), num_classes=num_classes, in_channels=in_channels, stem=self.params.stem
        )


class ResNet50(ModelPlugin):
    """ResNet-50 for 32x32 images: the CIFAR stem of ``resnet18`` with Bottleneck stages [3, 4, 6, 3].

    He et al. (CVPR 2016), as built by the Unlearn-Sparse reference (``models/ResNet.py``,
    ``resnet50`` with ``imagenet=False``): bottleneck width 64-512, expansion 4 (2048 features into
    ``fc``), stride on the 3x3 convolution, bias-free convolutions, Kaiming fan-out init
    (23,520,842 parameters with 10 classes). Deviations as for ``resnet18``.
    """

    name = "resnet50"
    version = 1

    @dataclass(frozen=True)
    class Params:
        stem: Stem = "cifar"

    def build(self, *, num_classes: int, in_channels: int, image_size: int) -> nn.Module:
        return ResNet(
            Bottleneck, (3, 4, 6, 3), num_classes=num_classes, in_channels=in_channels, stem=self.params.stem
        )


class ResNet18Tiny(ModelPlugin):
    """ResNet-18 for 64x64 Tiny-ImageNet images, with the CIFAR stem as the reference trains it.

    He et al. (CVPR 2016). The Unlearn-Sparse reference builds its Tiny-ImageNet model as
    ``resnet18(num_classes=200, imagenet=args.imagenet_arch)``; ``--imagenet_arch`` is off by
    default, and its training loop reads batches as ImageNet/FFCV dicts when the flag is on, which
    the Tiny-ImageNet DataLoader (tuples) cannot feed. So the reference's Tiny-ImageNet model has
    the CIFAR stem (3x3 stride 1, no max-pool): the same network as ``resnet18``, reaching layer4
    at 8x8 before global pooling. We keep that default for fidelity; ``stem="imagenet"`` gives the
    7x7 stride-2 stem and max-pool (layer4 at 2x2, about 15x fewer multiply-adds). A separate name lets
    Tiny-ImageNet protocols and caches name their model. Deviations as for ``resnet18``.
    """

    name = "resnet18-tiny"
    version = 1

    @dataclass(frozen=True)
    class Params:
        stem: Stem = "cifar"

    def build(self, *, num_classes: int, in_channels: int, image_size: int) -> nn.Module:
        return ResNet(
            BasicBlock, (2, 2, 2, 2), num_classes=num_classes, in_channels=in_channels, stem=self.params.stem
        )
