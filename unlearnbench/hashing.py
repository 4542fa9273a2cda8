"""Stable hashes of JSON-ready values and tensors."""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no spaces; tuples serialise as lists."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def sha256_json(value: Any) -> str:
    return hashlib.sha256(canonical_json(value).encode()).hexdigest()


def sha256_indices(indices: torch.Tensor) -> str:
    """sha256 of an index list as sorted little-endian int64 bytes."""
    import torch

    ordered = indices.detach().to("cpu", torch.int64).sort().values.contiguous()
    return hashlib.sha256(ordered.numpy().astype("<i8").tobytes()).hexdigest()
