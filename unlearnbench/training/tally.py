"""What an engine needs to know of its device, and what it has trained."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class TrainingTally:
    """What an engine trained: epochs, and (description, epoch, validation accuracy %) after each
    epoch of a fit given a validation split."""

    epochs: int = 0
    curve: list[tuple[str, int, float]] = field(default_factory=list)


def bf16_supported(device: torch.device) -> bool:
    """Whether ``device`` runs bf16 natively: any CUDA device, or a CPU whose oneDNN reports bf16
    support (AVX512-BF16 or AMX; without them bf16 is emulated and slower than fp32)."""
    if device.type == "cuda":
        return True
    if device.type == "cpu":
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    return False
