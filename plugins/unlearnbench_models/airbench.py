"""An airbench94-style network (Jordan 2024, "94% on CIFAR-10 in 3.29 seconds on a single GPU",
github.com/KellerJordan/cifar10-airbench), our own implementation.

Layout: ``whiten`` (a 2x2 convolution whose filters are set from the patch covariance of the first
training batch) -> GELU -> ``block1``-``block3`` (each ``conv1`` -> 2x2 max-pool -> ``bn1`` ->
GELU -> ``conv2`` -> ``bn2`` -> GELU) -> 3x3 max-pool -> ``fc`` (bias-free) scaled by
``logit_scale``. Inputs arrive already normalised (or in [0, 1]); the whitening absorbs the scale.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from unlearnbench.api import InvalidValueError, ModelPlugin

WHITEN_EPS = 5e-4
"""Added to each eigenvalue of the patch covariance before its inverse square root."""


class PatchWhitening(nn.Conv2d):
    """A 2x2 convolution with ``2 * 4 * in_channels`` filters: the eigenvectors of the 2x2-patch
    covariance scaled by ``1 / sqrt(eigenvalue + eps)``, and their negations.

    The filters are computed (in fp32) from the first batch the module sees in training mode and
    then frozen (``requires_grad`` False; the bias stays trainable). Entries that are exactly zero
    at that moment (pruned by a mask) stay zero. Until then the weights are PyTorch's default
    init. ``initialised`` is a buffer, so a saved model keeps its whitening.
    """

    def __init__(self, in_channels: int) -> None:
        super().__init__(in_channels, 2 * 4 * in_channels, kernel_size=2, padding=0, bias=True)
        self.weight.requires_grad_(False)
        self.register_buffer("initialised", torch.zeros((), dtype=torch.bool))

    @torch.no_grad()
    def init_from(self, x: torch.Tensor) -> None:
        """Set the filters from the 2x2 patches of ``x`` [B, C, H, W]."""
        with torch.autocast(device_type=x.device.type, enabled=False):
            patches = F.unfold(x.float(), kernel_size=2).transpose(1, 2).reshape(-1, 4 * x.shape[1])
            centred = patches - patches.mean(dim=0)
            cov = centred.T @ centred / max(1, centred.shape[0] - 1)
            eigenvalues, eigenvectors = torch.linalg.eigh(cov.double())
            filters = (eigenvectors.T / torch.sqrt(eigenvalues.clamp_min(0) + WHITEN_EPS)[:, None]).float()
            filters = filters.reshape(-1, x.shape[1], 2, 2)
            weight = torch.cat([filters, -filters]).to(self.weight.dtype)
        keep = self.weight != 0
        self.weight.copy_(weight * keep)
        self.initialised.fill_(True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and not bool(self.initialised):
            self.init_from(x)
        return super().forward(x)


def dirac_conv(cin: int, cout: int) -> nn.Conv2d:
    """A bias-free 3x3 convolution, default init with its first ``min(cin, cout)`` filters set to
    the identity (airbench's partial dirac init)."""
    conv = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
    with torch.no_grad():
        n = min(cin, cout)
        nn.init.dirac_(conv.weight[:n])
    return conv


@dataclass(frozen=True)
class NormSpec:
    """BatchNorm settings: ``momentum`` in airbench's convention (the weight of the old running
    statistic; PyTorch's momentum is ``1 - momentum``), ``eps``, and whether the scale trains."""

    momentum: float = 0.6
    eps: float = 1e-12
    train_scale: bool = False

    def make(self, channels: int) -> nn.BatchNorm2d:
        norm = nn.BatchNorm2d(channels, eps=self.eps, momentum=1.0 - self.momentum)
        norm.weight.requires_grad_(self.train_scale)
        return norm


class ConvGroup(nn.Module):
    """conv1 -> 2x2 max-pool -> bn1 -> GELU -> conv2 -> bn2 -> GELU."""

    def __init__(self, cin: int, cout: int, norm: NormSpec) -> None:
        super().__init__()
        self.conv1 = dirac_conv(cin, cout)
        self.bn1 = norm.make(cout)
        self.conv2 = dirac_conv(cout, cout)
        self.bn2 = norm.make(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.gelu(self.bn1(F.max_pool2d(self.conv1(x), 2)))
        return F.gelu(self.bn2(self.conv2(x)))


class AirbenchNet(nn.Module):
    """Whitening conv, three conv groups of ``widths`` and a scaled bias-free linear head."""

    def __init__(
        self,
        widths: tuple[int, int, int],
        *,
        num_classes: int,
        in_channels: int,
        logit_scale: float,
        norm: NormSpec | None = None,
    ) -> None:
        super().__init__()
        norm = norm or NormSpec()
        self.whiten = PatchWhitening(in_channels)
        cin = self.whiten.out_channels
        self.block1 = ConvGroup(cin, widths[0], norm)
        self.block2 = ConvGroup(widths[0], widths[1], norm)
        self.block3 = ConvGroup(widths[1], widths[2], norm)
        self.fc = nn.Linear(widths[2], num_classes, bias=False)
        self.logit_scale = logit_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.gelu(self.whiten(x))
        x = self.block3(self.block2(self.block1(x)))
        x = torch.flatten(F.adaptive_max_pool2d(x, 1), 1)
        return self.fc(x) * self.logit_scale


class Airbench(ModelPlugin):
    """airbench94-style CIFAR network (Jordan 2024, arXiv:2404.00498; KellerJordan/cifar10-airbench),
    our implementation; default widths 64/256/256 as airbench94 (``narrow``: 32/128/128 in the
    protocol). 32x32 inputs: 31 after the 2x2 whitening conv, 15/7/3 after the groups' pools, then a
    global max-pool (airbench's 3x3 max-pool on the 3x3 map).

    Kept from airbench94: the frozen data-dependent whitening conv with a trainable bias and
    +/- eigenvector filters (eps 5e-4), partial dirac init, GELU, pool-before-BN groups,
    BatchNorm with a frozen unit scale, trainable bias, eps 1e-12 and running-statistics
    momentum 0.6 (airbench's convention: ``bn_momentum``; ``bn_train_scale`` makes the scale
    trainable), a bias-free head scaled by 1/9. Deviations: the whitening comes from the
    (centred) covariance of the first training batch, not the uncentred covariance of 5,000 fixed
    images, and its bias is never frozen (airbench stops training it after 3 epochs). The
    training tricks (64x lr on BN biases, lookahead, alternating flip) are recipe options
    (:mod:`unlearnbench.training.fast_training`); no TTA is used. Every 3x3 conv and the
    whitening conv are ``conv``-scope prunable.
    """

    name = "airbench"
    version = 2

    @dataclass(frozen=True)
    class Params:
        width1: int = 64
        width2: int = 256
        width3: int = 256
        logit_scale: float = 1.0 / 9.0
        bn_momentum: float = 0.6
        bn_train_scale: bool = False

    def build(self, *, num_classes: int, in_channels: int, image_size: int) -> nn.Module:
        widths = (self.params.width1, self.params.width2, self.params.width3)
        if min(widths) < 1:
            raise InvalidValueError(f"airbench widths must be >= 1, got {widths}")
        if image_size < 16:
            raise InvalidValueError(
                f"model 'airbench' needs images of at least 16x16, got {image_size}x{image_size}"
            )
        if not 0 <= self.params.bn_momentum < 1:
            raise InvalidValueError(f"airbench bn_momentum must be in [0, 1), got {self.params.bn_momentum}")
        norm = NormSpec(momentum=self.params.bn_momentum, train_scale=self.params.bn_train_scale)
        return AirbenchNet(
            widths,
            num_classes=num_classes,
            in_channels=in_channels,
            logit_scale=self.params.logit_scale,
            norm=norm,
        )
