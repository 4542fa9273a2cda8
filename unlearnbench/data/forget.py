"""Forget sets drawn from the training pool, reproducibly from a seed.

Indices are positions in the training pool the original model was trained on (unlike the
reference code, whose forget draw used a different seed than its split, so that some
"forgotten" images had never been trained on).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from unlearnbench.data.images import ImageSplit
from unlearnbench.errors import InvalidValueError
from unlearnbench.hashing import sha256_indices

if TYPE_CHECKING:  # data/ sits below config/ (config -> training -> data)
    from unlearnbench.config.sections import ForgetSpec


@dataclass(frozen=True)
class ForgetSet:
    """The forget indices (sorted), their sha256, and the classes a class-wise set removes."""

    spec: ForgetSpec
    indices: torch.Tensor
    sha256: str
    forgotten_classes: tuple[int, ...]


def _amount(spec: ForgetSpec, available: int, where: str) -> int:
    if spec.count and spec.fraction:
        raise InvalidValueError(f"forget set {spec.name!r}: give count or fraction, not both")
    n = spec.count if spec.count else round(spec.fraction * available)
    if not 0 < n <= available:
        raise InvalidValueError(
            f"forget set {spec.name!r}: {n} examples requested from {where} of {available}"
        )
    return n


def draw_forget_set(spec: ForgetSpec, pool: ImageSplit, num_classes: int) -> ForgetSet:
    """Draw ``spec`` from ``pool`` with a generator seeded by ``spec.seed``."""
    labels = pool.labels.cpu()
    if len(set(spec.classes)) != len(spec.classes):
        raise InvalidValueError(f"forget set {spec.name!r}: classes repeat: {list(spec.classes)}")
    for cls in spec.classes:
        if not 0 <= cls < num_classes:
            raise InvalidValueError(f"forget set {spec.name!r}: class {cls} is outside 0..{num_classes - 1}")
    generator = torch.Generator().manual_seed(spec.seed)
    if spec.kind == "random":
        n = _amount(spec, len(labels), "a training pool")
        chosen = torch.randperm(len(labels), generator=generator)[:n]
        forgotten: tuple[int, ...] = ()
    else:
        if not spec.classes:
            raise InvalidValueError(f"forget set {spec.name!r}: kind {spec.kind} needs classes")
        parts = []
        for cls in spec.classes:
            members = torch.nonzero(labels == cls).flatten()
            if spec.kind == "class":
                parts.append(members)
            else:
                n = _amount(spec, len(members), f"class {cls}")
                parts.append(members[torch.randperm(len(members), generator=generator)[:n]])
        chosen = torch.cat(parts)
        forgotten = tuple(spec.classes) if spec.kind == "class" else ()
    indices = chosen.sort().values
    if len(indices) == 0:
        raise InvalidValueError(f"forget set {spec.name!r} is empty")
    return ForgetSet(spec, indices, sha256_indices(indices), forgotten)


def retain_indices(pool_size: int, forget: ForgetSet) -> torch.Tensor:
    """The pool positions not in the forget set, in order."""
    keep = torch.ones(pool_size, dtype=torch.bool)
    keep[forget.indices] = False
    return torch.nonzero(keep).flatten()
