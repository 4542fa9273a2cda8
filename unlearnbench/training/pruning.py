"""Shared pruning mechanics: which parameters a scope covers, and global top-k selection."""

from __future__ import annotations

import math

import torch
from torch import nn

from unlearnbench.errors import InvalidValueError, UnknownChoiceError
from unlearnbench.training.masks import Mask

SCOPES: dict[str, tuple[type[nn.Module], ...]] = {
    "conv": (nn.Conv2d,),
    "conv+linear": (nn.Conv2d, nn.Linear),
}


def scope_parameter_names(model: nn.Module, scope: str) -> frozenset[str]:
    """Names of the weights a scope covers: ``conv`` (as the reference code) or ``conv+linear``."""
    if scope not in SCOPES:
        raise UnknownChoiceError("prune scope", scope, SCOPES)
    types = SCOPES[scope]
    names = {
        f"{module_name}.weight" if module_name else "weight"
        for module_name, module in model.named_modules()
        if isinstance(module, types)
    }
    if not names:
        raise InvalidValueError(f"the model has no parameters in prune scope {scope!r}")
    return frozenset(names)


def check_sparsity(sparsity: float) -> float:
    """Return ``sparsity`` if it lies in [0, 1), else raise a clear error."""
    if not isinstance(sparsity, (int, float)) or not (0.0 <= float(sparsity) < 1.0):
        raise InvalidValueError(f"sparsity {sparsity!r} is outside [0, 1)")
    return float(sparsity)


def kept_count(total: int, sparsity: float) -> int:
    """How many of ``total`` entries a mask at ``sparsity`` keeps (rounded to nearest)."""
    return int(min(total, max(0, math.floor(total * (1.0 - sparsity) + 0.5))))


def global_topk_mask(scores: dict[str, torch.Tensor], sparsity: float, scope: frozenset[str]) -> Mask:
    """Keep the entries with the largest scores across all scoped parameters.

    Exactly ``kept_count(total, sparsity)`` entries are kept; ties go to the earlier position.
    """
    return topk_mask(scores, sparsity, scope)


def topk_mask(
    scores: dict[str, torch.Tensor],
    sparsity: float,
    scope: frozenset[str],
    *,
    within: Mask | None = None,
) -> Mask:
    """Like :func:`global_topk_mask`, but ranked in float64 and optionally nested in ``within``.

    Exactly ``kept_count(total, sparsity)`` entries are kept, chosen among the entries ``within``
    keeps (all entries when it is None); ties go to the earlier position (stable sort over the
    scope's parameters in sorted-name order). Raises if ``within`` keeps fewer entries than that.
    """
    check_sparsity(sparsity)
    names = sorted(scope)
    flat = torch.cat([scores[n].detach().to("cpu", torch.float64).flatten() for n in names])
    if torch.isnan(flat).any():
        raise InvalidValueError("pruning scores contain NaN")
    keep = kept_count(flat.numel(), sparsity)
    if within is not None:
        allowed = torch.cat([within.tensors[n].cpu().flatten() for n in names])
        if int(allowed.sum()) < keep:
            raise InvalidValueError(
                f"cannot keep {keep} entries inside a mask that keeps only {int(allowed.sum())}"
            )
        flat = flat.masked_fill(~allowed, float("-inf"))
    chosen = torch.zeros(flat.numel(), dtype=torch.bool)
    if keep:
        order = torch.sort(flat, descending=True, stable=True).indices
        chosen[order[:keep]] = True
    tensors, offset = {}, 0
    for name in names:
        size = scores[name].numel()
        tensors[name] = chosen[offset : offset + size].view(tuple(scores[name].shape))
        offset += size
    return Mask(tensors=tensors, scope=scope)
